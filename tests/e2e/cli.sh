#!/usr/bin/env bash
# End-to-end tests of the command line that need no network: configuration
# errors and check-config, the policy linter, and the generated man page.
set -u
: "${STSPROXY:=$PWD/stsproxy}"
SRC=$(cd "$(dirname "$0")/../.." && pwd)
T=$(mktemp -d /tmp/stsproxy-cli.XXXXXX)
trap 'rm -rf "$T"' EXIT
PASS=0 FAIL=0
check() {
	if [ "$2" = "$3" ]; then PASS=$((PASS + 1)); echo "ok - $1"
	else FAIL=$((FAIL + 1)); printf 'not ok - %s\n#   expected: %s\n#   actual:   %s\n' "$1" "$3" "$2"; fi
}
check_match() {
	if printf '%s' "$2" | grep -Eq -- "$3"; then PASS=$((PASS + 1)); echo "ok - $1"
	else FAIL=$((FAIL + 1)); printf 'not ok - %s\n#   expected to match: %s\n#   actual: %s\n' "$1" "$3" "$2"; fi
}

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

printf '%d passed, %d failed\n' "$PASS" "$FAIL"
[ "$FAIL" -eq 0 ]
