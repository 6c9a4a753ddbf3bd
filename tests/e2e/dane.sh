#!/usr/bin/env bash
# End-to-end tests of DANE for SMTP (RFC 7672) on the upstream leg, with
# MTA-STS precedence (RFC 8461 section 2) and TLS-RPT tlsa reports: the
# DNSSEC-signed zone of world.sh gets TLSA records computed here from the
# test certificates (some tampered after signing, to be bogus; one child
# zone delegated unsigned, to be insecure), MX servers on loopback present
# those certificates, and two relays deliver through them. Asserts where
# each message arrived, the reply the client got, what was logged and
# recorded, that connection reuse and TLS resumption never cross a TLSA
# RRset, and the TLS-RPT reports. Then Postfix's own DANE implementation
# (posttls-finger, with a validating unbound as its resolver) judges every
# DANE MX of the world, and its verdicts are compared with stsproxy's.
# Requirements are cited from ../shared/docs/spec-notes.md.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd nginx ldns-signzone drill jq openssl python3 posttls-finger unbound unshare; do
	command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] ||
		{ echo "SKIP: $tool not installed"; exit 77; }
done

RELAY=127.0.0.1:8461		# connection reuse on, simulate = enforce
RELAY2=127.0.0.1:8462		# reuse off: every message a new connection (resumption)
MX=$E2E_DIR/mxserver.py
DIALOG=$E2E_DIR/smtpdialog.py

# ---- certificates ---------------------------------------------------------------
world_init
world_ca_init "$W/ca" "stsproxy test CA"	# trusted by [tls] ca_file: PKIX
world_ca_init "$W/taca" "DANE trust anchor"	# trusted by nobody but TLSA 2 x x records
world_ca_init "$W/evilca" "untrusted CA"
mkdir -p "$W/certs" "$W/spool"
C=$W/certs
cert() { world_cert "$W/${4:-ca}" "$C/$1" "$2" "$3" "${@:5}" || exit 1; }
# cert NAME CN SAN [CA [START END]]
cert mta-sts.both "mta-sts.both.$ZONE" "DNS:mta-sts.both.$ZONE"
cert mta-sts.pair "mta-sts.pair.$ZONE" "DNS:mta-sts.pair.$ZONE"
cert ee "mx.ee.$ZONE" "DNS:mx.ee.$ZONE" evilca
cert exp "wrong.example" "DNS:wrong.example" evilca 20200101000000Z 20200201000000Z
cert ta "x" "DNS:ta.$ZONE" taca
cert tabad "x" "DNS:elsewhere.$ZONE" taca
cert mism1 "mx1.mism.$ZONE" "DNS:mx1.mism.$ZONE" evilca
cert mism2 "mx2.mism.$ZONE" "DNS:mx2.mism.$ZONE" evilca
cert bog2 "mx2.bog.$ZONE" "DNS:mx2.bog.$ZONE"
cert unus2 "mx.unus2.$ZONE" "DNS:mx.unus2.$ZONE" evilca
cert insec "mx.insec.$ZONE" "DNS:mx.insec.$ZONE" evilca
cert both "both.$ZONE" "DNS:both.$ZONE" evilca
cert mx2.both "mx2.both.$ZONE" "DNS:mx2.both.$ZONE"
cert outside "outside.$ZONE" "DNS:outside.$ZONE"
cert mx1.pair "mx1.pair.$ZONE" "DNS:mx1.pair.$ZONE"
cert mx2.pair "mx2.pair.$ZONE" "DNS:mx2.pair.$ZONE"
cert donly "mx.donly.$ZONE" "DNS:mx.donly.$ZONE"
cert fall "mx.fall.$ZONE" "DNS:mx.fall.$ZONE"
cert agil "mx.agil.$ZONE" "DNS:mx.agil.$ZONE" evilca
cert cn "mxreal.cn.$ZONE" "DNS:mxreal.cn.$ZONE" evilca
cert cn2 "mxreal2.cn.$ZONE" "DNS:mxreal2.cn.$ZONE" evilca
# DANE-TA servers present the anchor in their chain (RFC 7671 section 5.2.2).
cat "$C/ta.pem" "$W/taca/ca.pem" > "$C/ta.chain" && cp "$C/ta.key" "$C/ta.chain.key"
cat "$C/tabad.pem" "$W/taca/ca.pem" > "$C/tabad.chain" && cp "$C/tabad.key" "$C/tabad.chain.key"
# A "trust anchor" that is no CA (basicConstraints CA:FALSE) issuing the leaf:
# the TLSA record matches, the chain does not hold (certificate-not-trusted).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 -subj "/CN=not a CA" \
	-addext "basicConstraints=critical,CA:FALSE" -keyout "$C/notca.key" -out "$C/notca.pem" 2>/dev/null
openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=mx.tanotca.$ZONE" \
	-keyout "$C/tanotca.key" -out "$C/tanotca.csr" 2>/dev/null
printf 'subjectAltName=DNS:mx.tanotca.%s\n' "$ZONE" > "$C/tanotca.ext"
openssl x509 -req -in "$C/tanotca.csr" -CA "$C/notca.pem" -CAkey "$C/notca.key" -CAcreateserial \
	-days 30 -extfile "$C/tanotca.ext" -out "$C/tanotca.leaf" 2>/dev/null
