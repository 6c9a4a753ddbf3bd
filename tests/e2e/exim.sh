#!/usr/bin/env bash
# End-to-end: Debian's Exim as the legacy client. One message to two
# recipient domains goes out as two transactions: stsproxy answers the
# second domain's RCPT with 452 4.5.3 (PRX) and Exim sends it again in a
# new transaction; the enforce domain arrives over verified TLS.
#
# Exim and Postfix cannot both be installed as Debian packages (both are
# the system MTA), so contrib/bootstrap.sh unpacks exim4-daemon-light
# under $STSPROXY_EXIM_ROOT and Exim runs from there with its own config.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

: "${STSPROXY_EXIM_ROOT:=/opt/stsproxy-test/exim}"
EXIM=$STSPROXY_EXIM_ROOT/usr/sbin/exim4
for tool in nsd nginx ldns-signzone drill jq openssl python3; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
[ -x "$EXIM" ] || { echo "SKIP: no Exim under $STSPROXY_EXIM_ROOT (contrib/bootstrap.sh unpacks it)"; exit 77; }
getent passwd Debian-exim >/dev/null || { echo "SKIP: user Debian-exim missing"; exit 77; }

RELAY=127.0.0.1:8461
world_init
chmod 755 "$W"
world_ca_init "$W/ca" "stsproxy test CA"
mkdir -p "$W/certs" "$W/spool"
world_cert "$W/ca" "$W/certs/mta-sts" "mta-sts.good.$ZONE" "DNS:mta-sts.good.$ZONE" || exit 1
world_cert "$W/ca" "$W/certs/mx" "mx.good.$ZONE" "DNS:mx.good.$ZONE" || exit 1
: > "$W/nginx.sites"
world_site "mta-sts.good.$ZONE" "$W/certs/mta-sts"
printf 'version: STSv1\nmode: enforce\nmx: mx.good.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.good.$ZONE"
world_dns_records <<ZONEDATA
_mta-sts.good TXT "v=STSv1; id=e1;"
mta-sts.good A $WEB_ADDR
good MX 10 mx.good.$ZONE.
mx.good A 127.0.4.1
plain MX 10 mx.plain.$ZONE.
mx.plain A 127.0.4.2
ZONEDATA
world_dns_publish >/dev/null || exit 1
world_web_start || exit 1
python3 "$E2E_DIR/mxserver.py" --listen 127.0.4.1:25 --name mx.good --spool "$W/spool" \
	--cert "$W/certs/mx.pem" --key "$W/certs/mx.key" > "$W/mx1.out" 2>&1 &
PIDS+=($!)
python3 "$E2E_DIR/mxserver.py" --listen 127.0.4.2:25 --name mx.plain --spool "$W/spool" \
	--behave nostarttls > "$W/mx2.out" 2>&1 &
PIDS+=($!)
world_conf "
[server]
listen = $RELAY"
"$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do
	grep -q event=started "$W/relay.log" && [ -s "$W/mx1.out" ] && [ -s "$W/mx2.out" ] && break
	sleep 0.1
done

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
smarthost:
  driver = manualroute
  domains = ! +local_domains
  transport = remote_smtp
  route_list = * 127.0.0.1
  self = send
  no_more
begin transports
remote_smtp:
  driver = smtp
  port = 8461
begin retry
* * F,1m,1m
CONF
ex() { "$EXIM" -C "$X/exim.conf" "$@"; }

printf 'Subject: exim-two-domains\n\nhello from exim\n' |
	ex -odi -f "a@exim.$ZONE" "u@good.$ZONE" "v@plain.$ZONE"
# Whatever Exim deferred, a forced queue run sends again.
for _ in $(seq 5); do
	[ "$(ex -bpc)" = 0 ] && break
	ex -qff
	sleep 0.5
done

arrived() { grep -l "Subject: $1" "$W"/spool/"$2"/*.eml 2>/dev/null | wc -l; }
check "PRX: Exim's recipient in the second domain got 452 4.5.3" \
	"$(grep -c 'event=rcpt_deferred_other_domain.*domain=plain' "$W/relay.log")" "1"
sid=$(grep -o 'session=[0-9a-f]* event=rcpt_deferred_other_domain' "$W/relay.log" | cut -d' ' -f1)
check "PRX: Exim sent the second domain again as a new transaction" \
	"$(grep -c "$sid event=message " "$W/relay.log")" "2"
check "PRX: u@good arrived at mx.good" "$(arrived exim-two-domains mx.good)" "1"
check "STS-36: ... over verified TLS with SNI" "$(jq -r '.tls + " " + .sni' "$W"/spool/mx.good/1.json)" "TLSv1.3 mx.good.$ZONE"
check "PRX: v@plain arrived at mx.plain in its own transaction" "$(arrived exim-two-domains mx.plain)" "1"
check "Exim's queue is empty: nothing lost" "$(ex -bpc)" "0"
[ "$FAIL" -gt 0 ] && { sed 's/^/#   /' "$X/log/mainlog"; sed 's/^/#   /' "$W/relay.log" | tail -30; }
world_summary
