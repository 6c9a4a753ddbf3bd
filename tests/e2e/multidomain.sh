#!/usr/bin/env bash
# End-to-end: one message to several recipient domains through a real
# Postfix (issue 11 §3), and the logs and replies an administrator follows
# from Postfix's queue to the relay's log (issue 11 §7).
#
# Postfix sends every recipient of a message to its relayhost in one
# transaction, sorted by domain. The first domain here is deferred under
# its policy (an expired certificate), so it must not fix the
# transaction's domain: the next domain's recipient is accepted and the
# message goes there, and with the relayhost listed twice (as
# contrib/postfix/main.cf.snippet recommends) Postfix sends the 452'd
# third domain in a second session of the same delivery attempt. Only the
# deferred recipient stays in the queue, with the relay's real reason and
# session id. A domain that does not exist bounces at once.
#
# MEASURE=1 also times what Postfix does with recipients answered 452
# under its default settings and tuned ones (slow: the defaults take
# minutes); the figures are in README.md and contrib/postfix/.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd nginx ldns-signzone drill jq openssl python3 postfix postqueue; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

RELAY=127.0.0.1:8461
JSON_RELAY=127.0.0.1:8462
DIALOG=$E2E_DIR/smtpdialog.py

# ---- the world: three recipient domains, sorted a1 < b2 < c3 -----------------
world_init
world_ca_init "$W/ca" "stsproxy test CA"
mkdir -p "$W/certs" "$W/spool"
cert() { world_cert "$W/ca" "$W/certs/$1" "$2" "DNS:$2" "${@:3}" || exit 1; }
cert mta-sts.a1exp "mta-sts.a1exp.$ZONE"
cert mta-sts.b2good "mta-sts.b2good.$ZONE"
cert mx.a1exp "mx.a1exp.$ZONE" 20200101000000Z 20200201000000Z
cert mx.b2good "mx.b2good.$ZONE"
: > "$W/nginx.sites"
for d in a1exp b2good; do
	world_site "mta-sts.$d.$ZONE" "$W/certs/mta-sts.$d"
	printf 'version: STSv1\nmode: enforce\nmx: mx.%s.%s\nmax_age: 86400\n' "$d" "$ZONE" |
		world_policy "mta-sts.$d.$ZONE"
done
world_dns_records <<ZONEDATA
_mta-sts.a1exp TXT "v=STSv1; id=a1;"
mta-sts.a1exp A $WEB_ADDR
a1exp MX 10 mx.a1exp.$ZONE.
mx.a1exp A 127.0.5.1
_mta-sts.b2good TXT "v=STSv1; id=b2;"
mta-sts.b2good A $WEB_ADDR
b2good MX 10 mx.b2good.$ZONE.
mx.b2good A 127.0.5.2
c3plain MX 10 mx.c3plain.$ZONE.
mx.c3plain A 127.0.5.3
ZONEDATA
world_dns_publish >/dev/null || exit 1
world_web_start || exit 1

mx() { # ADDR NAME [CERT] [BEHAVE]
	python3 "$E2E_DIR/mxserver.py" --listen "$1:25" --name "$2" --spool "$W/spool" \
		${3:+--cert "$W/certs/$3.pem" --key "$W/certs/$3.key"} --behave "${4:-}" \
		> "$W/mx-$2.out" 2>&1 &
	PIDS+=($!)
}
mx 127.0.5.1 mx.a1exp mx.a1exp
mx 127.0.5.2 mx.b2good mx.b2good
mx 127.0.5.3 mx.c3plain "" nostarttls

world_conf "
[server]
listen = $RELAY
[upstream]
connect_timeout = 3s
"
printf 'hostname = relay.%s\n' "$ZONE" | cat - "$W/stsproxy.conf" > "$W/c" && mv "$W/c" "$W/stsproxy.conf"
"$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
STSPROXY_LOG_FORMAT=json STSPROXY_SERVER_LISTEN=$JSON_RELAY "$STSPROXY" -c "$W/stsproxy.conf" serve \
	> "$W/relay-json.log" 2>&1 &
JSON_PID=$!
PIDS+=($JSON_PID)
for _ in $(seq 50); do
	grep -q event=started "$W/relay.log" && grep -q '"event":"started"' "$W/relay-json.log" &&
		[ "$(cat "$W"/mx-*.out 2>/dev/null | grep -c ready)" -ge 3 ] && break
	sleep 0.1
