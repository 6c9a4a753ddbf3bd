#!/usr/bin/env bash
# End-to-end hostile-input suite, protocol part (issue 12): what a client or
# an MX can send that must not fool the relay, each asserted on the bytes
# and replies that cross the wire.
#   - SMTP smuggling: every end-of-data look-alike (LF.LF, LF.CRLF, CR.CR,
#     CRLF.CR, CRLF.LF, CR.CRLF, LF.CR, NUL before the dot) against an MX
#     that reads end-of-data leniently and strips NUL, as vulnerable
#     receivers do: the MX must store exactly one message per transaction,
#     byte for byte what the filter promises, and see one MAIL per
#     transaction on its connection;
#   - a bare LF ending a command;
#   - malformed replies from the MX (100 lines, codes changing across
#     lines, a 10 KB line, a NUL, 354 to end of data, 250 to DATA) and an
#     MX that drops the connection at each phase: the client never gets a
#     2xx for a message the MX did not accept;
#   - a recipient in an internationalised domain, delivered under an
#     MTA-STS policy published for its A-label.
# Runs in its own network namespace on 127.x addresses; bounded to 2 minutes.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd nginx ldns-signzone drill jq openssl python3; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

STARTED=$(date +%s)
RELAY=127.0.0.1:10025
MX=$E2E_DIR/mxserver.py
DIALOG=$E2E_DIR/smtpdialog.py
IDN=xn--bcher-kva	# bücher

world_init
chmod 755 "$W"	# the relay reads the trust anchor as user stsproxy
world_ca_init "$W/ca" "stsproxy test CA"
mkdir -p "$W/certs" "$W/spool"
cert() { world_cert "$W/ca" "$W/certs/$1" "$2" "DNS:$2" || exit 1; }
cert idn-sts "mta-sts.$IDN.$ZONE"
cert idn-mx "mx.$IDN.$ZONE"
cert d-starttls "mx.d-starttls.$ZONE"

: > "$W/nginx.sites"
world_site "mta-sts.$IDN.$ZONE" "$W/certs/idn-sts"
printf 'version: STSv1\nmode: enforce\nmx: mx.%s.%s\nmax_age: 86400\n' "$IDN" "$ZONE" |
	world_policy "mta-sts.$IDN.$ZONE"

# One MX per case, each on its own address: lenient (smuggling), m-* (malformed replies), d-* (drops).
MALFORMED="lines100:lines100@eom mixed:mixed@eom long:long@eom nul:nul@eom 354:354@eom
	ehlo100:lines100@ehlo rcptmixed:mixed@rcpt data250:250@data"
DROPS="greeting ehlo starttls mail rcpt data body eom"
{
	printf 'lenient MX 10 mx.lenient.%s.\nmx.lenient A 127.0.5.1\n' "$ZONE"
	i=10; for m in $MALFORMED; do
		printf 'm-%s MX 10 mx.m-%s.%s.\nmx.m-%s A 127.0.5.%d\n' "${m%%:*}" "${m%%:*}" "$ZONE" "${m%%:*}" "$i"; i=$((i + 1))
	done
	i=30; for d in $DROPS; do
		printf 'd-%s MX 10 mx.d-%s.%s.\nmx.d-%s A 127.0.5.%d\n' "$d" "$d" "$ZONE" "$d" "$i"; i=$((i + 1))
	done
	printf '%s MX 10 mx.%s.%s.\nmx.%s A 127.0.5.50\n' "$IDN" "$IDN" "$ZONE" "$IDN"
	printf '_mta-sts.%s TXT "v=STSv1; id=idn1;"\nmta-sts.%s A %s\n' "$IDN" "$IDN" "$WEB_ADDR"
} | world_dns_records
world_dns_publish >/dev/null || exit 1
world_web_start || exit 1

mx() { # ADDR NAME CERT BEHAVE
	python3 "$MX" --listen "$1:25" --name "$2" --spool "$W/spool" \
		${3:+--cert "$W/certs/$3.pem" --key "$W/certs/$3.key"} --behave "$4" > "$W/mx-$2.out" 2>&1 &
	PIDS+=($!)
}
NMX=0
mx 127.0.5.1 mx.lenient "" record,lenient-eod; NMX=$((NMX + 1))
i=10; for m in $MALFORMED; do
	mx "127.0.5.$i" "mx.m-${m%%:*}" "" "record,malformed=${m#*:}"; i=$((i + 1)); NMX=$((NMX + 1))
done
i=30; for d in $DROPS; do
	mx "127.0.5.$i" "mx.d-$d" "$([ "$d" = starttls ] && echo d-starttls)" "record,drop=$d"; i=$((i + 1)); NMX=$((NMX + 1))
