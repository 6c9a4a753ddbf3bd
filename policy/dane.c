#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_DNS

#include <arpa/inet.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/x509.h>

#include "conf/log.h"
#include "conf/metrics.h"
#include "policy/dane.h"

#define DANE_STATE_NAME(sym, name) name,
static const char *const state_names[] = { DANE_STATES(DANE_STATE_NAME) };
#undef DANE_STATE_NAME

#define REGIME_KIND_NAME(sym, name) name,
static const char *const regime_names[] = { REGIME_KINDS(REGIME_KIND_NAME) };
#undef REGIME_KIND_NAME

const char *
dane_state_name(enum dane_state state)
{
	if ((size_t)state >= sizeof(state_names) / sizeof(state_names[0]))
		return "?";
	return state_names[state];
}

const char *
regime_kind_name(enum regime_kind kind)
{
	if ((size_t)kind >= sizeof(regime_names) / sizeof(regime_names[0]))
		return "?";
	return regime_names[kind];
}

struct dane_tlsa *
dane_tlsa_new(const char *host)
{
	struct dane_tlsa *t = xcalloc(1, sizeof(*t));

	snprintf(t->host, sizeof(t->host), "%s", host);
	t->state = DANE_S_OFF;
	t->status = DNS_STATUS_OK;
	t->failure = RPT_RESULT_NONE;
	snprintf(t->reason, sizeof(t->reason), "DANE not applied");
	return t;
}

static void
records_clear(struct dane_tlsa *t)
{
	for (size_t i = 0; i < t->count; i++)
		free(t->records[i].data);
	free(t->records);
	t->records = NULL;
	t->count = t->usable = 0;
	strlist_clear(&t->text);
}

void
dane_tlsa_free(struct dane_tlsa *t)
{
	if (t == NULL)
		return;
	records_clear(t);
	free(t);
}

struct dane_tlsa *
dane_tlsa_copy(const struct dane_tlsa *t)
{
	struct dane_tlsa *c = xcalloc(1, sizeof(*c));

	*c = *t;
	c->records = NULL;
	memset(&c->text, 0, sizeof(c->text));
	if (t->count > 0) {
		c->records = xcalloc(t->count, sizeof(*c->records));
		for (size_t i = 0; i < t->count; i++) {
			c->records[i] = t->records[i];
			c->records[i].data = xmalloc(t->records[i].len ? t->records[i].len : 1);
			memcpy(c->records[i].data, t->records[i].data, t->records[i].len);
		}
	}
	strlist_copy(&c->text, &t->text);
	return c;
}

void
dane_tlsa_set_state(struct dane_tlsa *t, enum dane_state state, const char *fmt, ...)
{
	va_list ap;

	t->state = state;
	va_start(ap, fmt);
	vsnprintf(t->reason, sizeof(t->reason), fmt, ap);
	va_end(ap);
}

/*
 * Why OpenSSL's DANE verifier could not use this record, or NULL. The
 * same checks SSL_dane_tlsa_add() makes, so that the regime is known
 * before connecting: a host whose every record fails them gets TLS
 * without authentication (DANE-8), never cleartext (DANE-9).
 */
static const char *
record_unusable(const struct dane_record *r)
{
	const unsigned char *p = r->data;

	switch (r->usage) {
	case DANE_USAGE_PKIX_TA:
		return "PKIX-TA(0) is not used for SMTP (RFC 7672 section 3.1.3)";
	case DANE_USAGE_PKIX_EE:
		return "PKIX-EE(1) is not used for SMTP (RFC 7672 section 3.1.3)";
	case DANE_USAGE_DANE_TA:
	case DANE_USAGE_DANE_EE:
		break;
	default:
		return "unknown certificate usage";
	}
	if (r->selector > 1)
		return "unknown selector";
	switch (r->mtype) {
	case 0:
		if (r->selector == 0) {
			X509 *x = d2i_X509(NULL, &p, (long)r->len);

			X509_free(x);
			if (x == NULL || p != r->data + r->len)
				return "full certificate (0 0) does not parse";
		} else {
			EVP_PKEY *k = d2i_PUBKEY(NULL, &p, (long)r->len);

			EVP_PKEY_free(k);
			if (k == NULL || p != r->data + r->len)
				return "full public key (x 1 0) does not parse";
		}
		return NULL;
	case 1:
		return r->len == 32 ? NULL : "SHA2-256 data is not 32 bytes";
	case 2:
		return r->len == 64 ? NULL : "SHA2-512 data is not 64 bytes";
	default:
		return "unknown matching type";
	}
}

