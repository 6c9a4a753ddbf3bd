#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/http.h>
#include <zlib.h>

#include "conf/log.h"
#include "policy/https_client.h"
#include "report/rpt_post.h"

/* The receiver's answer is not kept; its headers are bounded all the same. */
#define POST_MAX_HEADERS	65536

struct rpt_post {
	struct https_client	*https;
	char			*host, *url;
	rpt_post_cb		 cb;
	void			*arg;
};

int
rpt_gzip(const void *in, size_t len, struct strbuf *out)
{
	z_stream z;
	unsigned char buf[16384];
	int rc;

	memset(&z, 0, sizeof(z));
	/* windowBits 15 + 16: a gzip wrapper rather than zlib's. */
	if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	z.next_in = (unsigned char *)(uintptr_t)in;
	z.avail_in = (uInt)len;
	do {
		z.next_out = buf;
		z.avail_out = sizeof(buf);
		rc = deflate(&z, Z_FINISH);
		if (rc == Z_STREAM_ERROR) {
			deflateEnd(&z);
			return -1;
		}
		strbuf_append(out, (const char *)buf, sizeof(buf) - z.avail_out);
	} while (rc != Z_STREAM_END);
	deflateEnd(&z);
	return 0;
}

void
rpt_post_cancel(struct rpt_post *p)
{
	if (p == NULL)
		return;
	https_cancel(p->https);
	free(p->host);
	free(p->url);
	free(p);
}

/* From the loop, outside every callback of the connection. */
static void
posted(void *arg, const struct https_result *h)
{
	struct rpt_post *p = arg;
	struct rpt_post_result r;

	p->https = NULL;	/* freed by the client after this callback */
	memset(&r, 0, sizeof(r));
	switch (h->outcome) {
	case HTTPS_RESPONSE:
		r.http_status = h->status;
		r.delivered = h->status >= 200 && h->status < 300;
		if (r.delivered)
			snprintf(r.reason, sizeof(r.reason), "delivered");
		else
			snprintf(r.reason, sizeof(r.reason), "%s answered HTTP %d", p->host, h->status);
		break;
	case HTTPS_NO_ADDRESS:
		snprintf(r.reason, sizeof(r.reason), "%s has no address", p->host);
		break;
	case HTTPS_TIMEOUT:
		snprintf(r.reason, sizeof(r.reason), "no answer within the time allowed");
		break;
	case HTTPS_ERROR:
		snprintf(r.reason, sizeof(r.reason), "%s", h->reason);
		break;
	case HTTPS_UNREACHABLE:
	case HTTPS_TLS_FAILED:		/* every_address: these end as UNREACHABLE */
	case HTTPS_BAD_RESPONSE:
	case HTTPS_TOO_LARGE:
		snprintf(r.reason, sizeof(r.reason), "%s: no address answered", p->host);
		break;
	}
	log_info("event=report_post url=%s http_status=%d delivered=%s reason=%s", p->url,
	    r.http_status, r.delivered ? "yes" : "no", log_quote(r.delivered ? "-" : r.reason));
	p->cb(p->arg, &r);
	rpt_post_cancel(p);	/* the client is gone: this frees what is ours */
}

struct rpt_post *
rpt_post_start(struct event_base *base, struct resolver *resolver, SSL_CTX *ssl_ctx,
    const char *url, const void *body, size_t len, unsigned timeout, rpt_post_cb cb, void *arg)
{
	static const char *const headers[] = { "Content-Type", "application/tlsrpt+gzip", NULL };
	struct evhttp_uri *uri = evhttp_uri_parse(url);
	struct rpt_post *p;
	const char *scheme, *host, *path, *query;
	char *full_path;
	struct https_request req = {
		.method = HTTPS_POST,
		.headers = headers,
		.body = body,
		.body_len = len,
		.io_timeout = timeout,
		.deadline = timeout * 2,
		.max_body = 0,		/* read and dropped */
		.max_headers = POST_MAX_HEADERS,
		.cert_check = HTTPS_CERT_IGNORED,	/* RPT-13: MAY ignore */
		.every_address = true,
		.log_sub = LOG_SUB_REPORT,
	};

	if (uri == NULL)
		return NULL;
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	if (scheme == NULL || strcasecmp(scheme, "https") != 0 || host == NULL || *host == '\0') {
		evhttp_uri_free(uri);
		return NULL;
	}
	p = xcalloc(1, sizeof(*p));
	p->host = xstrdup(host);
	p->url = xstrdup(url);
	p->cb = cb;
	p->arg = arg;
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	full_path = xasprintf("%s%s%s", path && *path ? path : "/", query ? "?" : "",
	    query ? query : "");
	req.host = p->host;
	req.port = evhttp_uri_get_port(uri) > 0 ? (unsigned short)evhttp_uri_get_port(uri) : 443;
	req.path = full_path;
	evhttp_uri_free(uri);
	p->https = https_start(base, resolver, ssl_ctx, &req, posted, p);
	free(full_path);
	return p;
}