cat "$C/tanotca.leaf" "$C/notca.pem" > "$C/tanotca.pem"

# TLSA data computed from the certificates, as an operator does (RFC 6698 section 2.1).
hex() { od -An -v -tx1 | tr -d ' \n'; }
spki() { openssl x509 -in "$1" -noout -pubkey | openssl pkey -pubin -outform DER | openssl dgst -"${2:-sha256}" -binary | hex; }
full() { openssl x509 -in "$1" -outform DER | openssl dgst -sha256 -binary | hex; }
up() { tr a-f A-F; }
EE=$(spki "$C/ee.pem")
WRONG=$(spki "$C/outside.pem")		# the key of another server: a mismatch

# ---- DNS --------------------------------------------------------------------
tlsa_records() { # the TLSA RRset of mx.ee (changed later, to test the boundaries)
	printf '_25._tcp.mx.ee TLSA 3 1 1 %s\n' "$EE"
	[ "${1:-}" = two ] && printf '_25._tcp.mx.ee TLSA 3 0 1 %s\n' "$(full "$C/ee.pem")"
	return 0
}
zone() {
	cat <<ZONEDATA
ee MX 10 mx.ee.$ZONE.
mx.ee A 127.0.5.1
$(tlsa_records "${1:-}")
exp MX 10 mx.exp.$ZONE.
mx.exp A 127.0.5.2
_25._tcp.mx.exp TLSA 3 1 1 $(spki "$C/exp.pem")
ta MX 10 mx1.ta.$ZONE.
mx1.ta A 127.0.5.3
_25._tcp.mx1.ta TLSA 2 0 1 $(full "$W/taca/ca.pem")
tabad MX 10 mx.tabad.$ZONE.
mx.tabad A 127.0.5.4
_25._tcp.mx.tabad TLSA 2 0 1 $(full "$W/taca/ca.pem")
tanotca MX 10 mx.tanotca.$ZONE.
mx.tanotca A 127.0.5.5
_25._tcp.mx.tanotca TLSA 2 0 1 $(full "$C/notca.pem")
mism MX 10 mx1.mism.$ZONE.
mism MX 20 mx2.mism.$ZONE.
mismall MX 10 mx1.mism.$ZONE.
mx1.mism A 127.0.5.6
_25._tcp.mx1.mism TLSA 3 1 1 $WRONG
mx2.mism A 127.0.5.7
_25._tcp.mx2.mism TLSA 3 1 1 $(spki "$C/mism2.pem")
bog MX 10 mx1.bog.$ZONE.
bog MX 20 mx2.bog.$ZONE.
bogall MX 10 mx1.bog.$ZONE.
mx1.bog A 127.0.5.8
_25._tcp.mx1.bog TLSA 3 1 1 $(printf 'a%.0s' $(seq 64))
mx2.bog A 127.0.5.9
unus MX 10 mx.unus.$ZONE.
mx.unus A 127.0.5.10
_25._tcp.mx.unus TLSA 1 1 1 $EE
unus2 MX 10 mx.unus2.$ZONE.
mx.unus2 A 127.0.5.11
_25._tcp.mx.unus2 TLSA 0 0 1 $(full "$W/ca/ca.pem")
insec NS ns.$ZONE.
nostls MX 10 mx.nostls.$ZONE.
mx.nostls A 127.0.5.13
_25._tcp.mx.nostls TLSA 3 1 1 $EE
both MX 5 outside.$ZONE.
both MX 10 both.$ZONE.
both MX 20 mx2.both.$ZONE.
outside A 127.0.5.16
_25._tcp.outside TLSA 3 1 1 $(spki "$C/outside.pem")
both A 127.0.5.14
_25._tcp.both TLSA 3 1 1 $(spki "$C/both.pem")
mx2.both A 127.0.5.15
_mta-sts.both TXT "v=STSv1; id=both1;"
mta-sts.both A $WEB_ADDR
_smtp._tls.both TXT "v=TLSRPTv1; rua=mailto:tlsrpt@both.$ZONE"
pair MX 10 mx1.pair.$ZONE.
pair MX 20 mx2.pair.$ZONE.
mx1.pair A 127.0.5.17
_25._tcp.mx1.pair TLSA 3 1 1 $WRONG
mx2.pair A 127.0.5.18
_mta-sts.pair TXT "v=STSv1; id=pair1;"
mta-sts.pair A $WEB_ADDR
donly MX 10 mx.donly.$ZONE.
mx.donly A 127.0.5.19
fall MX 10 mx1.mism.$ZONE.
fall MX 20 mx.fall.$ZONE.
mx.fall A 127.0.5.20
agil MX 10 mx.agil.$ZONE.
mx.agil A 127.0.5.21
_25._tcp.mx.agil TLSA 3 1 1 $(spki "$C/agil.pem")
_25._tcp.mx.agil TLSA 3 1 2 $(spki "$C/outside.pem" sha512)
addrin MX 10 mx.insec.$ZONE.
cn MX 10 mxalias.cn.$ZONE.
mxalias.cn CNAME mxreal.cn.$ZONE.
mxreal.cn A 127.0.5.22
_25._tcp.mxreal.cn TLSA 3 1 1 $(spki "$C/cn.pem")
_25._tcp.mxalias.cn TLSA 3 1 1 $WRONG
cn2 MX 10 mxalias2.cn.$ZONE.
mxalias2.cn CNAME mxreal2.cn.$ZONE.
mxreal2.cn A 127.0.5.23
_25._tcp.mxalias2.cn TLSA 3 1 1 $(spki "$C/cn2.pem")
ZONEDATA
}
zone | world_dns_records
# An unsigned child zone, delegated without DS: every answer in it is insecure (DANE-5).
world_dns_extra_zone "insec.$ZONE" <<ZONEDATA
@ MX 10 mx.insec.$ZONE.
mx A 127.0.5.12
_25._tcp.mx TLSA 3 1 1 $WRONG
ZONEDATA
# Sign, then change mx1.bog's TLSA record under its signature: a bogus answer (DANE-3).
printf '/^_25\\._tcp\\.mx1\\.bog\\./ s/AAAAAAAAAAAA/BBBBBBBBBBBB/I\n' > "$W/dns/tamper.sed"
world_dns_publish >/dev/null || exit 1
check "the tampered TLSA record is in the signed zone" \
	"$(grep -ci '^_25\._tcp\.mx1\.bog\..*TLSA.*BBBBBBBBBBBB' "$W/dns/zone.signed")" "1"