int
dane_tlsa_add_rdata(struct dane_tlsa *t, const unsigned char *rdata, size_t len, const char **why)
{
	struct dane_record *r;

	/* RFC 6698 section 2.1: three one-byte fields and at least one byte of data. */
	if (len < 4) {
		*why = "TLSA record shorter than 4 bytes";
		return -1;
	}
	if (t->count >= DANE_RECORDS_MAX) {
		*why = "more TLSA records than stsproxy keeps (64)";
		return -1;
	}
	t->records = xrealloc(t->records, (t->count + 1) * sizeof(*t->records));
	r = &t->records[t->count++];
	r->usage = rdata[0];
	r->selector = rdata[1];
	r->mtype = rdata[2];
	r->len = len - 3;
	r->data = xmalloc(r->len);
	memcpy(r->data, rdata + 3, r->len);
	r->unusable = record_unusable(r);
	return 0;
}

static int
hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
dane_tlsa_add_text(struct dane_tlsa *t, const char *text, const char **why)
{
	unsigned long f[3];
	const char *p = text;
	unsigned char *buf;
	size_t n = 3;
	int rc;

	for (int i = 0; i < 3; i++) {
		char *end;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p < '0' || *p > '9' || (f[i] = strtoul(p, &end, 10)) > 255) {
			*why = "expected three numbers 0-255 (usage, selector, matching type)";
			return -1;
		}
		p = end;
	}
	buf = xmalloc(3 + strlen(p) / 2 + 1);
	for (int i = 0; i < 3; i++)
		buf[i] = (unsigned char)f[i];
	for (;;) {
		int hi, lo;

		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if ((hi = hexval(p[0])) < 0 || (lo = hexval(p[1])) < 0) {
			free(buf);
			*why = "the data is not an even number of hex digits";
			return -1;
		}
		buf[n++] = (unsigned char)(hi << 4 | lo);
		p += 2;
	}
	rc = dane_tlsa_add_rdata(t, buf, n, why);
	free(buf);
	return rc;
}

static int
record_cmp(const void *a, const void *b)
{
	const struct dane_record *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c;

	if (x->usage != y->usage)
		return x->usage - y->usage;
	if (x->selector != y->selector)
		return x->selector - y->selector;
	if (x->mtype != y->mtype)
		return x->mtype - y->mtype;
	if ((c = memcmp(x->data, y->data, n)) != 0)
		return c;
	return x->len < y->len ? -1 : x->len > y->len;
}

static const char *
usage_name(uint8_t usage)
{
	switch (usage) {
	case DANE_USAGE_PKIX_TA: return "PKIX-TA";
	case DANE_USAGE_PKIX_EE: return "PKIX-EE";
	case DANE_USAGE_DANE_TA: return "DANE-TA";
	case DANE_USAGE_DANE_EE: return "DANE-EE";
	default: return "usage";
	}
}

void
dane_tlsa_finish(struct dane_tlsa *t, const char *base)
{
	EVP_MD_CTX *md = EVP_MD_CTX_new();
	unsigned char digest[EVP_MAX_MD_SIZE];
	unsigned dlen = 0;
	size_t plen = 0;
	const char *first_why = NULL;

	snprintf(t->base, sizeof(t->base), "%s", base);
	/* The RRset's identity must not depend on the order DNS gave it in. */
	if (t->count > 1)
		qsort(t->records, t->count, sizeof(*t->records), record_cmp);
	strlist_clear(&t->text);
	t->usable = 0;
	t->params[0] = '\0';
	if (md == NULL || EVP_DigestInit_ex(md, EVP_sha256(), NULL) != 1)
		fatalx("cannot hash a TLSA RRset");
	EVP_DigestUpdate(md, base, strlen(base) + 1);
	for (size_t i = 0; i < t->count; i++) {
		const struct dane_record *r = &t->records[i];
		unsigned char head[5] = { r->usage, r->selector, r->mtype,
		    (unsigned char)(r->len >> 8), (unsigned char)r->len };
		struct strbuf sb;
		char one[32];

		static const char hexdigits[] = "0123456789ABCDEF";
		char *hex;

		EVP_DigestUpdate(md, head, sizeof(head));
		EVP_DigestUpdate(md, r->data, r->len);
		/* once per transaction and MX: no printf per byte */
		hex = xmalloc(2 * r->len + 1);
		for (size_t k = 0; k < r->len; k++) {
			hex[2 * k] = hexdigits[r->data[k] >> 4];
			hex[2 * k + 1] = hexdigits[r->data[k] & 15];
		}
		hex[2 * r->len] = '\0';
		strbuf_init(&sb);
		strbuf_printf(&sb, "%u %u %u %s", r->usage, r->selector, r->mtype, hex);
		free(hex);
		strlist_add(&t->text, sb.data);
		strbuf_free(&sb);
		if (r->unusable != NULL) {
			if (first_why == NULL)
				first_why = r->unusable;
			continue;
		}
		t->usable++;
		snprintf(one, sizeof(one), "%s %u %u %u", usage_name(r->usage), r->usage, r->selector,
		    r->mtype);
		if (strstr(t->params, one) == NULL && plen + strlen(one) + 3 < sizeof(t->params))
			plen += (size_t)snprintf(t->params + plen, sizeof(t->params) - plen, "%s%s",
			    plen ? ", " : "", one);
	}
	EVP_DigestFinal_ex(md, digest, &dlen);
	EVP_MD_CTX_free(md);
	for (int i = 0; i < 8; i++)
		snprintf(t->id + 2 * i, 3, "%02x", digest[i]);
	if (t->usable > 0)
		dane_tlsa_set_state(t, DANE_S_USABLE, "%zu usable TLSA record%s at %s (%s)", t->usable,
		    t->usable == 1 ? "" : "s", t->qname, t->params);
	else
		dane_tlsa_set_state(t, DANE_S_UNUSABLE, "%zu TLSA record%s at %s, none usable (%s)",
		    t->count, t->count == 1 ? "" : "s", t->qname, first_why ? first_why : "?");
}

