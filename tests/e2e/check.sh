#!/usr/bin/env bash
# End-to-end tests of `stsproxy check DOMAIN`: one domain of the signed
# test zone per mistake the MTA-STS and TLS-RPT deployment guides warn
# about, and a clean domain taken through the guides' steps (testing,
# then enforce without and with a new id). Real NSD, nginx and MX
# servers on loopback; each test asserts the verdict of the check that
# covers the mistake and the exit status (0 pass, 1 warnings, 2 failure).
# Requirements are cited from ../shared/docs/spec-notes.md.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd nginx ldns-signzone drill jq openssl python3; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

MX=$E2E_DIR/mxserver.py
GOOD_MX=127.0.5.1
NOTLS_MX=127.0.5.2
BADNAME_MX=127.0.5.3
EXPIRING_MX=127.0.5.4
OLDTLS_MX=127.0.5.5
STALL_MX=127.0.5.9

# Every domain of this test, each with one mistake (clean: none).
DOMAINS="clean txtsyntax twotxt nohost redirect ctype hostcert crlf badpolicy missingmx
nostarttls badname expiring oldtls shortage nortpt badrpt ruacert stall many slowhost"

# ---- the world -----------------------------------------------------------
world_init
world_ca_init "$W/ca" "stsproxy test CA"
mkdir -p "$W/certs" "$W/spool"
sans() { local out="" d; for d in "$@"; do out="$out${out:+,}DNS:$d"; done; printf '%s' "$out"; }
policy_hosts=() mx_hosts=()
for d in $DOMAINS; do
	[ "$d" = hostcert ] || policy_hosts+=("mta-sts.$d.$ZONE")
	case $d in nostarttls|badname|expiring) ;; *) mx_hosts+=("mx.$d.$ZONE") ;; esac
done
mx_hosts+=("mx2.missingmx.$ZONE")
world_cert "$W/ca" "$W/certs/policyhosts" "mta-sts.clean.$ZONE" "$(sans "${policy_hosts[@]}")" || exit 1
world_cert "$W/ca" "$W/certs/mxgood" "mx.clean.$ZONE" "$(sans "${mx_hosts[@]}")" || exit 1
# The policy host's certificate names the domain, not mta-sts.<domain> (STS-14, case 34).
world_cert "$W/ca" "$W/certs/hostcert" "hostcert.$ZONE" "DNS:hostcert.$ZONE" || exit 1
# An MX whose certificate is valid, but not for its name (STS-38, case 47).
world_cert "$W/ca" "$W/certs/badname" "other.$ZONE" "DNS:other.$ZONE" || exit 1
# An MX certificate that expires in five days.
world_cert "$W/ca" "$W/certs/expiring" "mx.expiring.$ZONE" "DNS:mx.expiring.$ZONE" \
	"$(date -u -d '-1 day' +%Y%m%d%H%M%SZ)" "$(date -u -d '+5 days' +%Y%m%d%H%M%SZ)" || exit 1
world_cert "$W/ca" "$W/certs/reports" "reports.$ZONE" "DNS:reports.$ZONE" || exit 1
# The https: rua host of ruacert presents a certificate for another name.
world_cert "$W/ca" "$W/certs/wrongrua" "wrong.$ZONE" "DNS:wrong.$ZONE" || exit 1

: > "$W/nginx.sites"
for d in $DOMAINS; do
	case $d in
	hostcert) world_site "mta-sts.$d.$ZONE" "$W/certs/hostcert" ;;
	redirect) world_site "mta-sts.$d.$ZONE" "$W/certs/policyhosts" \
		"location / { return 301 https://mta-sts.clean.$ZONE\$request_uri; }" ;;
	ctype) world_site "mta-sts.$d.$ZONE" "$W/certs/policyhosts" "types { text/html txt; }" ;;
	*) world_site "mta-sts.$d.$ZONE" "$W/certs/policyhosts" ;;
	esac
done
world_site "reports.$ZONE" "$W/certs/reports"
world_site "reports.ruacert.$ZONE" "$W/certs/wrongrua"