: > "$W/nginx.sites"
for d in both pair; do world_site "mta-sts.$d.$ZONE" "$C/mta-sts.$d"; done
printf 'version: STSv1\nmode: enforce\nmx: both.%s\nmx: mx2.both.%s\nmax_age: 86400\n' "$ZONE" "$ZONE" |
	world_policy "mta-sts.both.$ZONE"
printf 'version: STSv1\nmode: enforce\nmx: *.pair.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.pair.$ZONE"
world_web_start || exit 1

# ---- MX servers -------------------------------------------------------------------
mx() { # ADDR NAME [CERTFILE-BASE] [BEHAVE]
	python3 "$MX" --listen "$1:25" --name "$2" --spool "$W/spool" \
		${3:+--cert "$3.pem" --key "$3.key"} --behave "${4:-}" > "$W/mx-$2.out" 2>&1 &
	PIDS+=($!)
}
cp "$C/ta.chain" "$C/tach.pem"; cp "$C/ta.key" "$C/tach.key"
cp "$C/tabad.chain" "$C/tabadch.pem"; cp "$C/tabad.key" "$C/tabadch.key"
mx 127.0.5.1 mx.ee "$C/ee"
mx 127.0.5.2 mx.exp "$C/exp"
mx 127.0.5.3 mx1.ta "$C/tach"
mx 127.0.5.4 mx.tabad "$C/tabadch"
mx 127.0.5.5 mx.tanotca "$C/tanotca"
mx 127.0.5.6 mx1.mism "$C/mism1"
mx 127.0.5.7 mx2.mism "$C/mism2"
# 127.0.5.8 (mx1.bog) has no server: a connection there would be refused and show.
mx 127.0.5.9 mx2.bog "$C/bog2"
mx 127.0.5.10 mx.unus "" nostarttls
mx 127.0.5.11 mx.unus2 "$C/unus2"
mx 127.0.5.12 mx.insec "$C/insec"
mx 127.0.5.13 mx.nostls "" nostarttls
mx 127.0.5.14 both "$C/both"
mx 127.0.5.15 mx2.both "$C/mx2.both"
mx 127.0.5.16 outside "$C/outside"
mx 127.0.5.17 mx1.pair "$C/mx1.pair"
mx 127.0.5.18 mx2.pair "$C/mx2.pair"
mx 127.0.5.19 mx.donly "$C/donly"
mx 127.0.5.20 mx.fall "$C/fall"
mx 127.0.5.21 mx.agil "$C/agil"
mx 127.0.5.22 mxreal.cn "$C/cn"
mx 127.0.5.23 mxreal2.cn "$C/cn2"

# ---- the relays ---------------------------------------------------------------------
world_conf "simulate = enforce
override = donly.$ZONE:dane-only ee.$ZONE:dane-only
[server]
listen = $RELAY
[upstream]
connect_timeout = 3s
command_timeout = 10s
reuse_idle_timeout = 60s
"
printf 'hostname = relay.%s\n' "$ZONE" | cat - "$W/stsproxy.conf" > "$W/c" && mv "$W/c" "$W/stsproxy.conf"
mkdir -p "$W/state2"
chmod 755 "$W"	# the relays drop to user stsproxy, which reads the trust anchor here
sed -e "s|^state_dir = .*|state_dir = $W/state2|" -e "s|^listen = .*|listen = $RELAY2|" \
	-e "s|^reuse_idle_timeout = .*|reuse = no|" "$W/stsproxy.conf" > "$W/stsproxy2.conf"
"$STSPROXY" -c "$W/stsproxy.conf" -d serve > "$W/relay.log" 2>&1 &
RELAY_PID=$!
PIDS+=($RELAY_PID)
"$STSPROXY" -c "$W/stsproxy2.conf" -d serve > "$W/relay2.log" 2>&1 &
RELAY2_PID=$!
PIDS+=($RELAY2_PID)
for _ in $(seq 50); do
	grep -q event=started "$W/relay.log" && grep -q event=started "$W/relay2.log" &&
		[ "$(cat "$W"/mx-*.out 2>/dev/null | grep -c ready)" -ge 22 ] && break
	sleep 0.1
