#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_UPSTREAM

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include <openssl/err.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "conf/log.h"
#include "policy/tls.h"

/*
 * Client-side TLS session cache, per host name, for resumption (a resumed
 * handshake costs a fraction of a full one). Only sessions whose
 * certificate verified for that very host name are kept, so a resumed
 * session is worth exactly what its full handshake was: the verify result
 * and peer certificate travel with the session. Direct-mapped and bounded;
 * a collision just replaces the older session.
 */
#define SESSION_SLOTS	1024

static struct {
	char		 host[256];
	SSL_SESSION	*session;
} session_cache[SESSION_SLOTS];

static unsigned
host_slot(const char *host)
{
	unsigned h = 2166136261u;

	for (const unsigned char *p = (const unsigned char *)host; *p; p++)
		h = (h ^ (unsigned)(*p | 0x20)) * 16777619u;
	return h % SESSION_SLOTS;
}

static int
remember_session(SSL *ssl, SSL_SESSION *session)
{
	const char *host = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
	unsigned slot;

	if (host == NULL || strlen(host) >= sizeof(session_cache[0].host) ||
	    SSL_get_verify_result(ssl) != X509_V_OK)
		return 0;	/* not kept: OpenSSL frees it */
	slot = host_slot(host);
	if (session_cache[slot].session != NULL)
		SSL_SESSION_free(session_cache[slot].session);
	snprintf(session_cache[slot].host, sizeof(session_cache[slot].host), "%s", host);
	session_cache[slot].session = session;
	return 1;		/* we hold the reference now */
}

static void
resume_session(SSL *ssl, const char *host)
{
	unsigned slot = host_slot(host);
	SSL_SESSION *s = session_cache[slot].session;

	if (s == NULL || strcasecmp(session_cache[slot].host, host) != 0)
		return;
	if (!SSL_SESSION_is_resumable(s)) {
		SSL_SESSION_free(s);
		session_cache[slot].session = NULL;
		return;
	}
	SSL_set_session(ssl, s);
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
	resume_session(ssl, host);
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

enum rpt_result_type
tls_peer_verdict(SSL *ssl, char *reason, size_t reason_len)
{
	X509 *cert = SSL_get0_peer_certificate(ssl);
	long vr;

	if (cert == NULL) {
		snprintf(reason, reason_len, "no server certificate");
		return RPT_RESULT_VALIDATION_FAILURE;
	}
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
