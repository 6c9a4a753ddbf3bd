#!/usr/bin/env bash
# End-to-end tests of `stsproxy report read`: TLS-RPT reports as a domain
# owner receives them, made by independent producers (gzip(1), python's
# email package building a multipart/report message as reporters send
# them), read as files, a directory and standard input, in the terminal
# and --json forms. Requirements are cited from ../shared/docs/spec-notes.md.
. "$(dirname "$0")/world.sh"

for tool in jq python3 gzip; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
W=$(mktemp -d /tmp/stsproxy-rptread.XXXXXX)
trap 'rm -rf "$W"' EXIT
DATA=$E2E_DIR/../data/rpt_read
mkdir -p "$W/inbox"
printf 'state_dir = %s/state\n' "$W" > "$W/stsproxy.conf"
rr() { "$STSPROXY" -c "$W/stsproxy.conf" report read "$@" 2>>"$W/err"; }

# The inbox: the RFC 8460 example gzipped, a multi-policy report as mail,
# the same report once more as JSON (RPT-16: counted once), a malformed one.
gzip -c "$DATA/rfc8460-appendix-b.json" > "$W/inbox/company-x.example!company-y.example!1459468800!1459555199.json.gz"
"$DEBPY" - "$DATA/multi-policy.json" "$W/inbox/report.eml" <<'PY'
import gzip, sys
from email.message import EmailMessage
report = open(sys.argv[1], "rb").read()
m = EmailMessage()
m["From"] = "tlsrpt@sender.example"
m["To"] = "tlsrpt@a.example"
m["Subject"] = "Report Domain: a.example Submitter: sender.example Report-ID: <2026-11-01.multi@sender.example>"
m["TLS-Report-Domain"] = "a.example"
m["TLS-Report-Submitter"] = "sender.example"
m.set_content("This is an aggregate TLS report from sender.example\n")
m.add_attachment(gzip.compress(report), maintype="application", subtype="tlsrpt+gzip",
                 filename="sender.example!a.example!1761955200!1762041599.json.gz")
m.replace_header("Content-Type", m["Content-Type"].replace("multipart/mixed", "multipart/report") + '; report-type="tlsrpt"')
open(sys.argv[2], "wb").write(bytes(m))
PY
cp "$DATA/multi-policy.json" "$W/inbox/again.json"
cp "$DATA/policies-object.json" "$W/inbox/broken.json"
echo "not a report" > "$W/inbox/README"

out=$(rr "$W/inbox"); rc=$?
check "a directory with a malformed report: exit 1, the rest still summarised" "$rc" "1"
check_match "RPT-16: the report received twice counts once" "$(printf '%s\n' "$out" | head -1)" \
	"^TLS-RPT reports: 3 read \\(1 duplicate, counted once\\), 1 malformed$"
check_match "a compact table: one row per policy domain and day" \
	"$(printf '%s\n' "$out" | grep -E '^(a|b|company-y)\.example ' | head -3 | tr -s ' ' | tr '\n' '|')" \
	"^a\\.example 2026-11-01 1 95 10 9\\.52%\\|b\\.example 2026-11-01 1 7 1 12\\.50%\\|company-y\\.example 2016-04-01 1 5326 303 5\\.38%\\|$"
check_match "... each failure type with what it means and usually fixes" "$(printf '%s' "$out" | tr '\n' ' ')" \
	"certificate-host-mismatch +4 +3\\.80%.*means: the MX's certificate does not cover its name"
check_match "... malformed inputs are reported with the reason (case 63)" "$out" \
	"broken\\.json \\(json\\): not an RFC 8460 report: policies is not an array"
check "... files with other names are not read" "$(printf '%s\n' "$out" | grep -c README)" "0"

rr "$W/inbox" --json > "$W/summary.json"
check "--json: the same exit status" "$?" "1"
check "--json: where each report came from" \
	"$(jq -r '[.reports[] | .where] | sort | join(",")' "$W/summary.json")" \
	"attachment sender.example!a.example!1761955200!1762041599.json.gz,gzip,json"
check "--json: a.example by result type, reason code and rate" \
	"$(jq -c '.domains[] | select(."policy-domain" == "a.example") | ."result-types" | map([."result-type", ."failure-reason-code", .sessions, .rate])' "$W/summary.json")" \
	'[["validation-failure","mx-not-in-sts-policy",6,0.0571],["certificate-host-mismatch",null,4,0.038]]'
check "--json: by sending organisation, MX and receiving IP" \
	"$(jq -c '.domains[] | select(."policy-domain" == "company-y.example") | [.organizations[0]."organization-name", .organizations[0]."failed-sessions", ."mx-hosts"[0]."receiving-mx-hostname", ."receiving-ips"[0]."receiving-ip"]' "$W/summary.json")" \
	'["Company-X",303,"mx2.mail.company-y.example","203.0.113.56"]'
check "RPT-9: sts and tlsa policies of one domain in one report" \
	"$(jq -c '.domains[] | select(."policy-domain" == "a.example") | ."policy-types"' "$W/summary.json")" '{"sts":1,"tlsa":1}'
check "erratum 6241: the bare-string mx-host is a warning, not an error" \
	"$(jq -r '.reports[] | select(.where == "gzip") | .warnings[0]' "$W/summary.json")" \
	"policies[0].policy.mx-host is a string, not an array (RFC 8460 erratum 6241)"

out=$(rr - < "$W/inbox/report.eml"); rc=$?
check_match "standard input: a whole message, exit 0" "$rc $(printf '%s\n' "$out" | head -1)" "^0 TLS-RPT reports: 1 read, 0 malformed$"
out=$(head -c 300 "$W/inbox/company-x.example!company-y.example!1459468800!1459555199.json.gz" | rr -); rc=$?
check_match "a truncated .json.gz is malformed, exit 1" "$rc $(echo $out)" "^1 .*gzip data truncated"
out=$(rr "$W/no-such-file"); rc=$?
check_match "a missing file is reported, exit 1" "$rc $(echo $out)" "^1 .*no-such-file \\(input\\): No such file or directory"
rr >/dev/null 2>&1
check "no operand is a usage error" "$?" "2"
out=$("$STSPROXY" -c "$W/stsproxy.conf" report read --help); rc=$?
check_match "report read --help says what it reads and the exit statuses" "$rc $(echo $out)" \
	"^0 usage: stsproxy report list .*stsproxy report read FILE\\|DIR\\|- .*Exit status: 0 every input held valid reports, 1 some input was malformed"
check "no sanitizer or leak report" "$(grep -cE 'AddressSanitizer|LeakSanitizer|runtime error' "$W/err")" "0"

world_summary
