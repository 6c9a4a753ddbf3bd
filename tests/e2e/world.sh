# world.sh - the loopback test world shared by the end-to-end tests.
#
# Sourced by a test script. Builds, under a private work directory:
#   - a CA and leaf certificates made here (never committed);
#   - NSD on 127.0.1.53:53 serving the DNSSEC-signed zone "stsworld."
#     (a private TLD; labtest.sh builds the same world on "lab.test.");
#   - nginx on 127.0.2.1:443 serving MTA-STS policies by SNI;
#   - an stsproxy configuration pointing [dns] and [tls] at all of it.
# Everything runs inside a network namespace made for the run when
# `ip netns` works, otherwise on the host's 127.x addresses.

set -u

: "${STSPROXY:=$PWD/stsproxy}"
E2E_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
W=
ZONE=stsworld
DNS_ADDR=127.0.1.53
WEB_ADDR=127.0.2.1
STALL_ADDR=127.0.2.9
DEAD_ADDR=127.0.2.10
PASS=0
FAIL=0
# Debian's own interpreter, which sees the python3-* packages the
# bootstrap installs (a python3 earlier on PATH may not).
DEBPY=/usr/bin/python3
[ -x "$DEBPY" ] || DEBPY=python3
PIDS=()

# Make the work directory; call after world_enter_netns.
world_init() {
	W=$(mktemp -d /tmp/stsproxy-e2e.XXXXXX)
	trap world_cleanup EXIT
	world_dns_init
}

world_note() { printf '# %s\n' "$*"; }

world_cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	[ -f "$W/nsd.pid" ] && kill "$(cat "$W/nsd.pid")" 2>/dev/null
	[ -f "$W/nginx.pid" ] && kill "$(cat "$W/nginx.pid")" 2>/dev/null
	sleep 0.2
	if [ "${KEEP_WORLD:-0}" = 1 ]; then world_note "kept $W"; else rm -rf "$W"; fi
}

# Re-run the calling script inside a fresh network namespace (its own lo).
world_enter_netns() {
	if [ -n "${STSP_IN_NETNS:-}" ] || [ "${STSP_NO_NETNS:-0}" = 1 ]; then
		ip link set lo up 2>/dev/null
		return 0
	fi
	local ns="stsp-$$"
	if ip netns add "$ns" 2>/dev/null; then
		ip netns exec "$ns" ip link set lo up
		STSP_IN_NETNS=1 ip netns exec "$ns" "$@"
		local rc=$?
		ip netns del "$ns"
		exit $rc
	fi
	world_note "ip netns unavailable: using the host's loopback"
}

# ---- assertions ---------------------------------------------------------
# check "REQ description" ACTUAL EXPECTED
check() {
	if [ "$2" = "$3" ]; then
		PASS=$((PASS + 1)); printf 'ok - %s\n' "$1"
	else
		FAIL=$((FAIL + 1)); printf 'not ok - %s\n#   expected: %s\n#   actual:   %s\n' "$1" "$3" "$2"
	fi
}
# check_match "REQ description" ACTUAL REGEX
check_match() {
	if printf '%s' "$2" | grep -Eq -- "$3"; then
		PASS=$((PASS + 1)); printf 'ok - %s\n' "$1"
	else
		FAIL=$((FAIL + 1)); printf 'not ok - %s\n#   expected to match: %s\n#   actual: %s\n' "$1" "$3" "$2"
	fi
}
world_summary() {
	printf '%d passed, %d failed\n' "$PASS" "$FAIL"
	[ "$FAIL" -eq 0 ]
}

# ---- certificates -------------------------------------------------------
world_ca_init() { # DIR NAME
	local d=$1
	mkdir -p "$d/newcerts"; : > "$d/index.txt"; echo 1000 > "$d/serial"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 30 \
		-subj "/CN=$2" -keyout "$d/ca.key" -out "$d/ca.pem" 2>/dev/null
	cat > "$d/ca.cnf" <<CNF
[ ca ]
default_ca = ca_default
[ ca_default ]
dir = $d
database = $d/index.txt
new_certs_dir = $d/newcerts
serial = $d/serial
default_md = sha256
policy = policy_any
unique_subject = no
copy_extensions = none
[ policy_any ]
commonName = supplied
CNF
}