done

dialog() { python3 "$DIALOG" "$@"; }
send() { # DOMAIN SUBJECT [RELAY]: one message; prints the client's replies
	printf 'C: EHLO t\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<x@%s.%s>\nC: DATA\nR: Subject: %s\\r\\n\\r\\nhi\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
		"$ZONE" "$1" "$ZONE" "$2" | dialog "${3:-$RELAY}"
}
rcpt_reply() { printf '%s\n' "$1" | sed -n 4p; }	# greeting, EHLO, MAIL, then RCPT
arrived() { grep -l "Subject: $1" "$W"/spool/*/*.eml 2>/dev/null | xargs -r -n1 dirname | xargs -r -n1 basename | sort | tr '\n' ' ' | sed 's/ $//'; }
meta() { local f; f=$(grep -l "Subject: $1" "$W"/spool/*/*.eml | head -1); jq -r "$2" "${f%.eml}.json"; }
outcome() { grep -E "event=outcome domain=$1 .*$2" "$W/relay.log" | head -1; }
SID='\[stsproxy session [0-9a-f]{16}\]'

# ---- DANE authenticates ------------------------------------------------------------
send ee ee1 > /dev/null
check "DANE-10: DANE-EE(3 1 1) match -> delivered, although no CA the relay trusts issued the certificate" "$(arrived ee1)" "mx.ee"
check "DANE-15: SNI is the TLSA base domain" "$(meta ee1 .sni)" "mx.ee.$ZONE"
check "DANE-17: dane-only lets a domain with usable TLSA records through" "$(meta ee1 .tls)" "TLSv1.3"
check_match "DANE-20: the outcome is recorded under a tlsa policy of the TLSA base domain, with dane=pass and the record that matched" \
	"$(outcome "mx\\.ee\\.$ZONE" 'action=delivered')" \
	"policy_type=tlsa .*mx=mx\.ee\.$ZONE .*result=none .*dane=pass dane_record=\"3 1 1 $(up <<<"$EE")\""
check_match "the lookup is logged per MX: state, base and records" \
	"$(grep "event=tlsa domain=ee\.$ZONE" "$W/relay.log" | head -1)" "mx=mx\.ee\.$ZONE state=usable base=mx\.ee\.$ZONE records=1 usable=1"
send exp exp1 > /dev/null
check "DANE-11, case 49: DANE-EE matches a certificate expired, with wrong names -> authenticated" "$(arrived exp1)" "mx.exp"
send ta ta1 > /dev/null
check "DANE-12, case 48: DANE-TA(2), certificate names the next hop (secure MX lookup) -> delivered" "$(arrived ta1)" "mx1.ta"
out=$(send tabad tabad1)
check "DANE-12/13: DANE-TA(2), certificate for another name -> not delivered" "$(arrived tabad1)" ""
check_match "... the client is deferred with 4.7.5 naming the MX and why" "$(rcpt_reply "$out")" \
	"^451 4\.7\.5 DANE: mx\.tabad\.$ZONE certificate not valid for mx\.tabad\.$ZONE \(DANE-TA 2 0 1\) $SID$"
out=$(send tanotca tanotca1)
check_match "DANE-TA(2) anchor that is no CA: certificate-not-trusted, deferred" \
	"$(arrived tanotca1) $(outcome "mx\\.tanotca\\.$ZONE" 'action=failed')" "^ .*result=certificate-not-trusted "
send agil agil1 > /dev/null
check_match "DANE-16, RFC 7671 §9: a SHA2-512 record that does not match outweighs a SHA2-256 one that does" \
	"$(arrived agil1) $(outcome "mx\\.agil\\.$ZONE" 'action=failed')" "^ .*result=tlsa-invalid reason=\"TLSA mismatch \(DANE-EE 3 1 1, DANE-EE 3 1 2\)\""

# ---- DANE failures are temporary: next MX, or defer --------------------------------
send mism mism1 > /dev/null
check "TLSA mismatch on the first MX -> next MX (DANE-10), delivered to the second" "$(arrived mism1)" "mx2.mism"
check_match "... the mismatch is recorded as tlsa-invalid under the first MX's TLSA base domain" \
	"$(outcome "mx1\\.mism\\.$ZONE" 'action=failed')" "policy_type=tlsa .*result=tlsa-invalid reason=\"TLSA mismatch \(DANE-EE 3 1 1\)\" .*dane=fail"
out=$(send mismall mismall1)
check_match "TLSA mismatch on the only MX -> 451 4.7.5 naming the MX and the records" "$(rcpt_reply "$out")" \
	"^451 4\.7\.5 DANE: mx1\.mism\.$ZONE TLSA mismatch \(DANE-EE 3 1 1\) $SID$"
send bog bog1 > /dev/null
check "DANE-3: bogus TLSA on the first MX -> it is unreachable; delivered to the second" "$(arrived bog1)" "mx2.bog"
check "DANE-3: ... and never connected to" "$(grep -c "event=connecting .*mx=mx1\.bog\." "$W/relay.log")" "0"
check_match "DANE-20: ... recorded as dnssec-invalid" "$(outcome "mx1\\.bog\\.$ZONE" 'action=failed')" \
	"policy_type=tlsa .*ip=- .*result=dnssec-invalid .*dane=lookup-failed"