struct dane_tlsa *
dane_precheck(const struct mx_host *h, bool mx_secure)
{
	struct dane_tlsa *t;
	struct in6_addr a6;
	struct in_addr a4;

	if (mx_secure && h->secure && inet_pton(AF_INET, h->name, &a4) != 1 &&
	    inet_pton(AF_INET6, h->name, &a6) != 1)
		return NULL;
	t = dane_tlsa_new(h->name);
	if (!mx_secure)
		dane_tlsa_set_state(t, DANE_S_MX_INSECURE, "the MX lookup was not DNSSEC-secure");
	else if (!h->secure)
		dane_tlsa_set_state(t, DANE_S_ADDR_INSECURE, "the address records of %s are not "
		    "DNSSEC-secure", h->name);
	else
		dane_tlsa_set_state(t, DANE_S_OFF, "an IP address as MX name has no TLSA records");
	return t;
}

/* One TLSA lookup, over its candidate base domains in turn (DANE-7). */
struct dane_lookup {
	struct resolver		*resolver;
	char			 host[256];
	char			 cand[2][256];
	size_t			 ncand, at;
	unsigned		 port;
	struct resolver_query	*q;
	dane_lookup_cb		 cb;
	void			*arg;
	struct dane_tlsa	*result;
};

static void lookup_ask(struct dane_lookup *l);

static void
lookup_done(struct dane_lookup *l)
{
	struct dane_tlsa *t = l->result;
	char labels[48];

	l->result = NULL;
	snprintf(labels, sizeof(labels), "state=\"%s\"", dane_state_name(t->state));
	metrics_add("stsproxy_tlsa_lookups_total", labels, 1);
	log_debug("event=tlsa host=%s qname=%s state=%s dnssec=%s id=%s reason=%s", l->host, t->qname,
	    dane_state_name(t->state), dns_security_name(t->security), t->id[0] ? t->id : "-",
	    log_quote(t->reason));
	l->cb(l->arg, t);
	free(l);
}

static void
on_tlsa(void *arg, const struct dns_answer *ans)
{
	struct dane_lookup *l = arg;
	struct dane_tlsa *t = l->result;
	bool secure = ans->security == DNS_SECURITY_SECURE;
	const char *why = NULL;

	l->q = NULL;
	t->status = ans->status;
	t->security = ans->security;
	switch (ans->status) {
	case DNS_STATUS_OK:
		if (!secure)
			break;	/* not DANE; the next candidate may be */
		records_clear(t);
		for (size_t i = 0; i < ans->count && why == NULL; i++)
			(void)dane_tlsa_add_rdata(t, ans->data[i], (size_t)ans->len[i], &why);
		if (why != NULL) {
			records_clear(t);
			t->failure = RPT_RESULT_TLSA_INVALID;
			dane_tlsa_set_state(t, DANE_S_FAILED, "TLSA lookup of %s: malformed answer: %s",
			    t->qname, why);
			lookup_done(l);
			return;
		}
		dane_tlsa_finish(t, l->cand[l->at]);
		lookup_done(l);
		return;
	case DNS_STATUS_NODATA:
	case DNS_STATUS_NXDOMAIN:
		break;
	default:
		/* DANE-3: never "no DANE" after a failed lookup. */
		t->failure = RPT_RESULT_DNSSEC_INVALID;
		dane_tlsa_set_state(t, DANE_S_FAILED, "TLSA lookup of %s failed: %s%s%s", t->qname,
		    dns_status_name(ans->status), ans->why ? ": " : "", ans->why ? ans->why : "");
		lookup_done(l);
		return;
	}
	/* RFC 7671 section 7: nothing at the expanded name, try the original. */
	if (++l->at < l->ncand) {
		lookup_ask(l);
		return;
	}
	if (secure && ans->status != DNS_STATUS_OK)
		dane_tlsa_set_state(t, DANE_S_NONE, "DNSSEC proves %s has no TLSA records", t->qname);
	else
		dane_tlsa_set_state(t, DANE_S_INSECURE, "the TLSA answer for %s is not DNSSEC-secure",
		    t->qname);
	lookup_done(l);
}

