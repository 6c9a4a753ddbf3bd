#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conf/log.h"
#include "policy/tls.h"

/*
 * Client-side TLS session cache, for resumption (a resumed handshake costs
 * a fraction of a full one). Only sessions whose certificate verified are
 * kept, so a resumed session is worth exactly what its full handshake was:
 * the verify result and peer certificate travel with the session. The key
 * is what the verification was made against: the host name for PKIX, the
 * TLSA base domain and the TLSA RRset's identity for DANE. A DANE session
 * thus never serves PKIX (its certificate may be expired or self-signed,
 * DANE-11) nor another TLSA RRset: on resumption the server presents no
 * certificate to check again. Direct-mapped and bounded; a collision just
 * replaces the older session.
 */
#define SESSION_SLOTS	1024
#define SESSION_KEY_MAX	(256 + 1 + 16 + 1 + 8 + 1)

static struct {
	char		 key[SESSION_KEY_MAX];
	char		 match[TLS_DANE_MATCH_MAX];	/* DANE: the record that matched */
	SSL_SESSION	*session;
} session_cache[SESSION_SLOTS];

/* What a DANE client SSL carries for its verdict and its session. */
struct dane_ex {
	char		 key[SESSION_KEY_MAX];	/* base domain "#" TLSA RRset id */
	char		 params[128];		/* "DANE-EE 3 1 1, ...", for failure reasons */
	char		 base[256];
	char		 match[TLS_DANE_MATCH_MAX];	/* the record that matched (resumed: cached) */
};

static int dane_ex_index = -1;

static void
dane_ex_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl, void *argp)
{
	(void)parent;
	(void)ad;
	(void)idx;
	(void)argl;
	(void)argp;
	free(ptr);
}

static struct dane_ex *
dane_ex_of(SSL *ssl)
{
	return dane_ex_index < 0 ? NULL : SSL_get_ex_data(ssl, dane_ex_index);
}

static unsigned
key_slot(const char *key)
{
	unsigned h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)key; *p; p++)
		h = (h ^ (unsigned)(*p | 0x20)) * 16777619u;
	return h % SESSION_SLOTS;
}

/* "3 1 1 ABCD..." of the record that authenticated a fresh DANE handshake. */
static void
dane_matched_record(SSL *ssl, char *out, size_t len)
{
	uint8_t usage, selector, mtype;
	const unsigned char *data = NULL;
	size_t dlen = 0, o;

	out[0] = '\0';
	if (SSL_get0_dane_tlsa(ssl, &usage, &selector, &mtype, &data, &dlen) < 0 || len < 16)
		return;
	o = (size_t)snprintf(out, len, "%u %u %u ", usage, selector, mtype);
	/* A Full(0) record is a whole certificate: its start names it well enough. */
	for (size_t i = 0; i < dlen && o + 3 < len; i++)
		o += (size_t)snprintf(out + o, len - o, "%02X", data[i]);
	if (o + 3 >= len && len > 4)
		memcpy(out + len - 4, "...", 4);
}

