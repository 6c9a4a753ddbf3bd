#include "config.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/err.h>

#include "report/dkim.h"

int
dkim_key_load(struct dkim_key *key, const char *pem_path, const char *selector,
    const char *domain, char **err)
{
	FILE *f = fopen(pem_path, "r");

	memset(key, 0, sizeof(*key));
	if (f == NULL) {
		*err = xasprintf("%s: cannot open", pem_path);
		return -1;
	}
	key->pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (key->pkey == NULL) {
		*err = xasprintf("%s: not a PEM private key", pem_path);
		ERR_clear_error();
		return -1;
	}
	if (dkim_key_algorithm(key) == NULL) {
		*err = xasprintf("%s: only RSA and Ed25519 keys can sign DKIM", pem_path);
		EVP_PKEY_free(key->pkey);
		key->pkey = NULL;
		return -1;
	}
	key->selector = xstrdup(selector);
	key->domain = xstrdup(domain);
	return 0;
}

void
dkim_key_free(struct dkim_key *key)
{
	EVP_PKEY_free(key->pkey);
	free(key->selector);
	free(key->domain);
	memset(key, 0, sizeof(*key));
}

const char *
dkim_key_algorithm(const struct dkim_key *key)
{
	switch (EVP_PKEY_get_base_id(key->pkey)) {
	case EVP_PKEY_RSA:
		return "rsa-sha256";
	case EVP_PKEY_ED25519:
		return "ed25519-sha256";
	default:
		return NULL;
	}
}

static bool
is_wsp(char c)
{
	return c == ' ' || c == '\t';
}

void
dkim_canon_body_relaxed(const char *body, size_t len, struct strbuf *out)
{
	size_t start = out->len, empty_run = 0;

	for (size_t i = 0; i < len;) {
		size_t eol = i;
		struct strbuf line;

		while (eol < len && !(body[eol] == '\r' && eol + 1 < len && body[eol + 1] == '\n'))
			eol++;
		strbuf_init(&line);
		/* Runs of WSP become one SP; WSP at the end of the line goes. */
		for (size_t k = i; k < eol; k++) {
			if (is_wsp(body[k])) {
				while (k + 1 < eol && is_wsp(body[k + 1]))
					k++;
				if (k + 1 < eol)
					strbuf_append(&line, " ", 1);
			} else
				strbuf_append(&line, &body[k], 1);
		}
		if (line.len == 0) {
			empty_run++;
		} else {
			for (; empty_run > 0; empty_run--)
				strbuf_append(out, "\r\n", 2);
			strbuf_append(out, line.data, line.len);
			strbuf_append(out, "\r\n", 2);
		}
		strbuf_free(&line);
		i = eol + 2;
	}
	/* Trailing empty lines are dropped; an empty body stays empty. */
	(void)start;
}

void
dkim_canon_header_relaxed(const char *field, size_t len, struct strbuf *out)
{
	const char *colon = memchr(field, ':', len);
	size_t nlen, i;
	bool pending_sp = false, started = false;

	if (colon == NULL)
		return;
	nlen = (size_t)(colon - field);
	while (nlen > 0 && is_wsp(field[nlen - 1]))
		nlen--;
	for (i = 0; i < nlen; i++) {
		char c = (char)tolower((unsigned char)field[i]);

		strbuf_append(out, &c, 1);
	}
	strbuf_append(out, ":", 1);
	for (i = (size_t)(colon - field) + 1; i < len; i++) {
		char c = field[i];

		if (c == '\r' || c == '\n' || is_wsp(c)) {
			/* Unfold, and collapse WSP; none at the start or end of the value. */
			if (c != '\r' && c != '\n' && started)
				pending_sp = true;
			continue;
		}
		if (pending_sp)
			strbuf_append(out, " ", 1);
		pending_sp = false;
		started = true;
		strbuf_append(out, &c, 1);
	}
}

static char *
b64(const unsigned char *in, size_t len)
{
	char *out = xcalloc(1, 4 * ((len + 2) / 3) + 1);

	EVP_EncodeBlock((unsigned char *)out, in, (int)len);
	return out;
}