pol() { # DOMAIN MODE MAX_AGE PATTERN...
	local d=$1 m=$2 age=$3; shift 3
	{ printf 'version: STSv1\nmode: %s\n' "$m"; for p in "$@"; do printf 'mx: %s\n' "$p"; done
	  printf 'max_age: %s\n' "$age"; } | world_policy "mta-sts.$d.$ZONE"
}
for d in $DOMAINS; do pol "$d" testing 86400 "mx.$d.$ZONE"; done
# CRLF line ends are fine (STS-22); trailing blanks and no final line break are lint warnings.
printf 'version: STSv1\r\nmode: testing  \r\nmx: mx.crlf.%s\r\nmax_age: 86400' "$ZONE" | world_policy "mta-sts.crlf.$ZONE"
# A blank before the colon breaks the grammar (case 19).
printf 'version : STSv1\nmode: testing\nmx: mx.badpolicy.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.badpolicy.$ZONE"
# The second MX is missing from the policy, and a stale pattern remains.
pol missingmx testing 86400 "mx.missingmx.$ZONE" "old.missingmx.$ZONE"
# enforce with a max_age of a day, under the guides' week.
pol shortage enforce 86400 "mx.shortage.$ZONE"

TLSA_HASH=$(openssl x509 -in "$W/certs/mxgood.pem" -noout -pubkey |
	openssl pkey -pubin -outform DER | sha256sum | cut -d' ' -f1)
{
	for d in $DOMAINS; do
		case $d in
		txtsyntax) printf '_mta-sts.%s TXT "v=STSv1; id=2026-11-01"\n' "$d" ;;
		twotxt) printf '_mta-sts.%s TXT "v=STSv1; id=a1;"\n_mta-sts.%s TXT "v=STSv1; id=b1;"\n' "$d" "$d" ;;
		*) printf '_mta-sts.%s TXT "v=STSv1; id=%s1;"\n' "$d" "$d" ;;
		esac
		case $d in
		nohost) ;;
		slowhost) printf 'mta-sts.%s A %s\n' "$d" "$STALL_ADDR" ;;
		*) printf 'mta-sts.%s A %s\n' "$d" "$WEB_ADDR" ;;
		esac
		printf '%s MX 10 mx.%s.%s.\n' "$d" "$d" "$ZONE"
		case $d in
		nostarttls) ip=$NOTLS_MX ;; badname) ip=$BADNAME_MX ;; expiring) ip=$EXPIRING_MX ;;
		oldtls) ip=$OLDTLS_MX ;;
		stall) ip=$STALL_MX ;; *) ip=$GOOD_MX ;;
		esac
		printf 'mx.%s A %s\n' "$d" "$ip"
		case $d in
		nortpt) ;;
		badrpt) printf '_smtp._tls.%s TXT "v=TLSRPTv1; rua=ftp://reports.%s/tlsrpt"\n' "$d" "$ZONE" ;;
		ruacert) printf '_smtp._tls.%s TXT "v=TLSRPTv1; rua=https://reports.ruacert.%s/tlsrpt"\n' "$d" "$ZONE" ;;
		clean) printf '_smtp._tls.%s TXT "v=TLSRPTv1; rua=mailto:tlsrpt@clean.%s,https://reports.%s/tlsrpt"\n' "$d" "$ZONE" "$ZONE" ;;
		*) printf '_smtp._tls.%s TXT "v=TLSRPTv1; rua=mailto:tlsrpt@%s.%s"\n' "$d" "$d" "$ZONE" ;;
		esac
	done
	cat <<ZONEDATA
missingmx MX 20 mx2.missingmx.$ZONE.
mx2.missingmx A $GOOD_MX
_25._tcp.mx.clean TLSA 3 1 1 $TLSA_HASH
_25._tcp.mx.badname TLSA 3 1 1 $TLSA_HASH
reports A $WEB_ADDR
reports.ruacert A $WEB_ADDR
ZONEDATA
	# many: two MX hosts with five addresses each; only one answers.
	printf 'many MX 20 mx2.many.%s.\n' "$ZONE"
	for i in 2 3 4 5; do printf 'mx.many A 127.0.6.%s\n' "$i"; done
	for i in 6 7 8 9 10; do printf 'mx2.many A 127.0.6.%s\n' "$i"; done
} | world_dns_records
world_dns_publish >/dev/null || exit 1
world_web_start || exit 1
world_stall_start

