#include "config.h"

#define LOG_SUBSYSTEM LOG_SUB_REPORT

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/rand.h>

#include "report/rpt_mail.h"
#include "report/rpt_post.h"

#define SIGNED_HEADERS	"from:to:subject:date:message-id:tls-report-domain:" \
			"tls-report-submitter:mime-version:content-type"

int
rpt_dkim_keys_load(struct rpt_dkim_keys *keys, const struct conf *conf,
    const struct rpt_identity *id, char **err)
{
	const char *domain = conf->report_dkim_domain[0] ? conf->report_dkim_domain : id->submitter;

	memset(keys, 0, sizeof(*keys));
	if (conf->report_dkim_key.count != conf->report_dkim_selector.count) {
		*err = xasprintf("[report] dkim_key has %zu entries but dkim_selector %zu",
		    conf->report_dkim_key.count, conf->report_dkim_selector.count);
		return -1;
	}
	for (size_t i = 0; i < conf->report_dkim_key.count && i < 4; i++) {
		if (dkim_key_load(&keys->keys[i], conf->report_dkim_key.items[i],
		    conf->report_dkim_selector.items[i], domain, err) < 0) {
			rpt_dkim_keys_free(keys);
			return -1;
		}
		keys->count++;
	}
	return 0;
}

void
rpt_dkim_keys_free(struct rpt_dkim_keys *keys)
{
	for (size_t i = 0; i < keys->count; i++)
		dkim_key_free(&keys->keys[i]);
	keys->count = 0;
}

/* Base64 in lines of 76 characters (RFC 2045 §6.8). */
static void
append_base64(struct strbuf *out, const unsigned char *in, size_t len)
{
	for (size_t off = 0; off < len; off += 57) {
		unsigned char line[80];
		size_t n = len - off < 57 ? len - off : 57;
		int w = EVP_EncodeBlock(line, in + off, (int)n);

		strbuf_append(out, (const char *)line, (size_t)w);
		strbuf_append(out, "\r\n", 2);
	}
}

char *
rpt_mail_build(const struct rpt_identity *id, const struct rpt_dkim_keys *keys, json_t *report,
    const char *day, const char *domain, const char *to, time_t now)
{
	struct strbuf msg, gz, signed_msg;
	char date[64], boundary[40], *json, *file;
	unsigned char rnd[12];
	const char *rid = json_string_value(json_object_get(report, "report-id"));
	json_t *p;
	size_t i;
	long long ok = 0, failed = 0;
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S +0000", &tm);
	RAND_bytes(rnd, sizeof(rnd));
	snprintf(boundary, sizeof(boundary), "tlsrpt-");
	for (i = 0; i < sizeof(rnd); i++)
		snprintf(boundary + 7 + 2 * i, sizeof(boundary) - 7 - 2 * i, "%02x", rnd[i]);
	json_array_foreach(json_object_get(report, "policies"), i, p) {
		ok += json_integer_value(json_object_get(json_object_get(p, "summary"),
		    "total-successful-session-count"));
		failed += json_integer_value(json_object_get(json_object_get(p, "summary"),
		    "total-failure-session-count"));
	}
	json = json_dumps(report, JSON_COMPACT);
	strbuf_init(&gz);
	rpt_gzip(json, strlen(json), &gz);
	file = rpt_report_filename(id, day, domain);

	strbuf_init(&msg);
	strbuf_printf(&msg, "From: TLS reports <%s>\r\n", id->contact);
	strbuf_printf(&msg, "To: <%s>\r\n", to);
	strbuf_printf(&msg, "Subject: Report Domain: %s Submitter: %s Report-ID: <%s>\r\n", domain,
	    id->submitter, rid);
	strbuf_printf(&msg, "Date: %s\r\n", date);
	strbuf_printf(&msg, "Message-ID: <%s.%s>\r\n", boundary + 7, rid);
	strbuf_printf(&msg, "TLS-Report-Domain: %s\r\n", domain);
	strbuf_printf(&msg, "TLS-Report-Submitter: %s\r\n", id->submitter);
	strbuf_printf(&msg, "MIME-Version: 1.0\r\n");
	strbuf_printf(&msg, "Content-Type: multipart/report; report-type=\"tlsrpt\";\r\n"
	    "\tboundary=\"%s\"\r\n\r\n", boundary);
	strbuf_printf(&msg, "This is a MIME-formatted message.\r\n\r\n--%s\r\n", boundary);
	strbuf_printf(&msg, "Content-Type: text/plain; charset=us-ascii\r\n"
	    "Content-Transfer-Encoding: 7bit\r\n\r\n");
	strbuf_printf(&msg, "This is an aggregate TLS report (RFC 8460) from %s.\r\n\r\n"
	    "Policy domain: %s\r\nPeriod: %s 00:00 to 24:00 UTC\r\n"
	    "Successful sessions: %lld\r\nFailed sessions: %lld\r\n\r\n"
	    "The report is attached as %s.\r\n\r\n", id->organization, domain, day, ok, failed, file);
	strbuf_printf(&msg, "--%s\r\nContent-Type: application/tlsrpt+gzip\r\n"
	    "Content-Transfer-Encoding: base64\r\n"
	    "Content-Disposition: attachment; filename=\"%s\"\r\n\r\n", boundary, file);
	append_base64(&msg, (const unsigned char *)gz.data, gz.len);
	strbuf_printf(&msg, "\r\n--%s--\r\n", boundary);

	/* RPT-17: one signature per key, each over the unsigned message. */
	strbuf_init(&signed_msg);
	for (i = 0; i < keys->count; i++) {
		char *sig = dkim_sign(&keys->keys[i], msg.data, msg.len, SIGNED_HEADERS, now);

		if (sig != NULL)
			strbuf_append(&signed_msg, sig, strlen(sig));
		free(sig);
	}
	strbuf_append(&signed_msg, msg.data, msg.len);
	strbuf_free(&msg);
	strbuf_free(&gz);
	free(json);
	free(file);
	return strbuf_steal(&signed_msg);
}