out=$(send bogall bogall1)
check_match "DANE-3, case 56: bogus TLSA on the only MX -> 451 4.4.3 (spec §11)" "$(rcpt_reply "$out")" \
	"^451 4\.4\.3 DANE: mx1\.bog\.$ZONE TLSA lookup of _25\._tcp\.mx1\.bog\.$ZONE failed: bogus"
out=$(send unus unus1)
check "DANE-9, case 55: secure TLSA records, none usable, MX without STARTTLS -> no plaintext" "$(arrived unus1)" ""
check_match "... 451 4.7.4" "$(rcpt_reply "$out")" "^451 4\.7\.4 DANE: mx\.unus\.$ZONE does not offer STARTTLS $SID$"
send unus2 unus22 > /dev/null
check "DANE-8/14: only a PKIX-TA(0) record -> TLS without authentication, delivered" \
	"$(arrived unus22) $(meta unus22 .tls)" "mx.unus2 TLSv1.3"
check_match "... recorded as tlsa-invalid, dane=unusable" "$(outcome "mx\\.unus2\\.$ZONE" 'action=delivered')" \
	"policy_type=tlsa .*result=tlsa-invalid .*dane=unusable"
out=$(send nostls nostls1)
check_match "DANE-9: usable TLSA, no STARTTLS -> 451 4.7.4, nothing in the clear" "$(arrived nostls1) $(rcpt_reply "$out")" \
	"^ 451 4\.7\.4 DANE: mx\.nostls\.$ZONE does not offer STARTTLS $SID$"
check_match "DANE-20: ... starttls-not-supported under the tlsa policy" "$(outcome "mx\\.nostls\\.$ZONE" 'action=failed')" \
	"policy_type=tlsa .*result=starttls-not-supported"
send insec insec1 > /dev/null
check "DANE-5: insecure MX zone -> no DANE (its wrong TLSA record is not used), opportunistic TLS" \
	"$(arrived insec1) $(meta insec1 .tls)" "mx.insec TLSv1.3"
check_match "DANE-19: ... the delivery is not logged as DANE" "$(outcome "insec\\.$ZONE" 'action=delivered')" \
	"policy_type=no-policy-found .*dane=mx-insecure"
check_match "... and the MX set was insecure" "$(grep "event=mx_set domain=insec\.$ZONE" "$W/relay.log")" "dnssec=insecure"

send addrin addrin1 > /dev/null
check_match "DANE-6: secure MX records, insecure address records -> no TLSA query, no DANE" \
	"$(arrived addrin1) $(outcome "addrin\\.$ZONE" 'action=delivered')" "^mx\.insec .*dane=address-insecure"
send cn cn1 > /dev/null
check "DANE-7: an MX name that is a CNAME: the TLSA records of the expanded name authenticate (its original name's are not asked)" \
	"$(arrived cn1) $(meta cn1 .sni)" "mxreal.cn mxreal.cn.$ZONE"
check_match "DANE-7, DANE-15: ... recorded under the expanded name as TLSA base domain, which is also the SNI" \
	"$(outcome "mxreal\\.cn\\.$ZONE" 'action=delivered')" "mx=mxalias\.cn\.$ZONE .*dane=pass"
send cn2 cn21 > /dev/null
check "DANE-7, RFC 7671 §7: no TLSA records at the expanded name: those of the original MX name authenticate" \
	"$(arrived cn21) $(meta cn21 .sni)" "mxreal2.cn mxalias2.cn.$ZONE"

# ---- DANE and MTA-STS together (RFC 8461 §2) ----------------------------------------------
send both both1 > /dev/null
check "STS-47: enforce + DANE: the MX with usable TLSA is authenticated by DANE alone (its certificate fails PKIX)" \
	"$(arrived both1)" "both"
check_match "STS-47: the enforce mx filter still applies: an MX outside the policy is skipped despite valid TLSA" \
	"$(grep -E "event=outcome domain=both\.$ZONE .*mx=outside\.$ZONE" "$W/relay.log")" "policy_type=sts .*action=skipped"
check "... and never connected to" "$(grep -c "event=connecting .*mx=outside\." "$W/relay.log")" "0"
send pair pair1 > /dev/null
check "STS-46, case 57: DANE fails on mx1 (whose certificate would pass MTA-STS) -> not delivered there; mx2 without TLSA under MTA-STS" \
	"$(arrived pair1)" "mx2.pair"
check_match "... mx1 recorded tlsa-invalid under tlsa" "$(outcome "mx1\\.pair\\.$ZONE" 'action=failed')" "policy_type=tlsa .*result=tlsa-invalid"
check_match "... mx2 delivered under the sts policy, sts=pass" "$(outcome "pair\\.$ZONE" 'mx=mx2\.pair')" \
	"policy_type=sts mode=enforce .*action=delivered .*sts=pass result=none .*dane=no-tlsa"