mx() { # ADDR:PORT NAME CERT [BEHAVE]; "record" keeps every command of every session
	python3 "$MX" --listen "$1" --name "$2" --spool "$W/spool" \
		${3:+--cert "$W/certs/$3.pem" --key "$W/certs/$3.key"} --behave "record${4:+,$4}" \
		> "$W/mx-$2.out" 2>&1 &
	PIDS+=($!)
}
mx "$GOOD_MX:25" good mxgood
mx "$GOOD_MX:2525" good2525 mxgood
mx "$NOTLS_MX:25" nostarttls "" nostarttls
mx "$BADNAME_MX:25" badname badname
mx "$EXPIRING_MX:25" expiring expiring
mx "$OLDTLS_MX:25" oldtls mxgood tls11
# An SMTP server that accepts connections and never greets.
python3 -c '
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 25)); s.listen(16)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' "$STALL_MX" &
PIDS+=($!)
for _ in $(seq 50); do
	[ "$(cat "$W"/mx-*.out 2>/dev/null | grep -c ready)" -ge 6 ] && break
	sleep 0.1
done
world_conf

# chk DOMAIN [ARGS]: run check --json, keep the document in $W/check-DOMAIN.json, set RC.
chk() {
	local d=$1; shift
	sts check "$d.$ZONE" --json "$@" > "$W/check-$d.json"
	RC=$?
	cat "$W/last.err" >> "$W/check.err"
}
# verdict DOMAIN CHECK: the statuses of that check, space-separated, in order.
verdict() { jq -r --arg c "$2" '[.checks[] | select(.check == $c) | .status] | join(" ")' "$W/check-$1.json"; }
# evidence DOMAIN CHECK: the evidence of that check, "|"-separated.
evidence() { jq -r --arg c "$2" '[.checks[] | select(.check == $c) | .evidence] | join("|")' "$W/check-$1.json"; }
# fix DOMAIN CHECK: the fix of the first non-passing instance of that check.
fix() { jq -r --arg c "$2" '[.checks[] | select(.check == $c and .fix != null) | .fix][0] // ""' "$W/check-$1.json"; }

# ---- the clean domain, step by step ----------------------------------------
# Step: policy in testing, TXT with an id, MXs listed, TLS-RPT published.
chk clean
check "clean domain in testing: every check passes, exit 0" "$RC" "0"
check "... the JSON carries the same exit status" "$(jq .exit_status "$W/check-clean.json")" "0"
check "STS-1/3: one valid TXT record" "$(verdict clean txt-record)" "pass"
check "the TXT record is DNSSEC-secure in the signed zone" "$(verdict clean txt-dnssec)" "pass"
check "STS-12/14: the policy host resolves, answers and has a valid certificate" \
	"$(verdict clean policy-host) $(verdict clean policy-certificate)" "pass pass"
check_match "STS-15/16: HTTP 200, text/plain, no redirect" "$(evidence clean policy-http)" "^HTTP 200, Content-Type: text/plain"
check "STS-22..30: the policy file has no lint finding" "$(verdict clean policy-file)" "pass"
check "the first check of a domain only records the policy for the id rule" "$(verdict clean policy-id)" "info"
check "max_age advice for testing" "$(verdict clean max-age)" "pass"
check_match "... mentions the week the guides recommend for enforce" "$(evidence clean max-age)" "at least a week \\(604800\\)"
check "STS-36: the MX matches the policy" "$(verdict clean mx-coverage)" "pass"
check_match "STS-38..40: the MX offers STARTTLS with a certificate valid for its name" \
	"$(evidence clean mx-tls)" "^STARTTLS, TLSv1\\.[23] .*certificate valid for mx\\.clean\\.$ZONE \\(names: .*mx\\.clean\\.$ZONE"
check "the MX certificate does not expire soon" "$(verdict clean mx-certificate-expiry)" "pass"
check_match "DANE-10: the TLSA record is checked by a handshake, as DANE senders do: it matches" \
	"$(verdict clean mx-dane) $(evidence clean mx-dane)" \
	"^pass 1 usable TLSA record at _25\._tcp\.mx\.clean\.$ZONE \(DANE-EE 3 1 1\) match the certificate of $GOOD_MX: DANE authenticated \(3 1 1 $(printf '%s' "$TLSA_HASH" | tr a-f A-F)\)"
check "RPT-1..5: the _smtp._tls record is valid" "$(verdict clean tlsrpt-record)" "pass"
check "RPT-3: both destinations check out (mailto address; https host resolves, certificate valid)" \
	"$(verdict clean tlsrpt-rua)" "pass pass"
check_match "... the https destination was reached over TLS, no report posted" \
	"$(evidence clean tlsrpt-rua)" "reports\\.$ZONE resolves to $WEB_ADDR; TLS TLSv1\\.[23], certificate valid"
