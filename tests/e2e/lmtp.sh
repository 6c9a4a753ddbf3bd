#!/usr/bin/env bash
# End-to-end: the LMTP listener (issue 14). One message to four recipient
# domains goes through real Postfix (lmtp: over TCP and over a Unix
# socket) and real Exim (smtp transport, protocol = lmtp) in ONE
# transaction, each domain over its own policy-checked upstream:
#   a1ok    enforce policy, valid certificate: delivered
#   b2none  no policy: delivered
#   c3exp   enforce policy, expired certificate: deferred (451 4.7.5)
#   d4rej   refuses one recipient at RCPT (550) and the message at the end
#           of data (554) for the other
# Each recipient gets its own domain's replies, at RCPT and after the
# dot (RFC 2033 section 4.2). The client's queue keeps exactly the
# deferred recipient, with its own reason; the rest is delivered or
# bounced in the first delivery attempt, nothing waits for a queue run.
# Then: an upstream that drops mid-DATA fails only its own recipient
# (e5drop), a slow upstream paces the client with the relay's memory
# bounded (f6slow), LMTP on port 25 is refused, and the metrics count
# LMTP transactions and their domains.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

: "${STSPROXY_EXIM_ROOT:=/opt/stsproxy-test/exim}"
EXIM=$STSPROXY_EXIM_ROOT/usr/sbin/exim4
for tool in nsd nginx ldns-signzone drill jq openssl python3 postfix postqueue; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

RELAY=127.0.0.1:8461
LMTP=127.0.0.1:8463
METRICS=127.0.0.1:9463
DIALOG="$DEBPY $E2E_DIR/smtpdialog.py"

# The sanitizers' shadow memory and quarantine make RSS figures larger.
RSS_SLACK=0
if ldd "$STSPROXY" 2>/dev/null | grep -q libasan; then
	export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}quarantine_size_mb=8"
	RSS_SLACK=32768
fi

# ---- the world ----------------------------------------------------------------
world_init
chmod 755 "$W"	# the relay reads the trust anchor as user stsproxy
world_ca_init "$W/ca" "stsproxy test CA"
mkdir -p "$W/certs" "$W/spool"
cert() { world_cert "$W/ca" "$W/certs/$1" "$2" "DNS:$2" "${@:3}" || exit 1; }
cert mta-sts.a1ok "mta-sts.a1ok.$ZONE"
cert mta-sts.c3exp "mta-sts.c3exp.$ZONE"
cert mx.a1ok "mx.a1ok.$ZONE"
cert mx.c3exp "mx.c3exp.$ZONE" 20200101000000Z 20200201000000Z
: > "$W/nginx.sites"
for d in a1ok c3exp; do
	world_site "mta-sts.$d.$ZONE" "$W/certs/mta-sts.$d"
	printf 'version: STSv1\nmode: enforce\nmx: mx.%s.%s\nmax_age: 86400\n' "$d" "$ZONE" |
		world_policy "mta-sts.$d.$ZONE"
done
world_dns_records <<ZONEDATA
_mta-sts.a1ok TXT "v=STSv1; id=a1;"
mta-sts.a1ok A $WEB_ADDR
a1ok MX 10 mx.a1ok.$ZONE.
mx.a1ok A 127.0.6.1
b2none MX 10 mx.b2none.$ZONE.
mx.b2none A 127.0.6.2
_mta-sts.c3exp TXT "v=STSv1; id=c3;"
mta-sts.c3exp A $WEB_ADDR
c3exp MX 10 mx.c3exp.$ZONE.
mx.c3exp A 127.0.6.3
d4rej MX 10 mx.d4rej.$ZONE.
mx.d4rej A 127.0.6.4
e5drop MX 10 mx.e5drop.$ZONE.
mx.e5drop A 127.0.6.5
f6slow MX 10 mx.f6slow.$ZONE.
mx.f6slow A 127.0.6.6
ZONEDATA
world_dns_publish >/dev/null || exit 1
world_web_start || exit 1

