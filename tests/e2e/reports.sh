#!/usr/bin/env bash
# End-to-end: one delivery path for TLS-RPT reports (issue 13 §3). The
# daemon's schedule and `stsproxy report send` deliver through the same
# outbox, so a report reaches each destination once, whoever sends it
# first: report send, then the daemon -> one arrival per destination
# (https: and mailto:); the daemon, then report send -> one arrival, and
# --force sends again; two senders at once -> one sends, the other says
# who is sending. Real programs on loopback: NSD with the signed zone, the
# relay, python MX servers and an HTTPS report receiver. The clock is moved
# a day with STSPROXY_TEST_TIME_OFFSET so that today's traffic is due.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd ldns-signzone drill jq openssl python3 gunzip; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

RELAY=127.0.0.1:8461
MX=$E2E_DIR/mxserver.py
DIALOG=$E2E_DIR/smtpdialog.py

# ---- the world: three domains with failures, one report receiver ----------------
world_init
chmod 755 "$W"	# mktemp made it 0700: the relay's user must reach its state_dir
world_ca_init "$W/ca" "stsproxy test CA"
mkdir -p "$W/certs" "$W/spool"
world_cert "$W/ca" "$W/certs/reports" "reports.$ZONE" "DNS:reports.$ZONE" || exit 1
world_dns_records <<ZONEDATA
one MX 10 mx.plain.$ZONE.
two MX 10 mx.plain.$ZONE.
slow MX 10 mx.plain.$ZONE.
mx.plain A 127.0.6.1
_smtp._tls.one TXT "v=TLSRPTv1; rua=https://reports.$ZONE/tlsrpt/one, mailto:rpt-one@reports.$ZONE"
_smtp._tls.two TXT "v=TLSRPTv1; rua=https://reports.$ZONE/tlsrpt/two, mailto:rpt-two@reports.$ZONE"
_smtp._tls.slow TXT "v=TLSRPTv1; rua=https://reports.$ZONE/slow/x"
reports A 127.0.6.20
reports MX 10 mx.reports.$ZONE.
mx.reports A 127.0.6.21
ZONEDATA
world_dns_publish >/dev/null || exit 1

# Both MX servers speak plain SMTP only: the recipient domains' sessions
# are starttls-not-supported failures (reports are due), and report mail
# goes out anyway (RPT-18).
for m in "127.0.6.1 mx.plain" "127.0.6.21 mx.reports"; do
	set -- $m
	python3 "$MX" --listen "$1:25" --name "$2" --spool "$W/spool" --behave nostarttls > "$W/mx-$2.out" 2>&1 &
	PIDS+=($!)
done
python3 "$E2E_DIR/httpsreceiver.py" 127.0.6.20:443 "$W/certs/reports.pem" "$W/certs/reports.key" \
	"$W/received" > "$W/receiver.out" 2>&1 &
PIDS+=($!)
openssl genpkey -algorithm ED25519 -out "$W/dkim.pem" 2>/dev/null
mkdir -p "$W/state"
cat > "$W/stsproxy.conf" <<CONF
hostname = relay.$ZONE
state_dir = $W/state

[server]
listen = $RELAY

[dns]
forwarders = $DNS_ADDR
trust_anchor_file = $W/trust-anchor.key
timeout = 3s

[tls]
ca_file = $W/ca/ca.pem

[policy]
fetch_timeout = 10s

[report]
max_delay = 0
flush_interval = 1s
retry_interval = 3s
contact = tlsrpt@relay.$ZONE
dkim_key = $W/dkim.pem
dkim_selector = rpt
CONF
for _ in $(seq 50); do
	[ "$(cat "$W"/mx-*.out "$W/receiver.out" 2>/dev/null | grep -c ready)" -ge 3 ] && break
	sleep 0.1
done