static int
remember_session(SSL *ssl, SSL_SESSION *session)
{
	struct dane_ex *ex = dane_ex_of(ssl);
	const char *key = ex != NULL ? ex->key : SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	unsigned slot;

	if (key == NULL || strlen(key) >= sizeof(session_cache[0].key) ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;	/* not kept: OpenSSL frees it */
	/* DANE: verified means a TLSA record matched, now or in the session resumed. */
	if (ex != NULL && !SSL_session_reused(ssl) && SSL_get0_dane_authority(ssl, NULL, NULL) < 0)
		return 0;
	if (ex != NULL && ex->match[0] == '\0')
		dane_matched_record(ssl, ex->match, sizeof(ex->match));
	slot = key_slot(key);
	if (session_cache[slot].session != NULL)
		SSL_SESSION_free(session_cache[slot].session);
	snprintf(session_cache[slot].key, sizeof(session_cache[slot].key), "%s", key);
	snprintf(session_cache[slot].match, sizeof(session_cache[slot].match), "%s",
	    ex != NULL ? ex->match : "");
	session_cache[slot].session = session;
	return 1;		/* we hold the reference now */
}

/* Offer the session kept under key, if any; match gets its DANE record. */
static void
resume_session(SSL *ssl, const char *key, char *match, size_t match_len)
{
	unsigned slot = key_slot(key);
	SSL_SESSION *s = session_cache[slot].session;

	if (s == NULL || strcasecmp(session_cache[slot].key, key) != 0)
		return;
	if (!SSL_SESSION_is_resumable(s)) {
		SSL_SESSION_free(s);
		session_cache[slot].session = NULL;
		return;
	}
	SSL_set_session(ssl, s);
	if (match != NULL)
		snprintf(match, match_len, "%s", session_cache[slot].match);
}

void
tls_session_cache_clear(void)
{
	for (unsigned i = 0; i < SESSION_SLOTS; i++) {
		if (session_cache[i].session != NULL)
			SSL_SESSION_free(session_cache[i].session);
		session_cache[i].session = NULL;
	}
}

SSL_CTX *
tls_client_ctx_new(const struct conf *conf, char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	const char *file = conf->tls_ca_file[0] ? conf->tls_ca_file : NULL;
	const char *path = conf->tls_ca_path[0] ? conf->tls_ca_path : NULL;

	if (ctx == NULL) {
		*err = xstrdup("cannot create a TLS context");
		return NULL;
	}
	SSL_CTX_set_min_proto_version(ctx, conf_tls_min_version(conf));
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
	SSL_CTX_sess_set_new_cb(ctx, remember_session);
	/*
	 * OpenSSL's DANE verifier (RFC 6698, RFC 7671) for the SSLs that ask
	 * for it; others keep PKIX. DANE-16, RFC 7671 section 9: where records
	 * of one usage and selector use several digests, only the strongest
	 * counts, SHA2-512 over SHA2-256 (OpenSSL's default ordinals, stated).
	 */
	if (SSL_CTX_dane_enable(ctx) <= 0 ||
	    SSL_CTX_dane_mtype_set(ctx, EVP_sha256(), 1, 1) <= 0 ||
	    SSL_CTX_dane_mtype_set(ctx, EVP_sha512(), 2, 2) <= 0) {
		*err = xstrdup("cannot enable DANE in the TLS context");
		ERR_clear_error();
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (dane_ex_index < 0)
		dane_ex_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, dane_ex_free);
	if (file != NULL || path != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, file, path) != 1) {
			/* A missing file is a system error, which has no OpenSSL reason string. */
			const char *why = ERR_reason_error_string(ERR_peek_error());

			*err = xasprintf("[tls] %s %s: cannot load CA certificates: %s",
			    file ? "ca_file" : "ca_path", file ? file : path,
			    why ? why : errno ? strerror(errno) : "no certificate found");
			ERR_clear_error();
			SSL_CTX_free(ctx);
			return NULL;
		}
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
		*err = xstrdup("cannot load the system trust store");
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

SSL *
tls_client_new(SSL_CTX *ctx, const char *host)
{
	SSL *ssl = SSL_new(ctx);

	if (ssl == NULL)
		fatalx("SSL_new failed");
	/* SNI is required by STS-13 and STS-40; the DNS-ID check follows
	 * RFC 6125 with the MTA-STS restrictions: no partial wildcards
	 * (STS-39) and no CN fallback when SANs are absent (STS-38). */
	SSL_set_tlsext_host_name(ssl, host);
	resume_session(ssl, host, NULL, 0);
	SSL_set_hostflags(ssl, TLS_HOST_CHECK_FLAGS);
	if (SSL_set1_host(ssl, host) != 1)
		fatalx("SSL_set1_host failed for %s", host);
	return ssl;
}

enum rpt_result_type
tls_verify_result_type(long verify_result)
{
	switch (verify_result) {
	case X509_V_OK:
		return RPT_RESULT_NONE;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return RPT_RESULT_CERT_EXPIRED;
	case X509_V_ERR_HOSTNAME_MISMATCH:
		return RPT_RESULT_CERT_HOST_MISMATCH;
	case X509_V_ERR_DANE_NO_MATCH:
		return RPT_RESULT_TLSA_INVALID;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_REJECTED:
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_INVALID_CA:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_PERMITTED_VIOLATION:
	case X509_V_ERR_EXCLUDED_VIOLATION:
	case X509_V_ERR_SUBTREE_MINMAX:
	case X509_V_ERR_UNSUPPORTED_CONSTRAINT_TYPE:
	case X509_V_ERR_UNSUPPORTED_NAME_SYNTAX:
		return RPT_RESULT_CERT_NOT_TRUSTED;
	default:
		return RPT_RESULT_VALIDATION_FAILURE;
	}
}

enum rpt_result_type
tls_failure_reason(SSL *ssl, unsigned long ssl_error, char *reason, size_t reason_len)
{
	long vr = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;
	unsigned long e;
	char buf[256];

	if (vr != X509_V_OK) {
		ERR_clear_error();
		snprintf(reason, reason_len, "certificate %s", X509_verify_cert_error_string(vr));
		return tls_verify_result_type(vr);
	}
	e = ssl_error ? ssl_error : ERR_peek_last_error();
	if (e != 0) {
		ERR_error_string_n(e, buf, sizeof(buf));
		snprintf(reason, reason_len, "TLS handshake failed: %s",
		    ERR_reason_error_string(e) ? ERR_reason_error_string(e) : buf);
	} else {
		snprintf(reason, reason_len, "TLS handshake failed: connection closed");
	}
	ERR_clear_error();
	return RPT_RESULT_VALIDATION_FAILURE;
}

void
tls_peer_describe(SSL *ssl, struct tls_peer_info *info)
{
	X509 *cert;

	memset(info, 0, sizeof(*info));
	snprintf(info->version, sizeof(info->version), "%s", SSL_get_version(ssl));
	if (SSL_get_current_cipher(ssl) != NULL)
		snprintf(info->cipher, sizeof(info->cipher), "%s",
		    SSL_CIPHER_get_name(SSL_get_current_cipher(ssl)));
	if ((cert = SSL_get1_peer_certificate(ssl)) == NULL)
		return;
	X509_NAME_oneline(X509_get_subject_name(cert), info->subject, sizeof(info->subject));
	X509_NAME_oneline(X509_get_issuer_name(cert), info->issuer, sizeof(info->issuer));
	tls_cert_dns_names(cert, info->dns_names, sizeof(info->dns_names));
	const ASN1_TIME *na = X509_get0_notAfter(cert);
	struct tm tm;
	if (na != NULL && ASN1_TIME_to_tm(na, &tm) == 1)
		info->not_after = timegm(&tm);
	X509_free(cert);
}

void
tls_cert_dns_names(X509 *cert, char *out, size_t len)
{
	GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	size_t used = 0;

	if (len == 0)
		return;
	out[0] = '\0';
	for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
		const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
		const unsigned char *s;
		int n;

		if (gn->type != GEN_DNS)
			continue;
		s = ASN1_STRING_get0_data(gn->d.dNSName);
		n = ASN1_STRING_length(gn->d.dNSName);
		/* Room for the separator, the name and a final "..." mark. */
		if (used + (used ? 2 : 0) + (size_t)n + 4 > len) {
			snprintf(out + used, len - used, "%s...", used ? ", " : "");
			break;
		}
		used += (size_t)snprintf(out + used, len - used, "%s", used ? ", " : "");
		for (int k = 0; k < n; k++)	/* names are IA5: keep them printable */
			out[used++] = s[k] > 0x20 && s[k] < 0x7f ? (char)s[k] : '?';
		out[used] = '\0';
	}
	GENERAL_NAMES_free(names);
}