check "... nginx saw a TLS handshake but no request" "$(cat "$W/access-reports.$ZONE.log" 2>/dev/null | wc -l)" "0"
check_match "readiness: ready for enforce, with the next steps" \
	"$(verdict clean enforce-readiness) $(evidence clean enforce-readiness)" \
	"^pass ready for enforce: every MX \\(1 address probed\\) passes .*mode: enforce, max_age of at least 604800, and a new id"
check "... and the JSON says so" "$(jq -c '[.ready_for_enforce, .mode, .counts.fail, .counts.warn]' "$W/check-clean.json")" '[true,"testing",0,0]'
out=$(sts check "clean.$ZONE"); rc=$?
check "the terminal form exits the same" "$rc" "0"
check_match "... one line per check with its status" "$(printf '%s\n' "$out" | grep -c '^PASS  ')" "^(1[5-9]|2[0-9])$"
check_match "... and a summary line" "$(printf '%s\n' "$out" | tail -1)" "^[0-9]+ pass, 0 warn, 0 fail, [0-9]+ info: ready for enforce$"

# Step: switch to enforce (a week's max_age) but forget to change the id.
pol clean enforce 604800 "mx.clean.$ZONE"
fetches_before=$(world_fetches "mta-sts.clean.$ZONE")
chk clean
check "the guides' mistake: enforce published without a new id is a failure, exit 2" "$RC" "2"
check_match "STS-20: the id rule says senders keep the old policy" \
	"$(verdict clean policy-id) $(evidence clean policy-id)" \
	"^fail the policy changed \\(mode testing -> enforce, max_age 86400 -> 604800, 1 -> 1 mx patterns\\) but the id is still clean1"
check_match "... and says how to fix it" "$(fix clean policy-id)" "^Change the id in the _mta-sts TXT record"
check "... a sender using this host's cache still applies the old policy (no fetch: same id)" \
	"$(( $(world_fetches "mta-sts.clean.$ZONE") - fetches_before ))" "1"

# Step: change the id.
sed -i "s/id=clean1;/id=clean2;/" "$W/dns/records"
world_dns_publish >/dev/null || exit 1
chk clean
check "enforce with a new id: every check passes, exit 0" "$RC" "0"
check_match "the id rule sees the new id" "$(verdict clean policy-id) $(evidence clean policy-id)" \
	"^pass id changed from clean1 \\(cached .*\\) to clean2"
check "max_age of a week under enforce passes" "$(verdict clean max-age)" "pass"
check_match "readiness: enforce in effect" "$(verdict clean enforce-readiness) $(evidence clean enforce-readiness)" \
	"^pass enforce is in effect and every MX"
chk clean
check "run again: id and policy unchanged" "$(verdict clean policy-id) $RC" "pass 0"

# --port: the MXs on another port (TLSA looked up under that port).
chk clean --port 2525
check "--port probes the MX on that port" "$RC $(jq -r '[.checks[] | select(.check == "mx-tls") | .subject][0]' "$W/check-clean.json") $(jq .port "$W/check-clean.json")" \
	"0 mx.clean.$ZONE $GOOD_MX 2525"
check "... and looks up TLSA under that port" "$(jq -r '[.checks[] | select(.check == "mx-dane") | .subject][0]' "$W/check-clean.json")" "_2525._tcp.mx.clean.$ZONE"

# ---- one domain per mistake ------------------------------------------------
chk txtsyntax
check "STS-3 case 7: an id with '-' fails the TXT check, exit 2" "$(verdict txtsyntax txt-record) $RC" "fail 2"
check_match "... with the record and the reason as evidence" "$(evidence txtsyntax txt-record)" "id=2026-11-01.*"
check "... and the policy host is still checked (diagnostic fetch)" "$(verdict txtsyntax policy-http) $(verdict txtsyntax policy-file)" "pass pass"
check_match "... saying senders would not fetch it" "$(evidence txtsyntax policy-http)" "without a usable TXT record senders do not fetch it"
check_match "... readiness names the TXT record" "$(evidence txtsyntax enforce-readiness)" "no usable _mta-sts TXT record"

chk twotxt
check "STS-7 case 13: two v=STSv1 records fail, exit 2" "$(verdict twotxt txt-record) $RC" "fail 2"
check_match "... the fix: keep exactly one" "$(fix twotxt txt-record)" "^Keep exactly one TXT record"

chk nohost
check "STS-12: a policy host name that does not resolve fails, exit 2" "$(verdict nohost policy-host) $RC" "fail 2"
check_match "... evidence: the DNS answer; fix: publish an address" \
	"$(evidence nohost policy-host) / $(fix nohost policy-host)" "^A lookup: nxdomain / Publish an A \\(and AAAA\\) record for mta-sts\\.nohost\\.$ZONE"

