#!/usr/bin/env bash
# End-to-end tests of the relay (`stsproxy serve`): a real Postfix from
# Debian as the legacy client (relayhost = [127.0.0.1]:8461), recipient
# MX servers on loopback with certificates for each case, the DNSSEC
# signed zone of world.sh and MTA-STS policies served by nginx. Asserts
# where each message arrived, over what TLS, what Postfix's queue says
# and what stsproxy logged. Requirements are cited from
# ../shared/docs/spec-notes.md.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd nginx ldns-signzone drill jq openssl python3 postfix postqueue; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

RELAY=127.0.0.1:8461
MX=$E2E_DIR/mxserver.py
DIALOG=$E2E_DIR/smtpdialog.py

# ---- the world -----------------------------------------------------------
world_init
world_ca_init "$W/ca" "stsproxy test CA"
world_ca_init "$W/evilca" "untrusted CA"
mkdir -p "$W/certs" "$W/spool"
cert() { world_cert "$W/ca" "$W/certs/$1" "$2" "DNS:$2" "${@:3}" || exit 1; }
for d in good enf allbad wild testing inject sim reuse; do
	cert "mta-sts.$d" "mta-sts.$d.$ZONE"
done
cert mx1.good "mx1.good.$ZONE"
cert mx2.good "mx2.good.$ZONE"
cert starttls.enf "nostarttls.enf.$ZONE"
cert expired.enf "expired.enf.$ZONE" 20200101000000Z 20200201000000Z
cert valid.enf "valid.enf.$ZONE"
cert wrongname "other-name.$ZONE"
world_cert "$W/evilca" "$W/certs/untrusted" "untrusted.allbad.$ZONE" "DNS:untrusted.allbad.$ZONE" || exit 1
cert tls11 "tls11.allbad.$ZONE"
cert outsider "outsider.$ZONE"
world_cert "$W/ca" "$W/certs/wild" "*.wild.$ZONE" "DNS:*.wild.$ZONE" || exit 1
cert expired.testing "mx.testing.$ZONE" 20200101000000Z 20200201000000Z
cert opp "mx.opp.$ZONE"
cert rej "mx.rej.$ZONE"
cert drop "mx.drop.$ZONE"
cert inject "mx.inject.$ZONE"
cert sim "mx.sim.$ZONE" 20200101000000Z 20200201000000Z
cert old "mx.old.$ZONE"
cert reports "reports.$ZONE"
cert client "relay.$ZONE"
cert idle "mx.idle.$ZONE"
cert shared "mx.shared.$ZONE"

: > "$W/nginx.sites"
for d in good enf allbad wild testing inject sim reuse; do
	world_site "mta-sts.$d.$ZONE" "$W/certs/mta-sts.$d"
done
pol() { # DOMAIN MODE PATTERN...
	local d=$1 m=$2; shift 2
	{ printf 'version: STSv1\nmode: %s\n' "$m"; for p in "$@"; do printf 'mx: %s\n' "$p"; done
	  printf 'max_age: 86400\n'; } | world_policy "mta-sts.$d.$ZONE"
}
pol good enforce "mx1.good.$ZONE" "mx2.good.$ZONE"
pol enf enforce "*.enf.$ZONE"
pol allbad enforce "*.allbad.$ZONE" "other-name.$ZONE"
pol wild enforce "*.wild.$ZONE"
pol testing testing "mx.testing.$ZONE"
pol inject enforce "mx.inject.$ZONE"
pol sim testing "mx.sim.$ZONE"
pol reuse enforce "mx.shared.$ZONE"

sts_txt() { printf '_mta-sts.%s TXT "v=STSv1; id=%s1;"\nmta-sts.%s A %s\n' "$1" "$1" "$1" "$WEB_ADDR"; }
{
	for d in good enf allbad wild testing inject sim reuse; do sts_txt "$d"; done
	cat <<ZONEDATA
good MX 10 mx1.good.$ZONE.
good MX 20 mx2.good.$ZONE.
mx1.good A 127.0.4.1
mx2.good A 127.0.4.2
enf MX 10 nostarttls.enf.$ZONE.
enf MX 20 expired.enf.$ZONE.
enf MX 30 valid.enf.$ZONE.
enf MX 40 stranger.$ZONE.
nostarttls.enf A 127.0.4.3
expired.enf A 127.0.4.4
valid.enf A 127.0.4.5
stranger A 127.0.4.5
allbad MX 10 wrongname.allbad.$ZONE.
allbad MX 20 untrusted.allbad.$ZONE.
allbad MX 30 tls11.allbad.$ZONE.
allbad MX 40 outsider.$ZONE.
allbad MX 50 dead.allbad.$ZONE.
wrongname.allbad A 127.0.4.6
untrusted.allbad A 127.0.4.7
tls11.allbad A 127.0.4.8
outsider A 127.0.4.9
dead.allbad A $DEAD_ADDR
wild MX 10 mx.wild.$ZONE.
mx.wild A 127.0.4.10
testing MX 10 mx.testing.$ZONE.
mx.testing A 127.0.4.11
plain MX 10 mx.plain.$ZONE.
mx.plain A 127.0.4.12
opp MX 10 mx.opp.$ZONE.
mx.opp A 127.0.4.13
rej MX 10 mx.rej.$ZONE.
mx.rej A 127.0.4.14
drop MX 10 mx.drop.$ZONE.
mx.drop A 127.0.4.15
inject MX 10 mx.inject.$ZONE.
mx.inject A 127.0.4.16
nullmx MX 0 .
implicit A 127.0.4.17
alias CNAME good.$ZONE.
sim MX 10 mx.sim.$ZONE.
mx.sim A 127.0.4.18
old MX 10 mx.old.$ZONE.
mx.old A 127.0.4.19
_smtp._tls.enf TXT "v=TLSRPTv1; rua=https://reports.$ZONE/tlsrpt/enf , mailto:tlsrpt@reports.$ZONE"
_smtp._tls.allbad TXT "v=TLSRPTv1; rua=https://reports.$ZONE/fail500"
_smtp._tls.good TXT "v=TLSRPTv1; rua=https://reports.$ZONE/tlsrpt/good"
_smtp._tls.sim TXT "v=TLSRPTv1; rua=https://reports.$ZONE/flaky/sim"
reports A 127.0.2.20
reports MX 10 mx.reports.$ZONE.
_mta-sts.nofetch TXT "v=STSv1; id=nf1;"
mta-sts.nofetch A $WEB_ADDR
nofetch MX 10 mx.plain.$ZONE.
mx.reports A 127.0.4.20
nopol MX 10 mx.shared.$ZONE.
reuse MX 10 mx.shared.$ZONE.
mx.shared A 127.0.4.22
idle MX 10 mx.idle.$ZONE.
mx.idle A 127.0.4.21
ZONEDATA
} | world_dns_records
world_dns_publish >/dev/null || exit 1
world_web_start || exit 1

mx() { # ADDR NAME CERT [BEHAVE]
	python3 "$MX" --listen "$1:25" --name "$2" --spool "$W/spool" \
		${3:+--cert "$W/certs/$3.pem" --key "$W/certs/$3.key"} --behave "${4:-}" \
		> "$W/mx-$2.out" 2>&1 &
	PIDS+=($!)
}
# mx1.good reads end-of-data leniently, as a receiver open to SMTP smuggling
# does, and logs each connection: a smuggled end passed on shows there.
mx 127.0.4.1 mx1.good mx1.good record,lenient-eod
mx 127.0.4.2 mx2.good mx2.good
mx 127.0.4.3 nostarttls.enf starttls.enf nostarttls
mx 127.0.4.4 expired.enf expired.enf
mx 127.0.4.5 valid.enf valid.enf
mx 127.0.4.6 wrongname wrongname
mx 127.0.4.7 untrusted untrusted
mx 127.0.4.8 tls11 tls11 tls11
mx 127.0.4.9 outsider outsider
mx 127.0.4.10 mx.wild wild
mx 127.0.4.11 mx.testing expired.testing
mx 127.0.4.12 mx.plain "" nostarttls
mx 127.0.4.13 mx.opp opp
mx 127.0.4.14 mx.rej rej reject-rcpt,rcpt452=3
mx 127.0.4.15 mx.drop drop drop-data
mx 127.0.4.16 mx.inject inject inject
mx 127.0.4.17 implicit "" nostarttls
mx 127.0.4.18 mx.sim sim
mx 127.0.4.19 mx.old old tls11
mx 127.0.4.21 mx.idle idle close-after-rset
mx 127.0.4.22 mx.shared shared