/* The last occurrence of header name in the header block (RFC 6376 §5.4.2). */
static bool
find_header(const char *hdrs, size_t hlen, const char *name, const char **fs, size_t *flen)
{
	size_t nl = strlen(name);
	bool found = false;

	for (size_t i = 0; i < hlen;) {
		size_t end = i;

		/* A field runs to the CR LF not followed by WSP. */
		while (end < hlen) {
			if (hdrs[end] == '\r' && end + 2 < hlen && hdrs[end + 1] == '\n' &&
			    !is_wsp(hdrs[end + 2]))
				break;
			if (hdrs[end] == '\r' && end + 2 >= hlen)
				break;
			end++;
		}
		if (end - i > nl && strncasecmp(hdrs + i, name, nl) == 0 &&
		    (hdrs[i + nl] == ':' || is_wsp(hdrs[i + nl]))) {
			*fs = hdrs + i;
			*flen = end - i;
			found = true;
		}
		i = end + 2;
	}
	return found;
}

char *
dkim_sign(const struct dkim_key *key, const char *msg, size_t len, const char *headers,
    time_t now)
{
	const char *sep = NULL, *algo = dkim_key_algorithm(key);
	unsigned char bh[32], sig[1024], digest[32];
	size_t hlen, siglen = sizeof(sig);
	struct strbuf body, data, field;
	char *bh64, *sig64, *value, *names, *save = NULL, *result = NULL;
	EVP_MD_CTX *ctx;
	bool ok;

	for (size_t i = 0; i + 3 < len; i++)
		if (memcmp(msg + i, "\r\n\r\n", 4) == 0) {
			sep = msg + i;
			break;
		}
	if (sep == NULL || algo == NULL)
		return NULL;
	hlen = (size_t)(sep - msg) + 2;
	strbuf_init(&body);
	dkim_canon_body_relaxed(sep + 4, len - (size_t)(sep + 4 - msg), &body);
	EVP_Digest(body.data ? body.data : "", body.len, bh, NULL, EVP_sha256(), NULL);
	strbuf_free(&body);
	bh64 = b64(bh, sizeof(bh));
	value = xasprintf("v=1; a=%s; c=relaxed/relaxed; d=%s; s=%s; t=%lld; h=%s; bh=%s; b=",
	    algo, key->domain, key->selector, (long long)now, headers, bh64);
	free(bh64);

	strbuf_init(&data);
	names = xstrdup(headers);
	for (char *n = strtok_r(names, ":", &save); n; n = strtok_r(NULL, ":", &save)) {
		const char *fs;
		size_t fl;

		if (find_header(msg, hlen, n, &fs, &fl)) {
			dkim_canon_header_relaxed(fs, fl, &data);
			strbuf_append(&data, "\r\n", 2);
		}
	}
	free(names);
	strbuf_init(&field);
	strbuf_printf(&field, "DKIM-Signature: %s", value);
	dkim_canon_header_relaxed(field.data, field.len, &data);
	strbuf_free(&field);

	ctx = EVP_MD_CTX_new();
	if (EVP_PKEY_get_base_id(key->pkey) == EVP_PKEY_ED25519) {
		/* RFC 8463 §3: Ed25519 over the SHA-256 hash of the data. */
		EVP_Digest(data.data, data.len, digest, NULL, EVP_sha256(), NULL);
		ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, key->pkey) == 1 &&
		    EVP_DigestSign(ctx, sig, &siglen, digest, sizeof(digest)) == 1;
	} else {
		ok = EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key->pkey) == 1 &&
		    EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)data.data, data.len) == 1;
	}
	EVP_MD_CTX_free(ctx);
	strbuf_free(&data);
	if (ok) {
		sig64 = b64(sig, siglen);
		result = xasprintf("DKIM-Signature: %s%s\r\n", value, sig64);
		free(sig64);
	}
	ERR_clear_error();
	free(value);
	return result;
}
