#!/usr/bin/env bash
# End-to-end test of stsproxy in a lab world built on special-use names:
# the world of world.sh, but on the DNSSEC-signed zone "lab.test." (RFC
# 6761), with [dns] forwarders pointing at the lab's NSD. libunbound
# answers test., onion., invalid., home.arpa. and the private reverse
# zones itself by default (NXDOMAIN: the relay would bounce with 550
# 5.1.2); stsproxy must send them to the forwarders (issue 11 section 2).
# Also the start-up probe of the resolution path (issue 11 section 6):
# silent with a working forwarder, a warning and /healthz 503 with a hint
# when the forwarder does not answer.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

for tool in nsd nginx ldns-signzone drill jq openssl python3; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done

ZONE=lab.test
RELAY=127.0.0.1:10025
MX=$E2E_DIR/mxserver.py
DIALOG=$E2E_DIR/smtpdialog.py
dialog() { python3 "$DIALOG" "$@"; }
http_get() { python3 -c 'import sys, urllib.request
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status); sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); sys.stdout.write(e.read().decode())
except OSError as e:
    print("down", e)' "$1"; }

# ---- the lab world ---------------------------------------------------------
world_init
world_ca_init "$W/ca" "lab CA"
mkdir -p "$W/certs" "$W/spool"
world_cert "$W/ca" "$W/certs/mta-sts.good" "mta-sts.good.$ZONE" "DNS:mta-sts.good.$ZONE" || exit 1
world_cert "$W/ca" "$W/certs/mx.good" "mx.good.$ZONE" "DNS:mx.good.$ZONE" || exit 1
: > "$W/nginx.sites"
world_site "mta-sts.good.$ZONE" "$W/certs/mta-sts.good"
printf 'version: STSv1\nmode: enforce\nmx: mx.good.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.good.$ZONE"
world_dns_records <<ZONEDATA
_mta-sts.good TXT "v=STSv1; id=lab1;"
mta-sts.good A $WEB_ADDR
good MX 10 mx.good.$ZONE.
mx.good A 127.0.4.1
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

world_summary