# ---- what an operator sees: stsproxy policy DOMAIN ---------------------------------------------
out=$(sts policy "both.$ZONE" --json)
check "policy --json: the MX set's DNSSEC state, and per MX the regime the relay applies" \
	"$(jq -c '[.mx.dnssec, (.mx.hosts[] | [.host, .address_dnssec, .tlsa.state, .regime])]' <<<"$out")" \
	"[\"secure\",[\"outside.$ZONE\",\"secure\",\"usable\",\"skipped\"],[\"both.$ZONE\",\"secure\",\"usable\",\"dane\"],[\"mx2.both.$ZONE\",\"secure\",\"no-tlsa\",\"mta-sts\"]]"
check "policy --json: the TLSA records, their DNSSEC state and base domain" \
	"$(jq -c '.mx.hosts[1].tlsa | [.query, .dnssec, .base, .records[0].usable, .records[0].record]' <<<"$out")" \
	"[\"_25._tcp.both.$ZONE\",\"secure\",\"both.$ZONE\",true,\"3 1 1 $(spki "$C/both.pem" | up)\"]"
check "policy: the verdict (exit status) still speaks of MTA-STS only" "$(sts policy "both.$ZONE" > /dev/null; echo $?)" "0"
out=$(sts policy "bog.$ZONE")
check_match "policy: a bogus TLSA answer makes that MX unreachable, and says why" "$(echo $out)" \
	"10 mx1\.bog\.$ZONE .*tlsa: _25\._tcp\.mx1\.bog\.$ZONE lookup-failed dnssec=bogus regime: unreachable: TLSA lookup of _25\._tcp\.mx1\.bog\.$ZONE failed: bogus"
check_match "policy: ... the next MX without TLSA is opportunistic" "$(echo $out)" \
	"mx2\.bog\.$ZONE .*tlsa: _25\._tcp\.mx2\.bog\.$ZONE no-tlsa dnssec=secure regime: opportunistic: no usable TLSA \(DNSSEC proves"
out=$(sts policy "unus.$ZONE")
check_match "policy: unusable records, each with why; STARTTLS still required" "$(echo $out)" \
	"1 1 1 [0-9A-F]{64} unusable: PKIX-EE\(1\) is not used for SMTP .* regime: dane-tls-only: .*STARTTLS required, not authenticated"
out=$(sts policy "insec.$ZONE")
check_match "policy: an insecure MX set: TLSA not asked (DANE-5)" "$(echo $out)" \
	"mx: status=ok dnssec=insecure dane=on .*tlsa: not asked: the MX lookup was not DNSSEC-secure regime: opportunistic"
out=$(sts policy "donly.$ZONE")
check_match "policy: dane-only shows, and an MX without TLSA is unreachable under it" "$(echo $out)" \
	"dane=on \(required: \[policy\] override dane-only\).* regime: unreachable: no usable TLSA record, DANE required"

# ---- dane-only and simulate = enforce ----------------------------------------------------------
out=$(send donly donly1)
check "DANE-17: dane-only, MX without TLSA -> not delivered" "$(arrived donly1)" ""
check_match "... deferred with dane-required" "$(rcpt_reply "$out")" \
	"^451 4\.7\.5 DANE: mx\.donly\.$ZONE no usable TLSA record, DANE required \(DNSSEC proves _25\._tcp\.mx\.donly\.$ZONE has no TLSA records\) $SID$"
check_match "... recorded as dane-required" "$(outcome "mx\\.donly\\.$ZONE" 'action=failed')" "policy_type=tlsa .*result=dane-required .*dane=required"
send fall fall1 > /dev/null
check "a DANE failure, then an MX without TLSA: delivered there (no dane-only)" "$(arrived fall1)" "mx.fall"
check_match "simulate = enforce: logs the reply dane-only would have given" \
	"$(grep "event=dane_simulate domain=fall\.$ZONE" "$W/relay.log")" \
	"mode=dane-only result=defer reply=\"451 4\.7\.5 DANE: mx1\.mism\.$ZONE TLSA mismatch \(DANE-EE 3 1 1\); mx\.fall\.$ZONE no usable TLSA record, DANE required $SID\"$"
check "... not for a domain that publishes no TLSA at all" "$(grep -c "event=dane_simulate domain=insec\." "$W/relay.log")" "0"

# ---- reuse and resumption never cross a TLSA RRset ---------------------------------------------
send ee reuse1 > /dev/null; send ee reuse2 > /dev/null
check "reuse: the next transaction under the same TLSA RRset takes the DANE-authenticated idle connection" \
	"$(meta reuse1 .conn) $(meta reuse2 .resumed)" "$(meta reuse2 .conn) false"
send ee res1 "$RELAY2" > /dev/null; send ee res2 "$RELAY2" > /dev/null
check "resumption: without reuse, the second connection resumes the TLS session verified under the same RRset" \
	"$(meta res1 .resumed) $(meta res2 .resumed)" "false true"
check "... still DANE, with the record that matched" \
	"$(grep -c "event=outcome domain=mx\.ee\.$ZONE .*dane=pass dane_record=\"3 1 1 $(up <<<"$EE")\"" "$W/relay2.log")" "2"
# A second TLSA record for mx.ee: a new RRset once the old answers expire (TTL 5 s).
zone two | world_dns_records
world_dns_publish >/dev/null || exit 1
sleep 6
send ee reuse3 > /dev/null
check "reuse: after the TLSA RRset changed, the idle connection verified under the old one is not taken" \
	"$([ "$(meta reuse3 .conn)" != "$(meta reuse2 .conn)" ] && echo new) $(arrived reuse3)" "new mx.ee"
