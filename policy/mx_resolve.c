#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_DNS

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <strings.h>
#include <string.h>

#include "conf/log.h"
#include "conf/util.h"
#include "policy/mx_resolve.h"

#define RR_A	1
#define RR_MX	15
#define RR_AAAA	28

struct mx_lookup;

/* One address query: which lookup and host it fills. */
struct addr_query {
	struct mx_lookup	*lookup;
	size_t			 host;
	int			 rrtype;
	struct resolver_query	*q;
};

struct mx_lookup {
	struct resolver		*resolver;
	char			*domain;
	char			*self;
	bool			 ipv6;
	unsigned		 port;
	mx_resolve_cb		 cb;
	void			*arg;

	struct resolver_query	*mx_query;
	bool			 mx_secure;
	char			*mx_canonname;	/* CNAME target of the domain, or NULL */
	struct mx_host		*hosts;
	size_t			 nhosts;
	struct addr_query	*aq;
	size_t			 naq, pending;
};

const char *
mx_status_name(enum mx_status status)
{
	switch (status) {
	case MX_STATUS_OK: return "ok";
	case MX_STATUS_NULL_MX: return "null-mx";
	case MX_STATUS_NXDOMAIN: return "nxdomain";
	case MX_STATUS_NO_HOSTS: return "no-hosts";
	case MX_STATUS_TEMPFAIL: return "tempfail";
	}
	return "?";
}

static void
lookup_free(struct mx_lookup *l)
{
	free(l->domain);
	free(l->mx_canonname);
	free(l->self);
	free(l->hosts);
	free(l->aq);
	free(l);
}

void
mx_lookup_cancel(struct mx_lookup *l)
{
	if (l == NULL)
		return;
	if (l->mx_query != NULL)
		resolver_cancel(l->mx_query);
	for (size_t i = 0; i < l->naq; i++)
		if (l->aq[i].q != NULL)
			resolver_cancel(l->aq[i].q);
	lookup_free(l);
}

static void
finish(struct mx_lookup *l, enum mx_status status, const char *reason)
{
	struct mx_set set = {
		.domain = l->domain, .status = status, .reason = reason,
		.mx_secure = l->mx_secure, .canonname = l->mx_canonname, .hosts = l->hosts,
		.nhosts = status == MX_STATUS_OK ? l->nhosts : 0,
	};

	l->cb(l->arg, &set);
	lookup_free(l);
}

static int
pref_cmp(const void *a, const void *b)
{
	const struct mx_host *x = a, *y = b;

	return x->preference < y->preference ? -1 : x->preference > y->preference;
}

void
mx_sort_shuffle(struct mx_host *hosts, size_t n)
{
	qsort(hosts, n, sizeof(*hosts), pref_cmp);
	for (size_t start = 0; start < n;) {
		size_t end = start + 1;

		while (end < n && hosts[end].preference == hosts[start].preference)
			end++;
		/* Fisher-Yates within each run of equal preference. */
		for (size_t i = end - 1; i > start; i--) {
			size_t j = start + arc4random_uniform((uint32_t)(i - start + 1));
			struct mx_host tmp = hosts[i];

			hosts[i] = hosts[j];
			hosts[j] = tmp;
		}
		start = end;
	}
}

static bool
is_tempfail(enum dns_status s)
{
	return s == DNS_STATUS_SERVFAIL || s == DNS_STATUS_TIMEOUT || s == DNS_STATUS_BOGUS ||
	    s == DNS_STATUS_ERROR;
}

static void
addresses_done(struct mx_lookup *l)
{
	bool any = false, temp = false;
	size_t kept = 0;

	for (size_t i = 0; i < l->nhosts; i++) {
		struct mx_host *h = &l->hosts[i];

		if (is_tempfail(h->a_status) || (l->ipv6 && is_tempfail(h->aaaa_status)))
			temp = true;
		if (h->naddrs > 0)
			any = true;
		/* IPv6 first: place AAAA results before A (they arrive in any order). */
		struct sockaddr_storage sorted[2 * MX_ADDRS_MAX];
		size_t n = 0;
		for (size_t k = 0; k < h->naddrs; k++)
			if (h->addrs[k].ss_family == AF_INET6)
				sorted[n++] = h->addrs[k];
		for (size_t k = 0; k < h->naddrs; k++)
			if (h->addrs[k].ss_family == AF_INET)
				sorted[n++] = h->addrs[k];
		memcpy(h->addrs, sorted, n * sizeof(sorted[0]));
		kept++;
	}
	(void)kept;
	if (any)
		finish(l, MX_STATUS_OK, NULL);
	else if (temp)
		finish(l, MX_STATUS_TEMPFAIL, "address lookup of every MX host failed temporarily");
	else
		finish(l, MX_STATUS_NO_HOSTS, "no MX host has an address");
}