world_conf "simulate = enforce
[server]
listen = $RELAY [::1]:8461
tls_cert_file = $W/certs/client.pem
tls_key_file = $W/certs/client.key
max_connections_per_client = 20
[upstream]
connect_timeout = 3s
command_timeout = 20s
"
printf 'hostname = relay.%s\n' "$ZONE" | cat - "$W/stsproxy.conf" > "$W/c" && mv "$W/c" "$W/stsproxy.conf"

"$STSPROXY" -c "$W/stsproxy.conf" -d serve > "$W/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
for _ in $(seq 50); do
	grep -q event=started "$W/relay.log" && break
	sleep 0.1
done
for n in $(seq 50); do
	[ "$(cat "$W"/mx-*.out 2>/dev/null | grep -c ready)" -ge 21 ] && break
	sleep 0.1
done

# ---- least privilege ------------------------------------------------------------
check_match "started as root, the relay runs as user stsproxy after binding port-bound sockets" \
	"$(awk '/^Uid:/ {print $2}' /proc/$RELAY_PID/status) $(id -u stsproxy 2>/dev/null)" "^([0-9]+) \\1$"
check "... and says so in the log" "$(grep -c 'event=privileges_dropped user=stsproxy' "$W/relay.log")" "1"
check "state_dir belongs to that user" "$(stat -c %U "$W/state")" "stsproxy"
out=$(STSPROXY_USER=no-such-user STSPROXY_SERVER_LISTEN=127.0.0.1:10099 "$STSPROXY" -c "$W/stsproxy.conf" serve 2>&1); rc=$?
check_match "an unknown user refuses to start, saying how to fix it" "$rc $(echo $out)" "^2 .*user no-such-user does not exist: create it"

# ---- the legacy client: a private Postfix instance ---------------------------
PF=$W/postfix
world_postfix "$PF" 127.0.3.1 <<CF
mydomain = $ZONE
myorigin = client.$ZONE
# Bounces come back to client.$ZONE and are dropped: the tests read the log.
mydestination = client.$ZONE
local_transport = discard:
relayhost = [127.0.0.1]:8461
smtp_tls_security_level = may
smtp_tls_loglevel = 1
smtputf8_enable = yes
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 3600s
CF
postfix -c "$PF" start >/dev/null 2>&1 || { world_note "postfix failed to start"; cat "$PF/maillog" 2>/dev/null; exit 1; }
PIDS+=()
trap 'postfix -c "$PF" stop >/dev/null 2>&1; world_cleanup' EXIT

# submit FROM TO... < message: hand a message to Postfix over SMTP
cat > "$W/submit.py" <<'PY'
import smtplib, sys
msg = sys.stdin.read()
with smtplib.SMTP("127.0.3.1", 25, timeout=30) as s:
    s.sendmail(sys.argv[1], sys.argv[2:], msg)
PY
submit() { python3 "$W/submit.py" "$@"; }
message() { printf 'From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\nMessage-ID: <%s@client>\r\n\r\nbody of %s\r\n' "$1" "$2" "$3" "$3" "$3"; }

# pf_settle N: wait until Postfix logged N delivery results in all and
# its queue holds nothing but deferred mail (max 60 s)
pf_settle() {
	for _ in $(seq 600); do
		if [ "$(grep -c ' status=' "$PF/maillog" 2>/dev/null)" -ge "$1" ] &&
		   [ -z "$(postqueue -c "$PF" -j 2>/dev/null | jq -r 'select(.queue_name != "deferred") | .queue_id')" ]; then
			return 0
		fi
		sleep 0.1
	done
	world_note "Postfix did not settle"
}
# the queue entry (JSON) for a Message-ID-like subject, by recipient
pf_queue_reason() { postqueue -c "$PF" -j | jq -r --arg r "$1" 'select(.recipients[].address == $r) | .recipients[] | select(.address == $r) | .delay_reason'; }
# where a message with SUBJECT arrived: mx name, and its meta
arrived() { grep -l "Subject: $1" "$W"/spool/*/*.eml 2>/dev/null | xargs -r -n1 dirname | xargs -r -n1 basename | sort | tr '\n' ' ' | sed 's/ $//'; }
meta() { local f; f=$(grep -l "Subject: $1" "$W"/spool/*/*.eml | head -1); jq -r "$2" "${f%.eml}.json"; }
log_has() { grep -E -- "$1" "$W/relay.log" | head -1; }

# ---- deliveries through Postfix ---------------------------------------------
message a@client.$ZONE u@good.$ZONE good1 | submit "a@client.$ZONE" "u@good.$ZONE"
message a@client.$ZONE u@enf.$ZONE enf1 | submit "a@client.$ZONE" "u@enf.$ZONE"
message a@client.$ZONE u@allbad.$ZONE allbad1 | submit "a@client.$ZONE" "u@allbad.$ZONE"
message a@client.$ZONE u@wild.$ZONE wild1 | submit "a@client.$ZONE" "u@wild.$ZONE"
message a@client.$ZONE u@testing.$ZONE testing1 | submit "a@client.$ZONE" "u@testing.$ZONE"
message a@client.$ZONE u@plain.$ZONE plain1 | submit "a@client.$ZONE" "u@plain.$ZONE"
message a@client.$ZONE u@opp.$ZONE opp1 | submit "a@client.$ZONE" "u@opp.$ZONE"
message a@client.$ZONE reject1@rej.$ZONE rej1 | submit "a@client.$ZONE" "reject1@rej.$ZONE" "ok1@rej.$ZONE"
message a@client.$ZONE u@drop.$ZONE drop1 | submit "a@client.$ZONE" "u@drop.$ZONE"
message a@client.$ZONE u@inject.$ZONE inject1 | submit "a@client.$ZONE" "u@inject.$ZONE"
message a@client.$ZONE u@nullmx.$ZONE nullmx1 | submit "a@client.$ZONE" "u@nullmx.$ZONE"
message a@client.$ZONE u@implicit.$ZONE implicit1 | submit "a@client.$ZONE" "u@implicit.$ZONE"
message a@client.$ZONE u@alias.$ZONE alias1 | submit "a@client.$ZONE" "u@alias.$ZONE"
message a@client.$ZONE u@sim.$ZONE sim1 | submit "a@client.$ZONE" "u@sim.$ZONE"
message a@client.$ZONE u@old.$ZONE old1 | submit "a@client.$ZONE" "u@old.$ZONE"
message a@client.$ZONE u@good.$ZONE multi1 | submit "a@client.$ZONE" "u@good.$ZONE" "v@plain.$ZONE" "w@good.$ZONE"
# 19 recipients, plus the bounces Postfix makes for rej1 and nullmx
pf_settle 21
# The recipient deferred with 452 4.5.3 goes out at the next queue run.
postqueue -c "$PF" -i "$(postqueue -c "$PF" -j | jq -r --arg r "v@plain.$ZONE" 'select(.recipients[].address == $r) | .queue_id')"
pf_settle 22

check "STS-36/40: enforce, valid MX -> delivered to mx1 (preference 10)" "$(arrived good1)" "mx1.good"
check "STS-40: delivered over TLS 1.2+ with SNI = MX host" "$(meta good1 '.tls + " " + .sni')" "TLSv1.3 mx1.good.$ZONE"
check "PRX: upstream EHLO uses the configured hostname" "$(meta good1 .helo)" "relay.$ZONE"
check_match "PRX: Received trace line added (RFC 5321 §4.4)" "$(grep -h -A1 '^Received: from client' "$W"/spool/mx1.good/1.eml | tr -d '\r\n')" "from client\.$ZONE \(\[127\.0\.0\.1\]\).*by relay\.$ZONE \(stsproxy\) with ESMTPS id [0-9a-f]{16}\.1"
check "STS-42/50: enforce skips no-STARTTLS and expired MXs, delivers to the valid one" "$(arrived enf1)" "valid.enf"
check_match "STS-50: starttls-not-supported recorded for nostarttls.enf" "$(log_has 'event=outcome domain=enf.*mx=nostarttls.enf.* action=failed')" "result=starttls-not-supported"
check_match "STS-38: certificate-expired recorded for expired.enf" "$(log_has 'event=outcome domain=enf.*mx=expired.enf.* action=failed')" "result=certificate-expired"
check_match "STS-36: delivery recorded with sts=pass" "$(log_has 'event=outcome domain=enf.*mx=valid.enf.*action=delivered')" "sts=pass result=none"
check "STS-41/51: enforce, every MX fails -> nothing delivered" "$(arrived allbad1)" ""
allbad_reason=$(pf_queue_reason "u@allbad.$ZONE")
check_match "STS-43 §11: client deferred with 451 4.7.5 (never 5xx), the whole reply naming the relay session" "$allbad_reason" \
	"^host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.7\.5 MTA-STS: wrongname\.allbad\.$ZONE .*; dead\.allbad\.$ZONE [^;]+ \[stsproxy session [0-9a-f]{16}\] \(in reply to RCPT TO command\)$"
