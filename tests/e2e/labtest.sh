#!/usr/bin/env bash
# End-to-end test of stsproxy in a lab world built on special-use names:
# the world of world.sh, but on the DNSSEC-signed zone "lab.test." (RFC
# 6761), with [dns] forwarders pointing at the lab's NSD. libunbound
# answers test., onion., invalid., home.arpa. and the private reverse
# zones itself by default (NXDOMAIN: the relay would bounce with 550
# 5.1.2); stsproxy must send them to the forwarders (issue 11 section 2).
# Also the start-up probe of the resolution path (issue 11 section 6):
# silent with a working forwarder, a warning and /healthz 503 with a hint
# when the forwarder does not answer; and policies as a sender reads them
# (section 9): cosmetic mistakes are read past by the relay and reported
# by the linter, a bare CR is not a line break.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd nginx ldns-signzone drill jq openssl python3; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

ZONE=lab.test
RELAY=127.0.0.1:8461
MX=$E2E_DIR/mxserver.py
DIALOG=$E2E_DIR/smtpdialog.py
dialog() { python3 "$DIALOG" "$@"; }
http_get() { python3 -c 'import sys, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode())
except OSError as e:
    print("down", e)' "$1" 2>/dev/null; }

# ---- the lab world ---------------------------------------------------------
world_init
world_ca_init "$W/ca" "lab CA"
mkdir -p "$W/certs" "$W/spool"
world_cert "$W/ca" "$W/certs/mx.good" "mx.good.$ZONE" "DNS:mx.good.$ZONE" || exit 1
: > "$W/nginx.sites"
for d in good sloppy barecr; do
	world_cert "$W/ca" "$W/certs/mta-sts.$d" "mta-sts.$d.$ZONE" "DNS:mta-sts.$d.$ZONE" || exit 1
	world_site "mta-sts.$d.$ZONE" "$W/certs/mta-sts.$d"
done
printf 'version: STSv1\nmode: enforce\nmx: mx.good.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.good.$ZONE"
# Every cosmetic mistake of issue 11 section 9 at once: a UTF-8 BOM, a
# comment, CRLF with blank lines, trailing blanks, a pattern with a
# trailing dot, an editor's extra newline at the end.
printf '\xef\xbb\xbf# MTA-STS policy of sloppy.%s\r\nversion: STSv1\r\n\r\nmode: enforce \r\nmx: mx.good.%s.\r\nmax_age: 86400\r\n\r\n' \
	"$ZONE" "$ZONE" > "$W/sloppy.txt"
world_policy "mta-sts.sloppy.$ZONE" < "$W/sloppy.txt"
printf 'version: STSv1\nmode: enforce\nmx: mx.good.%s\nmax_age: 86400\r' "$ZONE" | world_policy "mta-sts.barecr.$ZONE"
world_dns_records <<ZONEDATA
_mta-sts.good TXT "v=STSv1; id=lab1;"
mta-sts.good A $WEB_ADDR
good MX 10 mx.good.$ZONE.
mx.good A 127.0.4.1
_mta-sts.sloppy TXT "v=STSv1; id=sloppy1;"
mta-sts.sloppy A $WEB_ADDR
sloppy MX 10 mx.good.$ZONE.
_mta-sts.barecr TXT "v=STSv1; id=cr1;"
mta-sts.barecr A $WEB_ADDR
ZONEDATA
# The other special-use zones libunbound would answer itself, served
# (unsigned) by the lab's NSD; and localhost., which must stay local.
SPECIAL="onion invalid home.arpa resolver.arpa service.arpa 10.in-addr.arpa"
n=0
for z in $SPECIAL localhost; do
	n=$((n + 1))
	printf '_mta-sts.lab TXT "v=STSv1; id=zone%s;"\n_mta-sts TXT "v=STSv1; id=zone%s;"\n' "$n" "$n" |
		world_dns_extra_zone "$z"
done
world_dns_publish >/dev/null || exit 1
world_web_start || exit 1
python3 "$MX" --listen 127.0.4.1:25 --name mx.good --spool "$W/spool" \
	--cert "$W/certs/mx.good.pem" --key "$W/certs/mx.good.key" > "$W/mx.out" 2>&1 &
PIDS+=($!)
world_conf
sleep 0.3

# ---- names under test. go to the forwarder -----------------------------------
out=$(sts policy "good.$ZONE" --json); rc=$?
check "a TXT record under test. is answered by the forwarder, not by libunbound's local zone" \
	"$(jq -r '.txt.status + " " + .txt.dnssec' <<<"$out")" "ok secure"
check "stsproxy policy good.lab.test finds the enforce policy (exit 0)" \
	"$rc $(jq -r '.verdict.mode + " " + .verdict.id + " " + .verdict.source' <<<"$out")" "0 enforce lab1 fresh"
n=0
for z in $SPECIAL; do
	n=$((n + 1))
	check "a name under $z. reaches the forwarder" "$(stsq "lab.$z" '.txt.status + " " + (.txt.id // "-")')" "ok zone$n"
done
check_match "localhost. stays local: the forwarder's record for it is never asked for" \
	"$(stsq localhost '.txt.status + " " + (.txt.id // "-")')" "^(nodata|nxdomain) -$"

# ---- mail to a .test domain is relayed, not bounced ----------------------------
# Top-level keys go before the first section.
{ printf 'allow_root = yes\nhostname = relay.%s\nmetrics_listen = 127.0.0.1:9187\n' "$ZONE"
  cat "$W/stsproxy.conf"; printf '[server]\nlisten = %s\n' "$RELAY"; } > "$W/c" && mv "$W/c" "$W/stsproxy.conf"
"$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
for _ in $(seq 50); do grep -q event=started "$W/relay.log" && break; sleep 0.1; done
for _ in $(seq 50); do grep -q ready "$W/mx.out" && break; sleep 0.1; done
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<u@good.%s>\nC: DATA\nR: Subject: lab1\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" | dialog "$RELAY")
check_match "RCPT to good.lab.test is accepted (no 550 5.1.2)" "$out" "^250 .*Ok: queued"
check "the message arrived at the .test MX" "$(grep -l 'Subject: lab1' "$W"/spool/*/*.eml 2>/dev/null | wc -l)" "1"
check_match "...under the enforce policy, over verified TLS" "$(grep 'event=outcome' "$W/relay.log" | head -1)" \
	"domain=good\.lab\.test .*mode=enforce .*action=delivered starttls=yes .*sts=pass"

# ---- policies as a sender reads them (issue 11 section 9) -----------------------
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<u@sloppy.%s>\nC: DATA\nR: Subject: sloppy1\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" | dialog "$RELAY")
check_match "a policy with a BOM, a comment, blank lines and a trailing-dot mx: the relay applies it" \
	"$(grep 'event=outcome domain=sloppy' "$W/relay.log")" \
	"mode=enforce policy_id=sloppy1 mx_patterns=mx\.good\.lab\.test\. mx=mx\.good\.lab\.test .*action=delivered .*sts=pass"
check_match "...and the message is delivered" "$out" "^250 .*Ok: queued"
check_match "...and logs what it read past" "$(grep 'event=policy_tolerated' "$W/relay.log")" \
	"level=info event=policy_tolerated domain=sloppy\.lab\.test id=sloppy1 deviations=5 first=\"line 1: UTF-8 byte order mark"
out=$(sts policy "sloppy.$ZONE" --json --no-cache)
check "stsproxy policy shows the same verdict, with the deviations marked tolerated" \
	"$(jq -r '.verdict.mode + " " + ([.diagnostics[] | select(.severity == "error" and .tolerated)] | length | tostring) + " " + (.policy.lines | length | tostring)' <<<"$out")" \
	"enforce 5 4"
out=$(sts policy --file "$W/sloppy.txt" --mx "mx.good.$ZONE"); rc=$?
check "the linter reports each as an error and exits 1" \
	"$rc $(grep -c ': error: ' <<<"$out")" "1 5"
check_match "...naming the line" "$out" "sloppy\.txt:5: error: mx: 'mx\.good\.lab\.test\.' has a trailing dot"
check_match "...and saying what senders do" "$out" "OUTSIDE THE GRAMMAR: 5 errors, 1 warning; stsproxy as a sender reads it as mode enforce"
check_match "...and the MX is allowed by the dotted pattern" "$out" "mx mx\.good\.lab\.test: allowed \(pattern mx\.good\.lab\.test\.\)"
check_match "a bare CR at the end is not a line break: the policy is invalid" \
	"$(stsq "barecr.$ZONE" '.failure.result_type + " | " + .failure.reason + " | " + .verdict.mode')" \
	"^sts-policy-invalid \| invalid policy: line 4: stray CR .* \| no-policy$"

# ---- the start-up probe of the DNS path (issue 11 section 6) --------------------
sleep 0.5
check "a working forwarder: no probe warning" "$(grep -c 'event=dns_probe_failed' "$W/relay.log")" "0"
check_match "...and an answer of any kind proves it reachable (NSD refuses '. NS': it serves lab.test. only)" \
	"$(grep 'event=dns_probe_ok' "$W/relay.log")" "level=info event=dns_probe_ok path=forwarders result=\"127\.0\.1\.53: REFUSED\""
check "...and /healthz is 200" "$(http_get http://127.0.0.1:9187/healthz | head -1)" "200"

# A forwarder that takes queries and never answers (a firewall dropping
# them), until $W/gate-open exists: then it passes them on to NSD.
python3 -c '
import os, socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(("127.0.9.53", 53))
open(sys.argv[1] + ".ready", "w").close()
while True:
    q, client = s.recvfrom(4096)
    if not os.path.exists(sys.argv[1]):
        continue
    u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.settimeout(2)
    try:
        u.sendto(q, ("127.0.1.53", 53)); s.sendto(u.recv(4096), client)
    except OSError:
        pass
    u.close()
' "$W/gate-open" &
PIDS+=($!)
for _ in $(seq 50); do [ -e "$W/gate-open.ready" ] && break; sleep 0.1; done
silent() { # LISTEN METRICS LOG [env...]: a second relay whose forwarder is the gate
	local l=$1 m=$2 log=$3; shift 3
	env STSPROXY_SERVER_LISTEN="$l" STSPROXY_METRICS_LISTEN="$m" STSPROXY_DNS_TIMEOUT=1s "$@" \
		"$STSPROXY" -c "$W/stsproxy.conf" serve > "$log" 2>&1 &
	PIDS+=($!)
	for _ in $(seq 60); do grep -q 'event=dns_probe_' "$log" && break; sleep 0.1; done
}
silent 127.0.0.1:10026 127.0.0.1:9188 "$W/relay-silent.log" STSPROXY_DNS_FORWARDERS=127.0.9.53
check_match "a silent forwarder: the probe warns once the [dns] timeout is over, saying what to check" \
	"$(grep 'event=dns_probe_failed' "$W/relay-silent.log")" \
	"level=warning event=dns_probe_failed path=forwarders forwarders=\"127\.0\.9\.53: no reply within 1s\" attempt=1 retry_in=60s hint=\"no forwarder answers; check that \[dns\] forwarders run"
health=$(http_get http://127.0.0.1:9188/healthz)
check_match "...and /healthz says 503 with the same reason and hint" "$(echo $health)" \
	"^503 .*resolver: DNS probe failed \(forwarders: 127\.0\.9\.53: no reply within 1s\): no forwarder answers"
check "...while the relay keeps serving" "$(printf 'C: EHLO t\nC: QUIT\n' | dialog 127.0.0.1:10026 | sed -n 1p | cut -c1-3)" "220"
touch "$W/gate-open"
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<u@good.%s>\nC: DATA\nR: Subject: lab2\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" | dialog 127.0.0.1:10026)
check_match "the forwarder answers again: mail flows" "$out" "^250 .*Ok: queued"
check_match "...the first definite answer makes the resolver healthy again, and says so" \
	"$(grep 'event=resolver_healthy' "$W/relay-silent.log")" "level=notice event=resolver_healthy reason=\"a DNS answer arrived after the start-up probe failed\""
check "...and /healthz is 200 again" "$(http_get http://127.0.0.1:9188/healthz | head -1)" "200"
silent 127.0.0.1:10027 127.0.0.1:9189 "$W/relay-closed.log" STSPROXY_DNS_FORWARDERS=127.0.9.54
check "nothing serves DNS at the forwarder's address: the same warning, at once" \
	"$(grep -c 'level=warning event=dns_probe_failed path=forwarders forwarders="127.0.9.54: connection refused' "$W/relay-closed.log")" "1"
silent 127.0.0.1:10028 127.0.0.1:9190 "$W/relay-mixed.log" STSPROXY_DNS_FORWARDERS="127.0.9.54 127.0.1.53"
check "one dead forwarder next to a working one: the probe passes" "$(grep -c 'event=dns_probe_failed' "$W/relay-mixed.log")" "0"
check_match "...with a warning that names the dead one" "$(grep 'event=dns_forwarder_unreachable' "$W/relay-mixed.log")" \
	"level=warning event=dns_forwarder_unreachable forwarders=\"127\.0\.9\.54: connection refused"
# Recursion from the root where outbound DNS is blocked: this network
# namespace has no route out, so nothing ever leaves loopback.
if [ -n "${STSP_IN_NETNS:-}" ] && ! ip route get 198.41.0.4 >/dev/null 2>&1; then
	silent 127.0.0.1:10029 127.0.0.1:9191 "$W/relay-recursion.log" STSPROXY_DNS_FORWARDERS=
	check_match "recursion with outbound DNS blocked: the warning says to set [dns] forwarders" \
		"$(grep 'event=dns_probe_failed' "$W/relay-recursion.log")" \
		"level=warning event=dns_probe_failed path=recursion result=SERVFAIL attempt=1 retry_in=60s hint=\"outbound DNS seems blocked; set \[dns\] forwarders = <your validating resolver>\""
	check_match "...and so does /healthz" "$(echo $(http_get http://127.0.0.1:9191/healthz))" \
		"^503 resolver: DNS probe failed \(recursion from the root, \. NS: SERVFAIL\): outbound DNS seems blocked; set \[dns\] forwarders"
else
	world_note "SKIP recursion probe: not in a network namespace without a route out"
fi

# Stop every relay and make sure each left cleanly (under ASan: no error, no leak).
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
sleep 1
check "the relays ran without sanitizer reports" \
	"$(cat "$W"/relay*.log | grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:')" "0"
check "...and stopped on SIGTERM" "$(grep -l 'event=stopped' "$W"/relay*.log | wc -l)" "$(ls "$W"/relay*.log | wc -l)"

world_summary