sleep 11
send ee reuse4 > /dev/null
check "reuse: a TLS connection idle longer than command_timeout (10 s here) is still taken (reuse_idle_timeout = 60s)" \
	"$(meta reuse4 .conn)" "$(meta reuse3 .conn)"
send ee res3 "$RELAY2" > /dev/null; send ee res4 "$RELAY2" > /dev/null
check "resumption: the session verified under the old RRset is not resumed; one of the new is" \
	"$(meta res3 .resumed) $(meta res4 .resumed)" "false true"

# ---- TLS-RPT: the recorded outcomes as reports (flushed at stop) ------------------------------
kill "$RELAY_PID" "$RELAY2_PID"
for _ in $(seq 50); do
	grep -q event=stopped "$W/relay.log" && grep -q event=stopped "$W/relay2.log" && break
	sleep 0.1
done
check "the relays ran without sanitizer reports and stopped cleanly" \
	"$(cat "$W"/relay*.log | grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:') $(grep -c event=stopped "$W/relay.log")" "0 1"
check "the connection verified under the old TLSA RRset stayed parked, untaken, until the stop" \
	"$(grep -c "event=pool_drop mx=mx\.ee\.$ZONE .*messages=3 reason=flush" "$W/relay.log")" "1"
TODAY=$(date -u +%F)
rpt() { "$STSPROXY" -c "$W/stsproxy.conf" report "$@" 2>>"$W/report.err"; }
for d in mx.ee mx1.mism mx1.bog mx.donly mx.nostls mx.tabad mx.tanotca mx.unus2 both; do
	rpt show "$d.$ZONE" --day "$TODAY" --json > "$W/report-$d.json"
	check "RPT-7/8: the report for $d validates against the RFC 8460 schema (python3-jsonschema)" \
		"$("$DEBPY" "$E2E_DIR/validate_report.py" "$E2E_DIR/../data/tlsrpt-report.schema.json" "$W/report-$d.json" | tail -1)" "valid"
done
# rtype REPORT TYPE: failed sessions of TYPE under tlsa policies
rtype() { jq -r "[.policies[] | select(.policy.\"policy-type\" == \"tlsa\") | .\"failure-details\"[]? | select(.\"result-type\" == \"$2\") | .\"failed-session-count\"] | add // 0" "$W/report-$1.json"; }
check "DANE-20: tlsa-invalid (TLSA mismatch): mx1.mism, under its own TLSA base domain (3 sessions: mism, mismall, fall)" "$(rtype mx1.mism tlsa-invalid)" "3"
check "DANE-20: dnssec-invalid (bogus TLSA): mx1.bog" "$(rtype mx1.bog dnssec-invalid)" "2"
check "DANE-20: dane-required (dane-only, no TLSA): mx.donly" "$(rtype mx.donly dane-required)" "1"
check "DANE-20: starttls-not-supported under DANE: mx.nostls" "$(rtype mx.nostls starttls-not-supported)" "1"
check "DANE-20: certificate-host-mismatch (DANE-TA name): mx.tabad" "$(rtype mx.tabad certificate-host-mismatch)" "1"
check "DANE-20: certificate-not-trusted (DANE-TA chain): mx.tanotca" "$(rtype mx.tanotca certificate-not-trusted)" "1"
check "DANE-8/20: TLS with unusable records only is a tlsa-invalid session" "$(rtype mx.unus2 tlsa-invalid)" "1"
check "DANE-20: policy-type tlsa, policy-domain the TLSA base domain, policy-string the records" \
	"$(jq -c '[.policies[] | select(.policy."policy-string" == ["3 1 1 '"$(up <<<"$EE")"'"]) | .policy | [."policy-type", ."policy-domain"]][0]' "$W/report-mx.ee.json")" \
	"[\"tlsa\",\"mx.ee.$ZONE\"]"
check "successes are counted: 3 sessions under the first TLSA RRset of mx.ee, 2 under the second (relay 1)" \
	"$(jq -c '[.policies[] | [(.policy."policy-string" | length), .summary."total-successful-session-count", .summary."total-failure-session-count"]] | sort' "$W/report-mx.ee.json")" \
	"[[1,3,0],[2,2,0]]"
check "RFC 8460 §4.4, RPT-9: one report for both.$ZONE holds its sts policy and the tlsa policy of the MX named both.$ZONE" \
	"$(jq -c '[.policies[].policy."policy-type"] | sort' "$W/report-both.json")" '["sts","tlsa"]'

# ---- differential: Postfix's own DANE implementation on every DANE MX of this world ---------
# posttls-finger (Debian's postfix) resolves through the system resolver,
# which must validate and set AD: a private unbound on 127.0.0.1 with the
# zone's trust anchor, and resolv.conf (options trust-ad) bind-mounted in a
# mount namespace of its own. It tries a domain's MXs in order and stops
# at the first it talks TLS with, so later MXs are named as [host].
mkdir -p "$W/unbound" "$W/ptf"
cat > "$W/unbound/unbound.conf" <<CONF
server:
	interface: 127.0.0.1
	port: 53
	do-daemonize: no
	username: ""
	chroot: ""
	directory: "$W/unbound"
	pidfile: "$W/unbound/unbound.pid"
	use-syslog: no
	logfile: "$W/unbound/unbound.log"
	do-not-query-localhost: no
	trust-anchor-file: "$W/trust-anchor.key"