static void
on_address(void *arg, const struct dns_answer *ans)
{
	struct addr_query *aq = arg;
	struct mx_lookup *l = aq->lookup;
	struct mx_host *h = &l->hosts[aq->host];
	size_t kept = 0;

	aq->q = NULL;
	if (aq->rrtype == RR_A)
		h->a_status = ans->status;
	else
		h->aaaa_status = ans->status;
	if (ans->status == DNS_STATUS_OK) {
		for (size_t i = 0; i < ans->count && kept < MX_ADDRS_MAX; i++) {
			struct sockaddr_storage *ss = &h->addrs[h->naddrs];

			memset(ss, 0, sizeof(*ss));
			if (aq->rrtype == RR_A && ans->len[i] == 4) {
				struct sockaddr_in *sin = (struct sockaddr_in *)ss;

				sin->sin_family = AF_INET;
				sin->sin_port = htons((unsigned short)l->port);
				memcpy(&sin->sin_addr, ans->data[i], 4);
			} else if (aq->rrtype == RR_AAAA && ans->len[i] == 16) {
				struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

				sin6->sin6_family = AF_INET6;
				sin6->sin6_port = htons((unsigned short)l->port);
				memcpy(&sin6->sin6_addr, ans->data[i], 16);
			} else
				continue;
			h->naddrs++;
			kept++;
		}
		if (ans->security != DNS_SECURITY_SECURE)
			h->secure = false;
		/* DANE-7: the CNAME-expanded name is a TLSA base candidate. */
		if (ans->canonname != NULL && h->canonname[0] == '\0') {
			snprintf(h->canonname, sizeof(h->canonname), "%s", ans->canonname);
			size_t cl = strlen(h->canonname);
			if (cl > 1 && h->canonname[cl - 1] == '.')
				h->canonname[cl - 1] = '\0';
			str_lower(h->canonname);
		}
	}
	log_debug("event=mx_address domain=%s host=%s type=%s status=%s count=%zu",
	    l->domain, h->name, aq->rrtype == RR_A ? "A" : "AAAA", dns_status_name(ans->status),
	    kept);
	if (--l->pending == 0)
		addresses_done(l);
}

/* 0, or -1 when not a single query could start (no callback then). */
static int
start_address_lookups(struct mx_lookup *l)
{
	size_t per = l->ipv6 ? 2 : 1;

	l->aq = xcalloc(l->nhosts * per, sizeof(*l->aq));
	for (size_t i = 0; i < l->nhosts; i++) {
		l->hosts[i].secure = true;
		for (size_t k = 0; k < per; k++) {
			struct addr_query *aq = &l->aq[l->naq++];

			aq->lookup = l;
			aq->host = i;
			aq->rrtype = k == 0 ? RR_A : RR_AAAA;
		}
	}
	l->pending = l->naq;
	for (size_t i = 0; i < l->naq; i++) {
		struct addr_query *aq = &l->aq[i];

		aq->q = resolver_query(l->resolver, l->hosts[aq->host].name, aq->rrtype, on_address, aq);
		if (aq->q == NULL) {
			/* Local failure: count it as a temporary one, without a callback. */
			if (aq->rrtype == RR_A)
				l->hosts[aq->host].a_status = DNS_STATUS_ERROR;
			else
				l->hosts[aq->host].aaaa_status = DNS_STATUS_ERROR;
			/* Answers come later from the loop, so pending reaches 0
			 * here only when no query started at all. */
			if (--l->pending == 0)
				return -1;
		}
	}
	return 0;
}