static void
lookup_ask(struct dane_lookup *l)
{
	struct dane_tlsa *t = l->result;

	snprintf(t->qname, sizeof(t->qname), "_%u._tcp.%s", l->port, l->cand[l->at]);
	l->q = resolver_query(l->resolver, t->qname, RR_TLSA, on_tlsa, l);
	if (l->q == NULL) {
		/* A local failure from inside an answer: fail this host, from the loop later. */
		t->status = DNS_STATUS_ERROR;
		t->failure = RPT_RESULT_DNSSEC_INVALID;
		dane_tlsa_set_state(t, DANE_S_FAILED, "TLSA lookup of %s could not start", t->qname);
		lookup_done(l);
	}
}

struct dane_lookup *
dane_lookup_start(struct resolver *resolver, const struct mx_host *h, unsigned port,
    dane_lookup_cb cb, void *arg)
{
	struct dane_lookup *l = xcalloc(1, sizeof(*l));

	l->resolver = resolver;
	l->port = port;
	l->cb = cb;
	l->arg = arg;
	snprintf(l->host, sizeof(l->host), "%s", h->name);
	/* DANE-7: the CNAME-expanded name first (its chain was secure:
	 * h->secure covers it), then the name the MX record gave. */
	if (h->canonname[0] != '\0' && strcasecmp(h->canonname, h->name) != 0)
		snprintf(l->cand[l->ncand++], sizeof(l->cand[0]), "%s", h->canonname);
	snprintf(l->cand[l->ncand++], sizeof(l->cand[0]), "%s", h->name);
	l->result = dane_tlsa_new(h->name);
	snprintf(l->result->qname, sizeof(l->result->qname), "_%u._tcp.%s", port, l->cand[0]);
	l->q = resolver_query(resolver, l->result->qname, RR_TLSA, on_tlsa, l);
	if (l->q == NULL) {
		dane_tlsa_free(l->result);
		free(l);
		return NULL;
	}
	return l;
}

void
dane_lookup_cancel(struct dane_lookup *l)
{
	if (l == NULL)
		return;
	resolver_cancel(l->q);
	dane_tlsa_free(l->result);
	free(l);
}

/* The lookups of one MX set, one slot per host. */
struct dane_hosts {
	struct dane_host_slot {
		struct dane_hosts	*set;
		size_t			 i;
		struct dane_lookup	*lookup;
	}			*slots;
	size_t			 n, pending;
	dane_host_cb		 cb;
	void			*arg;
};

static void
hosts_free(struct dane_hosts *d)
{
	free(d->slots);
	free(d);
}

static void
on_host(void *arg, struct dane_tlsa *result)
{
	struct dane_host_slot *slot = arg;
	struct dane_hosts *d = slot->set;
	size_t i = slot->i;
	dane_host_cb cb = d->cb;
	void *cbarg = d->arg;

	slot->lookup = NULL;
	/* The handle dies before the last callback, which may free the caller. */
	if (--d->pending == 0)
		hosts_free(d);
	cb(cbarg, i, result);
}