mx() { # ADDR NAME [CERT] [BEHAVE]
	$DEBPY "$E2E_DIR/mxserver.py" --listen "$1:25" --name "$2" --spool "$W/spool" \
		${3:+--cert "$W/certs/$3.pem" --key "$W/certs/$3.key"} --behave "${4:-}" \
		> "$W/mx-$2.out" 2>&1 &
	PIDS+=($!)
}
mx 127.0.6.1 mx.a1ok mx.a1ok
mx 127.0.6.2 mx.b2none "" nostarttls
mx 127.0.6.3 mx.c3exp mx.c3exp
mx 127.0.6.4 mx.d4rej "" nostarttls,reject-rcpt,rejectdata
mx 127.0.6.5 mx.e5drop "" nostarttls,drop=body
mx 127.0.6.6 mx.f6slow "" nostarttls,slow=8000000

world_conf "
[server]
listen = $RELAY
lmtp_listen = $LMTP unix:$W/lmtp.sock
unix_mode = 0666
[upstream]
connect_timeout = 3s
"
printf 'hostname = relay.%s\nmetrics_listen = %s\n' "$ZONE" "$METRICS" | cat - "$W/stsproxy.conf" > "$W/c" &&
	mv "$W/c" "$W/stsproxy.conf"

# LMTP-6: never on port 25, refused when the configuration is loaded
out=$(STSPROXY_SERVER_LMTP_LISTEN="127.0.0.1:25" "$STSPROXY" -c "$W/stsproxy.conf" check-config 2>&1)
check_match "LMTP-6: lmtp_listen on port 25 is refused at load, naming the key and why" \
	"$out" "lmtp_listen: '127\.0\.0\.1:25': LMTP must not be offered on port 25 \(RFC 2033 section 5\)"

"$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
for _ in $(seq 50); do
	grep -q event=started "$W/relay.log" && [ "$(cat "$W"/mx-*.out 2>/dev/null | grep -c ready)" -ge 6 ] && break
	sleep 0.1
done
check_match "the relay listens for LMTP over TCP and on a Unix socket, unix_mode applied" \
	"$(grep -c 'event=listening .*protocol=lmtp' "$W/relay.log") $(stat -c '%F %a' "$W/lmtp.sock" 2>/dev/null)" "^2 socket 666$"

# ---- helpers -----------------------------------------------------------------------
cat > "$W/submit.py" <<'PY'
import smtplib, sys
host, frm, rcpts = sys.argv[1], sys.argv[2], sys.argv[3:]
msg = sys.stdin.read()
with smtplib.SMTP(host, 25, timeout=30) as s:
    s.sendmail(frm, rcpts, msg)