# world_cert CADIR OUT CN "SAN list" [STARTDATE ENDDATE]
world_cert() {
	local ca=$1 out=$2 cn=$3 san=$4
	local dates="-days 30"
	[ $# -ge 6 ] && dates="-startdate $5 -enddate $6"
	openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$cn" \
		-keyout "$out.key" -out "$out.csr" 2>/dev/null
	if [ -n "$san" ]; then
		printf 'subjectAltName=%s\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' "$san" > "$out.ext"
	else
		printf 'basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > "$out.ext"
	fi
	# shellcheck disable=SC2086
	openssl ca -batch -notext -config "$ca/ca.cnf" -cert "$ca/ca.pem" -keyfile "$ca/ca.key" \
		-in "$out.csr" -out "$out.pem" -extfile "$out.ext" $dates 2>"$out.err" ||
		{ cat "$out.err"; return 1; }
}

# ---- DNS ----------------------------------------------------------------
world_dns_init() {
	mkdir -p "$W/dns"
	(cd "$W/dns" &&
		KSK=$(ldns-keygen -a ECDSAP256SHA256 -k "$ZONE.") &&
		ZSK=$(ldns-keygen -a ECDSAP256SHA256 "$ZONE.") &&
		echo "$KSK" > ksk.name && echo "$ZSK" > zsk.name &&
		cp "$KSK.key" "$W/trust-anchor.key")
	: > "$W/dns/records"
}

# world_dns_extra_zone NAME < zone-file lines: one more zone NSD serves,
# unsigned (absolute names, or relative to NAME); call before world_dns_publish.
world_dns_extra_zone() {
	{ printf '$ORIGIN %s.\n$TTL 5\n' "$1"
	  printf '@ IN SOA ns.%s. hostmaster.%s. 1 60 60 3600 5\n@ IN NS ns.%s.\n' "$ZONE" "$ZONE" "$ZONE"
	  cat; } > "$W/dns/extra-$1.zone"
	printf 'zone:\n\tname: "%s."\n\tzonefile: "%s"\n' "$1" "$W/dns/extra-$1.zone" >> "$W/dns/nsd-extra.conf"
}

# Replace the records of the zone with stdin (zone-file lines, relative names).
world_dns_records() { cat > "$W/dns/records"; }
# Add lines to the zone.
world_dns_add() { cat >> "$W/dns/records"; }

# Sign the zone, apply post-signing edits (to make bogus data), (re)start NSD.
world_dns_publish() {
	local serial
	serial=$(date +%s)
	{
		printf '$ORIGIN %s.\n$TTL 5\n' "$ZONE"
		printf '@ IN SOA ns.%s. hostmaster.%s. %s 60 60 3600 5\n' "$ZONE" "$ZONE" "$serial"
		printf '@ IN NS ns.%s.\nns IN A %s\n' "$ZONE" "$DNS_ADDR"
		cat "$W/dns/records"
	} > "$W/dns/zone"
	(cd "$W/dns" && ldns-signzone -o "$ZONE." zone "$(cat zsk.name)" "$(cat ksk.name)") || return 1
	if [ -f "$W/dns/tamper.sed" ]; then
		sed -i -f "$W/dns/tamper.sed" "$W/dns/zone.signed"
	fi
	local oldpid
	oldpid=$(cat "$W/nsd.pid" 2>/dev/null)
	if [ -n "$oldpid" ] && kill "$oldpid" 2>/dev/null; then
		for _ in $(seq 50); do kill -0 "$oldpid" 2>/dev/null || break; sleep 0.1; done
	fi
	cat > "$W/nsd.conf" <<CONF
server:
	ip-address: $DNS_ADDR
	port: 53
	username: ""
	chroot: ""
	zonesdir: "$W/dns"
	database: ""
	zonelistfile: "$W/dns/zone.list"
	xfrdfile: "$W/dns/xfrd.state"
	pidfile: "$W/nsd.pid"
	logfile: "$W/nsd.log"
	server-count: 1
	verbosity: 1
remote-control:
	control-enable: no
zone:
	name: "$ZONE."
	zonefile: "$W/dns/zone.signed"
$(cat "$W/dns/nsd-extra.conf" 2>/dev/null)
CONF
	rm -f "$W/nsd.pid"
	nsd -c "$W/nsd.conf" || { cat "$W/nsd.log"; return 1; }
	for _ in $(seq 50); do
		[ -s "$W/nsd.pid" ] && dig_ok && return 0
		sleep 0.1
	done
	world_note "NSD did not come up"; cat "$W/nsd.log"; return 1
}

# Whether NSD answers for the zone.
dig_ok() { drill -Q @"$DNS_ADDR" "ns.$ZONE" A 2>/dev/null | grep -q "$DNS_ADDR"; }

# ---- HTTPS (nginx) ------------------------------------------------------
# world_site HOST CERTBASE [extra nginx directives]
world_site() {
	local host=$1 cert=$2 extra=${3:-}
	mkdir -p "$W/www/$host/.well-known"
	cat >> "$W/nginx.sites" <<SITE
	server {
		listen $WEB_ADDR:443 ssl;
		server_name $host;
		ssl_certificate $cert.pem;
		ssl_certificate_key $cert.key;
		root $W/www/$host;
		access_log $W/access-$host.log;
		default_type application/octet-stream;
		types { text/plain txt; }
		$extra
	}
SITE
}

# world_policy HOST < policy text   (empty stdin: remove the file -> 404)
world_policy() {
	local f="$W/www/$1/.well-known/mta-sts.txt"
	cat > "$f.new"
	if [ -s "$f.new" ]; then mv "$f.new" "$f"; else rm -f "$f.new" "$f"; fi
}

# How many times HOST's policy was requested.
world_fetches() {
	if [ -f "$W/access-$1.log" ]; then grep -c 'mta-sts.txt' "$W/access-$1.log"; else echo 0; fi
}

world_web_start() {
	mkdir -p "$W/nginx-tmp"
	cat > "$W/nginx.conf" <<CONF
daemon on;
pid $W/nginx.pid;
error_log $W/nginx-error.log;
worker_processes 1;
user root;
events { worker_connections 64; }
http {
	client_body_temp_path $W/nginx-tmp;
	proxy_temp_path $W/nginx-tmp;
	fastcgi_temp_path $W/nginx-tmp;
	uwsgi_temp_path $W/nginx-tmp;
	scgi_temp_path $W/nginx-tmp;
$(cat "$W/nginx.sites")
}
CONF
	nginx -c "$W/nginx.conf" -p "$W" || { cat "$W/nginx-error.log"; return 1; }
}

# A listener that accepts TCP and never speaks: for fetch timeouts.
world_stall_start() {
	python3 -c '
import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], 443)); s.listen(16)
conns = []
while True:
    c, _ = s.accept(); conns.append(c)
