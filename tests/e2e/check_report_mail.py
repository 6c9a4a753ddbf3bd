#!/usr/bin/env python3
"""check_report_mail.py MSG REPORT.json NAME=DNSKEYRECORD... - check a mailed
TLS report with independent code: DKIM with python3-dkim (the key records
are served by dnsfunc, as DNS would), structure with the email package.
Prints one "name: value" line per fact."""
import email
import email.policy
import gzip
import json
import sys

import dkim

raw = open(sys.argv[1], "rb").read()
report = json.load(open(sys.argv[2]))
records = dict(a.split("=", 1) for a in sys.argv[3:])


def dnsfunc(name, timeout=5):
    return records.get(name.decode().rstrip("."), "").encode()


d = dkim.DKIM(raw, tlsrpt=True)  # verify as a TLS report (RFC 8460 §3: s=tlsrpt keys)
sigs = [h for h in d.headers if h[0].lower() == b"dkim-signature"]
for i in range(len(sigs)):
    ok = d.verify(idx=i, dnsfunc=dnsfunc)
    tags = dkim.util.parse_tag_value(sigs[i][1])
    print("dkim %s: %s l=%s h-has-tls-report=%s" % (tags[b"a"].decode(), "pass" if ok else "fail",
          "yes" if b"l" in tags else "no",
          "yes" if b"tls-report-domain" in tags[b"h"] and b"tls-report-submitter" in tags[b"h"] else "no"))
msg = email.message_from_bytes(raw, policy=email.policy.default)
print("content-type: %s report-type=%s" % (msg.get_content_type(), msg.get_param("report-type")))
print("subject: %s" % msg["Subject"])
print("tls-report-domain: %s" % msg["TLS-Report-Domain"])
print("tls-report-submitter: %s" % msg["TLS-Report-Submitter"])
parts = list(msg.iter_parts())
print("parts: %s" % " ".join(p.get_content_type() for p in parts))
att = parts[1]
print("filename: %s" % att.get_filename())
body = json.loads(gzip.decompress(att.get_payload(decode=True)))
print("attachment-equals-report: %s" % ("yes" if body == report else "no"))
