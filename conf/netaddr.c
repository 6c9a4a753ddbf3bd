#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "conf/netaddr.h"

const char *
netaddr_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *hs = s;
	size_t hl;
	char *end;
	long port;

	memset(ss, 0, sizeof(*ss));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL || close[1] != ':')
			return "an IPv6 address must be written [ADDRESS]:PORT";
		hs = s + 1;
		hl = (size_t)(close - hs);
		colon = close + 1;
	} else {
		colon = strrchr(s, ':');
		if (colon == NULL)
			return "missing :PORT";
		if (memchr(s, ':', (size_t)(colon - s)) != NULL)
			return "an IPv6 address must be written [ADDRESS]:PORT";
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= sizeof(host))
		return "not a numeric IP address";
	memcpy(host, hs, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtol(colon + 1, &end, 10);
	if (colon[1] == '\0' || *end != '\0' || errno != 0 || port < 1 || port > 65535)
		return "port must be 1-65535";
	if (s[0] != '[') {
		struct sockaddr_in *sin = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return "not a numeric IPv4 address (host names are not allowed here)";
		sin->sin_family = AF_INET;
		sin->sin_port = htons((unsigned short)port);
		*len = sizeof(*sin);
	} else {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return "not a numeric IPv6 address";
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((unsigned short)port);
		*len = sizeof(*sin6);
	}
	return NULL;
}

const char *
netaddr_parse_cidr(const char *s, struct netaddr_cidr *out)
{
	char host[INET6_ADDRSTRLEN + 1];
	const char *slash = strchr(s, '/');
	size_t hl = slash ? (size_t)(slash - s) : strlen(s);
	unsigned max;

	memset(out, 0, sizeof(*out));
	if (hl == 0 || hl >= sizeof(host))
		return "not an ADDRESS/PREFIX network";
	memcpy(host, s, hl);
	host[hl] = '\0';
	if (inet_pton(AF_INET, host, out->addr) == 1) {
		out->family = AF_INET;
		max = 32;
	} else if (inet_pton(AF_INET6, host, out->addr) == 1) {
		out->family = AF_INET6;
		max = 128;
	} else
		return "not a numeric IP address";
	out->prefix = max;
	if (slash != NULL) {
		char *end;
		long p;

		errno = 0;
		p = strtol(slash + 1, &end, 10);
		if (slash[1] == '\0' || *end != '\0' || errno != 0 || p < 0 || p > (long)max)
			return max == 32 ? "prefix must be 0-32" : "prefix must be 0-128";
		out->prefix = (unsigned)p;
	}
	for (unsigned bit = out->prefix; bit < max; bit++)
		if (out->addr[bit / 8] & (0x80 >> (bit % 8)))
			return "address has bits set beyond the prefix";
	return NULL;
}

/* Address bytes of sa with IPv4-mapped IPv6 folded to IPv4; family or 0. */
static int
addr_bytes(const struct sockaddr *sa, const unsigned char **bytes)
{
	static const unsigned char mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };

	if (sa->sa_family == AF_INET) {
		*bytes = (const unsigned char *)&((const struct sockaddr_in *)sa)->sin_addr;
		return AF_INET;
	}
	if (sa->sa_family == AF_INET6) {
		const unsigned char *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;

		if (memcmp(b, mapped, sizeof(mapped)) == 0) {
			*bytes = b + 12;
			return AF_INET;
		}
		*bytes = b;
		return AF_INET6;
	}
	return 0;
}

bool
netaddr_cidr_contains(const struct netaddr_cidr *net, const struct sockaddr *sa)
{
	const unsigned char *b = NULL;
	unsigned full, rest;

	if (addr_bytes(sa, &b) != net->family)
		return false;
	full = net->prefix / 8;
	rest = net->prefix % 8;
	if (memcmp(b, net->addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	return ((b[full] ^ net->addr[full]) & (0xff00 >> rest)) == 0;
}

const char *
netaddr_ntop(const struct sockaddr *sa, char *buf, size_t len)
{
	const unsigned char *b = NULL;
	int fam = addr_bytes(sa, &b);

	if (sa->sa_family == AF_UNIX)
		snprintf(buf, len, "unix");
	else if (fam == 0 || inet_ntop(fam, b, buf, (socklen_t)len) == NULL)
		snprintf(buf, len, "unknown");
	return buf;
}

bool
netaddr_same_host(const struct sockaddr *a, const struct sockaddr *b)
{
	const unsigned char *ab = NULL, *bb = NULL;
	int af = addr_bytes(a, &ab), bf = addr_bytes(b, &bb);

	return af != 0 && af == bf && memcmp(ab, bb, af == AF_INET ? 4 : 16) == 0;
}
