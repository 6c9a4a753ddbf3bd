/*
 * result_type.h - RFC 8460 result types (section 4.3, registry 6.6).
 *
 * One X-macro table generates the enum, the names written into TLS-RPT
 * reports and logs, and the two sentences a domain owner reads in
 * `stsproxy check` and `stsproxy report read` (what the failure means on
 * the receiving side, and what usually fixes it), so none can drift apart.
 */
#ifndef STSPROXY_RESULT_TYPE_H
#define STSPROXY_RESULT_TYPE_H

#define RPT_RESULT_TYPES(X)						\
	X(RPT_RESULT_NONE, "none",					\
	    "the session was secured with TLS and met the policy",	\
	    "")								\
	X(RPT_RESULT_STARTTLS_NOT_SUPPORTED, "starttls-not-supported",	\
	    "the MX did not offer STARTTLS, refused it, or the TLS handshake failed", \
	    "Enable STARTTLS with a certificate on every MX of the domain and accept TLS 1.2 or later.") \
	X(RPT_RESULT_CERT_HOST_MISMATCH, "certificate-host-mismatch",	\
	    "the MX's certificate does not cover its name (the MX host name in DNS)", \
	    "Issue the MX's certificate with a subjectAltName for the exact MX host name (or a wildcard one label above it).") \
	X(RPT_RESULT_CERT_EXPIRED, "certificate-expired",		\
	    "the MX's certificate has expired",				\
	    "Renew the certificate, automate its renewal and reload the mail server after each renewal.") \
	X(RPT_RESULT_CERT_NOT_TRUSTED, "certificate-not-trusted",	\
	    "the certificate does not chain to a trusted CA (self-signed, unknown CA or missing intermediate)", \
	    "Use a certificate from a public CA and serve the full chain, intermediates included.") \
	X(RPT_RESULT_VALIDATION_FAILURE, "validation-failure",		\
	    "another validation failure, such as an MX not listed in the policy (reason code mx-not-in-sts-policy) or a TLS protocol error", \
	    "Read the failure-reason-code: list every MX in the policy's mx: lines and support TLS 1.2 or later.") \
	X(RPT_RESULT_TLSA_INVALID, "tlsa-invalid",			\
	    "the MX's DANE TLSA records do not match its certificate",	\
	    "Publish the TLSA record of a new key or certificate next to the old one before switching, and keep both until caches expire.") \
	X(RPT_RESULT_DNSSEC_INVALID, "dnssec-invalid",			\
	    "DNSSEC validation of the domain's records failed",	\
	    "Repair the DNSSEC chain: DS record at the parent, unexpired signatures, matching keys.") \
	X(RPT_RESULT_DANE_REQUIRED, "dane-required",			\
	    "the sender requires DANE and found no usable TLSA records", \
	    "Publish DNSSEC-signed TLSA records for every MX.")	\
	X(RPT_RESULT_STS_POLICY_FETCH_ERROR, "sts-policy-fetch-error",	\
	    "the policy could not be fetched from https://mta-sts.<domain>/.well-known/mta-sts.txt (DNS, connection, HTTP status or redirect)", \
	    "Serve the policy at exactly that URL with HTTP 200 and no redirect, from a host that resolves and answers on port 443.") \
	X(RPT_RESULT_STS_POLICY_INVALID, "sts-policy-invalid",		\
	    "the policy file did not parse, was too large or was not served as text/plain", \
	    "Lint the file with stsproxy policy --file and serve it with Content-Type: text/plain.") \
	X(RPT_RESULT_STS_WEBPKI_INVALID, "sts-webpki-invalid",		\
	    "the certificate of mta-sts.<domain> is not valid (name, expiry or chain)", \
	    "Give mta-sts.<domain> a publicly trusted certificate that names it, and renew it automatically.")

#define RPT_RESULT_ENUM(sym, name, meaning, fix) sym,
enum rpt_result_type {
	RPT_RESULT_TYPES(RPT_RESULT_ENUM)
	RPT_RESULT_COUNT
};
#undef RPT_RESULT_ENUM

/** The RFC 8460 string for a result type ("none" for RPT_RESULT_NONE). */
const char *rpt_result_type_name(enum rpt_result_type type);
/** Parse an RFC 8460 result type name; -1 if unknown. */
int rpt_result_type_parse(const char *name);
/** What the result type means for the receiving domain, one clause. */
const char *rpt_result_type_meaning(enum rpt_result_type type);
/** What usually fixes it, one sentence ("" for RPT_RESULT_NONE). */
const char *rpt_result_type_fix(enum rpt_result_type type);

#endif