PY
message() { printf 'From: <a@client.%s>\r\nSubject: %s\r\nMessage-ID: <%s@client>\r\n\r\nbody of %s\r\n' "$ZONE" "$1" "$1" "$1"; }
# RCPTS: the recipients of the four-domain message, in the order the client sends them
rcpts() { echo "x1@a1ok.$ZONE x2@a1ok.$ZONE y@b2none.$ZONE z@c3exp.$ZONE rejectme@d4rej.$ZONE w@d4rej.$ZONE"; }
# copies SUBJECT MX: how many copies of the message MX stored, and for whom
copies() {
	local f n=0 who=""
	for f in $(grep -l "^Subject: $1"$'\r'"\$" "$W/spool/$2"/*.eml 2>/dev/null); do
		n=$((n + 1)); who="$who$(jq -r '.rcpts | join(",")' "${f%.eml}.json") "
	done
	echo "$n ${who% }"
}
# arrivals SUBJECT: where the message went, one field per MX
arrivals() {
	echo "a1ok=[$(copies "$1" mx.a1ok)] b2none=[$(copies "$1" mx.b2none)] c3exp=[$(copies "$1" mx.c3exp)] d4rej=[$(copies "$1" mx.d4rej)]"
}
EXPECTED_ARRIVALS="a1ok=[1 <x1@a1ok.$ZONE>,<x2@a1ok.$ZONE>] b2none=[1 <y@b2none.$ZONE>] c3exp=[0 ] d4rej=[0 ]"
# the relay session that carried SUBJECT's recipient x1, and its events
session_of() { grep "event=message to=<x1@a1ok.$ZONE>" "$W/relay.log" | sed -n "${1}p" | grep -oE 'session=[0-9a-f]{16}' | cut -d= -f2; }
events() { grep "session=$1 " "$W/relay.log" | grep -E 'event=(mail|message) ' | sed 's/.*event=//' | sed -E 's/ (domain|mx|size|rcpts)=[^ ]*//g; s/ \[stsproxy session [0-9a-f]{16}\]//' | tr '\n' '~'; }
# expected_events SENDER
expected_events() { echo "mail from=<$1>~message to=<x1@a1ok.$ZONE> reply=\"250 2.0.0 Ok: queued as mx.a1ok-N\"~message to=<x2@a1ok.$ZONE> reply=\"250 2.0.0 Ok: queued as mx.a1ok-N\"~message to=<y@b2none.$ZONE> reply=\"250 2.0.0 Ok: queued as mx.b2none-N\"~message to=<w@d4rej.$ZONE> reply=\"554 5.7.1 content rejected by mx.d4rej\"~"; }
normalise_ids() { sed -E 's/queued as (mx\.[a-z0-9]+)-[0-9]+/queued as \1-N/g'; }

# ---- Postfix, lmtp: over TCP and over the Unix socket ------------------------------
PFS=()
pf_start() { # DIR ADDR < extra main.cf lines
	world_postfix "$1" "$2" <<CF
mydomain = $ZONE
myorigin = client.$ZONE
mydestination = client.$ZONE
local_transport = discard:
# No retry within the test: whatever arrives came in the first delivery attempt.
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 3600s
$(cat)
CF
	postfix -c "$1" start >/dev/null 2>&1 || { world_note "postfix failed to start"; cat "$1/maillog" 2>/dev/null; exit 1; }
	PFS+=("$1")
}
pf_stop_all() { for p in "${PFS[@]}"; do postfix -c "$p" stop >/dev/null 2>&1; done; }
trap 'pf_stop_all; world_cleanup' EXIT
# pf_wait PF N: until PF logged N delivery results and holds nothing but deferred mail
pf_wait() {
	for _ in $(seq 300); do
		if [ "$(grep -c ' status=' "$1/maillog" 2>/dev/null)" -ge "$2" ] &&
		   [ -z "$(postqueue -c "$1" -j 2>/dev/null | jq -r 'select(.queue_name != "deferred") | .queue_id')" ]; then
			return 0
		fi
		sleep 0.1
	done
	world_note "Postfix did not settle"
}
pf_status() { grep -E "to=<$2>.* status=" "$1/maillog" | tail -1; }

postfix_case() { # LABEL ADDR NEXTHOP SUBJECT NTH
	local label=$1 pf=$W/pf-$1 sid queue
	pf_start "$pf" "$2" <<<"default_transport = $3"
	message "$4" | $DEBPY "$W/submit.py" "$2" "a@client.$ZONE" $(rcpts)
	# six recipient results plus the bounce Postfix delivers to the sender (discarded)
	pf_wait "$pf" 7
	check "issue 14 ($label): each domain's recipients arrived at their own MX, once; none at the others" \
		"$(arrivals "$4")" "$EXPECTED_ARRIVALS"
	check "LMTP-7 ($label): Postfix logged a1ok's and b2none's recipients as sent, each with its own MX's reply" \
		"$(for r in x1@a1ok x2@a1ok y@b2none; do pf_status "$pf" "$r.$ZONE" | grep -oE 'status=sent \(250 [^)]*' ; done | normalise_ids | tr '\n' '~')" \
		"status=sent (250 2.0.0 Ok: queued as mx.a1ok-N~status=sent (250 2.0.0 Ok: queued as mx.a1ok-N~status=sent (250 2.0.0 Ok: queued as mx.b2none-N~"
	check_match "LMTP-7 ($label): the recipient refused at RCPT bounced with its own 550" \
		"$(pf_status "$pf" "rejectme@d4rej.$ZONE")" \
		"status=bounced \(host [^ ]+ said: 550-5\.1\.1 <rejectme@d4rej\.$ZONE>: Recipient address rejected: 550 5\.1\.1 User unknown in mx\.d4rej \(in reply to RCPT TO command\)\)"
	check_match "LMTP-3 ($label): the recipient whose MX refused the message after the dot bounced with that MX's 554" \
		"$(pf_status "$pf" "w@d4rej.$ZONE")" \
		"status=bounced \(host [^ ]+ said: 554 5\.7\.1 content rejected by mx\.d4rej \(in reply to end of DATA command\)\)"
	queue=$(postqueue -c "$pf" -j)
	check "issue 14 ($label): Postfix's queue holds exactly the deferred recipient: nothing waits for a queue run" \
		"$(printf '%s\n' "$queue" | jq -r '[.queue_name, (.recipients | map(.address) | join(","))] | join(" ")')" "deferred z@c3exp.$ZONE"
	check_match "STS-41, §11 ($label): ... with its own reason, the relay's 451 4.7.5 at RCPT and its session id" \
		"$(printf '%s\n' "$queue" | jq -r '.recipients[0].delay_reason')" \
		"^host [^ ]+ said: 451 4\.7\.5 MTA-STS: mx\.c3exp\.$ZONE certificate expired \[stsproxy session [0-9a-f]{16}\] \(in reply to RCPT TO command\)$"
	check "issue 14 ($label): one delivery attempt: each recipient has one status line, only z deferred" \
		"$(grep -c ' status=' "$pf/maillog") $(grep -c 'status=deferred' "$pf/maillog")" "7 1"
	sid=$(session_of "$5")
	check "issue 14 ($label): ONE LMTP transaction carried all four domains; event=message names every accepted recipient with its own result" \
		"$(events "$sid" | normalise_ids)" "$(expected_events "a@client.$ZONE")"
	check_match "issue 14 ($label): the relay logged c3exp's failure for its own domain only" \
		"$(grep "session=$sid " "$W/relay.log" | grep -E 'event=domain_failed')" "domain=c3exp\.$ZONE reply=\"451 4\.7\.5 "
}
postfix_case tcp 127.0.3.1 "lmtp:inet:[127.0.0.1]:8463" pf-tcp 1
# relative to the queue directory ($W/pf-unix/queue), as the docs advise
# (lmtp:unix:private/stsproxy) so that a chrooted lmtp finds it too
postfix_case unix 127.0.3.2 "lmtp:unix:../../lmtp.sock" pf-unix 2
check "LMTP over the Unix socket: the client is logged as unix" \
	"$(grep "session=$(session_of 2) event=connect" "$W/relay.log" | grep -oE 'client=[a-z0-9.]+')" "client=unix"

# ---- Exim, smtp transport with protocol = lmtp --------------------------------------------
if [ -x "$EXIM" ] && getent passwd Debian-exim >/dev/null; then
	X=$W/exim
	mkdir -p "$X/spool" "$X/log"
	chown -R Debian-exim "$X"
	cat > "$X/exim.conf" <<CONF
exim_path = $EXIM
keep_environment =
primary_hostname = exim.$ZONE
domainlist local_domains = exim.$ZONE
spool_directory = $X/spool
log_file_path = $X/log/%slog
never_users =
trusted_users = root
begin routers
local:
  driver = redirect
  domains = +local_domains
  data = :blackhole:
smarthost:
  driver = manualroute
  domains = ! +local_domains
  transport = relay_lmtp
  route_list = * 127.0.0.1
  self = send
  no_more
begin transports
relay_lmtp:
  driver = smtp
  protocol = lmtp
  port = 8463
begin retry
* * F,1h,1h
CONF
	ex() { "$EXIM" -C "$X/exim.conf" "$@" 2> >(grep -v 'lost privilege' >&2); }
	printf 'Subject: exim-lmtp\n\nhello from exim\n' | ex -odi -f "a@exim.$ZONE" $(rcpts)
	log=$X/log/mainlog
	check "issue 14 (Exim): each domain's recipients arrived at their own MX, once" \
		"$(arrivals exim-lmtp)" "$EXPECTED_ARRIVALS"
	# "=>" for the first address of a delivery, "->" for the others it carried
	check "LMTP-7 (Exim): delivered x1, x2, y; bounced rejectme and w; deferred z, in the one delivery" \
		"$(grep -oE ' (=>|->|\*\*|==) [^ ]+@[^ ]+' "$log" | sed 's/->/=>/' | sort | tr '\n' ' ')" \
		"$(printf ' ** rejectme@d4rej.%s\n ** w@d4rej.%s\n => x1@a1ok.%s\n => x2@a1ok.%s\n => y@b2none.%s\n == z@c3exp.%s\n' "$ZONE" "$ZONE" "$ZONE" "$ZONE" "$ZONE" "$ZONE" | sort | tr '\n' ' ')"
	check_match "LMTP-3 (Exim): w bounced with d4rej's end-of-data reply" \
		"$(grep " \*\* w@d4rej" "$log")" "554 5\.7\.1 content rejected by mx\.d4rej"
	check_match "STS-41 (Exim): z deferred with the relay's 451 4.7.5 and its session id" \
		"$(grep " == z@c3exp" "$log")" "451 4\.7\.5 MTA-STS: mx\.c3exp\.$ZONE certificate expired \[stsproxy session [0-9a-f]{16}\]"
	check "issue 14 (Exim): Exim's queue holds exactly the deferred recipient" \
		"$(ex -bpru | grep -oE '[^ ]+@[^ ]+' | grep -v "a@exim" | tr '\n' ' ')" "z@c3exp.$ZONE "
	check "issue 14 (Exim): ONE LMTP transaction carried all four domains" \
		"$(events "$(session_of 3)" | normalise_ids)" "$(expected_events "a@exim.$ZONE")"
else
	world_note "SKIP Exim part: no Exim under $STSPROXY_EXIM_ROOT"
fi

# ---- an upstream lost mid-DATA fails only its own recipient --------------------------------
out=$(printf 'C: LHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<p@a1ok.%s>\nC: RCPT TO:<q@e5drop.%s>\nC: RCPT TO:<r@b2none.%s>\nC: DATA\nR: Subject: drop1\\r\\n\\r\\nline 1\\r\\nline 2\\r\\n.\\r\\n\nW:\nW:\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" "$ZONE" "$ZONE" | timeout 60 $DIALOG "unix:$W/lmtp.sock" | tail -5 | normalise_ids | tr '\n' '~')
check_match "LMTP-3, SMTP-10: e5drop dropped mid-DATA: its recipient gets 451 4.4.2, the others 250 from their own MX" \
	"$out" "^354 go ahead~250 2\.0\.0 Ok: queued as mx\.a1ok-N~451 4\.4\.2 Upstream mx\.e5drop\.$ZONE [^~]*; message not delivered \[stsproxy session [0-9a-f]{16}\]~250 2\.0\.0 Ok: queued as mx\.b2none-N~221 "
check "... and a1ok and b2none stored it once each" "$(copies drop1 mx.a1ok) | $(copies drop1 mx.b2none)" \
	"1 <p@a1ok.$ZONE> | 1 <r@b2none.$ZONE>"

# ---- a slow upstream paces the client; the relay's memory stays bounded --------------------
MSG_MB=40
$DEBPY - "$W/big.eml" "$MSG_MB" <<'PY'
import sys
line = b"0123456789" * 7 + b"abcdef\r\n"
with open(sys.argv[1], "wb") as f:
    f.write(b"Subject: big1\r\n\r\n")
    for _ in range(int(sys.argv[2]) * 1024 * 1024 // len(line)):
        f.write(line)
    f.write(b".\r\n")
PY
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$RELAY_PID/status"; }
base=$(rss_kb)
start=$(date +%s.%N)
printf 'C: LHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<big@a1ok.%s>\nC: RCPT TO:<big@f6slow.%s>\nC: DATA\nF: %s\nW:\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" "$ZONE" "$W/big.eml" | timeout 120 $DIALOG "$LMTP" > "$W/big.out" &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
	r=$(rss_kb); [ "${r:-0}" -gt "$peak" ] && peak=$r
	sleep 0.1
done
secs=$(awk -v a="$(date +%s.%N)" -v b="$start" 'BEGIN { print a - b }')
world_note "slow upstream: $MSG_MB MB in ${secs}s; relay RSS ${base} kB before, ${peak} kB at most"
check "issue 14: both domains took the $MSG_MB MB message: 250 from each MX" \
	"$(tail -3 "$W/big.out" | normalise_ids | tr '\n' '~')" "250 2.0.0 Ok: queued as mx.a1ok-N~250 2.0.0 Ok: queued as mx.f6slow-N~221 2.0.0 relay.$ZONE closing connection~"
# the message as sent, behind the relay's Received lines
same_message() {
	$DEBPY -c 'import sys; a = open(sys.argv[1], "rb").read(); b = open(sys.argv[2], "rb").read()
print("yes" if a.startswith(b"Received: ") and a.endswith(b) and a.index(b"\r\nSubject: big1") == len(a) - len(b) - 2 else "no")' \
		"$(grep -l '^Subject: big1' "$W/spool/$1"/*.eml | head -1)" "$W/big.eml"
}
check "... and both stored all of it, byte for byte" "$(same_message mx.a1ok) $(same_message mx.f6slow)" "yes yes"
check "issue 14: the slow MX (8 MB/s) set the pace: the transfer took at least 4 s" "$(awk -v s="$secs" 'BEGIN { print (s >= 4) }')" 1
bound=$((base + 12 * 1024 + RSS_SLACK))
check "issue 14: the relay's RSS stayed bounded (< start + 12 MB) while $MSG_MB MB passed to a slow and a fast MX (${peak} kB)" \
	"$([ "$peak" -lt "$bound" ] && echo yes || echo "no: $peak >= $bound")" yes

# ---- a hostile LMTP client: the session's bounds hold as over SMTP ---------------------
# RCPTs pipelined without reading a reply: each goes to a1ok's route and
# is answered there (then 452 beyond max_recipients): the relay stops
# reading once 64 KiB of replies wait, or ends the session on the errors.
base=$(rss_kb)
$DEBPY "$E2E_DIR/hostile.py" noread "$LMTP" --greet LHLO --prefix "MAIL FROM:<a@client.$ZONE>\r\n" \
	--text "RCPT TO:<u@a1ok.$ZONE>\r\n" --stall 3 > "$W/noread-lmtp.out" &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
	r=$(rss_kb); [ "${r:-0}" -gt "$peak" ] && peak=$r
	sleep 0.1
done
res=$(cat "$W/noread-lmtp.out")
world_note "no-read LMTP client pipelining RCPTs: $res; RSS ${base} kB before, ${peak} kB at most"
check "issue 14: an LMTP client pipelining RCPTs and reading nothing is held or cut, RSS < start + 8 MB (${peak} kB)" \
	"$(printf '%s' "$res" | grep -qE 'blocked=yes|closed=yes' && echo held) $([ "$peak" -lt $((base + 8192 + RSS_SLACK)) ] && echo bounded)" \
	"held bounded"

# ---- metrics ----------------------------------------------------------------------------
metrics=$($DEBPY -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
	"http://$METRICS/metrics")
n4=$([ -x "$EXIM" ] && echo 3 || echo 2)
check "metrics: LMTP transactions counted by their number of domains" \
	"$(printf '%s\n' "$metrics" | grep '^stsproxy_lmtp_transactions_total{' | tr '\n' ' ')" \
	"stsproxy_lmtp_transactions_total{domains=\"4-10\"} $n4 stsproxy_lmtp_transactions_total{domains=\"2-3\"} 2 "
check "metrics: ... and the domains they had" \
	"$(printf '%s\n' "$metrics" | grep '^stsproxy_lmtp_domains_total ')" "stsproxy_lmtp_domains_total $((n4 * 4 + 3 + 2))"

kill "$RELAY_PID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$RELAY_PID" 2>/dev/null || break; sleep 0.1; done
check "the relay stopped cleanly on SIGTERM, without sanitizer reports" \
	"$(grep -c 'event=stopped' "$W/relay.log") $(grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$W/relay.log")" "1 0"

[ "$FAIL" -gt 0 ] && { world_note "relay log:"; sed 's/^/#   /' "$W/relay.log" | grep -v 'event=outcome' | tail -80; }
world_summary
