/* Unit tests of the TLS module: host-name rules and result-type mapping. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/err.h>
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

/* ---- DANE handshakes in memory: a CA, a leaf, a server, our client ---- */

struct pki {
	EVP_PKEY	*ca_key, *leaf_key;
	X509		*ca, *leaf;
};

/* A certificate for key, signed by issuer_key as issuer (NULL: self-signed). */
static X509 *
sign_cert(EVP_PKEY *key, const char *cn, const char *san, bool is_ca, long from, long to,
    X509 *issuer, EVP_PKEY *issuer_key)
{
	X509 *x = X509_new();
	X509_NAME *name = X509_NAME_new();
	X509V3_CTX ctx;
	static long serial = 100;

	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
	X509_gmtime_adj(X509_getm_notBefore(x), from);
	X509_gmtime_adj(X509_getm_notAfter(x), to);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, name);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : name);
	X509_NAME_free(name);
	X509_set_pubkey(x, key);
	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	if (san != NULL) {
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_subject_alt_name, san);

		assert_non_null(ext);
		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	{
		X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints,
		    is_ca ? "critical,CA:TRUE" : "CA:FALSE");

		X509_add_ext(x, ext, -1);
		X509_EXTENSION_free(ext);
	}
	assert_true(X509_sign(x, issuer_key ? issuer_key : key, EVP_sha256()) > 0);
	return x;
}

/* A private CA and a leaf it issued (cn, san; expired: a year gone). */
static void
pki_make(struct pki *p, const char *cn, const char *san, bool expired)
{
	p->ca_key = EVP_EC_gen("P-256");
	p->leaf_key = EVP_EC_gen("P-256");
	p->ca = sign_cert(p->ca_key, "DANE test CA", NULL, true, -86400 * 800, 86400 * 30, NULL, NULL);
	p->leaf = sign_cert(p->leaf_key, cn, san, false, expired ? -86400 * 700 : -60,
	    expired ? -86400 * 365 : 86400 * 30, p->ca, p->ca_key);
}

static void
pki_free(struct pki *p)
{
	X509_free(p->ca);
	X509_free(p->leaf);
	EVP_PKEY_free(p->ca_key);
	EVP_PKEY_free(p->leaf_key);
}

/* "u s m HEX" for x: selector 0 the certificate, 1 its key; mtype 1 SHA2-256, 2 SHA2-512. */
static void
tlsa_of(X509 *x, int usage, int selector, int mtype, bool corrupt, char *out, size_t len)
{
	unsigned char *der = NULL, md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	int n = selector == 0 ? i2d_X509(x, &der) : i2d_PUBKEY(X509_get0_pubkey(x), &der);
	size_t o;

	assert_true(n > 0);
	EVP_Digest(der, (size_t)n, md, &mdlen, mtype == 1 ? EVP_sha256() : EVP_sha512(), NULL);
	OPENSSL_free(der);
	if (corrupt)
		md[0] ^= 0xff;
	o = (size_t)snprintf(out, len, "%d %d %d ", usage, selector, mtype);
	for (unsigned i = 0; i < mdlen && o + 3 < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%02x", md[i]);
}

static SSL_CTX *client_ctx;
static struct conf *client_conf;

static SSL_CTX *
server_ctx(const struct pki *p)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	assert_int_equal(SSL_CTX_use_certificate(ctx, p->leaf), 1);
	assert_int_equal(SSL_CTX_use_PrivateKey(ctx, p->leaf_key), 1);
	assert_int_equal(SSL_CTX_add1_chain_cert(ctx, p->ca), 1);	/* DANE-TA needs the TA in the chain */
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"t", 1);
	return ctx;
}

