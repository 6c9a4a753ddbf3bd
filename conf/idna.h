/*
 * idna.h - internationalised mail domains (RFC 6531, IDNA2008).
 *
 * An SMTPUTF8 client may name a recipient domain in U-labels
 * ("bücher.example"). The address goes upstream exactly as the client
 * sent it; everything that looks the domain up or compares it (DNS, the
 * MTA-STS policy, MX patterns, certificate names, TLS-RPT reports, which
 * RFC 8460 wants in A-labels) uses the A-label form
 * ("xn--bcher-kva.example"). This is the one place that converts.
 */
#ifndef STSPROXY_IDNA_H
#define STSPROXY_IDNA_H

#include <stdbool.h>

/** Longest domain accepted, in bytes of UTF-8 (RFC 5321 §4.5.3.1.2 counts octets). */
#define IDNA_INPUT_MAX	255

/** true if s has a byte outside US-ASCII (a U-label, or garbage). */
bool idna_is_utf8(const char *s);

/**
 * The A-label form of domain, normalised as domain_normalize() does
 * (lower case, no trailing dot). An all-ASCII name is only normalised.
 * A name with U-labels is converted by libidn2 with IDNA2008 and the
 * UTS #46 non-transitional mapping, the processing Postfix applies to
 * SMTPUTF8 domains, so case and width variants map as the client's MTA
 * maps them. Returns a new string (caller frees), or NULL with *reason,
 * a static string saying what is wrong with the name.
 */
char *idna_to_alabel(const char *domain, const char **reason);

#endif