allbad_sid=$(printf '%s' "$allbad_reason" | grep -oE 'stsproxy session [0-9a-f]{16}' | cut -d' ' -f3)
check_match "... and that session's log line says why, for that recipient" \
	"$(grep "session=${allbad_sid:-none} event=deferred" "$W/relay.log")" "event=deferred domain=allbad\.$ZONE to=<u@allbad\.$ZONE> mode=enforce attempts=[0-9]+ reason=\"wrongname\.allbad\.$ZONE "
check_match "§11: reason names wrongname MX and its failure" "$allbad_reason" "wrongname.allbad.$ZONE certificate not valid for the MX host name"
check_match "§11: reason names the untrusted MX" "$allbad_reason" "untrusted.allbad.$ZONE certificate"
check_match "STS-40: TLS 1.1-only MX fails" "$allbad_reason" "tls11.allbad.$ZONE TLS handshake failed"
check_match "STS-54: MX outside the policy is not in policy" "$allbad_reason" "outsider.$ZONE not in policy"
check_match "SMTP-4: unreachable MX reported" "$allbad_reason" "dead.allbad.$ZONE (connection refused|Connection refused|connection timed out)"
check_match "STS-54: skipped MX recorded as validation-failure" "$(log_has 'event=outcome domain=allbad.*mx=outsider')" "action=skipped .*result=validation-failure"
check "STS-37/43: wildcard certificate *.wild accepted for mx.wild" "$(arrived wild1)" "mx.wild"
check "STS-44/52: testing mode delivers despite an expired certificate" "$(arrived testing1)" "mx.testing"
check_match "STS-52: testing logs would_defer=yes" "$(log_has 'event=would_defer domain=testing')" "would_defer"
check_match "STS-52: testing records certificate-expired" "$(log_has 'event=outcome domain=testing.*action=delivered')" "result=certificate-expired .*would_defer=yes"
check_match "simulate=enforce logs the reply enforce would give, word for word" "$(log_has 'event=sts_simulate domain=sim')" \
	"event=sts_simulate domain=sim\.$ZONE to=<u@sim\.$ZONE> mode=enforce result=defer reply=\"451 4\.7\.5 MTA-STS: mx\.sim\.$ZONE certificate expired \[stsproxy session [0-9a-f]{16}\]\"$"
check "simulate=enforce still delivers a testing domain" "$(arrived sim1)" "mx.sim"
check "STS-44: no policy, no STARTTLS -> plaintext delivery" "$(meta plain1 .tls)" "null"
check "no policy: opportunistic STARTTLS used when offered" "$(meta opp1 .tls)" "TLSv1.3"
check "no policy, TLS 1.1-only MX: handshake fails, delivered in the clear on a new connection" "$(meta old1 .tls)" "null"
check_match "... the failed handshake is logged" "$(log_has 'event=mx_failed domain=old.*phase=opportunistic')" "TLS handshake failed"
check "PRX: accepted recipient delivered" "$(meta rej1 '.rcpts | join(",")')" "<ok1@rej.$ZONE>"
rej_log=$(grep -h "reject1@rej.$ZONE" "$PF/maillog" | grep -E 'status=bounced' | head -1)
check_match "PRX: upstream's multi-line 550 relayed to Postfix (code, enhanced code, every line)" "$rej_log" "said: 550-5\.1\.1 <reject1@rej\.$ZONE>: Recipient address rejected: 550 5\.1\.1 User unknown in mx\.rej"
check "SMTP-10: upstream drop mid-DATA -> nothing delivered" "$(arrived drop1)" ""
check_match "SMTP-10: ... and Postfix keeps it queued with 451 4.4.2" "$(pf_queue_reason "u@drop.$ZONE")" \
	"^host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451 4\.4\.2 Upstream mx\.drop\.$ZONE [^;]+; message not delivered \[stsproxy session [0-9a-f]{16}\] \(in reply to end of DATA command\)$"