chk redirect
check "STS-15 case 32: a redirect fails the HTTP check, exit 2" "$(verdict redirect policy-http) $RC" "fail 2"
check_match "... evidence: the redirect and its target" "$(evidence redirect policy-http)" "HTTP 301 redirect to https://mta-sts\\.clean\\.$ZONE/"
check_match "... fix: serve directly, senders never follow redirects" "$(fix redirect policy-http)" "never follow redirects"

chk ctype
check "STS-16 case 33: text/html fails the HTTP check, exit 2" "$(verdict ctype policy-http) $RC" "fail 2"
check_match "... evidence names the content type" "$(evidence ctype policy-http)" "Content-Type text/html"

chk hostcert
check "STS-14 case 34: a policy host certificate without mta-sts.<domain> fails, exit 2" \
	"$(verdict hostcert policy-certificate) $RC" "fail 2"
check_match "... evidence: the certificate error" "$(evidence hostcert policy-certificate)" "hostname mismatch.*sts-webpki-invalid"

chk crlf
check "STS-22: CRLF is fine, trailing blanks and no final line break are lint warnings, exit 1" \
	"$(verdict crlf policy-file) $RC" "warn warn 1"
check_match "... with the line numbers" "$(jq -r '[.checks[] | select(.check == "policy-file") | .subject] | join(",")' "$W/check-crlf.json")" "^line 2,line 4$"

chk badpolicy
check "STS-30 case 19: a blank before ':' makes the policy invalid, exit 2" "$(verdict badpolicy policy-file) $RC" "fail fail 2"
check_match "... evidence: the lint error" "$(evidence badpolicy policy-file)" "^error: 'version ' is not a field name"

chk missingmx
check "STS-36: an MX missing from the policy fails, a stale pattern warns, exit 2" \
	"$(verdict missingmx mx-coverage) $RC" "pass fail warn 2"
check_match "... names the missing MX and the fix" "$(fix missingmx mx-coverage)" "Add \"mx: mx2\\.missingmx\\.$ZONE\""
check_match "... readiness: not ready" "$(evidence missingmx enforce-readiness)" "1 MX host not in the policy"

chk nostarttls
check_match "case 50: an MX without STARTTLS fails with starttls-not-supported, exit 2" \
	"$(verdict nostarttls mx-tls) $(evidence nostarttls mx-tls) $RC" "^fail starttls-not-supported: does not offer STARTTLS 2$"
check_match "... the fix comes from the result type" "$(fix nostarttls mx-tls)" "^Enable STARTTLS"

chk badname
check_match "DANE-10: a TLSA record that does not match the MX's certificate fails, with the fix" \
	"$(verdict badname mx-dane) $(evidence badname mx-dane) / $(fix badname mx-dane)" \
	"^fail 1 usable TLSA record .*, but $BADNAME_MX presents a certificate they do not authenticate: TLSA mismatch \(DANE-EE 3 1 1\) \(tlsa-invalid\) / Publish TLSA records for the certificate the MX presents"
check_match "case 47: an MX certificate not valid for its name fails with certificate-host-mismatch, exit 2" \
	"$(verdict badname mx-tls) $(evidence badname mx-tls) $RC" \
	"^fail certificate-host-mismatch: certificate not valid for the MX host name \\(names: other\\.$ZONE;.* 2$"

chk oldtls
check_match "STS-40: an MX that speaks only TLS 1.1 fails the handshake, exit 2" \
	"$(verdict oldtls mx-tls) $RC $(evidence oldtls mx-tls)" "^fail 2 validation-failure: TLS handshake failed: "
check_match "... the fix: TLS 1.2 or later" "$(fix oldtls mx-tls)" "^Make the MX complete a TLS handshake with TLS 1\\.2 or later"

chk expiring
check "an MX certificate expiring in under 14 days warns, exit 1" \
	"$(verdict expiring mx-tls) $(verdict expiring mx-certificate-expiry) $RC" "pass warn 1"
check_match "... evidence: days left" "$(evidence expiring mx-certificate-expiry)" "^expires in [45] days"
check "... still ready for enforce" "$(verdict expiring enforce-readiness)" "pass"

chk shortage
check "enforce with max_age under a week warns, exit 1" "$(verdict shortage max-age) $RC" "warn 1"
check_match "... the fix: at least 604800" "$(fix shortage max-age)" "at least 604800"