static void
on_mx(void *arg, const struct dns_answer *ans)
{
	struct mx_lookup *l = arg;
	size_t n = 0;
	bool null_mx = false;

	l->mx_query = NULL;
	l->mx_secure = ans->security == DNS_SECURITY_SECURE;
	if (ans->canonname != NULL) {
		size_t cl = strlen(ans->canonname);

		l->mx_canonname = xstrndup(ans->canonname, cl > 1 && ans->canonname[cl - 1] == '.' ?
		    cl - 1 : cl);
		str_lower(l->mx_canonname);
	}
	switch (ans->status) {
	case DNS_STATUS_OK:
		l->hosts = xcalloc(ans->count ? ans->count : 1, sizeof(*l->hosts));
		for (size_t i = 0; i < ans->count; i++) {
			struct mx_host *h = &l->hosts[n];

			if (ans->len[i] < 3 ||
			    dns_name_from_wire(ans->data[i] + 2, ans->len[i] - 2, h->name,
			    sizeof(h->name)) < 0) {
				log_warnx("event=mx_record_ignored domain=%s reason=\"malformed MX target\"",
				    l->domain);
				continue;
			}
			h->preference = (unsigned)(ans->data[i][0] << 8 | ans->data[i][1]);
			if (strcmp(h->name, ".") == 0) {
				null_mx = true;
				continue;
			}
			n++;
		}
		if (null_mx && n == 0) {
			finish(l, MX_STATUS_NULL_MX, "the domain publishes a null MX (RFC 7505): it accepts no mail");
			return;
		}
		if (null_mx)
			log_warnx("event=mx_null_mixed domain=%s reason=\"null MX next to other MX records; ignoring the null MX\"",
			    l->domain);
		if (n == 0) {
			finish(l, MX_STATUS_NO_HOSTS, "no usable MX record");
			return;
		}
		break;
	case DNS_STATUS_NODATA:
		/* SMTP-2: no MX at all, the domain itself is the MX. */
		l->hosts = xcalloc(1, sizeof(*l->hosts));
		snprintf(l->hosts[0].name, sizeof(l->hosts[0].name), "%s",
		    ans->canonname ? ans->canonname : l->domain);
		{
			size_t hl = strlen(l->hosts[0].name);
			if (hl > 1 && l->hosts[0].name[hl - 1] == '.')
				l->hosts[0].name[hl - 1] = '\0';
		}
		l->hosts[0].implicit = true;
		n = 1;
		break;
	case DNS_STATUS_NXDOMAIN:
		finish(l, MX_STATUS_NXDOMAIN, "the recipient domain does not exist");
		return;
	case DNS_STATUS_BOGUS:
		finish(l, MX_STATUS_TEMPFAIL, "DNSSEC validation of the MX records failed");
		return;
	default:
		finish(l, MX_STATUS_TEMPFAIL, dns_status_name(ans->status));
		return;
	}

	mx_sort_shuffle(l->hosts, n);
	if (n > MX_HOSTS_MAX)
		n = MX_HOSTS_MAX;
	if (l->self != NULL) {
		/* SMTP-5: we are an MX; drop ourselves and every worse host. */
		for (size_t i = 0; i < n; i++) {
			if (strcasecmp(l->hosts[i].name, l->self) == 0) {
				unsigned mine = l->hosts[i].preference;
				size_t k = 0;

				while (k < n && l->hosts[k].preference < mine)
					k++;
				n = k;
				break;
			}
		}
		if (n == 0) {
			finish(l, MX_STATUS_NO_HOSTS, "this host is the best MX of the domain (mail loop)");
			return;
		}
	}
	l->nhosts = n;
	if (start_address_lookups(l) < 0)
		finish(l, MX_STATUS_TEMPFAIL, "cannot start the address lookups");
}

struct mx_lookup *
mx_resolve(struct resolver *resolver, const char *domain, const char *self, bool ipv6,
    unsigned port, mx_resolve_cb cb, void *arg)
{
	struct mx_lookup *l = xcalloc(1, sizeof(*l));

	l->resolver = resolver;
	l->domain = xstrdup(domain);
	l->self = self && *self ? xstrdup(self) : NULL;
	l->ipv6 = ipv6;
	l->port = port;
	l->cb = cb;
	l->arg = arg;
	l->mx_query = resolver_query(resolver, domain, RR_MX, on_mx, l);
	if (l->mx_query == NULL) {
		lookup_free(l);
		return NULL;
	}
	return l;
}

struct mx_lookup *
mx_resolve_host(struct resolver *resolver, const char *host, bool ipv6, unsigned port,
    mx_resolve_cb cb, void *arg)
{
	char *name = domain_normalize(host);
	struct mx_lookup *l;

	if (name == NULL)
		return NULL;
	l = xcalloc(1, sizeof(*l));
	l->resolver = resolver;
	l->domain = name;
	l->ipv6 = ipv6;
	l->port = port;
	l->cb = cb;
	l->arg = arg;
	l->hosts = xcalloc(1, sizeof(*l->hosts));
	snprintf(l->hosts[0].name, sizeof(l->hosts[0].name), "%s", name);
	l->nhosts = 1;
	/* The answers arrive later from the loop, so the callback never runs
	 * inside this call, as with mx_resolve(). */
	if (start_address_lookups(l) < 0) {
		lookup_free(l);
		return NULL;
	}
	return l;
}