SSL *
tls_smtp_client_new(SSL_CTX *ctx, const char *host)
{
	SSL *ssl = tls_client_new(ctx, host);

	/* The handshake must complete whatever the certificate: opportunistic
	 * and testing modes deliver anyway, and every mode records what the
	 * certificate was worth. OpenSSL still verifies the chain and the
	 * name; tls_peer_verdict() reads the result afterwards. */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	return ssl;
}

static unsigned
names_hash(const struct strlist *names)
{
	unsigned h = 2166136261u;

	for (size_t i = 0; i < names->count; i++)
		for (const unsigned char *p = (const unsigned char *)names->items[i]; ; p++) {
			h = (h ^ (unsigned)(*p | 0x20)) * 16777619u;
			if (*p == '\0')
				break;
		}
	return h;
}

SSL *
tls_dane_client_new(SSL_CTX *ctx, const struct dane_tlsa *tlsa, const struct strlist *names)
{
	SSL *ssl = SSL_new(ctx);
	struct dane_ex *ex;
	size_t added = 0;

	if (ssl == NULL)
		fatalx("SSL_new failed");
	/* DANE-15: SNI is the TLSA base domain, which is also the primary
	 * reference identifier of DANE-TA(2) certificates (DANE-12). */
	SSL_set_tlsext_host_name(ssl, tlsa->base);
	if (SSL_dane_enable(ssl, tlsa->base) <= 0)
		fatalx("SSL_dane_enable failed for %s", tlsa->base);
	/* DANE-11: DANE-EE(3) binds the key; names do not matter (RFC 7672 §3.1.1). */
	SSL_dane_set_flags(ssl, DANE_FLAG_NO_DANE_EE_NAMECHECKS);
	/* DANE-13: "*" only as a whole left-most label matching one label;
	 * DNS-IDs first, the CN only without any (OpenSSL's default). */
	SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
	for (size_t i = 0; names != NULL && i < names->count; i++)
		if (SSL_add1_host(ssl, names->items[i]) != 1)
			fatalx("SSL_add1_host failed for %s", names->items[i]);
	for (size_t i = 0; i < tlsa->count; i++) {
		const struct dane_record *r = &tlsa->records[i];

		/* DANE-14: PKIX-TA(0) and PKIX-EE(1) are never handed over. */
		if (r->unusable != NULL)
			continue;
		if (SSL_dane_tlsa_add(ssl, r->usage, r->selector, r->mtype, r->data, r->len) > 0)
			added++;
		else
			log_warnx("event=tlsa_record_refused base=%s record=\"%u %u %u\" "
			    "reason=\"OpenSSL cannot use it\"", tlsa->base, r->usage, r->selector,
			    r->mtype);
	}
	ERR_clear_error();
	if (added == 0) {
		/* Nothing to authenticate with: never fall back to PKIX or less. */
		SSL_free(ssl);
		return NULL;
	}
	ex = xcalloc(1, sizeof(*ex));
	/* The key covers all the session was verified against: the RRset,
	 * and the names a DANE-TA(2) certificate may carry. */
	snprintf(ex->key, sizeof(ex->key), "%s#%s#%08x", tlsa->base, tlsa->id,
	    names != NULL ? names_hash(names) : 0);
	snprintf(ex->params, sizeof(ex->params), "%s", tlsa->params);
	snprintf(ex->base, sizeof(ex->base), "%s", tlsa->base);
	SSL_set_ex_data(ssl, dane_ex_index, ex);
	resume_session(ssl, ex->key, ex->match, sizeof(ex->match));
	/* As for MTA-STS: the handshake completes, tls_peer_verdict() judges. */
	SSL_set_verify(ssl, SSL_VERIFY_NONE, NULL);
	return ssl;
}