done
mx 127.0.5.50 "mx.$IDN" idn-mx record; NMX=$((NMX + 1))

world_conf "
[server]
listen = $RELAY
[upstream]
connect_timeout = 3s
command_timeout = 10s
"
printf 'hostname = relay.%s\n' "$ZONE" | cat - "$W/stsproxy.conf" > "$W/c" && mv "$W/c" "$W/stsproxy.conf"
"$STSPROXY" -c "$W/stsproxy.conf" -d serve > "$W/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
for _ in $(seq 50); do grep -q event=started "$W/relay.log" && break; sleep 0.1; done
for _ in $(seq 100); do
	[ "$(cat "$W"/mx-*.out 2>/dev/null | grep -c ready)" -ge "$NMX" ] && break
	sleep 0.1
done

dialog() { python3 "$DIALOG" "$RELAY"; }
# stored NAME: messages the MX NAME kept
stored() { ls "$W/spool/$1"/*.eml 2>/dev/null | wc -l; }
# last_conn NAME: the command log of the MX's last connection
last_conn() { ls -v "$W/spool/$1"/conn-*.cmds 2>/dev/null | tail -1; }
# body_is FILE ESCAPED: the stored DATA, after the relay's Received header,
# compared byte for byte with ESCAPED (Python escapes)
body_is() {
	python3 - "$1" "$2" <<'PY'
import sys
data = open(sys.argv[1], "rb").read()
want = sys.argv[2].encode().decode("unicode_escape").encode("latin-1")
lines = data.split(b"\r\n")
i = 1 if lines and lines[0].startswith(b"Received:") else 0
while i and i < len(lines) and lines[i].startswith(b"\t"):
    i += 1
got = b"\r\n".join(lines[i:])
print("identical" if got == want else "differs: %r" % got)
PY
}

# ---- SMTP smuggling: every variant, against a lenient MX -------------------
n=0
for v in 'LF.LF|\n.\n' 'LF.CRLF|\n.\r\n' 'CR.CR|\r.\r' 'CRLF.CR|\r\n.\r' 'CRLF.LF|\r\n.\n' \
	'CR.CRLF|\r.\r\n' 'LF.CR|\n.\r' 'CRLF NUL . CRLF|\r\n\x00.\r\n'; do
	n=$((n + 1)); name=${v%%|*}; seq=${v#*|}
	smuggled="MAIL FROM:<evil@e.$ZONE>\\r\\nRCPT TO:<victim@lenient.$ZONE>\\r\\nDATA\\r\\nSubject: evil-$n\\r\\n\\r\\nevil\\r\\n.\\r\\n"
	out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@lenient.%s>\nC: DATA\nR: Subject: variant-%d\\r\\n\\r\\nline1%s%s\nW:\nC: QUIT\n' \
		"$ZONE" "$ZONE" "$n" "$seq" "$smuggled" | dialog)
	check_match "smuggling $name: one final reply, the MX's 250" "$(echo "$out" | sed -n '6p')" "^250 2\.0\.0 Ok: queued as mx\.lenient-$n$"
	check "smuggling $name: the MX stored exactly one message for it ($n in all)" "$(stored mx.lenient)" "$n"
	check "smuggling $name: bytes at the MX = the client's body with a stuffed dot, smuggled commands as text" \
		"$(body_is "$W/spool/mx.lenient/$n.eml" "Subject: variant-$n\\r\\n\\r\\nline1\\r\\n..\\r\\n$smuggled")" "identical"
	check "smuggling $name: one MAIL in that stretch of the MX connection, none from the smuggled sender" \
		"$(python3 "$MX" --segment-mails "$W/spool/mx.lenient/conn-$(jq -r .conn "$W/spool/mx.lenient/$n.json").cmds" "$n") $(jq -r .mail "$W"/spool/mx.lenient/*.json | grep -c evil)" "1 0"
done
check "smuggling: no NUL and no bare CR or LF ever reached the MX (every byte of every connection)" \
	"$(python3 -c 'import glob, re, sys
bad = 0
for f in glob.glob(sys.argv[1] + "/conn-*.raw"):
    d = open(f, "rb").read()
    bad += d.count(b"\0") + len(re.findall(rb"\r(?!\n)|(?<!\r)\n", d))
print(bad)' "$W/spool/mx.lenient")" "0"
check_match "smuggling: the relay logged what it repaired" \
	"$(grep -c 'event=bare_newlines_normalised' "$W/relay.log") $(grep -c 'event=nul_removed count=1' "$W/relay.log")" "^7 1$"

# ---- bare LF as a command terminator (issue 12 item 8) ----------------------
out=$(printf 'C: EHLO t\nR: NOOP\\n\nW:\nW:\n' | dialog)
check "a command ending in a bare LF: 550 5.5.2 and the connection is closed" "$(echo "$out" | tail -2 | tr '\n' '|')" \
	"550 5.5.2 relay.$ZONE Error: bare <LF> received; command lines must end in CR LF (RFC 5321 section 2.3.8)|CLOSED|"
check_match "... logged with the session id" "$(grep 'event=bare_lf_command' "$W/relay.log")" "session=[0-9a-f]{16} event=bare_lf_command client=127\.0\.0\.1"

# ---- a malformed MX: never a 2xx for what it did not accept -----------------
# transaction DOMAIN SUBJECT: a whole transaction; prints the replies, one a line
transaction() {
	printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@%s.%s>\nC: DATA\nR: Subject: %s\\r\\n\\r\\nbody\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
		"$ZONE" "$1" "$ZONE" "$2" | dialog
}
# A 4xx of stsproxy's own names the session, so the client's queue leads to the log.
TAG=' \[stsproxy session [0-9a-f]{16}\]'
# replies OUT: the RCPT, DATA and end-of-data replies (lines 4 to 6) joined by |
replies() { echo "$1" | sed -n '4,6p' | tr '\n' '|'; }
# accepted OUT: how many messages the client saw accepted (250 2.0.0 to the end of data)
accepted() { echo "$1" | grep -c '^250 2\.0\.0 '; }
for m in $MALFORMED; do
	kind=${m%%:*}; how=${m#*:}
	out=$(transaction "m-$kind" "m-$kind")
	case $how in
	*@eom) want="250 2\.1\.5 recipient ok\|354 go ahead\|451 4\.4\.2 Upstream mx\.m-$kind\.$ZONE protocol error: [^|]*$TAG\|$" ;;
	*@data) want="250 2\.1\.5 recipient ok\|451 4\.4\.2 Upstream mx\.m-$kind\.$ZONE protocol error: 250 reply to DATA$TAG\|" ;;
	*@rcpt) want="451 4\.4\.2 Upstream mx\.m-$kind\.$ZONE protocol error: reply code changes inside a multi-line reply$TAG\|554 5\.5\.1 No valid recipients\|" ;;
	*@ehlo) want="451 4\.4\.1 No MX of m-$kind\.$ZONE reachable: mx\.m-$kind\.$ZONE protocol error: too many reply lines$TAG\|554 5\.5\.1" ;;
	esac
	check_match "malformed MX ($how): the client gets 4xx, never the MX's reply" "$(replies "$out")" "^$want"
	check "malformed MX ($how): no 250 to the end of data reached the client" "$(accepted "$out")" "0"
	check "malformed MX ($how): the relay hung up on it, no QUIT" "$(tail -1 "$(last_conn "mx.m-$kind")")" "EOF"
done
check_match "malformed replies: the reason reaches the client for each kind" \
	"$(grep -h 'event=upstream_lost .*mx=mx\.m-' "$W/relay.log" | grep -o 'reason=.*' | LC_ALL=C sort | tr '\n' '|')" \
	"^reason=\"250 reply to DATA\"\|reason=\"354 reply to the end of data\"\|reason=\"control character in reply\"\|reason=\"reply code changes inside a multi-line reply\"\|reason=\"reply code changes inside a multi-line reply\"\|reason=\"reply line too long\"\|reason=\"too many reply lines\"\|$"

# ---- an MX that drops the connection at each phase ---------------------------
for d in $DROPS; do
	out=$(transaction "d-$d" "d-$d")
	# A close with our pipelined bytes unread arrives as a reset, not an EOF.
	gone="(closed the connection in ${d^^}|Connection reset by peer)"
	case $d in
	greeting) want="451 4\.4\.1 No MX of d-$d\.$ZONE reachable: mx\.d-$d\.$ZONE (closed the connection in BANNER|Connection reset by peer)$TAG\|554 5\.5\.1" ;;
	ehlo|starttls|mail) want="451 4\.4\.1 No MX of d-$d\.$ZONE reachable: mx\.d-$d\.$ZONE $gone$TAG\|554 5\.5\.1" ;;
	rcpt) want="451 4\.4\.2 Upstream mx\.d-$d\.$ZONE $gone; message not delivered$TAG\|554 5\.5\.1" ;;
	data) want="250 2\.1\.5 recipient ok\|451 4\.4\.2 Upstream mx\.d-$d\.$ZONE $gone; message not delivered$TAG\|" ;;
	body) want="250 2\.1\.5 recipient ok\|354 go ahead\|451 4\.4\.2 Upstream mx\.d-$d\.$ZONE [^|]*; message not delivered$TAG\|$" ;;
	eom) want="250 2\.1\.5 recipient ok\|354 go ahead\|451 4\.4\.2 Upstream mx\.d-$d\.$ZONE $gone; message not delivered$TAG\|$" ;;
	esac
	check_match "MX drops at $d: the client gets 4xx, the message stays with it" "$(replies "$out")" "^$want"
	check "MX drops at $d: it stored nothing and the client got no 2xx after DATA" \
		"$(stored "mx.d-$d") $(accepted "$out")" "0 0"
done
check "MX drops: each drop happened where it was staged (the MX logged it)" \
	"$(for d in $DROPS; do grep -c DROPPED "$(last_conn "mx.d-$d")"; done | tr '\n' ' ')" "1 1 1 1 1 1 1 1 "

# ---- an internationalised recipient domain (issue 12 item 7) -----------------
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s> SMTPUTF8\nC: RCPT TO:<jörg@bücher.%s>\nC: DATA\nR: Subject: idn1\\r\\n\\r\\nhallo\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" | dialog)
check "IDN: RCPT TO:<jörg@bücher.$ZONE> with SMTPUTF8 is accepted and delivered" "$(replies "$out")" \
	"250 2.1.5 recipient ok|354 go ahead|250 2.0.0 Ok: queued as mx.$IDN-1|"
check "IDN: the MX got the address exactly as the client sent it, with SMTPUTF8" \
	"$(jq -r '(.rcpts | join(",")) + " " + .mail' "$W/spool/mx.$IDN/1.json" 2>/dev/null)" "<jörg@bücher.$ZONE> FROM:<a@client.$ZONE> SMTPUTF8"
check "IDN: over TLS with SNI = the MX's A-label name" "$(jq -r '.tls + " " + .sni' "$W/spool/mx.$IDN/1.json" 2>/dev/null)" "TLSv1.3 mx.$IDN.$ZONE"
check_match "IDN: the policy was fetched from mta-sts.<A-label>" "$(world_fetches "mta-sts.$IDN.$ZONE")" "^[1-9]"
check_match "IDN: the outcome is recorded under the A-label, enforce, passing" \
	"$(grep 'event=outcome' "$W/relay.log" | grep "domain=$IDN\.$ZONE ")" \
	"mode=enforce .*mx=mx\.$IDN\.$ZONE .*action=delivered .*sts=pass result=none"
check_match "IDN: the log gives both forms" "$(grep 'event=rcpt_idn' "$W/relay.log")" \
	"to=\"<jörg@bücher\.$ZONE>\" domain=\"bücher\.$ZONE\" a_label=$IDN\.$ZONE$"
out=$(printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<a@bücher.%s>\nC: RSET\nC: MAIL FROM:<a@client.%s> SMTPUTF8\nC: RCPT TO:<a@☃.%s>\nC: QUIT\n' \
	"$ZONE" "$ZONE" "$ZONE" "$ZONE" | dialog)
check "IDN: a U-label without SMTPUTF8 in MAIL gets 553 5.6.7 (RFC 6531)" "$(echo "$out" | sed -n 4p)" \
	"553 5.6.7 Non-ASCII address needs SMTPUTF8 in MAIL FROM"
check "IDN: an invalid U-label gets 553 5.1.3 with the reason" "$(echo "$out" | sed -n 7p)" \
	"553 5.1.3 Recipient domain is not a valid internationalised (IDNA2008) domain name: string contains a disallowed character"
check "IDN: stsproxy policy bücher.$ZONE looks up the A-label" "$(stsq "bücher.$ZONE" '.domain + " " + .verdict.mode')" "$IDN.$ZONE enforce"

# ---- the relay itself --------------------------------------------------------
kill "$RELAY_PID"
for _ in $(seq 50); do grep -q 'event=stopped' "$W/relay.log" && break; sleep 0.1; done
sleep 0.3
check "the relay stops cleanly on SIGTERM" "$(grep -c 'event=stopped' "$W/relay.log")" "1"
check "the relay ran without sanitizer reports" "$(grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$W/relay.log")" "0"
ELAPSED=$(($(date +%s) - STARTED))
world_note "elapsed: ${ELAPSED}s"
check "the suite ran within 2 minutes" "$([ "$ELAPSED" -le 120 ] && echo yes || echo "no (${ELAPSED}s)")" "yes"
[ "$FAIL" -gt 0 ] && { world_note "relay log:"; sed 's/^/#   /' "$W/relay.log" | tail -60; }
world_summary