check "STARTTLS injection by an upstream: MX not used" "$(arrived inject1)" ""
check_match "... and the attempt is reported as an injection" "$(pf_queue_reason "u@inject.$ZONE")" "plaintext after its STARTTLS reply"
nullmx_log=$(grep -h "u@nullmx.$ZONE" "$PF/maillog" | grep status=bounced | head -1)
check_match "SMTP-6/58: null MX -> 556 5.1.10, bounced at once" "$nullmx_log" "556 5\.1\.10"
check "SMTP-2: no MX -> implicit MX (the domain's A record)" "$(arrived implicit1)" "implicit"
check "SMTP-1: CNAME at the domain followed to its MX" "$(arrived alias1)" "mx1.good"
check "PRX: recipients of another domain sent in a second transaction by Postfix" "$(arrived multi1)" "mx.plain mx1.good"
check "PRX: both good.stsworld recipients in one transaction" "$(jq -r '.rcpts | length' "$(grep -l 'Subject: multi1' "$W"/spool/mx1.good/*.eml | sed 's/eml$/json/')")" "2"

# ---- direct SMTP dialogues ------------------------------------------------------
dialog() { python3 "$DIALOG" "$@"; }
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@good.%s>\nC: DATA\nR: Subject: smuggle1\\r\\n\\r\\nline1\\n.\\nMAIL FROM:<evil@x>\\r\\nRCPT TO:<victim@good.%s>\\r\\nDATA\\r\\nSubject: smuggled\\r\\n\\r\\n.\\r\\n\nW:\nC: QUIT\n' "$ZONE" "$ZONE" "$ZONE" | dialog $RELAY)
check_match "SMTP smuggling: bare-LF dot does not end the message" "$out" "250 2\.0\.0 Ok: queued"
check "SMTP smuggling: upstream got exactly one message" "$(grep -l 'smuggle' "$W"/spool/*/*.eml | wc -l)" "1"
# segment_mails SUBJECT: MAIL commands the MX saw in the stretch of its
# connection (between RSETs) that carried the message with SUBJECT.
segment_mails() {
	local f; f=$(grep -l "Subject: $1" "$W"/spool/*/*.eml | head -1)
	[ -n "$f" ] || { echo "no message"; return; }
	python3 "$MX" --segment-mails "$(dirname "$f")/conn-$(jq -r .conn "${f%.eml}.json").cmds" "$(basename "$f" .eml)"
}
check "SMTP smuggling: no second message from the smuggled commands: the MX (reading end-of-data leniently) saw one MAIL on that connection" \
	"$(segment_mails smuggle1) $(grep -l '^MAIL FROM:<evil@x>' "$W"/spool/*/conn-*.cmds 2>/dev/null | wc -l)" "1 0"
check "SMTP smuggling: the normalised \".\" line is stuffed upstream" "$(grep -c '^\.\.' "$(grep -l smuggle1 "$W"/spool/*/*.eml)")" "1"
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@good.%s>\nC: DATA\nR: Subject: smuggle2\\r\\n\\r\\nx\\r\\n.\\rMAIL FROM:<e@x>\\r\\n.\\r\\n\nW:\n' "$ZONE" "$ZONE" | dialog $RELAY)
check_match "SMTP smuggling: CR LF . CR (bare CR) is not an end of data" "$(echo $out)" "354 go ahead 250 2\.0\.0"
check "SMTP smuggling: bare CR normalised, no bare CR reaches upstream" "$(grep -cP '\r.' "$(grep -l smuggle2 "$W"/spool/*/*.eml)")" "0"
check "SMTP smuggling: ... and the MX saw one MAIL on that connection" "$(segment_mails smuggle2) $(grep -l '^MAIL FROM:<e@x>' "$W"/spool/*/conn-*.cmds 2>/dev/null | wc -l)" "1 0"

out=$(printf 'C: EHLO t\nR: STARTTLS\\r\\nRSET\\r\\n\nW:\nW:\n' | dialog $RELAY)
check_match "STARTTLS injection on the client leg refused, connection closed" "$(echo $out)" "554 5\.5\.1 .*injection refused CLOSED"
out=$(printf 'C: EHLO t\nC: STARTTLS\nT:\nC: EHLO t\nC: QUIT\n' | dialog $RELAY)
check_match "client STARTTLS with the configured certificate" "$(echo $out)" "220 2\.0\.0 Ready to start TLS TLS TLSv1\.[23]"
check_match "after STARTTLS EHLO no longer offers STARTTLS" "$(printf '%s' "$out" | sed -n 5p)" "^250-relay.$ZONE"

out=$(printf 'C: EHLO t\nP: MAIL FROM:<a@client.%s>\nP: RCPT TO:<x@good.%s>\nP: RCPT TO:<y@plain.%s>\nP: RCPT TO:<reject9@good.%s>\nC: DATA\nW:\nW:\nW:\nW:\nR: Subject: pipelined\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' "$ZONE" "$ZONE" "$ZONE" "$ZONE" | dialog $RELAY)
check_match "PIPELINING: replies in order, 452 4.5.3 for the other domain" "$out" "250 2\.1\.0 Ok
250 2\.1\.5 recipient ok
452 4\.5\.3 Recipient domain plain\.$ZONE differs from good\.$ZONE in this transaction; send it in a new transaction \[stsproxy session [0-9a-f]{16}\]
250 2\.1\.5 recipient ok
354"
check "PIPELINING: the pipelined message arrived once" "$(arrived pipelined)" "mx1.good"
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@nofetch.%s>\nC: DATA\nR: Subject: nofetch1\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' "$ZONE" "$ZONE" | dialog $RELAY)
check "STS-45: a policy that cannot be fetched (no valid web certificate) leaves delivery to no-policy rules" "$(arrived nofetch1)" "mx.plain"


out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s> SMTPUTF8\nC: RCPT TO:<x@good.%s>\n' "$ZONE" "$ZONE" | dialog $RELAY)
check_match "SMTPUTF8 passed to an upstream offering it" "$out" "250 2\.1\.5"
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s> SIZE=99999999999\nC: MAIL FROM:<a@client.%s> FOO=1\nC: MAIL FROM:<\xc3\xa9@client.%s>\nC: RCPT TO:<x@[127.0.0.1]>\nC: VRFY x\nC: HELP\nC: NOOP\nC: RSET\nC: DATA\nC: QUIT\n' "$ZONE" "$ZONE" "$ZONE" | dialog $RELAY)
check_match "SIZE over the limit -> 552 5.3.4" "$out" "552 5\.3\.4"
check_match "unknown MAIL parameter -> 555 5.5.4" "$out" "555 5\.5\.4 Unsupported parameter FOO"
check_match "non-ASCII sender without SMTPUTF8 -> 553 5.6.7" "$out" "553 5\.6\.7"
check_match "RCPT before MAIL -> 503 5.5.1" "$out" "503 5\.5\.1 Need MAIL before RCPT"
check_match "VRFY -> 252" "$out" "252 2\.5\.0"
check_match "DATA without MAIL -> 503" "$out" "503 5\.5\.1 Need MAIL command"
check_match "QUIT -> 221" "$out" "221 2\.0\.0"

# ---- upstream connection reuse: never across a policy boundary --------------------
# nopol.$ZONE has no policy; reuse.$ZONE (enforce) shares its MX host, mx.shared,
# which nothing else uses: the only idle connection there is nopol's.
send_one() { # DOMAIN SUBJECT [RELAY]
	printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@%s.%s>\nC: DATA\nR: Subject: %s\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
		"$ZONE" "$1" "$ZONE" "$2" | dialog "${3:-$RELAY}"
}
for m in nopol:reuse1 reuse:reuse2 reuse:reuse3 reuse:reuse4; do send_one "${m%%:*}" "${m#*:}" > /dev/null; done
check "reuse: both domains delivered to the shared MX host" "$(arrived reuse1) $(arrived reuse2) $(arrived reuse3) $(arrived reuse4)" "mx.shared mx.shared mx.shared mx.shared"
check "reuse: an enforce domain never rides a connection opened for a domain without a policy" \
	"$([ "$(meta reuse1 .conn)" != "$(meta reuse2 .conn)" ] && echo separate)" "separate"
check "reuse: the next enforce transactions take the verified idle connection" \
	"$([ "$(meta reuse2 .conn)" = "$(meta reuse3 .conn)" ] && [ "$(meta reuse3 .conn)" = "$(meta reuse4 .conn)" ] && echo same)" "same"
check "reuse: the relay logged each reuse with the connection's TLS facts" \
	"$(grep -c "event=connection_reused domain=reuse\.$ZONE mx=mx\.shared\.$ZONE ip=127\.0\.4\.22 tls=TLSv1\.3 messages=[12] phase=strict" "$W/relay.log")" "2"
check_match "PIPELINING upstream (RFC 2920): the first RCPT goes out right behind MAIL, before its reply" \
	"$(grep -A1 'upstream=mx\.shared\.'"$ZONE"' >>> MAIL FROM' "$W/relay.log" | grep -c '>>> RCPT TO')" "^[1-9]"
check "... and every pipelined reply is matched to its command" "$(grep -c 'event=unexpected_reply' "$W/relay.log")" "0"
check "reuse: each reused delivery still gives one outcome line (TLS-RPT input)" \
	"$(grep 'event=outcome' "$W/relay.log" | grep "domain=reuse\.$ZONE" | grep -c 'action=delivered')" "3"
out=$(send_one idle idle1; send_one idle idle2)
check_match "an upstream that closes an idle connection as it is reused: the client still gets 250" \
	"$(echo $out | grep -o '250 2\.0\.0 Ok: queued' | wc -l)" "^2$"
check "... the message arrives exactly once" "$(grep -l '^Subject: idle2' "$W"/spool/mx.idle/*.eml | wc -l)" "1"
check "... on a fresh connection, logged, and not counted as a failed attempt" \
	"$([ "$(meta idle1 .conn)" != "$(meta idle2 .conn)" ] && echo fresh) $(grep -c 'event=reused_connection_lost mx=mx\.idle' "$W/relay.log") $(grep 'event=outcome' "$W/relay.log" | grep "domain=idle\.$ZONE" | grep -vc 'action=delivered')" \
	"fresh 1 0"
check "TLS session resumption: the fresh connection resumed the idle one's session" "$(meta idle2 .resumed)" "true"

out=$(printf 'C: EHLO t\n' | dialog $RELAY --source 127.0.0.1)
check_match "allow_clients: loopback client served" "$out" "^220 relay"
sed -i "s#^\[server\]#[server]\nallow_clients = 127.0.0.1/32\ncommand_timeout = 2s#; s#^max_connections_per_client = 20#max_connections_per_client = 2#" "$W/stsproxy.conf"
world_note "restarting the relay with allow_clients = 127.0.0.1/32"
kill "$RELAY_PID"; sleep 0.5
"$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay3.log" 2>&1 &
R3=$!
PIDS+=($R3)
sleep 0.5
out=$(printf 'C: EHLO t\n' | dialog $RELAY --source 127.0.0.9)
check_match "never an open relay: client outside allow_clients gets 554 5.7.1 at connect" "$out" "^554 5\.7\.1 .*127\.0\.0\.9 is not allowed"
check_match "... and the refusal is logged" "$(grep event=client_refused "$W/relay3.log")" "client=127.0.0.9"

# ---- SIGHUP reload under traffic --------------------------------------------------
# A transaction stays open across both reloads and must still end in 250.
printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@good.%s>\nZ: 1.5\nC: DATA\nR: Subject: reload1\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" | dialog $RELAY > "$W/reload-dialog.out" &
DLG=$!
sleep 0.3
cp "$W/stsproxy.conf" "$W/stsproxy.conf.good"
sed -i 's#^allow_clients = 127.0.0.1/32#allow_clients = 127.0.0.0/8#' "$W/stsproxy.conf"
kill -HUP "$R3"; sleep 0.3
check_match "SIGHUP reloads the configuration" "$(grep -c event=reloaded "$W/relay3.log")" "^1$"
out=$(printf 'C: EHLO t\nC: QUIT\n' | dialog $RELAY --source 127.0.0.9)
check_match "... and a widened allow_clients applies to new clients at once" "$(echo $out)" "^220 .*221 "
printf 'bogus_key = 1\n' >> "$W/stsproxy.conf"
kill -HUP "$R3"; sleep 0.3
check_match "a bad file on SIGHUP is refused, naming file, line and key" \
	"$(grep event=reload_failed "$W/relay3.log" | head -1)" "stsproxy\\.conf:[0-9]+: .*unknown key 'bogus_key'"
out=$(printf 'C: EHLO t\nC: QUIT\n' | dialog $RELAY --source 127.0.0.9)
check_match "... and the running configuration stays in force" "$(echo $out)" "^220 .*221 "
wait "$DLG" 2>/dev/null
check_match "the transaction open across both reloads was delivered (250, not dropped)" \
	"$(echo $(cat "$W/reload-dialog.out"))" "250 2\\.0\\.0 Ok: queued"
check "... exactly once" "$(grep -l '^Subject: reload1' "$W"/spool/*/*.eml | wc -l)" "1"
cp "$W/stsproxy.conf.good" "$W/stsproxy.conf"
kill -HUP "$R3"; sleep 0.3
out=$(python3 - <<'PY'
import socket
socks = []
for i in range(3):
    s = socket.create_connection(("127.0.0.1", 8461)); socks.append(s)
    print(s.makefile("rb").readline().decode().strip())
PY
)
check_match "max_connections_per_client: the third connection gets 421 4.7.0" "$(echo $out)" "^220 .* 220 .* 421 4\.7\.0 relay\.$ZONE Too many connections from 127\.0\.0\.1"
out=$(printf 'C: EHLO t\nZ: 3\nW:\n' | dialog $RELAY)
check_match "command_timeout: an idle client gets 421 4.4.2 and is closed" "$(echo $out)" "421 4\.4\.2 relay\.$ZONE Timeout, closing connection"
out=$(printf 'C: EHLO t\nC: QUIT\n' | dialog "[::1]:8461" 2>&1)
check_match "listens on IPv6 too ([::1]:8461) but ::1 is not allowed now" "$out" "554 5\.7\.1"

twice=
for m in good1 enf1 wild1 testing1 plain1 opp1 rej1 implicit1 alias1 sim1 pipelined; do
	[ "$(grep -l "^Subject: $m"$'\r'"\$" "$W"/spool/*/*.eml | wc -l)" = 1 ] || twice="$twice $m"
done
check "SMTP-11: every delivered message arrived exactly once" "$twice" ""
check_match "every upstream attempt logged one outcome line with the session id" \
	"$(grep -c 'event=outcome' "$W/relay.log") $(grep -cE ' session=[0-9a-f]{16} event=outcome ' "$W/relay.log")" "^([1-9][0-9]+) \\1$"

# ---- shutdown: a transaction stuck mid-body gets 421 at shutdown_timeout --------
sed -i 's#^\[server\]#[server]\nshutdown_timeout = 1s#' "$W/stsproxy.conf"
kill -HUP "$R3"; sleep 0.3
printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@good.%s>\nC: DATA\nR: Subject: abort1\\r\\n\\r\\npartial\\r\\n\nZ: 1.8\nW:\nW:\n' \
	"$ZONE" "$ZONE" | dialog $RELAY > "$W/abort-dialog.out" &
DLG=$!
sleep 0.5
kill -TERM "$R3"
wait "$DLG" 2>/dev/null
check_match "SIGTERM: a transaction still open at shutdown_timeout gets 421 4.3.2, never a 250" \
	"$(echo $(cat "$W/abort-dialog.out"))" "354 go ahead 421 4\\.3\\.2 .*CLOSED$"
check "... and nothing half-sent was delivered" "$(grep -l '^Subject: abort1' "$W"/spool/*/*.eml 2>/dev/null | wc -l)" "0"
for _ in $(seq 30); do grep -q event=stopped "$W/relay3.log" && break; sleep 0.1; done
check_match "... then the relay exits" "$(grep -E 'event=(shutdown_timeout|stopped)' "$W/relay3.log" | cut -d' ' -f3 | tr '\n' ' ')" "event=shutdown_timeout event=stopped"

# ---- JSON log lines (log_format = json) ---------------------------------------
STSPROXY_LOG_FORMAT=json STSPROXY_SERVER_LISTEN="127.0.0.1:10097 unix:$W/smtp.sock" STSPROXY_SERVER_UNIX_MODE=0600 \
	STSPROXY_METRICS_LISTEN=127.0.0.1:9187 \
	STSPROXY_PID_FILE="$W/state/stsproxy.pid" "$STSPROXY" -c "$W/stsproxy.conf" serve --foreground > "$W/relay-json.log" 2>&1 &
RJ=$!
sleep 0.5
check "pid_file holds the pid of serve --foreground" "$(cat "$W/state/stsproxy.pid" 2>/dev/null)" "$RJ"
check "a unix: listener is created with unix_mode" "$(stat -c '%F %a' "$W/smtp.sock" 2>/dev/null)" "socket 600"
check_match "... and serves SMTP to local clients" "$(printf 'C: EHLO local\nC: QUIT\n' | dialog "unix:$W/smtp.sock" | tr '\n' ' ')" "^220 .*250-relay\\.$ZONE Hello local \\[unix\\].*221 "
printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@good.%s>\nC: QUIT\n' "$ZONE" "$ZONE" | dialog 127.0.0.1:10097 > /dev/null
printf 'C: EHLO t\n' | dialog 127.0.0.1:10097 --source 127.0.0.9 > /dev/null
sleep 0.3
http_get() { python3 -c 'import sys, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode())' "$1"; }
http_get http://127.0.0.1:9187/metrics > "$W/metrics.out"
check "metrics: /metrics answers 200" "$(head -1 "$W/metrics.out")" "200"
tail -n +2 "$W/metrics.out" > "$W/metrics.txt"
check "metrics: the exposition passes promtool check metrics" "$(promtool check metrics < "$W/metrics.txt" > "$W/promtool.out" 2>&1; echo $?)" "0"
check_match "metrics: connections counted" "$(grep '^stsproxy_connections_total ' "$W/metrics.txt")" "^stsproxy_connections_total [1-9]"
check_match "metrics: refused clients counted by reason" "$(grep '^stsproxy_connections_refused_total{' "$W/metrics.txt")" 'reason="not_allowed"} 1$'
check_match "metrics: upstream attempts by mode, action and result" "$(grep '^stsproxy_upstream_attempts_total{' "$W/metrics.txt")" 'mode="enforce",action="delivered",result="none"} 1$'
check_match "metrics: upstream TLS versions" "$(grep '^stsproxy_upstream_tls_total{' "$W/metrics.txt")" 'version="TLSv1.3"} 1$'
check_match "metrics: time to a ready upstream, as a histogram" "$(grep '^stsproxy_upstream_ready_seconds_count' "$W/metrics.txt")" " 1$"
check "health: /healthz answers 200 while serving" "$(http_get http://127.0.0.1:9187/healthz | head -1)" "200"
check_match "metrics: DNS answers by rcode and DNSSEC state" "$(grep '^stsproxy_dns_answers_total{' "$W/metrics.txt" | tr '\n' ' ')" 'result="NOERROR",security="(secure|insecure)"} [1-9]'
check_match "metrics: upstream reply latency by command, as a labelled histogram" \
	"$(grep '^stsproxy_upstream_reply_seconds_count{' "$W/metrics.txt" | tr '\n' ' ')" \
	'command="greeting"} 1 .*command="rcpt"} 1 '
kill "$RJ"; sleep 0.5
check "... and the pid file is removed at exit" "$([ -e "$W/state/stsproxy.pid" ] && echo left || echo removed)" "removed"
check "log_format = json: every line is a JSON object with ts and level" \
	"$(jq -c 'select(has("ts") and has("level"))' "$W/relay-json.log" 2>/dev/null | wc -l)" "$(wc -l < "$W/relay-json.log")"
check_match "... with the key=value pairs as members (session id, upstream outcome)" \
	"$(jq -r 'select(.event == "outcome") | .session + " " + .domain + " " + .result' "$W/relay-json.log" | head -1)" \
	"^[0-9a-f]{16} good\\.$ZONE none$"

# ---- log_target = file, SIGUSR1 reopen, log_levels, /healthz on a dead resolver --
mkdir -p "$W/logs" && chown stsproxy "$W/logs"
STSPROXY_LOG_TARGET=file STSPROXY_LOG_FILE="$W/logs/relay.log" STSPROXY_LOG_LEVELS="dns=debug smtp=warning" \
	STSPROXY_SERVER_LISTEN=127.0.0.1:10096 STSPROXY_METRICS_LISTEN=127.0.0.1:9188 \
	STSPROXY_DNS_FORWARDERS=127.0.9.9 STSPROXY_DNS_TIMEOUT=1s \
	"$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay-file.out" 2>&1 &
RF=$!
PIDS+=($RF)
for _ in $(seq 50); do grep -q event=started "$W/logs/relay.log" 2>/dev/null && break; sleep 0.1; done
check "log_target = file: nothing on stderr, lines in log_file" \
	"$(wc -c < "$W/relay-file.out") $(grep -c 'event=started' "$W/logs/relay.log")" "0 1"
for _ in $(seq 50); do grep -q event=dns_probe_failed "$W/logs/relay.log" && break; sleep 0.1; done
check_match "health: the start-up probe finds nothing at the forwarder: /healthz 503 at once, with the hint" \
	"$(echo $(http_get http://127.0.0.1:9188/healthz))" "^503 resolver: DNS probe failed \(forwarders: 127\.0\.9\.9: .*\): no forwarder answers"
printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@dead1.%s>\nC: RSET\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@dead2.%s>\nC: QUIT\n' \
	"$ZONE" "$ZONE" "$ZONE" "$ZONE" | dialog 127.0.0.1:10096 > "$W/deaddns.out"
check "a silent resolver: the client gets 451 4.4.3 for each MX lookup" "$(grep -c '^451 4\.4\.3' "$W/deaddns.out")" "2"
health=$(http_get http://127.0.0.1:9188/healthz)
check_match "health: /healthz answers 503 with the reason once the resolver stops answering" \
	"$(echo $health)" "^503 .*resolver: [0-9]+ queries in a row unanswered"
check_match "log_levels: dns=debug writes the resolver's debug lines, log_level stays info elsewhere" \
	"$(grep -c 'level=debug' "$W/logs/relay.log") $(grep 'level=debug' "$W/logs/relay.log" | grep -vc 'event=mx_\|event=dns_')" "^[1-9][0-9]* 0$"
check "log_levels: smtp=warning silences the session's info lines" "$(grep -c 'event=connect \|event=client_disconnected' "$W/logs/relay.log")" "0"
mv "$W/logs/relay.log" "$W/logs/relay.log.1"
kill -USR1 "$RF"; sleep 0.3
check "SIGUSR1 reopens log_file after rotation (created anew, owned by the relay's user)" \
	"$(grep -c 'event=log_reopened' "$W/logs/relay.log" 2>/dev/null) $(stat -c %U "$W/logs/relay.log" 2>/dev/null)" "1 stsproxy"
check "... and the rotated file gets no more lines" "$(grep -c 'event=log_reopened' "$W/logs/relay.log.1")" "0"
kill "$RF"; sleep 0.3

# ---- workers: one supervisor, several relay processes on one address ------------
STSPROXY_WORKERS=2 STSPROXY_SERVER_LISTEN=127.0.0.1:10095 STSPROXY_METRICS_LISTEN=127.0.0.1:9189 \
	STSPROXY_PID_FILE="$W/state/workers.pid" "$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay-workers.log" 2>&1 &
RW=$!
PIDS+=($RW)
for _ in $(seq 50); do [ "$(grep -c 'event=started' "$W/relay-workers.log")" -ge 2 ] && break; sleep 0.1; done
check "workers = 2: a supervisor (the pid file's) and two workers, each its own relay" \
	"$(cat "$W/state/workers.pid" 2>/dev/null) $(pgrep -P "$RW" | wc -l) $(grep -c 'event=started .*worker=[01]$' "$W/relay-workers.log")" "$RW 2 2"
for i in $(seq 10); do printf 'C: EHLO t%s\nC: QUIT\n' "$i" | dialog 127.0.0.1:10095 > /dev/null; done
check "workers: mail flows through whichever worker the kernel picks" \
	"$(send_one reuse workers1 127.0.0.1:10095 | grep -c '^250 2\.0\.0 Ok: queued') $(arrived workers1)" "1 mx.shared"
check_match "workers: /metrics sums every worker's counters" \
	"$(http_get http://127.0.0.1:9189/metrics | grep '^stsproxy_connections_total ')" "^stsproxy_connections_total 11$"
kill "$RW"; sleep 1
check "workers: SIGTERM stops the workers, then the supervisor, which removes the pid file" \
	"$(kill -0 "$RW" 2>/dev/null && echo running || echo stopped) $(grep -c 'event=stopped' "$W/relay-workers.log") $([ -e "$W/state/workers.pid" ] && echo left || echo removed)" \
	"stopped 3 removed"

# Stop the relay and make sure it left cleanly (under ASan: no error, no leak).
for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
sleep 1
check "the relay ran without sanitizer reports" \
	"$(cat "$W"/relay*.log | grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:')" "0"
check_match "the relay stops cleanly on SIGTERM" "$(tail -1 "$W/relay3.log")" "event=stopped"

# ---- TLS-RPT: what the relay recorded (flushed at stop), as reports --------
TODAY=$(date -u +%F)
rpt() { "$STSPROXY" -c "$W/stsproxy.conf" report "$@" 2>>"$W/report.err"; }
check_match "report list: enf had 1 successful and 2 failed sessions" \
	"$(rpt list --day "$TODAY" | grep " enf\.$ZONE ")" "enf\.$ZONE +1 +1 +2$"
for d in enf allbad testing plain good; do
	rpt show "$d.$ZONE" --day "$TODAY" --json > "$W/report-$d.json"
	check "RPT-7/8: the $d report validates against the RFC 8460 schema (python3-jsonschema)" \
		"$("$DEBPY" "$E2E_DIR/validate_report.py" "$E2E_DIR/../data/tlsrpt-report.schema.json" "$W/report-$d.json" | tail -1)" "valid"
done
rpt show "reuse.$ZONE" --day "$TODAY" --json > "$W/report-reuse.json"
check "TLS-RPT exact under reuse and workers: 4 messages (3 on one reused connection, 1 via a worker), 4 successful sessions, no failure" \
	"$(jq -c '[.policies[0].summary."total-successful-session-count", .policies[0].summary."total-failure-session-count"]' "$W/report-reuse.json")" "[4,0]"
fd() { jq -r "[.policies[].\"failure-details\"[]? | select(.\"result-type\" == \"$2\") | .\"failed-session-count\"] | add // 0" "$W/report-$1.json"; }
check "RPT §4.3: enf counts one starttls-not-supported" "$(fd enf starttls-not-supported)" "1"
check "RPT §4.3: enf counts one certificate-expired" "$(fd enf certificate-expired)" "1"
check "RPT §4: enf summary has the successful session" \
	"$(jq '.policies[0].summary."total-successful-session-count"' "$W/report-enf.json")" "1"
check "RPT §4.4: policy-string holds the policy lines, mx-host the patterns" \
	"$(jq -c '.policies[0].policy | [."policy-string"[1], ."mx-host"]' "$W/report-enf.json")" \
	"[\"mode: enforce\",[\"*.enf.$ZONE\"]]"
check "RPT §4.3: allbad counts the name mismatch, the untrusted CA and the skipped MX" \
	"$(fd allbad certificate-host-mismatch) $(fd allbad certificate-not-trusted) $(jq '[.policies[]."failure-details"[]? | select(."failure-reason-code" == "mx-not-in-sts-policy")] | length' "$W/report-allbad.json")" "1 1 1"
check_match "RPT §4.3: failure details carry the MX, its IP, our IP and its HELO" \
	"$(jq -cS '.policies[]."failure-details"[]? | select(."result-type" == "certificate-not-trusted")' "$W/report-allbad.json")" \
	"\"receiving-ip\":\"127\.0\.4\.7\".*\"receiving-mx-helo\":\"untrusted\".*\"receiving-mx-hostname\":\"untrusted\.allbad\.$ZONE\".*\"sending-mta-ip\":\"127\."
check "RPT §4.3.4: connection failures (dead MX) are not reported" \
	"$(jq '[.policies[]."failure-details"[]? | select(."receiving-mx-hostname" == "dead.allbad.'"$ZONE"'")] | length' "$W/report-allbad.json")" "0"
check "no policy: reported as no-policy-found with starttls-not-supported" \
	"$(jq -r '.policies[0].policy."policy-type" + " " + (.policies[0]."failure-details"[0]."result-type")' "$W/report-plain.json")" \
	"no-policy-found starttls-not-supported"
rpt show "nofetch.$ZONE" --day "$TODAY" --json > "$W/report-nofetch.json"
check "STS-45, RPT §4.3.2.2: the failed policy fetch is in the report with no MX, under policy-type sts" \
	"$(jq -r '[.policies[] | .policy."policy-type" as $t | ."failure-details"[]? | select(."receiving-mx-hostname" == null) | $t + " " + ."result-type"] | join(",")' "$W/report-nofetch.json")" \
	"sts sts-webpki-invalid"
check "RPT-16: the report id is stable for day, domain and submitter" \
	"$(jq -r '."report-id"' "$W/report-good.json")" "$TODAY.good.$ZONE@relay.$ZONE"

# ---- a report as DKIM-signed mail (RPT-14 ... RPT-17) --------------------------
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$W/dkim-rsa.pem" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$W/dkim-ed.pem" 2>/dev/null
rsa_p=$(openssl pkey -in "$W/dkim-rsa.pem" -pubout -outform DER 2>/dev/null | base64 -w0)
# RFC 8463 §4.2: an Ed25519 key record holds the raw 32-byte public key.
ed_p=$(openssl pkey -in "$W/dkim-ed.pem" -pubout -outform DER 2>/dev/null | tail -c 32 | base64 -w0)
cp "$W/stsproxy.conf" "$W/mail.conf"
printf '\n[report]\ncontact = tlsrpt@relay.%s\ndkim_key = %s %s\ndkim_selector = r2026 e2026\n' \
	"$ZONE" "$W/dkim-rsa.pem" "$W/dkim-ed.pem" >> "$W/mail.conf"
"$STSPROXY" -c "$W/mail.conf" report show "enf.$ZONE" --day "$TODAY" --mail "tlsrpt@reports.$ZONE" > "$W/report.eml" 2>>"$W/report.err"
"$STSPROXY" -c "$W/mail.conf" report show "enf.$ZONE" --day "$TODAY" --json > "$W/report-enf-mail.json" 2>>"$W/report.err"
facts=$("$DEBPY" "$E2E_DIR/check_report_mail.py" "$W/report.eml" "$W/report-enf-mail.json" \
	"r2026._domainkey.relay.$ZONE=v=DKIM1; k=rsa; s=tlsrpt; p=$rsa_p" \
	"e2026._domainkey.relay.$ZONE=v=DKIM1; k=ed25519; s=tlsrpt; p=$ed_p" 2>&1)
check "RPT-17: rsa-sha256 signature verified by python3-dkim, no l=, TLS-Report headers signed" \
	"$(printf '%s\n' "$facts" | grep '^dkim rsa-sha256')" "dkim rsa-sha256: pass l=no h-has-tls-report=yes"
check "RPT-17: ed25519-sha256 signature (RFC 8463) verified by python3-dkim" \
	"$(printf '%s\n' "$facts" | grep '^dkim ed25519-sha256')" "dkim ed25519-sha256: pass l=no h-has-tls-report=yes"
check "RPT-14: multipart/report; report-type=tlsrpt" "$(printf '%s\n' "$facts" | grep '^content-type')" \
	"content-type: multipart/report report-type=tlsrpt"
check "RPT-14: a text part, then the gzipped report" "$(printf '%s\n' "$facts" | grep '^parts')" \
	"parts: text/plain application/tlsrpt+gzip"
check "RPT-15: TLS-Report-Domain and TLS-Report-Submitter (the contact's domain)" \
	"$(printf '%s\n' "$facts" | grep '^tls-report' | tr '\n' ' ')" "tls-report-domain: enf.$ZONE tls-report-submitter: relay.$ZONE "
check "RPT-16: the Subject" "$(printf '%s\n' "$facts" | grep '^subject')" \
	"subject: Report Domain: enf.$ZONE Submitter: relay.$ZONE Report-ID: <$TODAY.enf.$ZONE@relay.$ZONE>"
check_match "RPT-11: the attachment's file name" "$(printf '%s\n' "$facts" | grep '^filename')" \
	"^filename: relay\.$ZONE!enf\.$ZONE![0-9]+![0-9]+![0-9]+\.json\.gz$"
check "RPT-14: the attachment is the report" "$(printf '%s\n' "$facts" | grep '^attachment')" "attachment-equals-report: yes"
sed -i 's/^Subject: Report/Subject: Changed report/' "$W/report.eml"
check_match "DKIM check can fail: a changed Subject breaks both signatures" \
	"$("$DEBPY" "$E2E_DIR/check_report_mail.py" "$W/report.eml" "$W/report-enf-mail.json" \
	"r2026._domainkey.relay.$ZONE=v=DKIM1; k=rsa; p=$rsa_p" "e2026._domainkey.relay.$ZONE=v=DKIM1; k=ed25519; p=$ed_p" 2>&1 | grep -c ': fail')" "^2$"

# ---- delivery to an https: rua (RPT-13) -------------------------------------
python3 "$E2E_DIR/httpsreceiver.py" 127.0.2.20:443 "$W/certs/reports.pem" "$W/certs/reports.key" \
	"$W/received" > "$W/receiver.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/receiver.out" ] && break; sleep 0.1; done
out=$(rpt send --day "$TODAY" --domain "enf.$ZONE" --dry-run)
check_match "report send --dry-run names the destinations and the RPT-11 file name" "$(echo $out)" \
	"enf\.$ZONE https://reports\.$ZONE/tlsrpt/enf would send relay\.$ZONE!enf\.$ZONE![0-9]+![0-9]+![0-9]+\.json\.gz"
check "--dry-run posts nothing" "$(ls "$W/received" 2>/dev/null | wc -l)" "0"
out=$(rpt send --day "$TODAY" --domain "enf.$ZONE"); rc=$?
check_match "RPT-13: the enf report is POSTed and accepted" "$out" "enf\.$ZONE  https://reports\.$ZONE/tlsrpt/enf  delivered \(HTTP 201\)"
check "... exit status 0 when every destination took it" "$rc" "0"
check "RPT-13: Content-Type application/tlsrpt+gzip" "$(jq -r '.headers["Content-Type"]' "$W/received/1.json")" "application/tlsrpt+gzip"
check "RPT-12: the body is the gzipped report, identical to report show" \
	"$(gunzip -c < "$W/received/1.body" | jq -S -c .)" "$(jq -S -c . "$W/report-enf.json")"
check_match "mailto destinations are listed as not yet delivered" "$out" "mailto:tlsrpt@reports\.$ZONE  skipped"
out=$(rpt send --day "$TODAY" --domain "allbad.$ZONE"); rc=$?
check_match "RPT-13: a 500 answer is a failed delivery" "$out" "failed: reports\.$ZONE answered HTTP 500"
check "... and the exit status says so" "$rc" "1"
out=$(rpt send --day "$TODAY" --domain "good.$ZONE")
check_match "no report for a day without failures (send_success_only_reports = no)" "$out" "no report: no failures"
out=$(rpt send --day "$TODAY" --domain "testing.$ZONE")
check_match "RPT-4: no _smtp._tls record, no report" "$out" "no report: _smtp\._tls\.testing\.$ZONE: no TXT record starts with v=TLSRPTv1"

# ---- report read: what the rua's owner makes of our reports --------------------
# The enf report three ways: the signed mail, the POSTed gzip body, the JSON.
rpt read "$W/report.eml" "$W/received/1.body" "$W/report-enf.json" --json > "$W/read-enf.json"; rc=$?
check_match "report read: our mail, gzip and JSON forms are valid, without a warning" \
	"$rc $(jq -c '[.reports[].where, ([.reports[].warnings[]] | length), (.malformed | length)]' "$W/read-enf.json")" \
	"^0 \\[\"attachment relay\\.$ZONE!enf\\.$ZONE![0-9]+![0-9]+![0-9]+\\.json\\.gz\",\"gzip\",\"json\",0,0\\]$"
check "RPT-16: one report, counted once, with the report's own sums" \
	"$(jq -c '[([.reports[] | select(.duplicate)] | length), (.domains[] | [."policy-domain", ."successful-sessions", ."failed-sessions"])]' "$W/read-enf.json")" \
	"$(jq -c '[2, ["enf.'"$ZONE"'", ([.policies[].summary."total-successful-session-count"] | add), ([.policies[].summary."total-failure-session-count"] | add)]]' "$W/report-enf.json")"


# ---- the daemon sends yesterday's reports by itself (RPT-10, RPT-19) ---------
# Tomorrow, through the injectable clock: the traffic day is now yesterday.
# The contact in its mailto: form (issue 11 §4): the mail must still come from the bare address.
printf '\n[report]\nmax_delay = 0\nretry_interval = 3s\nflush_interval = 1s\ncontact = mailto:tlsrpt@relay.%s\ndkim_key = %s %s\ndkim_selector = r2026 e2026\n' \
	"$ZONE" "$W/dkim-rsa.pem" "$W/dkim-ed.pem" >> "$W/stsproxy.conf"
posts() { grep -l "\"path\": \"$1\"" "$W"/received/*.json 2>/dev/null | wc -l; }
wait_log() { for _ in $(seq 150); do grep -qE -- "$2" "$1" && return 0; sleep 0.1; done; return 1; }
# The MX of the mailto: rua, without STARTTLS (RPT-18: report mail goes out anyway).
mx 127.0.4.20 mx.reports "" nostarttls
for _ in $(seq 50); do [ -s "$W/mx-mx.reports.out" ] && break; sleep 0.1; done
STSPROXY_TEST_TIME_OFFSET=86400 "$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay4.log" 2>&1 &
R4=$!
wait_log "$W/relay4.log" "event=report_retry domain=sim\\.$ZONE"
check "RPT-19: the first POST to a flaky receiver failed and a retry is scheduled" "$(posts /flaky/sim)" "1"
kill "$R4"; sleep 0.5
check_match "the daemon delivered enf's report on its own" "$(grep 'event=report_delivered' "$W/relay4.log")" "domain=enf\\.$ZONE"
STSPROXY_TEST_TIME_OFFSET=86400 "$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay5.log" 2>&1 &
R5=$!
wait_log "$W/relay5.log" "event=report_delivered domain=sim\\.$ZONE"
kill "$R5"; sleep 0.5
check "RPT-19: after a restart the pending report was retried and accepted" "$(posts /flaky/sim)" "2"
last=$(grep -l '"path": "/flaky/sim"' "$W"/received/*.json | sort -V | tail -1)
check "... with the same report (same report-id)" "$(gunzip -c < "${last%.json}.body" | jq -r '."report-id"')" "$TODAY.sim.$ZONE@relay.$ZONE"
check_match "a receiver that keeps failing stays pending, with its reason logged" "$(grep 'event=report_retry domain=allbad' "$W/relay4.log" "$W/relay5.log" | head -1)" "answered HTTP 500"
check "issue 13 §3: enf, POSTed by report send above, is not POSTed again by the daemon, nor after its restart" "$(posts /tlsrpt/enf)" "1"
check_match "... and the daemon says why" "$(grep 'event=report_skipped day=.* domain=enf\.' "$W/relay4.log")" \
	"rua=https://reports\.$ZONE/tlsrpt/enf reason=\"already delivered on [0-9TZ:-]+ by report send\""
mailed=$(grep -l "^TLS-Report-Domain: enf.$ZONE" "$W"/spool/mx.reports/*.eml 2>/dev/null | head -1)
check "RPT-14: the mailto: report of enf arrived at the rua domain's MX" "$([ -n "$mailed" ] && echo yes)" "yes"
if [ -n "$mailed" ]; then
	# The spool keeps the dot-stuffed DATA; undo the stuffing and the terminator.
	sed -e '$d' -e 's/^\.\././' "$mailed" > "$W/mailed.eml"
	"$STSPROXY" -c "$W/stsproxy.conf" report show "enf.$ZONE" --day "$TODAY" --json > "$W/report-enf-now.json" 2>>"$W/report.err"
	check "RPT-17: the mailed report's two DKIM signatures verify (python3-dkim)" \
		"$("$DEBPY" "$E2E_DIR/check_report_mail.py" "$W/mailed.eml" "$W/report-enf-now.json" \
		"r2026._domainkey.relay.$ZONE=v=DKIM1; k=rsa; s=tlsrpt; p=$rsa_p" \
		"e2026._domainkey.relay.$ZONE=v=DKIM1; k=ed25519; s=tlsrpt; p=$ed_p" 2>&1 | grep -c ': pass')" "2"
	check "RPT-18: sent although the MX offers no STARTTLS, envelope from the contact (mailto: dropped)" \
		"$(jq -r '(.tls // "cleartext") + " " + .mail' "${mailed%.eml}.json")" "cleartext FROM:<tlsrpt@relay.$ZONE>"
	check "contact = mailto:ADDRESS gives a valid From: and contact-info" \
		"$(grep -m1 '^From:' "$W/mailed.eml" | tr -d '\r') $(jq -r '."contact-info"' "$W/report-enf-now.json")" \
		"From: TLS reports <tlsrpt@relay.$ZONE> tlsrpt@relay.$ZONE"
fi
check_match "RPT-18: the report mail's session is logged as report=no" \
	"$(cat "$W/relay4.log" "$W/relay5.log" | grep "event=outcome domain=reports\\.$ZONE" | head -1)" "report=no$"
check "RPT-18: the report mail's session is left out of the reports" \
	"$(cat "$W/relay4.log" "$W/relay5.log" | grep "event=outcome domain=reports\\.$ZONE" | grep -vc "report=no\$")" "0"
# report send through [report] submission_relay, a fixed SMTP server.
python3 "$MX" --listen 127.0.4.21:2525 --name submit --spool "$W/spool" --behave nostarttls > "$W/mx-submit.out" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -s "$W/mx-submit.out" ] && break; sleep 0.1; done
printf 'submission_relay = 127.0.4.21:2525\n' >> "$W/mail.conf"
out=$("$STSPROXY" -c "$W/mail.conf" report send --day "$TODAY" --domain "enf.$ZONE" 2>>"$W/report.err")
check_match "issue 13 §3: report send does not mail again what the daemon mailed" "$out" \
	"mailto:tlsrpt@reports\\.$ZONE  already delivered on [0-9TZ:-]+ by daemon; not sent again \\(--force sends it again\\)"
check "... so nothing reached submission_relay" "$(ls "$W"/spool/submit | wc -l)" "0"
out=$("$STSPROXY" -c "$W/mail.conf" report send --day "$TODAY" --domain "enf.$ZONE" --force 2>>"$W/report.err")
check_match "report send --force mails the mailto: report through submission_relay" "$out" "mailto:tlsrpt@reports\\.$ZONE  delivered \\(mail accepted\\)"
check "... and it arrived there, addressed to the rua" "$(jq -r '.rcpts[0]' "$W"/spool/submit/1.json 2>/dev/null)" "<tlsrpt@reports.$ZONE>"
check "the report sender ran without sanitizer reports" \
	"$(cat "$W/relay4.log" "$W/relay5.log" | grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:')" "0"
[ "$FAIL" -gt 0 ] && { world_note "relay log:"; sed 's/^/#   /' "$W/relay.log" | tail -80; world_note "postfix log:"; sed 's/^/#   /' "$PF/maillog" | tail -40; }
postfix -c "$PF" stop >/dev/null 2>&1
world_summary