const char *
tls_dane_match(SSL *ssl)
{
	struct dane_ex *ex = dane_ex_of(ssl);

	return ex != NULL ? ex->match : "";
}

enum tls_auth
tls_peer_auth(SSL *ssl)
{
	struct dane_ex *ex = dane_ex_of(ssl);

	if (SSL_get0_peer_certificate(ssl) == NULL || SSL_get_verify_result(ssl) != X509_V_OK)
		return TLS_AUTH_NONE;
	if (ex == NULL)
		return TLS_AUTH_PKIX;
	/* A resumed session was kept only if a TLSA record of this RRset matched. */
	if (SSL_session_reused(ssl) || SSL_get0_dane_authority(ssl, NULL, NULL) >= 0)
		return TLS_AUTH_DANE;
	return TLS_AUTH_NONE;
}

/* The verdict of a DANE handshake: names the records that failed to match. */
static enum rpt_result_type
dane_verdict(SSL *ssl, struct dane_ex *ex, char *reason, size_t reason_len)
{
	long vr = SSL_get_verify_result(ssl);

	if (tls_peer_auth(ssl) == TLS_AUTH_DANE) {
		if (ex->match[0] == '\0')
			dane_matched_record(ssl, ex->match, sizeof(ex->match));
		snprintf(reason, reason_len, "DANE authenticated (%s)", ex->match);
		return RPT_RESULT_NONE;
	}
	switch (vr) {
	case X509_V_OK:
	case X509_V_ERR_DANE_NO_MATCH:
		snprintf(reason, reason_len, "TLSA mismatch (%s)", ex->params);
		return RPT_RESULT_TLSA_INVALID;
	case X509_V_ERR_HOSTNAME_MISMATCH:
		snprintf(reason, reason_len, "certificate not valid for %s (%s)", ex->base, ex->params);
		return RPT_RESULT_CERT_HOST_MISMATCH;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		snprintf(reason, reason_len, "certificate expired (%s)", ex->params);
		return RPT_RESULT_CERT_EXPIRED;
	default:
		snprintf(reason, reason_len, "certificate %s (%s)", X509_verify_cert_error_string(vr),
		    ex->params);
		return tls_verify_result_type(vr);
	}
}