/* A handshake between client and a fresh SSL of sctx over memory BIOs; 0 when it completed. */
static int
handshake(SSL *client, SSL_CTX *sctx)
{
	SSL *server = SSL_new(sctx);
	BIO *c2s = BIO_new(BIO_s_mem()), *s2c = BIO_new(BIO_s_mem());
	int cdone = 0, sdone = 0;
	char buf[16];

	BIO_up_ref(c2s);
	BIO_up_ref(s2c);
	SSL_set_bio(client, s2c, c2s);
	SSL_set_bio(server, c2s, s2c);
	SSL_set_connect_state(client);
	SSL_set_accept_state(server);
	for (int round = 0; round < 20 && !(cdone && sdone); round++) {
		if (!cdone) {
			int rc = SSL_do_handshake(client);

			if (rc == 1)
				cdone = 1;
			else if (SSL_get_error(client, rc) != SSL_ERROR_WANT_READ)
				break;
		}
		if (!sdone) {
			int rc = SSL_do_handshake(server);

			if (rc == 1)
				sdone = 1;
			else if (SSL_get_error(server, rc) != SSL_ERROR_WANT_READ)
				break;
		}
	}
	/* TLS 1.3 session tickets follow the handshake: let the client read them. */
	if (cdone && sdone)
		(void)SSL_read(client, buf, sizeof(buf));
	SSL_shutdown(server);
	SSL_free(server);
	ERR_clear_error();
	return cdone && sdone ? 0 : -1;
}

/* The verdict of our DANE client on the server of p, TLSA records as text. */
static SSL_CTX *shared_server;	/* one server for resumption: its ticket keys stay */

static enum rpt_result_type
dane_try(const struct pki *p, const char *base, const char *names, const char *const *records,
    char *reason, size_t reason_len, enum tls_auth *auth, bool *resumed)
{
	struct dane_tlsa *t = dane_tlsa_new(base);
	struct strlist ids = { 0 };
	SSL_CTX *sctx = shared_server ? shared_server : server_ctx(p);
	enum rpt_result_type r;
	const char *why;
	SSL *ssl;

	for (size_t i = 0; records[i] != NULL; i++)
		assert_int_equal(dane_tlsa_add_text(t, records[i], &why), 0);
	dane_tlsa_finish(t, base);
	if (names != NULL) {
		char *copy = strdup(names), *save = NULL;

		for (char *n = strtok_r(copy, " ", &save); n; n = strtok_r(NULL, " ", &save))
			strlist_add(&ids, n);
		free(copy);
	}
	ssl = tls_dane_client_new(client_ctx, t, &ids);
	assert_non_null(ssl);
	/* DANE-15: SNI is the TLSA base domain */
	assert_string_equal(SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name), base);
	assert_int_equal(handshake(ssl, sctx), 0);
	r = tls_peer_verdict(ssl, reason, reason_len);
	*auth = tls_peer_auth(ssl);
	if (resumed != NULL)
		*resumed = SSL_session_reused(ssl);
	/* as upstream_conn does: a session freed without a shutdown is not resumed */
	SSL_shutdown(ssl);
	SSL_free(ssl);
	if (sctx != shared_server)
		SSL_CTX_free(sctx);
	strlist_clear(&ids);
	dane_tlsa_free(t);
	return r;
}

static int
dane_setup(void **state)
{
	struct strlist errors = { 0 };
	char *err = NULL;

	(void)state;
	client_conf = conf_load(NULL, &errors);
	client_ctx = tls_client_ctx_new(client_conf, &err);
	return client_ctx == NULL;
}

static int
dane_teardown(void **state)
{
	(void)state;
	tls_session_cache_clear();
	SSL_CTX_free(client_ctx);
	conf_free(client_conf);
	return 0;
}