chk nortpt
check "no _smtp._tls record warns, exit 1" "$(verdict nortpt tlsrpt-record) $RC" "warn 1"
check_match "... the fix: publish one and read the reports" "$(fix nortpt tlsrpt-record)" "v=TLSRPTv1; rua=mailto:.*stsproxy report read"

chk badrpt
check "RPT-3: a record with no usable destination fails, exit 2" "$(verdict badrpt tlsrpt-record) $RC" "fail 2"

chk ruacert
check "an https rua whose host has a bad certificate fails, exit 2" "$(verdict ruacert tlsrpt-rua) $RC" "fail 2"
check_match "... evidence: the host, its address and the certificate error" "$(evidence ruacert tlsrpt-rua)" \
	"^reports\\.ruacert\\.$ZONE \\($WEB_ADDR\\): certificate does not name reports\\.ruacert\\.$ZONE \\(names: wrong\\.$ZONE;"

# ---- bounded ----------------------------------------------------------------
start=$(date +%s)
chk stall --timeout 4
elapsed=$(( $(date +%s) - start ))
check "an MX that never greets fails within the deadline" "$(verdict stall mx-tls) $RC" "fail 2"
check_match "... after the per-step timeout" "$(evidence stall mx-tls)" "^greeting failed: no answer within 2s"
check_match "... and the whole check stays within --timeout" "$elapsed" "^[0-5]$"
# The deadline: a policy host that accepts and never answers, with a
# fetch timeout longer than the check's; everything pending is cancelled.
start=$(date +%s)
STSPROXY_POLICY_FETCH_TIMEOUT=30s chk slowhost --timeout 3
elapsed=$(( $(date +%s) - start ))
check "the total deadline ends the check, exit 2" "$RC $(jq .timed_out "$W/check-slowhost.json")" "2 true"
check_match "... within --timeout" "$elapsed" "^[34]$"
check "... what did not answer says so" "$(verdict slowhost policy-host) $(evidence slowhost policy-host)" \
	"fail no answer within the 3s of the check"
check_match "... and readiness names it" "$(evidence slowhost enforce-readiness)" "the check ran out of time"
chk many
check "at most 8 MX addresses are probed" "$(jq '[.checks[] | select(.check == "mx-tls" and (.subject | test(" ")))] | length' "$W/check-many.json")" "8"
check_match "... the rest are reported as not probed, per host" "$(jq -r '[.checks[] | select(.check == "mx-tls" and .status == "info") | .evidence] | join("|")' "$W/check-many.json")" \
	"^1 more address not probed .*\\|1 more address not probed "
check_match "... and readiness cannot be claimed" "$(verdict many enforce-readiness)" "^fail$"

# ---- no mail is ever sent ------------------------------------------------------
sessions=$(ls "$W"/spool/good/conn-*.cmds | wc -l)
check_match "the good MX's sessions were recorded" "$sessions" "^[1-9][0-9]*$"
check "no MAIL, RCPT or DATA reached any MX" "$(cat "$W"/spool/*/conn-*.cmds | grep -ciE '^(MAIL|RCPT|DATA)( |$)')" "0"
check "every session with the good MX said EHLO twice (STARTTLS between) and ended with QUIT" \
	"$(for f in "$W"/spool/good/conn-*.cmds; do cut -d' ' -f1 "$f" | tr '\n' ' '; echo; done | sort | uniq -c | sed 's/^ *//')" \
	"$sessions EHLO STARTTLS EHLO QUIT "
check "no message in any spool" "$(find "$W/spool" -name '*.eml' | wc -l)" "0"

# ---- usage ----------------------------------------------------------------------
out=$("$STSPROXY" -c "$W/stsproxy.conf" check --help 2>&1); rc=$?
check_match "check --help prints the usage and exit statuses" "$rc $(echo $out)" "^0 usage: stsproxy check DOMAIN .*exit status: 0 every check passes, 1 warnings only, 2 any failure"
"$STSPROXY" -c "$W/stsproxy.conf" check >/dev/null 2>&1
check "check without a domain is a usage error" "$?" "2"
"$STSPROXY" -c "$W/stsproxy.conf" check "clean.$ZONE" --port 0 >/dev/null 2>&1
check "an invalid --port is a usage error" "$?" "2"
check "no sanitizer or leak report from any check" "$(grep -cE 'AddressSanitizer|LeakSanitizer|runtime error' "$W/check.err")" "0"

world_summary