enum rpt_result_type
tls_peer_verdict(SSL *ssl, char *reason, size_t reason_len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	struct dane_ex *ex = dane_ex_of(ssl);
	long vr;

	if (cert == NULL) {
		snprintf(reason, reason_len, "no server certificate");
		return RPT_RESULT_VALIDATION_FAILURE;
	}
	if (ex != NULL)
		return dane_verdict(ssl, ex, reason, reason_len);
	vr = SSL_get_verify_result(ssl);
	if (vr == X509_V_OK) {
		snprintf(reason, reason_len, "certificate valid");
		return RPT_RESULT_NONE;
	}
	snprintf(reason, reason_len, "certificate %s", X509_verify_cert_error_string(vr));
	if (vr == X509_V_ERR_CERT_HAS_EXPIRED)
		snprintf(reason, reason_len, "certificate expired");
	else if (vr == X509_V_ERR_HOSTNAME_MISMATCH)
		snprintf(reason, reason_len, "certificate not valid for the MX host name");
	return tls_verify_result_type(vr);
}

SSL_CTX *
tls_server_ctx_new(const struct conf *conf, const char *cert_file, const char *key_file, char **err)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());

	if (ctx == NULL) {
		*err = xstrdup("cannot create a TLS server context");
		return NULL;
	}
	/* Clients of a smarthost are legacy MTAs: accept TLS 1.2 and up,
	 * like the upstream leg, whatever min_version says for MTA-STS. */
	SSL_CTX_set_min_proto_version(ctx, conf_tls_min_version(conf));
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (SSL_CTX_use_certificate_chain_file(ctx, cert_file) != 1) {
		*err = xasprintf("[server] tls_cert_file %s: %s", cert_file,
		    ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, key_file, SSL_FILETYPE_PEM) != 1) {
		*err = xasprintf("[server] tls_key_file %s: %s", key_file,
		    ERR_reason_error_string(ERR_get_error()));
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		*err = xasprintf("[server] tls_key_file %s does not match tls_cert_file %s",
		    key_file, cert_file);
		goto fail;
	}
	ERR_clear_error();
	return ctx;
fail:
	ERR_clear_error();
	SSL_CTX_free(ctx);
	return NULL;
}
