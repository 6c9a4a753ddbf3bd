/*
 * netaddr.h - socket addresses and CIDR networks as written in the
 * configuration ("127.0.0.1:8461", "[::1]:8461", "10.0.0.0/8").
 *
 * Lives in conf/ because the configuration validates them at load time;
 * the listener and the access check use the parsed forms.
 */
#ifndef STSPROXY_NETADDR_H
#define STSPROXY_NETADDR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/** A network: family AF_INET or AF_INET6, address bytes and prefix length. */
struct netaddr_cidr {
	int		family;
	unsigned char	addr[16];
	unsigned	prefix;
};

/**
 * Parse "ADDRESS:PORT" or "[IPV6]:PORT" (numeric only) into ss/len.
 * Returns NULL on success, otherwise a static reason.
 */
const char *netaddr_parse_hostport(const char *s, struct sockaddr_storage *ss, socklen_t *len);

/**
 * Parse "ADDRESS/PREFIX" or a single address (a /32 or /128). Host bits
 * beyond the prefix must be zero, so a typo cannot silently widen the
 * network. Returns NULL on success, otherwise a static reason.
 */
const char *netaddr_parse_cidr(const char *s, struct netaddr_cidr *out);

/**
 * true if sa lies in the network. An IPv4-mapped IPv6 address
 * (::ffff:a.b.c.d, as a dual-stack socket reports IPv4 clients) is
 * matched as the IPv4 address it carries.
 */
bool netaddr_cidr_contains(const struct netaddr_cidr *net, const struct sockaddr *sa);

/** Numeric text of sa's address (no port) into buf. */
const char *netaddr_ntop(const struct sockaddr *sa, char *buf, size_t len);

/** Address equality, with IPv4-mapped IPv6 folded to IPv4. */
bool netaddr_same_host(const struct sockaddr *a, const struct sockaddr *b);

#endif