forward-zone:
	name: "$ZONE."
	forward-addr: $DNS_ADDR
remote-control:
	control-enable: no
CONF
unbound -d -c "$W/unbound/unbound.conf" &
PIDS+=($!)
printf 'nameserver 127.0.0.1\noptions trust-ad\n' > "$W/resolv.conf"
printf 'compatibility_level = 3.6\nsmtp_dns_support_level = dnssec\ndnssec_probe = ns:%s\n' "$ZONE" > "$W/ptf/main.cf"
for _ in $(seq 50); do drill -Q @127.0.0.1 "ns.$ZONE" A 2>/dev/null | grep -q "$DNS_ADDR" && break; sleep 0.1; done
finger() { # TARGET: posttls-finger -l dane on TARGET (a domain, or [host])
	unshare -m sh -c "mount --bind '$W/resolv.conf' /etc/resolv.conf &&
		MAIL_CONFIG='$W/ptf' exec posttls-finger -l dane -t 5 -T 5 '$1'" 2>&1
}
# Postfix's verdict on HOST in OUTPUT, in the words below.
finger_verdict() {
	local h=$2
	if grep -q "Verified TLS connection established to $h\[" <<<"$1"; then echo verified
	elif grep -q "TLSA lookup error for $h:" <<<"$1"; then echo lookup-failed
	elif grep -q "verification failed for $h\[.*num=" <<<"$1"; then echo failed
	elif grep -q "Connected to $h\[" <<<"$1" && ! grep -q '> STARTTLS' <<<"$1"; then echo no-starttls
	elif grep -q "_25._tcp.$h unsupported TLSA" <<<"$1" && grep -q "Untrusted TLS connection established to $h\[" <<<"$1"; then echo unusable
	elif grep -q "TLS connection established to $h\[" <<<"$1"; then echo no-dane
	else echo unknown; fi
}
# stsproxy's verdict on HOST, in the same words, from its first outcome line for that MX.
relay_verdict() {
	local l
	l=$(grep -E "event=outcome .* mx=$1 " "$W/relay.log" | head -1)
	case $l in
	*action=skipped*) echo skipped ;;
	*dane=pass*) echo verified ;;
	*result=starttls-not-supported*) echo no-starttls ;;
	*dane=fail*) echo failed ;;
	*dane=lookup-failed*) echo lookup-failed ;;
	*dane=unusable*) echo unusable ;;
	*dane=required*) echo dane-required ;;
	*dane=no-tlsa* | *dane=mx-insecure* | *dane=tlsa-insecure* | *dane=address-insecure*) echo no-dane ;;
	*) echo unknown ;;
	esac
}
# Differences RFC 7672 and RFC 8461 explain (host: stsproxy/posttls-finger: why).
explained() {
	case "$1 $2/$3" in
	"outside.$ZONE skipped/verified") echo "STS-47: under both's enforce policy the mx filter comes first; posttls-finger knows no MTA-STS" ;;
	"mx.donly.$ZONE dane-required/no-dane") echo "DANE-17: stsproxy runs donly under [policy] override dane-only; posttls-finger -l dane is opportunistic" ;;
	esac
}
while read -r target hosts; do
	out=$(finger "$target")
	for h in $hosts; do
		r=$(relay_verdict "$h.$ZONE"); f=$(finger_verdict "$out" "$h.$ZONE"); why=$(explained "$h.$ZONE" "$r" "$f")
		printf '%-22s stsproxy=%-14s posttls-finger=%-14s %s\n' "$h" "$r" "$f" "$why" >> "$W/differential.txt"
		if [ -n "$why" ]; then
			check "differential $h: stsproxy $r, posttls-finger $f: $why" "$r $f" "$r $f"
		else
			check "differential $h: stsproxy and Postfix's DANE (posttls-finger) agree" "$r" "$f"
		fi
		[ "$f" = unknown ] && printf '%s\n' "$out" | sed 's/^/#   /'
	done
done <<TARGETS
ee.$ZONE mx.ee
exp.$ZONE mx.exp
ta.$ZONE mx1.ta
tabad.$ZONE mx.tabad
tanotca.$ZONE mx.tanotca
agil.$ZONE mx.agil
mism.$ZONE mx1.mism
[mx2.mism.$ZONE] mx2.mism
bog.$ZONE mx1.bog mx2.bog
unus.$ZONE mx.unus
unus2.$ZONE mx.unus2
nostls.$ZONE mx.nostls
insec.$ZONE mx.insec
both.$ZONE outside
[both.$ZONE] both
pair.$ZONE mx1.pair
[mx2.pair.$ZONE] mx2.pair
donly.$ZONE mx.donly
[mx.fall.$ZONE] mx.fall
addrin.$ZONE mx.insec
cn.$ZONE mxalias.cn
cn2.$ZONE mxalias2.cn
TARGETS
sed 's/^/# /' "$W/differential.txt"

[ "$FAIL" -gt 0 ] && { world_note "relay log:"; grep -E "event=(outcome|tlsa|mx_failed|mx_unusable|deferred)" "$W/relay.log" | sed 's/^/#   /' | tail -60; }
world_summary
