/*
 * result_type.h - RFC 8460 result types (section 4.3, registry 6.6).
 *
 * One X-macro table generates the enum and the names written into
 * TLS-RPT reports and logs, so the two cannot drift apart.
 */
#ifndef STSPROXY_RESULT_TYPE_H
#define STSPROXY_RESULT_TYPE_H

#define RPT_RESULT_TYPES(X)						\
	X(RPT_RESULT_NONE,			"none")				\
	X(RPT_RESULT_STARTTLS_NOT_SUPPORTED,	"starttls-not-supported")	\
	X(RPT_RESULT_CERT_HOST_MISMATCH,	"certificate-host-mismatch")	\
	X(RPT_RESULT_CERT_EXPIRED,		"certificate-expired")		\
	X(RPT_RESULT_CERT_NOT_TRUSTED,		"certificate-not-trusted")	\
	X(RPT_RESULT_VALIDATION_FAILURE,	"validation-failure")		\
	X(RPT_RESULT_TLSA_INVALID,		"tlsa-invalid")			\
	X(RPT_RESULT_DNSSEC_INVALID,		"dnssec-invalid")		\
	X(RPT_RESULT_DANE_REQUIRED,		"dane-required")		\
	X(RPT_RESULT_STS_POLICY_FETCH_ERROR,	"sts-policy-fetch-error")	\
	X(RPT_RESULT_STS_POLICY_INVALID,	"sts-policy-invalid")		\
	X(RPT_RESULT_STS_WEBPKI_INVALID,	"sts-webpki-invalid")

#define RPT_RESULT_ENUM(sym, name) sym,
enum rpt_result_type {
	RPT_RESULT_TYPES(RPT_RESULT_ENUM)
	RPT_RESULT_COUNT
};
#undef RPT_RESULT_ENUM

/** The RFC 8460 string for a result type ("none" for RPT_RESULT_NONE). */
const char *rpt_result_type_name(enum rpt_result_type type);
/** Parse an RFC 8460 result type name; -1 if unknown. */
int rpt_result_type_parse(const char *name);

#endif
