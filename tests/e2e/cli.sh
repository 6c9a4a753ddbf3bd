#!/usr/bin/env bash
# End-to-end tests of the command line: configuration errors and their
# suggested fixes, the configuration file path, check-config's host checks
# (each failure by name, and a configuration that passes starts), the
# command-line conventions, the policy linter and the generated man page.
# Runs in its own network namespace (world.sh), so the addresses it binds
# are its own.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"
SRC=$(cd "$E2E_DIR/../.." && pwd)
T=$(mktemp -d /tmp/stsproxy-cli.XXXXXX)
trap 'for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done; sleep 0.2; rm -rf "$T"' EXIT

# ---- configuration ------------------------------------------------------
out=$("$STSPROXY" -c /dev/null check-config); rc=$?
check "check-config on an empty file uses the defaults" "$rc" 0
"$STSPROXY" -c "$SRC/contrib/stsproxy.conf.example" check-config > "$T/example.out" 2>&1; rc=$?
check "the shipped example configuration passes check-config" "$rc $(grep -c '^workers = auto' "$T/example.out")" "0 1"
check_match "check-config prints the effective configuration" "$out" "fetch_timeout = 60s"
cat > "$T/bad.conf" <<'CONF'
state_dir = /var/lib/stsproxy
[dns]
timeout = 5 seconds
forwarders = 127.0.0.1
[policy]
max_bdy = 1000
CONF
out=$("$STSPROXY" -c "$T/bad.conf" check-config 2>&1); rc=$?
check "a bad configuration refuses to start (exit 2)" "$rc" 2
check_match "the error names file, line and key" "$out" "$T/bad.conf:3: \[dns\] timeout: '5 seconds' is not a duration"
check_match "every error is reported" "$out" "$T/bad.conf:6: \[policy\] unknown key 'max_bdy'"
check_match "a summary says it will not start" "$out" "2 errors in the configuration; not starting"
out=$("$STSPROXY" -c "$T/missing.conf" check-config 2>&1); rc=$?
check_match "an explicit missing file is an error" "$rc $out" "^2 .*missing.conf: cannot open"
out=$("$STSPROXY" -c "$SRC/contrib/stsproxy.conf.example" check-config 2>&1); rc=$?
check "the installed example configuration is valid" "$rc" 0
out=$("$STSPROXY" -c /dev/null policy 2>&1); rc=$?
check "usage error exits 2" "$rc" 2
out=$(STSPROXY_SERVER_LISTEN="127.0.0.9:2525 [::1]:2525" STSPROXY_HOSTNAME=relay.example.net \
	"$STSPROXY" -c /dev/null check-config)
check_match "environment STSPROXY_SERVER_LISTEN overrides [server] listen" "$out" "listen = 127\.0\.0\.9:2525 \[::1\]:2525"
check_match "environment STSPROXY_HOSTNAME sets a top-level key" "$out" "hostname = relay\.example\.net"
out=$(STSPROXY_SERVER_MAX_RECIPIENTS=5 "$STSPROXY" -c /dev/null check-config 2>&1); rc=$?
check "a bad environment value refuses to start (exit 2)" "$rc" 2
check_match "the error names the variable and the key" "$out" "environment STSPROXY_SERVER_MAX_RECIPIENTS: \[server\] max_recipients: 5 is out of range"
# The descriptor plan serve would make (it raises its soft limit to the
# hard one, then lowers max_connections that still does not fit).
out=$(prlimit --nofile=256 "$STSPROXY" -c /dev/null check-config 2>&1); rc=$?
check_match "check-config warns when the descriptor limit is too low for max_connections" \
	"$rc $out" "^0 .*warning: the descriptor limit \(256\) is too low for max_connections = 500.*serve would take [0-9]+ clients"
out=$(prlimit --nofile=4096 "$STSPROXY" -c /dev/null check-config 2>&1)
check_match "... and states the plan without a warning when it fits" \
	"$(echo "$out" | grep -c warning) $(echo "$out" | grep '^# descriptors')" \
	"^0 .*# descriptors: limit 4096, [0-9]+ needed for max_connections = 500 and reuse_pool_size = 200"


# ---- errors suggest the fix (issue 11 §4) --------------------------------
err() { "$STSPROXY" -c "$1" check-config 2>&1 >/dev/null; }
printf 'listen = 127.0.0.1:2525\n' > "$T/s1.conf"
check_match "a key above its section: did you mean [server] listen?" "$(err "$T/s1.conf")" \
	"s1\.conf:1: unknown key 'listen'; did you mean \[server\] listen\?"