done

# ---- a private Postfix with the recommended settings ----------------------------
# pf_start DIR ADDR < extra main.cf lines
PFS=()
pf_start() {
	world_postfix "$1" "$2" <<CF
mydomain = $ZONE
myorigin = client.$ZONE
mydestination = client.$ZONE
local_transport = discard:
smtp_tls_security_level = may
$(cat)
CF
	postfix -c "$1" start >/dev/null 2>&1 || { world_note "postfix failed to start"; cat "$1/maillog" 2>/dev/null; exit 1; }
	PFS+=("$1")
}
pf_stop_all() { for p in "${PFS[@]}"; do postfix -c "$p" stop >/dev/null 2>&1; done; }
trap 'pf_stop_all; world_cleanup' EXIT

cat > "$W/submit.py" <<'PY'
import smtplib, sys
host, frm, rcpts = sys.argv[1], sys.argv[2], sys.argv[3:]
msg = sys.stdin.read()
with smtplib.SMTP(host, 25, timeout=30) as s:
    s.sendmail(frm, rcpts, msg)
PY
submit() { local host=$1; shift; python3 "$W/submit.py" "$host" "$@"; }
message() { printf 'From: <a@client.%s>\r\nSubject: %s\r\nMessage-ID: <%s@client>\r\n\r\nbody of %s\r\n' "$ZONE" "$1" "$1" "$1"; }
# pf_wait PF N: until PF logged N delivery results and holds nothing but
# deferred mail (max 60 s)
pf_wait() {
	for _ in $(seq 600); do
		if [ "$(grep -c ' status=' "$1/maillog" 2>/dev/null)" -ge "$2" ] &&
		   [ -z "$(postqueue -c "$1" -j 2>/dev/null | jq -r 'select(.queue_name != "deferred") | .queue_id')" ]; then
			return 0
		fi
		sleep 0.1
	done
	world_note "Postfix did not settle"
}
arrived() { grep -l "^Subject: $1"$'\r'"\$" "$W"/spool/*/*.eml 2>/dev/null | xargs -r -n1 dirname | xargs -r -n1 basename | sort | tr '\n' ' ' | sed 's/ $//'; }
rcpts_at() { local f; f=$(grep -l "^Subject: $1"$'\r'"\$" "$W/spool/$2"/*.eml 2>/dev/null | head -1); [ -n "$f" ] && jq -r '.rcpts | join(",")' "${f%.eml}.json"; }
# Postfix's log line for a recipient's final status
pf_status() { grep -E "to=<$2>.* status=" "$1/maillog" | tail -1; }

PF=$W/postfix
pf_start "$PF" 127.0.3.1 <<CF
relayhost = [127.0.0.1]:8461, [127.0.0.1]:8461
# No retry within the test: whatever arrives came in the first delivery attempt.
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 3600s
CF

# ---- §3: the first domain is deferred, the other two arrive at once -------------------
message multi3 | submit 127.0.3.1 "a@client.$ZONE" "x@a1exp.$ZONE" "y@b2good.$ZONE" "z@c3plain.$ZONE"
pf_wait "$PF" 3
check "issue 11 §3: the second domain arrives in the first delivery attempt" "$(rcpts_at multi3 mx.b2good)" "<y@b2good.$ZONE>"
check "issue 11 §3: the third domain too (a second session of the same attempt, after its 452)" "$(rcpts_at multi3 mx.c3plain)" "<z@c3plain.$ZONE>"
check "STS-41: nothing reached the MX with the expired certificate" "$(arrived multi3)" "mx.b2good mx.c3plain"
check_match "Postfix logged both as sent" "$(pf_status "$PF" "y@b2good.$ZONE") | $(pf_status "$PF" "z@c3plain.$ZONE")" "status=sent .*\| .*status=sent "
queue=$(postqueue -c "$PF" -j)
check "... and its queue holds one message with only the deferred recipient: nothing else waits" \
	"$(printf '%s\n' "$queue" | jq -r '[.queue_name, (.recipients | map(.address) | join(","))] | join(" ")')" "deferred x@a1exp.$ZONE"
reason=$(printf '%s\n' "$queue" | jq -r '.recipients[0].delay_reason')
check_match "STS-43 §11, issue 11 §7: the queue shows the relay's full reply, ending with its session id" "$reason" \
	"^host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.7\.5 MTA-STS: mx\.a1exp\.$ZONE certificate expired \[stsproxy session [0-9a-f]{16}\] \(in reply to RCPT TO command\)$"
sid=$(printf '%s' "$reason" | grep -oE 'stsproxy session [0-9a-f]{16}' | cut -d' ' -f3)
check_match "issue 11 §7: that session id leads to the relay's log line saying why" \
	"$(grep "session=$sid " "$W/relay.log" | grep 'event=deferred')" \
	"event=deferred domain=a1exp\.$ZONE to=<x@a1exp\.$ZONE> mode=enforce .*reason=\"mx\.a1exp\.$ZONE certificate expired\""
events() { grep "session=$1 " "$W/relay.log" | grep -E 'event=(rcpt|domain_failed|rcpt_deferred_other_domain|message) ' | sed 's/.*event=//' | cut -d' ' -f1-2 | tr '\n' ' '; }
line452=$(grep -m1 " said: 452 4.5.3 Recipient domain c3plain.$ZONE " "$PF/maillog")
sid1=$(printf '%s' "$line452" | grep -oE 'stsproxy session [0-9a-f]{16}' | cut -d' ' -f3)
check_match "issue 11 §3: Postfix's first session: the 452 named the accepted domain and the session" "$line452" \
	"said: 452 4\.5\.3 Recipient domain c3plain\.$ZONE differs from b2good\.$ZONE in this transaction; send it in a new transaction \[stsproxy session [0-9a-f]{16}\] \(in reply to RCPT TO command\)"
check "... in that session the deferred domain did not take the transaction: b2good, after it, did" "$(events "$sid1")" \
	"rcpt to=<x@a1exp.$ZONE> domain_failed domain=a1exp.$ZONE rcpt to=<y@b2good.$ZONE> rcpt_deferred_other_domain to=<z@c3plain.$ZONE> message to=<y@b2good.$ZONE> "
check "... and in the second session (the queue's session id) c3plain did" "$(events "$sid")" \
	"rcpt to=<x@a1exp.$ZONE> domain_failed domain=a1exp.$ZONE rcpt to=<z@c3plain.$ZONE> message to=<z@c3plain.$ZONE> "

# ---- §7: grepping an address finds every line about it -----------------------------
zlines=$(grep -F "to=<z@c3plain.$ZONE>" "$W/relay.log")
check_match "issue 11 §7: to=<z@c3plain> finds its 452, its acceptance, its outcome and its delivery" \
	"$(printf '%s\n' "$zlines" | sed 's/.*event=//' | cut -d' ' -f1 | sort -u | tr '\n' ' ')" \
	"^message outcome rcpt rcpt_deferred_other_domain $"
check_match "issue 11 §7: event=message has the recipient and the upstream's final reply" \
	"$(printf '%s\n' "$zlines" | grep 'event=message')" \
	"event=message to=<z@c3plain\.$ZONE> domain=c3plain\.$ZONE mx=mx\.c3plain\.$ZONE size=[0-9]+ rcpts=1 reply=\"250 2\.0\.0 Ok: queued as mx\.c3plain-1\""
check_match "issue 11 §7: to=<x@a1exp> finds the deferral with its reason" \
	"$(grep -F "to=<x@a1exp.$ZONE>" "$W/relay.log" | grep 'event=rcpt ' | head -1)" \
	"session=$sid1 event=rcpt to=<x@a1exp\.$ZONE> domain=a1exp\.$ZONE mx=- reply=\"451 4\.7\.5 MTA-STS: mx\.a1exp\.$ZONE certificate expired \[stsproxy session $sid1\]\""
check_match "issue 11 §7: a plaintext delivery to a domain without a policy says sts=none" \
	"$(grep 'event=outcome domain=c3plain' "$W/relay.log" | head -1)" "policy_type=no-policy-found .* sts=none result=starttls-not-supported"
check "... and no outcome line without a policy says sts=fail" \
	"$(grep 'event=outcome' "$W/relay.log" | grep 'policy_type=no-policy-found' | grep -c 'sts=fail')" "0"
check_match "... while the expired certificate under enforce still says sts=fail" \
	"$(grep 'event=outcome domain=a1exp' "$W/relay.log" | head -1)" "to=<x@a1exp\.$ZONE> .*action=failed .*sts=fail result=certificate-expired"

# ---- §3: a domain that does not exist bounces at once, the rest goes on -------------
message nx1 | submit 127.0.3.1 "a@client.$ZONE" "u@a0nx.$ZONE" "v@b2good.$ZONE"
# two more results, plus the bounce Postfix delivers to the sender (discarded)
pf_wait "$PF" 6
check_match "issue 11 §3, SMTP-1: the NXDOMAIN recipient bounced at once with 550 5.1.2" \
	"$(pf_status "$PF" "u@a0nx.$ZONE")" "status=bounced \(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 550 5\.1\.2 Recipient domain a0nx\.$ZONE does not exist"
check "... and was never deferred" "$(grep -F "to=<u@a0nx.$ZONE>" "$PF/maillog" | grep -c 'status=deferred')" "0"
check "issue 11 §3: the other domain of that message arrived in the same attempt" "$(rcpts_at nx1 mx.b2good)" "<v@b2good.$ZONE>"
check "... and the queue still holds only the first message's deferred recipient" \
	"$(postqueue -c "$PF" -j | jq -r '.recipients[].address' | tr '\n' ' ')" "x@a1exp.$ZONE "

# ---- §7: address literals, replies without opaque tags ---------------------------------
dialog() { python3 "$DIALOG" "$@"; }
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<u@[127.0.5.3]>\nC: QUIT\n' "$ZONE" | dialog $RELAY)
check_match "STS-2: an address literal is refused with 550 5.1.2" "$out" "550 5\.1\.2 Address literals cannot be relayed: MTA-STS needs a domain name"
check_match "issue 11 §7: ... and logged with to= and why: no policy applies, and how it is routed" \
	"$(grep -F 'to=<u@[127.0.5.3]>' "$W/relay.log")" \
	"event=rcpt_refused to=<u@\[127\.0\.5\.3\]> reply=\"550 5\.1\.2 Address literals cannot be relayed: MTA-STS needs a domain name\" reason=\"an address literal names no domain, so no MTA-STS policy applies to it; stsproxy relays to domain names only and does not route it: the client must deliver it itself\""
check "issue 11 §7: no log line names a requirement tag (STS-n, RPT-n, SMTP-n)" \
	"$(grep -cE '\b(STS|RPT|SMTP|DANE)-[0-9]+' "$W/relay.log")" "0"
sts policy "[127.0.5.3]" > "$W/policy-literal.out"
sts policy "a0nx.$ZONE" >> "$W/policy-literal.out"
check "issue 11 §7: nor does a policy verdict's rule" "$(grep -cE '\b(STS|RPT|SMTP|DANE)-[0-9]+' "$W/policy-literal.out")" "0"

# ---- §7: JSON log lines: numbers are numbers, times ISO 8601 -------------------------
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@a1exp.%s>\nC: RCPT TO:<y@b2good.%s>\nC: DATA\nR: Subject: json1\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" "$ZONE" | dialog $JSON_RELAY)
check_match "the JSON relay deferred the first domain and delivered the second" "$(echo $out)" "451 4\.7\.5 .* 250 2\.1\.5 .* 250 2\.0\.0 Ok"
sleep 0.3
facts=$("$DEBPY" - "$W/relay-json.log" <<'PY'
import json, re, sys
iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
numeric = {"size", "rcpts", "attempts", "pid", "worker", "messages", "max_age", "mx_count"}
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
bad_ts = [l for l in lines if not iso.match(l.get("ts", ""))]
bad_num = [(l["event"], k, v) for l in lines for k, v in l.items()
           if k in numeric and not (isinstance(v, int) and not isinstance(v, bool))]
msg = [l for l in lines if l.get("event") == "message"]
deferred = [l for l in lines if l.get("event") == "deferred"]
print("lines", len(lines) > 5)
print("ts", "iso8601" if not bad_ts else bad_ts[:2])
print("numbers", "ok" if not bad_num else bad_num[:3])
print("message", [(type(m["size"]).__name__, m["rcpts"], m["to"]) for m in msg])
print("deferred", [(type(d["attempts"]).__name__, d["to"]) for d in deferred])
print("session", {type(l["session"]).__name__ for l in lines if "session" in l})
PY
)
check "issue 11 §7: every JSON line parsed (python json), and there are several" "$(printf '%s\n' "$facts" | grep '^lines')" "lines True"
check "issue 11 §7: every ts is ISO 8601 UTC with milliseconds" "$(printf '%s\n' "$facts" | grep '^ts')" "ts iso8601"
check "issue 11 §7: counts and sizes are JSON numbers on every line" "$(printf '%s\n' "$facts" | grep '^numbers')" "numbers ok"
check "... e.g. event=message: size an int, rcpts 1, to the recipient" "$(printf '%s\n' "$facts" | grep '^message')" \
	"message [('int', 1, '<y@b2good.$ZONE>')]"
check "... event=deferred: attempts an int, to the deferred recipient" "$(printf '%s\n' "$facts" | grep '^deferred')" \
	"deferred [('int', '<x@a1exp.$ZONE>')]"
check "... and session ids stay strings" "$(printf '%s\n' "$facts" | grep '^session')" "session {'str'}"

# ---- MEASURE=1: what Postfix does with recipients answered 452 ------------------------
# For each variant, a fresh Postfix sends one message to x@a1exp (deferred),
# y@b2good (accepted) and z@c3plain (452 4.5.3 in the first session); the
# figure is Postfix's own delay= for z's status=sent line: seconds from
# the message's arrival to z's delivery.
measure() { # NAME ADDR < main.cf lines
	local pf=$W/pf-$1 delay
	pf_start "$pf" "$2"
	message "m-$1" | submit "$2" "a@client.$ZONE" "x@a1exp.$ZONE" "y@b2good.$ZONE" "z@c3plain.$ZONE"
	for _ in $(seq "${MEASURE_MAX:-1200}"); do
		grep -qE "to=<z@c3plain\.$ZONE>.* status=sent" "$pf/maillog" && break
		sleep 1
	done
	delay=$(grep -E "to=<z@c3plain\.$ZONE>.* status=sent" "$pf/maillog" | grep -oE 'delay=[0-9.]+' | head -1)
	printf '# measure %-34s z (452 at first) delivered after %s s; y after %s s; x: %s\n' "$1" \
		"${delay#delay=}" "$(grep -E "to=<y@b2good\.$ZONE>.* status=sent" "$pf/maillog" | grep -oE 'delay=[0-9.]+' | head -1 | cut -d= -f2)" \
		"$(grep -E "to=<x@a1exp\.$ZONE>.* status=" "$pf/maillog" | head -1 | grep -oE 'status=[a-z]+')"
	postfix -c "$pf" stop >/dev/null 2>&1
}
if [ "${MEASURE:-0}" = 1 ]; then
	postfix -c "$PF" stop >/dev/null 2>&1
	measure relayhost-twice 127.0.3.2 <<<"relayhost = [127.0.0.1]:8461, [127.0.0.1]:8461"
	measure recipient-limit-1 127.0.3.3 <<<"relayhost = [127.0.0.1]:8461
smtp_destination_recipient_limit = 1"
	measure backoff-60s 127.0.3.4 <<<"relayhost = [127.0.0.1]:8461
queue_run_delay = 60s
minimal_backoff_time = 60s"
	measure defaults 127.0.3.5 <<<"relayhost = [127.0.0.1]:8461"
fi

kill "$RELAY_PID" "$JSON_PID" 2>/dev/null
for _ in $(seq 50); do kill -0 "$RELAY_PID" 2>/dev/null || kill -0 "$JSON_PID" 2>/dev/null || break; sleep 0.1; done
check "both relays stopped cleanly on SIGTERM, without sanitizer reports (under ASan: no leak)" \
	"$(cat "$W/relay.log" "$W/relay-json.log" | grep -cE 'event=stopped|"event":"stopped"') $(cat "$W/relay.log" "$W/relay-json.log" | grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:')" "2 0"

[ "$FAIL" -gt 0 ] && { world_note "relay log:"; sed 's/^/#   /' "$W/relay.log" | tail -60; world_note "postfix log:"; sed 's/^/#   /' "$PF/maillog" | tail -40; }
world_summary