' "$STALL_ADDR" &
	PIDS+=($!)
}

# ---- a private Postfix instance -------------------------------------------
# world_postfix DIR ADDR < extra main.cf lines: a Postfix of its own under
# DIR (queue, data, maillog), listening on ADDR:25 only, not started.
world_postfix() {
	local pf=$1 addr=$2
	# Postfix binds only addresses an interface carries: give lo this one.
	ip addr add "$addr/32" dev lo 2>/dev/null
	mkdir -p "$pf/queue" "$pf/data"
	chown postfix "$pf/data"
	cp /etc/postfix/master.cf "$pf/master.cf"
	chmod 755 "$W"
	{
		cat <<CF
compatibility_level = 3.6
queue_directory = $pf/queue
data_directory = $pf/data
mail_owner = postfix
myhostname = client.$ZONE
inet_interfaces = $addr
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
maillog_file = $pf/maillog
maillog_file_prefixes = $W
alias_maps =
alias_database =
local_recipient_maps =
CF
		cat
	} > "$pf/main.cf"
	postconf -c "$pf" -F '*/*/chroot = n'
}

# ---- stsproxy -----------------------------------------------------------
world_conf() {
	mkdir -p "$W/state"
	cat > "$W/stsproxy.conf" <<CONF
# written by tests/e2e/world.sh
state_dir = $W/state

[dns]
forwarders = $DNS_ADDR
trust_anchor_file = $W/trust-anchor.key
timeout = 3s

[tls]
ca_file = $W/ca/ca.pem

[policy]
fetch_timeout = 2s
${1:-}
CONF
}

# sts ARGS...: run stsproxy on the test configuration; stderr to $W/last.err
sts() { "$STSPROXY" -c "$W/stsproxy.conf" "$@" 2>"$W/last.err"; }
# stsq DOMAIN JQ [extra policy args]: one field of `policy DOMAIN --json`
stsq() { local d=$1 q=$2; shift 2; sts policy "$d" --json "$@" | jq -r "$q"; }