printf '[server]\nallow_clients = 192.168.1.0/24, 10.0.0.0/8\nlistne = 127.0.0.1:25\n' > "$T/s2.conf"
out=$(err "$T/s2.conf")
check_match "a comma in a list: lists are space-separated" "$out" \
	"s2\.conf:2: \[server\] allow_clients: '192\.168\.1\.0/24,': lists are space-separated"
check_match "a misspelled key: the closest known key" "$out" "s2\.conf:3: \[server\] unknown key 'listne'; did you mean listen\?"
out=$(STSPROXY_SERVER_LISTN=127.0.0.1:2525 "$STSPROXY" -c /dev/null check-config 2>&1 >/dev/null); rc=$?
check_match "a misspelled STSPROXY_* variable: a warning naming it and the closest" "$rc $out" \
	"^0 stsproxy: warning: environment STSPROXY_SERVER_LISTN sets no key and is ignored; did you mean STSPROXY_SERVER_LISTEN\?"

# ---- open relay (issue 11 §4) ----------------------------------------------
printf '[server]\nlisten = 0.0.0.0:2526\nallow_clients = 0.0.0.0/0\n' > "$T/open.conf"
out=$("$STSPROXY" -c "$T/open.conf" check-config 2>&1); rc=$?
check_match "0.0.0.0/0 with a listen address that is not loopback is refused (exit 2), naming the key to set" "$rc $out" \
	"^2 .*open\.conf:3: \[server\] allow_clients: 0\.0\.0\.0/0 with listen 0\.0\.0\.0:2526 \(not loopback\) makes an open relay.*allow_open_relay = yes"
out=$(STSPROXY_SERVER_ALLOW_CLIENTS=::/0 STSPROXY_SERVER_LISTEN="[::]:2526" "$STSPROXY" -c /dev/null check-config 2>&1); rc=$?
check_match "...::/0 too, and from the environment" "$rc $out" "^2 .*environment STSPROXY_SERVER_ALLOW_CLIENTS: \[server\] allow_clients: ::/0"
printf 'allow_open_relay = yes\n' >> "$T/open.conf"
out=$("$STSPROXY" -c "$T/open.conf" check-config 2>&1 >/dev/null); rc=$?
check_match "allow_open_relay = yes: it starts, with a loud warning" "$rc $out" "^0 stsproxy: warning: OPEN RELAY: "
printf '[server]\nlisten = 127.0.0.1:2526 unix:%s/s.sock\nallow_clients = 0.0.0.0/0\n' "$T" > "$T/loop.conf"
check "0.0.0.0/0 on loopback and unix: listeners only is no open relay" \
	"$("$STSPROXY" -c "$T/loop.conf" check-config 2>&1 >/dev/null; echo $?)" "0"

# ---- [report] contact (issue 11 §4) ----------------------------------------
printf '[report]\ncontact = mailto:tls@relay.example.net\n' > "$T/contact.conf"
check "contact = mailto:ADDRESS is accepted" "$("$STSPROXY" -c "$T/contact.conf" check-config >/dev/null 2>&1; echo $?)" "0"
printf '[report]\ncontact = https://relay.example.net/tls\n' > "$T/contact2.conf"
out=$("$STSPROXY" -c "$T/contact2.conf" check-config 2>&1); rc=$?
check_match "a contact that is not an address is refused at load time, with the reason" "$rc $out" \
	"^2 .*contact2\.conf:2: \[report\] contact: 'https://relay\.example\.net/tls' is not an email address; mailed reports are sent from it \(MAIL FROM and From:\)"

# ---- the configuration file: /etc/stsproxy/stsproxy.conf, whatever the prefix --
check_match "--help names /etc/stsproxy/stsproxy.conf as the default file" "$("$STSPROXY" --help)" \
	"default /etc/stsproxy/stsproxy\.conf if it exists"
# Put a file there in a private mount namespace (an overlay on /etc), so
# the host's /etc is never touched, and run the commands without -c.
mkdir -p "$T/etc-up/stsproxy" "$T/etc-work" "$T/etcstate"
printf 'hostname = from-etc.example.net\nstate_dir = %s/etcstate\n[dns]\nforwarders = 127.0.0.1\n' "$T" \
	> "$T/etc-up/stsproxy/stsproxy.conf"