/* DANE-11, case 49: DANE-EE(3) matches an expired certificate with wrong names. */
static void
test_dane_ee_ignores_names_and_expiry(void **state)
{
	struct pki p;
	char rec[200], bad[200], reason[300];
	const char *ok[] = { rec, NULL }, *mismatch[] = { bad, NULL };
	enum tls_auth auth;

	(void)state;
	pki_make(&p, "wrong.example", "DNS:wrong.example", true);
	tlsa_of(p.leaf, 3, 1, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, ok, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_NONE);
	assert_int_equal(auth, TLS_AUTH_DANE);
	assert_non_null(strstr(reason, "DANE authenticated (3 1 1 "));
	/* the same certificate, a TLSA digest that does not match */
	tlsa_of(p.leaf, 3, 1, 1, true, bad, sizeof(bad));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, mismatch, reason, sizeof(reason), &auth,
	    NULL), RPT_RESULT_TLSA_INVALID);
	assert_string_equal(reason, "TLSA mismatch (DANE-EE 3 1 1)");
	assert_int_equal(auth, TLS_AUTH_NONE);
	/* selector 0 (the whole certificate) and SHA2-512 match as well */
	tlsa_of(p.leaf, 3, 0, 2, false, rec, sizeof(rec));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, ok, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_NONE);
	pki_free(&p);
}

/* DANE-12, DANE-13, case 48: DANE-TA(2) chains to the TLSA anchor and checks names. */
static void
test_dane_ta_names(void **state)
{
	struct pki p;
	char rec[200], reason[300];
	const char *ta[] = { rec, NULL };
	enum tls_auth auth;

	(void)state;
	/* case 48: SAN a.com, MX mx1.a.com, secure MX lookup of a.com: accepted */
	pki_make(&p, "x", "DNS:a.com", false);
	tlsa_of(p.ca, 2, 0, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_try(&p, "mx1.a.com", "a.com", ta, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_NONE);
	assert_int_equal(auth, TLS_AUTH_DANE);
	/* without the next hop among the names (insecure MX lookup): a mismatch */
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, ta, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_CERT_HOST_MISMATCH);
	assert_string_equal(reason, "certificate not valid for mx1.a.com (DANE-TA 2 0 1)");
	pki_free(&p);

	/* "*" as a whole left-most label covers one label only */
	pki_make(&p, "x", "DNS:*.a.com", false);
	tlsa_of(p.ca, 2, 1, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, ta, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_NONE);
	assert_int_equal(dane_try(&p, "x.mx1.a.com", NULL, ta, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_CERT_HOST_MISMATCH);
	pki_free(&p);
	pki_make(&p, "x", "DNS:mx*.a.com", false);
	tlsa_of(p.ca, 2, 0, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, ta, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_CERT_HOST_MISMATCH);
	pki_free(&p);
	/* DANE-13: the CN counts only when there is no DNS-ID */
	pki_make(&p, "mx1.a.com", NULL, false);
	tlsa_of(p.ca, 2, 0, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, ta, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_NONE);
	pki_free(&p);
	pki_make(&p, "mx1.a.com", "DNS:other.a.com", false);
	tlsa_of(p.ca, 2, 0, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, ta, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_CERT_HOST_MISMATCH);
	/* an expired leaf under DANE-TA: PKIX rules below the anchor */
	pki_free(&p);
	pki_make(&p, "x", "DNS:mx1.a.com", true);
	tlsa_of(p.ca, 2, 0, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, ta, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_CERT_EXPIRED);
	pki_free(&p);
}

/* DANE-16, RFC 7671 section 9: with SHA2-512 present, SHA2-256 records of that usage and selector no longer count. */
static void
test_dane_digest_agility(void **state)
{
	struct pki p;
	char r256[200], r512[200], reason[300];
	const char *recs[] = { r256, r512, NULL };
	enum tls_auth auth;

	(void)state;
	pki_make(&p, "x", NULL, false);
	tlsa_of(p.leaf, 3, 1, 1, false, r256, sizeof(r256));
	tlsa_of(p.leaf, 3, 1, 2, true, r512, sizeof(r512));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, recs, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_TLSA_INVALID);
	tlsa_of(p.leaf, 3, 1, 1, true, r256, sizeof(r256));
	tlsa_of(p.leaf, 3, 1, 2, false, r512, sizeof(r512));
	assert_int_equal(dane_try(&p, "mx1.a.com", NULL, recs, reason, sizeof(reason), &auth, NULL),
	    RPT_RESULT_NONE);
	pki_free(&p);
}

