#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_POLICY

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "conf/log.h"
#include "policy/fetch.h"
#include "policy/https_client.h"

#define FETCH_MAX_HEADERS	8192
#define FETCH_PATH		"/.well-known/mta-sts.txt"

struct policy_fetch {
	const struct conf	*conf;
	char			*host;		/* mta-sts.<domain> */
	struct https_client	*https;
	policy_fetch_cb		 cb;
	void			*arg;
};

static void
fetch_fail(struct fetch_result *r, enum rpt_result_type type, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
fetch_fail(struct fetch_result *r, enum rpt_result_type type, const char *fmt, ...)
{
	va_list ap;

	r->ok = false;
	r->type = type;
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
}

bool
fetch_content_type_ok(const char *value)
{
	size_t n;

	if (value == NULL)
		return false;
	while (*value == ' ' || *value == '\t')
		value++;
	n = strcspn(value, "; \t");
	return n == strlen("text/plain") && strncasecmp(value, "text/plain", n) == 0;
}

/* What the answer means for the policy (STS-15, STS-16, STS-21). */
static void
fetch_judge_response(const struct https_result *h, struct fetch_result *r)
{
	r->http_status = h->status;
	snprintf(r->content_type, sizeof(r->content_type), "%s",
	    h->content_type ? h->content_type : "");
	if (h->status >= 300 && h->status < 400) {
		fetch_fail(r, RPT_RESULT_STS_POLICY_FETCH_ERROR,
		    "HTTP %d redirect%s%s (redirects are not followed)", h->status,
		    h->location ? " to " : "", h->location ? h->location : "");
		return;
	}
	if (h->status != 200) {
		fetch_fail(r, RPT_RESULT_STS_POLICY_FETCH_ERROR, "HTTP %d", h->status);
		return;
	}
	if (!fetch_content_type_ok(h->content_type)) {
		fetch_fail(r, RPT_RESULT_STS_POLICY_INVALID, "Content-Type %s (text/plain required)",
		    h->content_type ? h->content_type : "missing");
		return;
	}
	r->ok = true;
	r->type = RPT_RESULT_NONE;
	r->body = h->body;
	r->body_len = h->body_len;
}

static void
fetch_done(void *arg, const struct https_result *h)
{
	struct policy_fetch *f = arg;
	struct fetch_result r;

	f->https = NULL;	/* freed by the client after this callback */
	memset(&r, 0, sizeof(r));
	snprintf(r.url, sizeof(r.url), "https://%s%s", f->host, FETCH_PATH);
	snprintf(r.address, sizeof(r.address), "%s", h->address);
	r.tls_done = h->tls_done;
	r.peer = h->peer;
	switch (h->outcome) {
	case HTTPS_RESPONSE:
		fetch_judge_response(h, &r);
		break;
	case HTTPS_NO_ADDRESS:
	case HTTPS_UNREACHABLE:
		fetch_fail(&r, RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s: %s", f->host, h->reason);
		break;
	case HTTPS_TLS_FAILED:
		/* Certificate problems of the policy host are sts-webpki-invalid
		 * (STS-21); other handshake failures are fetch errors. */
		fetch_fail(&r, h->verify_result != X509_V_OK ? RPT_RESULT_STS_WEBPKI_INVALID :
		    RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s: %s", f->host, h->reason);
		break;
	case HTTPS_TOO_LARGE:
		fetch_fail(&r, RPT_RESULT_STS_POLICY_INVALID,
		    "policy body or headers larger than the limit of %zu bytes",
		    f->conf->policy_max_body);
		break;
	case HTTPS_TIMEOUT:
		fetch_fail(&r, RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s: no complete answer within %us",
		    f->host, f->conf->policy_fetch_timeout);
		break;
	case HTTPS_BAD_RESPONSE:
	case HTTPS_ERROR:
		fetch_fail(&r, RPT_RESULT_STS_POLICY_FETCH_ERROR, "%s", h->reason);
		break;
	}
	f->cb(f->arg, &r);
	policy_fetch_cancel(f);	/* the client is gone: this frees what is ours */
}

struct policy_fetch *
policy_fetch_start(struct event_base *base, struct resolver *resolver, SSL_CTX *ssl_ctx,
    const struct conf *conf, const char *domain, policy_fetch_cb cb, void *arg)
{
	struct policy_fetch *f = xcalloc(1, sizeof(*f));
	/* No caching layer may answer for the origin (STS-15). */
	static const char *const headers[] = {
		"Accept", "text/plain", "Cache-Control", "no-cache", NULL,
	};
	struct https_request req = {
		.method = HTTPS_GET,
		.port = 443,
		.path = FETCH_PATH,
		.headers = headers,
		.io_timeout = conf->policy_fetch_timeout,
		.deadline = conf->policy_fetch_timeout,
		.max_body = conf->policy_max_body,
		.max_headers = FETCH_MAX_HEADERS,
		.cert_check = HTTPS_CERT_REQUIRED,	/* STS-14 */
		.every_address = false,
		.log_sub = LOG_SUB_POLICY,
	};

	f->conf = conf;
	f->host = xasprintf("mta-sts.%s", domain);
	f->cb = cb;
	f->arg = arg;
	req.host = f->host;
	f->https = https_start(base, resolver, ssl_ctx, &req, fetch_done, f);
	return f;
}

void
policy_fetch_cancel(struct policy_fetch *f)
{
	if (f == NULL)
		return;
	https_cancel(f->https);
	free(f->host);
	free(f);
}