if unshare -m true 2>/dev/null; then
	out=$(unshare -m bash -c 'mount --make-rprivate / && mount -t overlay overlay \
		-o lowerdir=/etc,upperdir="$1/etc-up",workdir="$1/etc-work" /etc &&
		"$2" check-config && "$2" cache list' sh "$T" "$STSPROXY" 2>&1)
	check_match "without -c, check-config reads /etc/stsproxy/stsproxy.conf and says so" "$out" \
		"# config=/etc/stsproxy/stsproxy\.conf: OK"
	check_match "...the file's values are in effect" "$out" "hostname = from-etc\.example\.net"
	check_match "...and the tools run by hand say which file, state_dir and DNS they used" "$out" \
		"# config=/etc/stsproxy/stsproxy\.conf state_dir=$T/etcstate dns=127\.0\.0\.1 dnssec=yes"
	check "the host's /etc was not touched" "$([ -e /etc/stsproxy/stsproxy.conf ] && [ ! -e "$T/etc-up/stsproxy/stsproxy.conf" ] && echo touched || echo untouched)" "untouched"
else
	world_note "unshare -m unavailable: the /etc/stsproxy/stsproxy.conf tests are skipped"
fi

# ---- check-config runs serve's start-up checks (issue 11 §4) -------------
# A complete configuration: STARTTLS, DKIM, metrics, a state_dir the
# service user can use. Each failure below changes one line of it.
chmod 0755 "$T"	# mktemp made it 0700: the service user must reach its state_dir
mkdir -p "$T/state"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=relay.cli.test \
	-keyout "$T/relay.key" -out "$T/relay.pem" 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$T/other.key" 2>/dev/null
openssl genpkey -algorithm ED25519 -out "$T/dkim.pem" 2>/dev/null
printf '. IN DS 20326 8 2 NOT-HEX\n' > "$T/bad-anchor.key"
: > "$T/not-a-dir"
good_conf() {
	cat <<CONF
hostname = relay.cli.test
state_dir = $T/state
metrics_listen = 127.0.0.1:9461
[server]
listen = 127.0.0.1:8461
tls_cert_file = $T/relay.pem
tls_key_file = $T/relay.key
[dns]
forwarders = 127.0.0.1
[report]
contact = tlsrpt@relay.cli.test
dkim_key = $T/dkim.pem
dkim_selector = s2026
CONF
}
good_conf > "$T/good.conf"
out=$("$STSPROXY" -c "$T/good.conf" check-config 2>&1); rc=$?
check_match "a complete configuration passes check-config" "$rc $out" "^0 # config=$T/good\.conf: OK, serve would start"
# The failures, by name: check-config says why, and serve refuses with the same reason.
python3 -c 'import socket, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 8462)); s.listen(); print("ready", flush=True); time.sleep(600)' > "$T/squatter.out" &
PIDS+=($!)
squatter=$!
for _ in $(seq 50); do [ -s "$T/squatter.out" ] && break; sleep 0.1; done
failcase() { # NAME SED-EXPRESSION REASON-REGEX
	good_conf | sed "$2" > "$T/$1.conf"
	local out rc sout src
	out=$("$STSPROXY" -c "$T/$1.conf" check-config 2>&1); rc=$?
	check_match "check-config: $1 (exit 2, reason)" "$rc $out" "^2 .*$3"
	sout=$(timeout 5 "$STSPROXY" serve -c "$T/$1.conf" 2>&1); src=$?
	check_match "serve refuses it alike: $1" "$src $sout" "^2 .*$3"
}
failcase missing-user 's/^hostname = .*/&\nuser = nosuchuser-stsp/' \
	"user nosuchuser-stsp does not exist: create it \(useradd --system --user-group --no-create-home nosuchuser-stsp\)"
failcase unusable-state-dir "s|^state_dir = .*|state_dir = $T/not-a-dir|" "state_dir $T/not-a-dir is not a directory"
failcase bad-trust-anchor "s|^forwarders = .*|&\ntrust_anchor_file = $T/bad-anchor.key|" \
	"\[dns\] trust_anchor_file $T/bad-anchor\.key: parse error in $T/bad-anchor\.key"
failcase cert-key-mismatch "s|^tls_key_file = .*|tls_key_file = $T/other.key|" "\[server\] tls_key_file $T/other\.key: key values mismatch"
failcase dkim-count "s|^dkim_key = .*|dkim_key = $T/dkim.pem $T/dkim.pem|" \
	"\[report\] dkim_key: 2 keys but 1 selector in dkim_selector"
failcase listen-in-use 's|^listen = .*|listen = 127.0.0.1:8461 127.0.0.1:8462|' \
	"\[server\] listen 127\.0\.0\.1:8462: in use by python3 \(pid $squatter\); choose another address or port"
failcase listen-is-metrics 's|^metrics_listen = .*|metrics_listen = 127.0.0.1:8461|' \
	"metrics_listen 127\.0\.0\.1:8461 clashes with \[server\] listen 127\.0\.0\.1:8461"
# A configuration that passes check-config starts: serve it and talk SMTP.
"$STSPROXY" serve -c "$T/good.conf" > "$T/serve.log" 2>&1 &
serve=$!
PIDS+=($serve)
for _ in $(seq 50); do grep -q event=started "$T/serve.log" && break; sleep 0.1; done
check_match "serve logs config=PATH on its start line" "$(grep event=started "$T/serve.log")" "config=$T/good\.conf "
smtp=$(python3 -c 'import socket
s = socket.create_connection(("127.0.0.1", 8461), 5); f = s.makefile("rb")
print(f.readline().decode().strip()); s.sendall(b"EHLO client.cli.test\r\n")
while True:
    l = f.readline().decode().strip(); print(l)
    if l[3:4] == " ": break
s.sendall(b"QUIT\r\n"); print(f.readline().decode().strip())' 2>&1 | tr '\n' ' ')
check_match "...and it accepts SMTP, with STARTTLS from the checked certificate" "$smtp" \
	"^220 relay\.cli\.test .*250-STARTTLS .*221 "
out=$("$STSPROXY" -c "$T/good.conf" check-config 2>&1); rc=$?
check_match "check-config next to the running relay (before a reload): passes, with a warning naming it" "$rc $out" \
	"^0 stsproxy: warning: \[server\] listen 127\.0\.0\.1:8461: in use by the running stsproxy \(pid $serve\)"
out=$(timeout 5 "$STSPROXY" -c "$T/good.conf" serve 2>&1); rc=$?
check_match "...while a second serve refuses: the address is taken" "$rc $out" "^2 .*listen 127\.0\.0\.1:8461: in use by another stsproxy \(pid $serve\)"
kill "$serve"; wait "$serve" 2>/dev/null
check "serve stopped cleanly, without sanitizer reports" \
	"$(grep -c 'event=stopped' "$T/serve.log") $(grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$T/serve.log")" "1 0"
check "check-config -n: only what differs from the defaults, with where each was set" \
	"$("$STSPROXY" check-config -n -c "$T/good.conf" | grep -E '^(hostname|workers|listen|tls_cert_file) ')" \
	"hostname = relay.cli.test   # $T/good.conf:1
tls_cert_file = $T/relay.pem   # $T/good.conf:6"

# ---- command-line conventions (issue 11 §5) -------------------------------
for c in serve policy cache report check-config; do
	out=$("$STSPROXY" "$c" --help 2>&1); rc=$?
	check_match "stsproxy $c --help: its usage on stdout, exit 0" "$rc $out" "^0 usage: stsproxy .*$c"
done
out=$("$STSPROXY" -h); rc=$?
check_match "stsproxy -h: the usage on stdout, exit 0" "$rc $out" "^0 usage: stsproxy \[-c FILE\]"
check_match "stsproxy help policy" "$("$STSPROXY" help policy)" "^usage: stsproxy policy DOMAIN"
check_match "stsproxy --version" "$("$STSPROXY" --version)" "^stsproxy [0-9]+\.[0-9]+"
check_match "stsproxy report --version" "$("$STSPROXY" report --version)" "^stsproxy [0-9]+\.[0-9]+"
out=$("$STSPROXY" serve -c "$T/bad.conf" 2>&1); rc=$?
check_match "stsproxy serve -c FILE: the option after the command is read" "$rc $out" "^2 .*bad\.conf:3: \[dns\] timeout"
check_match "check-config --config=FILE -n -d" "$("$STSPROXY" check-config --config="$T/good.conf" -n -d 2>&1)" \
	"# config=$T/good\.conf: OK"
# Lookups that fail: a resolver that is not there (nothing on 127.0.0.1:53 here).
printf 'state_dir = %s/pstate\n[dns]\nforwarders = 127.0.0.1\ndnssec = no\ntimeout = 2s\n' "$T" > "$T/nodns2.conf"
out=$("$STSPROXY" -c "$T/nodns2.conf" policy user@example.com 2>"$T/p.err"); rc=$?
check "policy: a lookup that failed exits 2" "$rc" "2"
check_match "...says which domain it took from the address" "$(cat "$T/p.err")" \
	"looking up example\.com, the domain of the address user@example\.com"
check_match "...and why" "$(cat "$T/p.err")" \
	"example\.com: lookup failed: the TXT lookup of _mta-sts\.example\.com failed \((servfail|timeout)\)"
check "...never 'no policy'" "$(grep -c 'no policy' <<<"$out")" "0"
check_match "...the text verdict says unknown" "$out" "verdict:  unknown: the TXT lookup of _mta-sts\.example\.com failed"
check_match "...under a header naming the configuration" "$(head -1 <<<"$out")" \
	"^# config=$T/nodns2\.conf state_dir=$T/pstate dns=127\.0\.0\.1 dnssec=no$"
out=$("$STSPROXY" -c "$T/nodns2.conf" policy https://mta-sts.example.org/.well-known/mta-sts.txt --json 2>"$T/p.err"); rc=$?
check_match "policy URL: the policy domain behind mta-sts., exit 2, lookup_failed in JSON" \
	"$rc $(jq -r '.domain + " " + .verdict.lookup_failed + " " + .config.file' <<<"$out") $(cat "$T/p.err")" \
	"^2 example\.org the TXT lookup of _mta-sts\.example\.org failed .* $T/nodns2\.conf .*the policy domain of the policy URL"

# ---- policy linter ------------------------------------------------------
printf 'version: STSv1\nmode: enforce\nmx: mx1.a.example\nmx: *.b.example\nmax_age: 604800\n' > "$T/good.txt"
out=$("$STSPROXY" -c /dev/null policy --file "$T/good.txt" --mx mx1.a.example x.b.example); rc=$?
check "lint: a valid policy exits 0" "$rc" 0
check_match "lint: each --mx host is matched" "$out" "mx x.b.example: allowed \(pattern \*\.b\.example\)"
out=$("$STSPROXY" -c /dev/null policy --file "$T/good.txt" --mx a.b.example.evil); rc=$?
check "lint: a host no pattern allows exits 1 (STS-37)" "$rc" 1
check_match "lint: ...and says so" "$out" "mx a.b.example.evil: NOT allowed"
printf 'mode: testing\nmx: mx.a.example \nmax_age: 3600\nversion: STSv1' > "$T/warn.txt"
out=$("$STSPROXY" -c /dev/null policy --file "$T/warn.txt"); rc=$?
check "lint: warnings alone still exit 0" "$rc" 0
check_match "lint: version not first" "$out" "warn.txt:4: warning: 'version' is not the first line"
check_match "lint: trailing whitespace" "$out" "warn.txt:2: warning: trailing blanks"
check_match "lint: no final newline" "$out" "warn.txt:4: warning: no line break after the last line"
check_match "lint: testing max_age under a day" "$out" "warn.txt:3: warning: max_age 3600 is under a day"
printf 'version: STSv1\nmode: enforce\nmx: *.example\nmx: mx*.a.example\nmax_age: 99\n' > "$T/bad.txt"
out=$("$STSPROXY" -c /dev/null policy --file "$T/bad.txt"); rc=$?
check "lint: an invalid policy exits 1" "$rc" 1
check_match "lint: wildcard covering a whole TLD" "$out" "bad.txt:3: warning: mx: '\*\.example' covers every host"
check_match "lint: error with its line (STS-39)" "$out" "bad.txt:4: error: mx: 'mx\*\.a\.example' is not a valid pattern"
check_match "lint: verdict" "$out" "INVALID: 1 error"
out=$("$STSPROXY" -c /dev/null policy --file "$T/nonexistent.txt" 2>&1); rc=$?
check "lint: unreadable file exits 2" "$rc" 2
out=$("$STSPROXY" -c /dev/null policy --file "$T/good.txt" --mx mx1.a.example --mx x.b.example --mx evil.example); rc=$?
check "lint: repeated --mx accumulate (exit 1: one is not allowed)" \
	"$rc $(grep -c '^mx ' <<<"$out") $(grep -c 'mx evil.example: NOT allowed' <<<"$out")" "1 3 1"
out=$("$STSPROXY" -c /dev/null policy --file "$T/good.txt" --mx mx1.a.example --mx evil.example --json); rc=$?
check "lint: --json with --file" "$rc $(jq -c '[.valid, .mode, .max_age, [.mx[] | .allowed]]' <<<"$out")" \
	'1 [true,"enforce",604800,[true,false]]'
out=$("$STSPROXY" -c /dev/null policy --file "$T/bad.txt" --json); rc=$?
check "lint: --json on an invalid file: the diagnostics with their lines" \
	"$rc $(jq -c '[.valid, (.diagnostics[] | select(.severity == "error") | .line)]' <<<"$out")" "1 [false,4]"

# ---- man pages ----------------------------------------------------------
gen=$("$STSPROXY" config-man-keys)
doc=$(sed -n '/^\.\\" BEGIN KEYS/,/^\.\\" END KEYS/p' "$SRC/docs/stsproxy.conf.5" | sed '1d;$d')
check "stsproxy.conf(5) KEYS section matches the key table (run make update-man)" "$doc" "$gen"
if command -v man >/dev/null; then
	check_match "stsproxy.conf(5) renders" "$(MANWIDTH=100 man -l "$SRC/docs/stsproxy.conf.5" 2>&1)" "refresh_interval"
	check_match "stsproxy(8) renders" "$(MANWIDTH=100 man -l "$SRC/docs/stsproxy.8" 2>&1)" "cache refresh"
fi

# ---- the container's runtime stage, without a container engine ----------
# contrib/docker/Dockerfile installs with DESTDIR and runs the binary as a
# non-root user, configured only by STSPROXY_* variables. Do the same here.
if [ "$(id -u)" = 0 ] && [ -f Makefile ] && id stsproxy >/dev/null 2>&1; then
	hook=$(make install DESTDIR="$T/root" 2>&1 | grep '^stsproxy:')
	check_match "make install with DESTDIR leaves the user to the packager, with the command" "$hook" \
		"useradd --system --user-group --no-create-home stsproxy"
	bin=$(find "$T/root" -path '*/bin/stsproxy' -type f | head -1)
	check "make install: binary, both man pages and the example configuration" \
		"$([ -x "$bin" ] && echo bin) $(find "$T/root" -name stsproxy.8 -o -name stsproxy.conf.5 -o -name stsproxy.conf.example | wc -l)" "bin 3"
	check "make install: the example goes next to the file the binary reads, whatever the prefix" \
		"$(ls "$T/root/etc/stsproxy/")" "stsproxy.conf.example"
	chmod 0755 "$T"	# mktemp made it 0700: the user must reach its state_dir
	install -d -o stsproxy -g stsproxy -m 0700 "$T/state"
	cexec() { exec setpriv --reuid=stsproxy --regid=stsproxy --clear-groups env -i PATH=/usr/bin:/bin \
		STSPROXY_STATE_DIR="$T/state" STSPROXY_SERVER_LISTEN=127.0.0.1:10094 \
		STSPROXY_HOSTNAME=relay.container.test STSPROXY_DNS_FORWARDERS=127.0.0.1 "$@"; }
	check_match "container: keys come from STSPROXY_* alone" "$(cexec "$bin" check-config 2>&1 | grep -E '^(listen|hostname) =' | tr '\n' ' ')" \
		"^hostname = relay\.container\.test listen = 127\.0\.0\.1:10094 $"
	cexec "$bin" serve --foreground > "$T/container.log" 2>&1 &
	cpid=$!
	for _ in $(seq 50); do grep -q event=started "$T/container.log" && break; sleep 0.1; done
	greet=$(python3 -c 'import socket; s = socket.create_connection(("127.0.0.1", 10094), 5); print(s.recv(512).decode().strip())' 2>&1)
	check_match "container: non-root from the start, serving on the embedded defaults plus environment" \
		"$greet $(ps -o user= -p $cpid)" "^220 relay\.container\.test .* stsproxy$"
	check "container: no privilege switch was needed or attempted" "$(grep -c 'privileges_dropped\|running_as_root' "$T/container.log")" "0"
	kill "$cpid"; wait "$cpid" 2>/dev/null
	check_match "container: SIGTERM stops it cleanly" "$(grep -o 'event=stopped' "$T/container.log")" "event=stopped"
fi

world_summary