/* DANE-14: PKIX-EE(1) and PKIX-TA(0) are never handed to OpenSSL: nothing to authenticate with. */
static void
test_dane_unusable_only(void **state)
{
	struct dane_tlsa *t = dane_tlsa_new("mx1.a.com");
	const char *why;
	struct pki p;
	char rec[200];

	(void)state;
	pki_make(&p, "x", NULL, false);
	tlsa_of(p.leaf, 1, 1, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_tlsa_add_text(t, rec, &why), 0);
	tlsa_of(p.ca, 0, 0, 1, false, rec, sizeof(rec));
	assert_int_equal(dane_tlsa_add_text(t, rec, &why), 0);
	dane_tlsa_finish(t, "mx1.a.com");
	assert_int_equal(t->state, DANE_S_UNUSABLE);
	assert_null(tls_dane_client_new(client_ctx, t, NULL));
	dane_tlsa_free(t);
	pki_free(&p);
}

/* A resumed session serves only the TLSA RRset it was verified under, and never PKIX. */
static void
test_dane_resumption_boundary(void **state)
{
	struct pki p;
	char rec[200], other[200], reason[300];
	const char *one[] = { rec, NULL }, *two[] = { rec, other, NULL };
	enum tls_auth auth;
	bool resumed;
	SSL_CTX *sctx;
	SSL *ssl;

	(void)state;
	tls_session_cache_clear();
	pki_make(&p, "x", NULL, false);
	tlsa_of(p.leaf, 3, 1, 1, false, rec, sizeof(rec));
	tlsa_of(p.ca, 2, 0, 1, false, other, sizeof(other));
	shared_server = sctx = server_ctx(&p);
	assert_int_equal(dane_try(&p, "mx9.a.com", NULL, one, reason, sizeof(reason), &auth,
	    &resumed), RPT_RESULT_NONE);
	assert_false(resumed);
	/* same RRset: resumed, and still DANE with the record that matched first */
	assert_int_equal(dane_try(&p, "mx9.a.com", NULL, one, reason, sizeof(reason), &auth,
	    &resumed), RPT_RESULT_NONE);
	assert_true(resumed);
	assert_int_equal(auth, TLS_AUTH_DANE);
	assert_non_null(strstr(reason, "DANE authenticated (3 1 1 "));
	/* the same RRset with other DANE-TA reference identifiers: a full handshake */
	assert_int_equal(dane_try(&p, "mx9.a.com", "a.com", one, reason, sizeof(reason), &auth,
	    &resumed), RPT_RESULT_NONE);
	assert_false(resumed);
	/* another RRset for the same base: a full handshake */
	assert_int_equal(dane_try(&p, "mx9.a.com", NULL, two, reason, sizeof(reason), &auth,
	    &resumed), RPT_RESULT_NONE);
	assert_false(resumed);
	/* PKIX for the same name: the DANE session is not offered */
	ssl = tls_smtp_client_new(client_ctx, "mx9.a.com");
	assert_int_equal(handshake(ssl, sctx), 0);
	assert_false(SSL_session_reused(ssl));
	assert_int_not_equal(tls_peer_verdict(ssl, reason, sizeof(reason)), RPT_RESULT_NONE);
	assert_int_equal(tls_peer_auth(ssl), TLS_AUTH_NONE);
	SSL_free(ssl);
	shared_server = NULL;
	SSL_CTX_free(sctx);
	pki_free(&p);
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
	const struct CMUnitTest dane_tests[] = {
		cmocka_unit_test(test_dane_ee_ignores_names_and_expiry),
		cmocka_unit_test(test_dane_ta_names),
		cmocka_unit_test(test_dane_digest_agility),
		cmocka_unit_test(test_dane_unusable_only),
		cmocka_unit_test(test_dane_resumption_boundary),
	};

	return cmocka_run_group_tests_name("tls", tests, NULL, NULL) |
	    cmocka_run_group_tests_name("tls-dane", dane_tests, dane_setup, dane_teardown);
}
