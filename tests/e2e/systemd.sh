#!/usr/bin/env bash
# End-to-end: contrib/systemd/stsproxy.service. systemd does not run here
# (and need not be PID 1): `systemd-analyze verify` loads the unit from a
# root made for it (a `make install DESTDIR` of this build, so ExecStart must
# name the binary where make install puts it, its man pages, and this
# host's systemd units and the programs the unit runs), and the unit's
# directories, descriptor limit and reload command are checked against the
# binary's own defaults and a running relay.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"

SRC=$(cd "$E2E_DIR/../.." && pwd)
UNIT=$SRC/contrib/systemd/stsproxy.service
command -v systemd-analyze >/dev/null ||
	{ echo "SKIP: systemd-analyze not installed (Debian package systemd, contrib/packages/test.txt)"; exit 77; }
[ -d /usr/lib/systemd/system ] || { echo "SKIP: no /usr/lib/systemd/system on this host"; exit 77; }
[ -f Makefile ] || { echo "SKIP: not in a build directory (make install DESTDIR is needed)"; exit 77; }
world_init
R=$W/root

# unit_key KEY: the value of KEY= in the unit (the last one, as systemd reads it).
unit_key() { sed -n "s/^$1=//p" "$UNIT" | tail -1; }
# default_key [SECTION] KEY: the binary's embedded default.
default_key() { "$STSPROXY" -c /dev/null check-config 2>/dev/null |
	awk -v s="${2:+[$1]}" -v k="${2:-$1}" '/^\[/ { sec = $0; next }
		sec == s && $1 == k { sub(/^[^=]*= ?/, ""); print; exit }'; }

# ---- systemd-analyze verify on an installed root ----------------------------
make -s install DESTDIR="$R" > "$W/install.log" 2>&1 || { cat "$W/install.log"; exit 1; }
mkdir -p "$R/etc/systemd/system" "$R/usr/lib/systemd" "$R/usr/bin"
cp "$UNIT" "$R/etc/systemd/system/"
# The units the default dependencies need (sysinit.target, ...), from this host.
cp -a /usr/lib/systemd/system "$R/usr/lib/systemd/"
# Debian's merged /usr: /bin is /usr/bin.
ln -s usr/bin "$R/bin"
# The other programs the unit runs (kill), from this host; stsproxy itself
# only from the install above.
for cmd in $(sed -n 's/^Exec[A-Za-z]*=[-+!@:]*\([^ ]*\).*/\1/p' "$UNIT" | sort -u); do
	case $cmd in */stsproxy) continue ;; esac
	[ -e "$R$cmd" ] || { [ -x "$cmd" ] && cp "$(readlink -f "$cmd")" "$R/usr/bin/${cmd##*/}"; }
done
verify() { MANPATH=$R/usr/local/share/man systemd-analyze verify --root="$R" "$1" 2>&1; }
out=$(verify stsproxy.service); rc=$?
check "systemd-analyze verify: the unit loads with no error or warning (binary, man pages, kill found)" \
	"$rc:$out" "0:"
[ -n "$out" ] && printf '#   %s\n' "$out"

# The harness must see mistakes: a misspelt key and a wrong ExecStart.
sed 's/^LimitNOFILE=/LimitNOFILES=/; s|^ExecStart=/usr/local/bin/|ExecStart=/usr/local/sbin/|' "$UNIT" \
	> "$R/etc/systemd/system/broken.service"
out=$(verify broken.service)
check "verify catches a misspelt key and a missing ExecStart binary" \
	"$(printf '%s\n' "$out" | grep -c "Unknown key 'LimitNOFILES'\|/usr/local/sbin/stsproxy is not executable")" "2"

exposure=$(systemd-analyze security --offline=yes --root="$R" stsproxy.service 2>&1 |
	sed -n 's/.*Overall exposure level for stsproxy.service: \([0-9.]*\).*/\1/p')
check_match "systemd-analyze security: exposure level at most 4.5 of 10 (now $exposure)" "$exposure" \
	'^([0-3]\.[0-9]|4\.[0-5])$'

# ---- what the unit provides matches what the relay uses ------------------------
check "StateDirectory= is the default state_dir" "/var/lib/$(unit_key StateDirectory)" "$(default_key state_dir)"
check "LogsDirectory= holds the default log_file" "/var/log/$(unit_key LogsDirectory)" "$(dirname "$(default_key log_file)")"
check "Group= is the default user's group, so the relay keeps writing there after it switched users" \
	"$(unit_key Group)" "$(default_key user)"
check "the directories are group-writable where the relay, no longer root, creates files (logs, runtime)" \
	"$(unit_key LogsDirectoryMode) $(unit_key RuntimeDirectoryMode)" "0770 0775"
check "ProtectSystem=strict: nothing else is writable" "$(unit_key ProtectSystem)" "strict"

# LimitNOFILE= covers the arithmetic in the unit's comment at the binary's
# defaults: clients + one upstream each + the idle pool + one HTTPS fetch per
# session + libunbound's 1024 queries in flight and 10 TCP + 30 for the rest.
maxconn=$(default_key server max_connections)
pool=$(default_key upstream reuse_pool_size)
need=$((3 * maxconn + pool + 1034 + 30))
limit=$(unit_key LimitNOFILE)
check "LimitNOFILE=$limit covers 3 x max_connections ($maxconn) + reuse_pool_size ($pool) + 1064 = $need" \
	"$([ "${limit%%:*}" -ge "$need" ] 2>/dev/null && echo yes)" "yes"
# ... and what check-config says serve needs at the defaults (sessions and the
# pool; it leaves DNS and fetches out).
needed=$("$STSPROXY" -c /dev/null check-config 2>/dev/null | sed -n 's/^# descriptors: .* \([0-9][0-9]*\) needed .*/\1/p')
check "LimitNOFILE=$limit covers what check-config says serve needs (${needed:-?})" \
	"$([ "${limit%%:*}" -ge "${needed:-999999}" ] 2>/dev/null && echo yes)" "yes"

# ---- ExecReload= reloads a running relay --------------------------------------
PORT=127.0.0.1:10098
mkdir -p "$W/state"
cat > "$W/stsproxy.conf" <<CONF
state_dir = $W/state
allow_root = yes
[server]
listen = $PORT
max_connections = 100
CONF
prlimit --nofile="$limit" "$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay.log" 2>&1 &
MAINPID=$!
PIDS+=($MAINPID)
for _ in $(seq 50); do grep -q event=started "$W/relay.log" && break; sleep 0.1; done
check "the relay runs with the unit's descriptor limit" "$(sed -n 's/^Max open files *\([0-9]*\).*/\1/p' /proc/$MAINPID/limits)" "${limit%%:*}"
sed -i 's/^max_connections = 100/max_connections = 200/' "$W/stsproxy.conf"
reload=$(unit_key ExecReload)
eval "${reload//\$MAINPID/$MAINPID}"
for _ in $(seq 50); do grep -q event=reloaded "$W/relay.log" && break; sleep 0.1; done
check_match "ExecReload= ($reload) makes the relay reload its file" "$(grep -o 'event=reloaded' "$W/relay.log")" "event=reloaded"
kill "$MAINPID"; wait "$MAINPID" 2>/dev/null
check "the relay was still running after the reload (SIGHUP did not stop it)" "$(grep -c event=stopped "$W/relay.log")" "1"
world_summary