struct dane_hosts *
dane_hosts_start(struct resolver *resolver, const struct mx_host *hosts, size_t nhosts,
    bool mx_secure, unsigned port, dane_host_cb cb, void *arg)
{
	struct dane_hosts *d = xcalloc(1, sizeof(*d));

	d->slots = xcalloc(nhosts ? nhosts : 1, sizeof(*d->slots));
	d->n = nhosts;
	d->cb = cb;
	d->arg = arg;
	/* Start every query first: a callback below may look at the others. */
	for (size_t i = 0; i < nhosts; i++) {
		d->slots[i].set = d;
		d->slots[i].i = i;
		if (hosts[i].naddrs == 0 || !mx_secure || !hosts[i].secure)
			continue;
		if ((d->slots[i].lookup = dane_lookup_start(resolver, &hosts[i], port, on_host,
		    &d->slots[i])) != NULL)
			d->pending++;
	}
	for (size_t i = 0; i < nhosts; i++) {
		struct dane_tlsa *t;

		if (d->slots[i].lookup != NULL)
			continue;
		if (hosts[i].naddrs == 0) {
			t = dane_tlsa_new(hosts[i].name);
			dane_tlsa_set_state(t, DANE_S_OFF, "no address to connect to");
		} else if ((t = dane_precheck(&hosts[i], mx_secure)) == NULL) {
			t = dane_tlsa_new(hosts[i].name);
			t->status = DNS_STATUS_ERROR;
			t->failure = RPT_RESULT_DNSSEC_INVALID;
			dane_tlsa_set_state(t, DANE_S_FAILED, "the TLSA lookup could not start");
		}
		cb(arg, i, t);
	}
	if (d->pending == 0) {
		hosts_free(d);
		return NULL;
	}
	return d;
}

void
dane_hosts_cancel(struct dane_hosts *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n; i++)
		dane_lookup_cancel(d->slots[i].lookup);
	hosts_free(d);
}

static void
add_name(struct strlist *out, const char *base, const char *name)
{
	if (name == NULL || *name == '\0' || strcasecmp(name, base) == 0)
		return;
	for (size_t i = 0; i < out->count; i++)
		if (strcasecmp(out->items[i], name) == 0)
			return;
	strlist_add(out, name);
}

void
dane_reference_ids(const struct dane_tlsa *t, const char *next_hop, const char *next_hop_canon,
    bool mx_secure, struct strlist *out)
{
	const char *base = t->base[0] ? t->base : t->host;

	add_name(out, base, t->host);
	if (mx_secure) {
		add_name(out, base, next_hop);
		add_name(out, base, next_hop_canon);
	}
}

void
route_regime_decide(const struct dane_tlsa *t, bool dane_required, bool sts_strict,
    struct route_regime *out)
{
	enum dane_state state = t != NULL ? t->state : DANE_S_OFF;
	const char *why = t != NULL ? t->reason : "DANE is off ([tls] dane = no)";

	memset(out, 0, sizeof(*out));
	out->tlsa = t;
	out->failure = RPT_RESULT_NONE;
	switch (state) {
	case DANE_S_FAILED:
		/* DANE-3: whatever MTA-STS says, this host is unreachable. */
		out->kind = REGIME_UNREACHABLE;
		out->failure = t->failure != RPT_RESULT_NONE ? t->failure : RPT_RESULT_DNSSEC_INVALID;
		snprintf(out->reason, sizeof(out->reason), "%s", why);
		return;
	case DANE_S_USABLE:
		/* DANE-10, STS-46, STS-47: DANE alone authenticates this host. */
		out->kind = REGIME_DANE;
		out->tls_required = out->authenticate = true;
		snprintf(out->reason, sizeof(out->reason), "%s", why);
		return;
	case DANE_S_UNUSABLE:
		if (dane_required)
			break;
		out->tls_required = true;	/* DANE-9: never in the clear */
		if (sts_strict) {
			out->kind = REGIME_MTA_STS;
			out->authenticate = true;
			snprintf(out->reason, sizeof(out->reason), "%s; the MTA-STS policy authenticates",
			    why);
		} else {
			out->kind = REGIME_DANE_TLS;
			snprintf(out->reason, sizeof(out->reason), "%s: STARTTLS required, not "
			    "authenticated", why);
		}
		return;
	default:
		if (dane_required)
			break;
		if (sts_strict) {
			out->kind = REGIME_MTA_STS;
			out->tls_required = out->authenticate = true;
			snprintf(out->reason, sizeof(out->reason), "no usable TLSA (%s); the MTA-STS "
			    "policy authenticates", why);
		} else {
			out->kind = REGIME_OPPORTUNISTIC;
			snprintf(out->reason, sizeof(out->reason), "no usable TLSA (%s) and no MTA-STS "
			    "policy in force", why);
		}
		return;
	}
	/* DANE-17: DANE is mandatory for this domain and cannot be had here. */
	out->kind = REGIME_UNREACHABLE;
	out->failure = RPT_RESULT_DANE_REQUIRED;
	snprintf(out->reason, sizeof(out->reason), "no usable TLSA record, DANE required (%s)", why);
}
