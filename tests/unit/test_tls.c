/* Unit tests of the TLS module: host-name rules and result-type mapping. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "policy/tls.h"

/* A self-signed certificate with the given CN and SAN (NULL: no SAN). */
static X509 *
make_cert(const char *cn, const char *san)
{
	EVP_PKEY *key = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;

	assert_non_null(key);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_gmtime_adj(X509_getm_notBefore(x), 0);
	X509_gmtime_adj(X509_getm_notAfter(x), 3600);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, name);
	X509_NAME_free(name);
	X509_set_pubkey(x, key);
	if (san != NULL) {
		X509_EXTENSION *ext;

		X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
		ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);
		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, key, EVP_sha256()) > 0);
	EVP_PKEY_free(key);
	return x;
}

static bool
name_ok(const char *cn, const char *san, const char *host)
{
	X509 *x = make_cert(cn, san);
	int rc = X509_check_host(x, host, 0, TLS_HOST_CHECK_FLAGS, NULL);

	X509_free(x);
	return rc == 1;
}

static void
test_wildcard_one_label(void **state)
{
	(void)state;
	/* STS-38 case 43 / case 44 */
	assert_true(name_ok("x", "DNS:*.a.com", "mx1.a.com"));
	assert_false(name_ok("x", "DNS:*.a.com", "x.mx1.a.com"));
	assert_false(name_ok("x", "DNS:*.a.com", "a.com"));
}

static void
test_partial_wildcard_rejected(void **state)
{
	(void)state;
	/* STS-39 case 45 */
	assert_false(name_ok("x", "DNS:mx*.a.com", "mx1.a.com"));
}

static void
test_cn_without_san_rejected(void **state)
{
	(void)state;
	/* STS-38 case 46 */
	assert_false(name_ok("mx1.a.com", NULL, "mx1.a.com"));
	assert_true(name_ok("whatever", "DNS:mx1.a.com", "MX1.A.COM"));
}

static void
test_policy_domain_is_not_the_mx(void **state)
{
	(void)state;
	/* STS-38 case 47: the name checked is the MX host itself */
	assert_false(name_ok("a.com", "DNS:a.com", "mx1.a.com"));
}

static void
test_result_types(void **state)
{
	(void)state;
	assert_int_equal(tls_verify_result_type(X509_V_OK), RPT_RESULT_NONE);
	assert_int_equal(tls_verify_result_type(X509_V_ERR_CERT_HAS_EXPIRED), RPT_RESULT_CERT_EXPIRED);
	assert_int_equal(tls_verify_result_type(X509_V_ERR_HOSTNAME_MISMATCH),
	    RPT_RESULT_CERT_HOST_MISMATCH);
	assert_int_equal(tls_verify_result_type(X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT),
	    RPT_RESULT_CERT_NOT_TRUSTED);
	assert_int_equal(tls_verify_result_type(X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY),
	    RPT_RESULT_CERT_NOT_TRUSTED);
	assert_int_equal(tls_verify_result_type(X509_V_ERR_CERT_NOT_YET_VALID),
	    RPT_RESULT_VALIDATION_FAILURE);
	assert_string_equal(rpt_result_type_name(RPT_RESULT_STS_WEBPKI_INVALID), "sts-webpki-invalid");
	assert_int_equal(rpt_result_type_parse("certificate-host-mismatch"),
	    RPT_RESULT_CERT_HOST_MISMATCH);
	assert_int_equal(rpt_result_type_parse("bogus"), -1);
}

/* The names an operator needs to see when a host name does not match. */
static void
test_cert_dns_names(void **state)
{
	X509 *x;
	char out[64], tiny[16];

	(void)state;
	x = make_cert("cn.a.com", "DNS:mx1.a.com,IP:192.0.2.1,DNS:*.b.com");
	tls_cert_dns_names(x, out, sizeof(out));
	assert_string_equal(out, "mx1.a.com, *.b.com");	/* DNS names only, not the CN */
	tls_cert_dns_names(x, tiny, sizeof(tiny));
	assert_string_equal(tiny, "mx1.a.com, ...");	/* cut, and says so */
	X509_free(x);
	x = make_cert("mx1.a.com", NULL);
	tls_cert_dns_names(x, out, sizeof(out));
	assert_string_equal(out, "");
	X509_free(x);
}

/* Every result type has a meaning, and every failure a fix (check, report read). */
static void
test_result_type_advice(void **state)
{
	(void)state;
	for (int t = 0; t < RPT_RESULT_COUNT; t++) {
		assert_true(strlen(rpt_result_type_meaning((enum rpt_result_type)t)) > 10);
		if (t != RPT_RESULT_NONE)
			assert_true(strlen(rpt_result_type_fix((enum rpt_result_type)t)) > 10);
	}
	assert_string_equal(rpt_result_type_fix(RPT_RESULT_NONE), "");
	assert_non_null(strstr(rpt_result_type_meaning(RPT_RESULT_CERT_HOST_MISMATCH),
	    "does not cover its name"));
	/* out of range: treated as validation-failure, never a crash */
	assert_string_equal(rpt_result_type_fix((enum rpt_result_type)99),
	    rpt_result_type_fix(RPT_RESULT_VALIDATION_FAILURE));
}

static void
test_client_context(void **state)
{
	struct strlist errors = { 0 };
	struct conf *conf = conf_load(NULL, &errors);
	char *err = NULL;
	SSL_CTX *ctx;
	SSL *ssl;

	(void)state;
	ctx = tls_client_ctx_new(conf, &err);
	assert_non_null(ctx);
	/* STS-40: TLS 1.2 or later only */
	assert_int_equal(SSL_CTX_get_min_proto_version(ctx), TLS1_2_VERSION);
	ssl = tls_client_new(ctx, "mx1.a.com");
	/* STS-13, STS-40: SNI is the host */
	assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), "mx1.a.com");
	SSL_free(ssl);
	SSL_CTX_free(ctx);
	conf_free(conf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wildcard_one_label),
		cmocka_unit_test(test_partial_wildcard_rejected),
		cmocka_unit_test(test_cn_without_san_rejected),
		cmocka_unit_test(test_policy_domain_is_not_the_mx),
		cmocka_unit_test(test_result_types),
		cmocka_unit_test(test_cert_dns_names),
		cmocka_unit_test(test_result_type_advice),
		cmocka_unit_test(test_client_context),
	};

	return cmocka_run_group_tests_name("tls", tests, NULL, NULL);
}