posts() { grep -l "\"path\": \"$1\"" "$W"/received/*.json 2>/dev/null | wc -l; }
mails() { grep -l "^TLS-Report-Domain: $1\.$ZONE" "$W"/spool/mx.reports/*.eml 2>/dev/null | wc -l; }
wait_log() { for _ in $(seq 150); do grep -qE -- "$2" "$1" && return 0; sleep 0.1; done; return 1; }
send() { "$STSPROXY" -c "$W/stsproxy.conf" report send --day "$TODAY" "$@" 2>>"$W/send.err"; }
stop() { kill "$1" 2>/dev/null; for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done; }

# ---- traffic: one message to each domain, recorded when the relay stops ----------
"$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay.log" 2>&1 &
R=$!
PIDS+=($R)
wait_log "$W/relay.log" "event=started" || { world_note "the relay did not start"; cat "$W/relay.log"; exit 1; }
for d in one two slow; do
	printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@%s.%s>\nC: DATA\nR: Subject: to %s\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
		"$ZONE" "$d" "$ZONE" "$d" | python3 "$DIALOG" "$RELAY" > "$W/dialog-$d.out"
done
stop "$R"
TODAY=$(date -u +%F)
check "the three messages arrived, without STARTTLS" "$(ls "$W"/spool/mx.plain/*.eml 2>/dev/null | wc -l)" "3"
check_match "the failures are recorded for today" "$("$STSPROXY" -c "$W/stsproxy.conf" report list --day "$TODAY" 2>/dev/null | grep -c " 1$")" "^3$"

# ---- report send first, then the daemon: one arrival per destination -------------
out=$(send --domain "one.$ZONE"); rc=$?
check_match "report send POSTs one's report" "$out" "one\.$ZONE  https://reports\.$ZONE/tlsrpt/one  delivered \(HTTP 201\)"
check_match "report send mails one's report" "$out" "one\.$ZONE  mailto:rpt-one@reports\.$ZONE  delivered \(mail accepted\)"
check "... exit status 0" "$rc" "0"
check_match "report send notes that today is not over" "$(cat "$W/send.err")" "note: $TODAY \(UTC\) is not over"
out=$(send --domain "one.$ZONE"); rc=$?
check_match "issue 13 §3: report send again sends nothing (https:)" "$out" \
	"one\.$ZONE  https://reports\.$ZONE/tlsrpt/one  already delivered on [0-9TZ:-]+ by report send; not sent again \(--force sends it again\)"
check_match "issue 13 §3: report send again sends nothing (mailto:)" "$out" \
	"one\.$ZONE  mailto:rpt-one@reports\.$ZONE  already delivered on [0-9TZ:-]+ by report send"
check "... and that is no failure: exit status 0" "$rc" "0"
out=$(send --domain "one.$ZONE" --dry-run)
check_match "--dry-run reads the outbox: already delivered, would not send" "$out" \
	"one\.$ZONE  https://reports\.$ZONE/tlsrpt/one  already delivered on [0-9TZ:-]+ by report send; would not send it again \(--force would\)"
check "so far one POST and one mail for one" "$(posts /tlsrpt/one) $(mails one)" "1 1"

# Two senders at once: the second finds the first one's claim.
"$STSPROXY" -c "$W/stsproxy.conf" report send --day "$TODAY" --domain "slow.$ZONE" > "$W/slow1.out" 2>>"$W/send.err" &
S1=$!
for _ in $(seq 100); do
	send --domain "slow.$ZONE" --dry-run | grep -q "being sent by process" && break
	sleep 0.05
done
out=$(send --domain "slow.$ZONE"); rc=$?
check_match "issue 13 §3: a destination being sent to by another process is left to it" "$out" \
	"slow\.$ZONE  https://reports\.$ZONE/slow/x  not sent: being sent by process $S1"
check "... exit status 1: this run did not deliver it" "$rc" "1"
wait "$S1"
check_match "... and the first sender delivered it" "$(cat "$W/slow1.out")" "slow/x  delivered \(HTTP 201\)"
check "one POST for slow" "$(posts /slow/x)" "1"

# The daemon, a day later: it plans today and sends what nobody sent yet.
STSPROXY_TEST_TIME_OFFSET=86400 "$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/daemon1.log" 2>&1 &
D=$!
PIDS+=($D)
wait_log "$W/daemon1.log" "event=report_planned day=$TODAY"
for _ in $(seq 100); do
	[ "$(grep -c 'event=report_delivered domain=two' "$W/daemon1.log")" -ge 2 ] && break
	sleep 0.1
done
stop "$D"
check "issue 13 §3: report send, then the daemon: one POST for one" "$(posts /tlsrpt/one)" "1"
check "issue 13 §3: report send, then the daemon: one mail for one" "$(mails one)" "1"
check "... and one POST for slow" "$(posts /slow/x)" "1"
check "the daemon logs each destination it leaves alone, and why" \
	"$(grep -cE "event=report_skipped day=$TODAY domain=(one|slow)\.$ZONE rua=[^ ]+ reason=\"already delivered on [0-9TZ:-]+ by report send\"" "$W/daemon1.log")" "3"
check "the daemon delivered two's report to both destinations" \
	"$(grep -c "event=report_delivered domain=two\.$ZONE" "$W/daemon1.log") $(posts /tlsrpt/two) $(mails two)" "2 1 1"
STSPROXY_TEST_TIME_OFFSET=86400 "$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/daemon2.log" 2>&1 &
D=$!
PIDS+=($D)
wait_log "$W/daemon2.log" "event=started"
sleep 3
stop "$D"
check "after a restart nothing goes out again" \
	"$(posts /tlsrpt/one) $(mails one) $(posts /tlsrpt/two) $(mails two) $(posts /slow/x)" "1 1 1 1 1"

# ---- the daemon first, then report send ---------------------------------------------
out=$(send --domain "two.$ZONE"); rc=$?
check_match "issue 13 §3: report send does not send again what the daemon sent (https:)" "$out" \
	"two\.$ZONE  https://reports\.$ZONE/tlsrpt/two  already delivered on [0-9TZ:-]+ by daemon; not sent again"
check_match "issue 13 §3: report send does not send again what the daemon sent (mailto:)" "$out" \
	"two\.$ZONE  mailto:rpt-two@reports\.$ZONE  already delivered on [0-9TZ:-]+ by daemon; not sent again"
check "... one POST and one mail for two, exit status 0" "$(posts /tlsrpt/two) $(mails two) $rc" "1 1 0"
out=$(send --domain "two.$ZONE" --force)
check_match "--force sends again, and says so" "$(echo $out)" \
	"two\.$ZONE https://reports\.$ZONE/tlsrpt/two delivered \(HTTP 201\) two\.$ZONE mailto:rpt-two@reports\.$ZONE delivered \(mail accepted\)"
check "... a second POST and a second mail for two" "$(posts /tlsrpt/two) $(mails two)" "2 2"
first=$(grep -l '"path": "/tlsrpt/two"' "$W"/received/*.json | sort -V | head -1)
last=$(grep -l '"path": "/tlsrpt/two"' "$W"/received/*.json | sort -V | tail -1)
check "RPT-16: the report sent again keeps its report-id" \
	"$(gunzip -c < "${first%.json}.body" | jq -r '."report-id"') $(gunzip -c < "${last%.json}.body" | jq -r '."report-id"')" \
	"$TODAY.two.$ZONE@relay.$ZONE $TODAY.two.$ZONE@relay.$ZONE"

check "no sanitizer reports" \
	"$(cat "$W"/*.log "$W/send.err" | grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:')" "0"
[ "$FAIL" -gt 0 ] && { for f in relay daemon1 daemon2; do world_note "$f log:"; sed 's/^/#   /' "$W/$f.log" | tail -40; done; world_note "send.err:"; sed 's/^/#   /' "$W/send.err" | tail -20; }
world_summary
