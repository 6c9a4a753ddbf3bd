#!/usr/bin/env bash
# End-to-end: a fleet of relays sharing one store in PostgreSQL (issue 17).
# A private PostgreSQL cluster (initdb/pg_ctl as the postgres user, on
# 127.0.7.1) holds the TLS-RPT counters, the outbox and the MTA-STS policy
# cache of three stsproxy instances on their own ports; three real Postfix
# clients, each with one of them as relayhost, spread mail over the fleet.
#   - the schema: store init from an empty database, from the previous
#     version (data kept), and two at once; check-config and serve refuse
#     what they must (a bad connection string, a password in it, a
#     database that is not there, an old schema);
#   - one policy fetch serves the fleet;
#   - the database stopped in the middle of traffic: no message deferred,
#     /healthz and the log say degraded and what is buffered, counts
#     spilled to reports.mdb (a small [store] buffer, and a relay stopped
#     while the database is down) and replayed once when it is back;
#   - the next day (the test clock): one relay plans and sends, one report
#     per policy domain and destination, each count the sum of every
#     relay's sessions (nothing lost, nothing counted twice);
#   - the sending relay killed in the middle of a POST: another relay
#     takes over and the destination accepts each report once.
. "$(dirname "$0")/world.sh"
world_enter_netns bash "$0" "$@"
. "$E2E_DIR/pgworld.sh"

for tool in nsd nginx ldns-signzone drill jq openssl python3 postfix postqueue runuser gunzip; do
	command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
world_pg_available || { echo "SKIP: PostgreSQL (initdb, pg_ctl, user postgres) not installed"; exit 77; }

# ---- the world: four recipient domains without STARTTLS, one with a policy ----
world_init
PFS=()
pf_stop_all() { for p in "${PFS[@]}"; do postfix -c "$p" stop >/dev/null 2>&1; done; }
trap 'pf_stop_all; world_pg_stop; world_cleanup' EXIT
world_ca_init "$W/ca" "stsproxy test CA"
mkdir -p "$W/certs" "$W/spool"
world_cert "$W/ca" "$W/certs/reports" "reports.$ZONE" "DNS:reports.$ZONE" || exit 1
world_cert "$W/ca" "$W/certs/sts" "mta-sts.sts.$ZONE" "DNS:mta-sts.sts.$ZONE" || exit 1
: > "$W/nginx.sites"
world_site "mta-sts.sts.$ZONE" "$W/certs/sts"
printf 'version: STSv1\nmode: testing\nmx: mx.plain.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.sts.$ZONE"
world_dns_records <<ZONEDATA
one MX 10 mx.plain.$ZONE.
two MX 10 mx.plain.$ZONE.
three MX 10 mx.plain.$ZONE.
sts MX 10 mx.plain.$ZONE.
_mta-sts.sts TXT "v=STSv1; id=sts1;"
mta-sts.sts A $WEB_ADDR
mx.plain A 127.0.6.1
_smtp._tls.one TXT "v=TLSRPTv1; rua=https://reports.$ZONE/tlsrpt/one"
_smtp._tls.two TXT "v=TLSRPTv1; rua=https://reports.$ZONE/tlsrpt/two"
_smtp._tls.sts TXT "v=TLSRPTv1; rua=https://reports.$ZONE/tlsrpt/sts"
_smtp._tls.three TXT "v=TLSRPTv1; rua=https://reports.$ZONE/stallfirst/three"
reports A 127.0.6.20
ZONEDATA
world_dns_publish >/dev/null || exit 1
world_web_start || exit 1
python3 "$E2E_DIR/mxserver.py" --listen 127.0.6.1:25 --name mx.plain --spool "$W/spool" \
	--behave nostarttls > "$W/mx.out" 2>&1 &
PIDS+=($!)
python3 "$E2E_DIR/httpsreceiver.py" 127.0.6.20:443 "$W/certs/reports.pem" "$W/certs/reports.key" \
	"$W/received" > "$W/receiver.out" 2>&1 &
PIDS+=($!)

world_pg_start "$W/pg" || { world_note "the PostgreSQL cluster did not start"; exit 1; }
for db in empty prev race1; do
	world_pg_sql "CREATE DATABASE $db OWNER stsproxy" >/dev/null || exit 1
done

# relay_conf N [extra lines]: the configuration of relay N (port 846N)
relay_conf() {
	mkdir -p "$W/r$1"
	chown stsproxy "$W/r$1" 2>/dev/null
	cat > "$W/r$1.conf" <<CONF
hostname = relay$1.$ZONE
state_dir = $W/r$1

[server]
listen = 127.0.0.1:846$1

[dns]
forwarders = $DNS_ADDR
trust_anchor_file = $W/trust-anchor.key
timeout = 3s

[tls]
ca_file = $W/ca/ca.pem

[policy]
fetch_timeout = 10s

[report]
max_delay = 0
flush_interval = 1s
retry_interval = 3s
organization = Fleet Example
contact = tlsrpt@relay.$ZONE

[store]
backend = postgresql
postgresql = $PG_CONNINFO
share_policies = yes
timeout = 2s
${2:-}
CONF
}
for n in 1 2 3; do relay_conf "$n"; done
# Relay 2 spills at once what the database does not take; relay 1 has /healthz.
relay_conf 2 "buffer = 1"
sed -i "s|^hostname = relay1.*|&\nmetrics_listen = 127.0.0.1:9187|" "$W/r1.conf"
sts() { "$STSPROXY" -c "$W/r$1.conf" "${@:2}"; }
with_db() { local db=$1; shift; STSPROXY_STORE_POSTGRESQL="${PG_CONNINFO/dbname=$PG_DB/dbname=$db}" "$@"; }
wait_log() { for _ in $(seq "${3:-150}"); do grep -qE -- "$2" "$1" 2>/dev/null && return 0; sleep 0.1; done; return 1; }
http_get() { python3 -c 'import sys, urllib.request, urllib.error
try:
    r = urllib.request.urlopen(sys.argv[1], timeout=5); print(r.status); print(r.read().decode())
except urllib.error.HTTPError as e:
    print(e.code); print(e.read().decode())' "$1"; }

# ---- the schema -------------------------------------------------------------------
out=$(with_db empty sts 1 check-config 2>&1 >/dev/null)
check_match "check-config: an empty database is refused, with the fix" "$out" \
	"\[store\] postgresql: the database 127\.0\.7\.1:5432/empty as stsproxy has stsproxy schema version 0, this stsproxy needs 2: run stsproxy store init"
out=$(with_db empty sts 1 store init); rc=$?
check_match "store init from an empty database: version 0 -> 2" "$out" "schema: version 0 -> 2"
check "... exit status 0, and check-config passes now" "$rc $(with_db empty sts 1 check-config >/dev/null 2>&1; echo $?)" "0 0"
check_match "store init again: nothing to do" "$(with_db empty sts 1 store init)" "schema: version 2, nothing to do"

with_db prev sts 1 store init --to 1 >/dev/null
world_pg_sql "INSERT INTO stsproxy_rpt_counter VALUES ('2020-01-01', 'old.example', 'p', '', '{}', NULL, 7)" prev >/dev/null
check_match "check-config on the previous version says to run store init" \
	"$(with_db prev sts 1 check-config 2>&1 >/dev/null)" "schema version 1, this stsproxy needs 2: run stsproxy store init"
out=$(with_db prev sts 1 store init)
check_match "store init from the previous version: 1 -> 2" "$(echo $out)" "applied version 2: shared MTA-STS policy cache.*schema: version 1 -> 2"
check "... and the counts of version 1 are still there" \
	"$(world_pg_sql "SELECT count FROM stsproxy_rpt_counter WHERE domain = 'old.example'" prev)" "7"

with_db race1 sts 1 store init > "$W/init-a.out" 2>&1 &
A=$!
with_db race1 sts 2 store init > "$W/init-b.out" 2>&1 &
B=$!
wait "$A"; ra=$?; wait "$B"; rb=$?
check "two relays run store init at once: both succeed" "$ra $rb" "0 0"
check "... one applied the migrations, the other found them done" \
	"$(cat "$W/init-a.out" "$W/init-b.out" | grep -c 'schema: version 0 -> 2') $(cat "$W/init-a.out" "$W/init-b.out" | grep -c 'nothing to do')" "1 1"
check "... and each version is recorded once" "$(world_pg_sql "SELECT string_agg(version::text, ',' ORDER BY version) FROM stsproxy_schema" race1)" "1,2"

# ---- what must not start ------------------------------------------------------------
out=$(STSPROXY_STORE_POSTGRESQL="hostaddr=$PG_ADDR dbnmae=x" sts 1 serve 2>&1); rc=$?
check_match "a bad connection string is a start-up error with libpq's message" "$rc $out" \
	"^2 .*\[store\] postgresql: not a libpq connection string: invalid connection option \"dbnmae\""
out=$(STSPROXY_STORE_POSTGRESQL="$PG_CONNINFO password=secret" sts 1 check-config 2>&1); rc=$?
check_match "a password in the connection string is refused: it comes from a file" "$rc $out" \
	"^2 .*has a password: put it in a file"
check_match "check-config names a database that is not there, in libpq's words" \
	"$(with_db nosuchdb sts 1 check-config 2>&1)" 'database "nosuchdb" does not exist'
sts 1 store init >/dev/null
check "the fleet's database: store init, then check-config passes on every relay" \
	"$(for n in 1 2 3; do sts "$n" check-config >/dev/null 2>&1; echo -n "$?"; done)" "000"

# ---- three relays, three Postfix clients ----------------------------------------------
start_relay() { # N [env...]
	local n=$1; shift
	env "$@" "$STSPROXY" -c "$W/r$n.conf" serve >> "$W/relay$n.log" 2>&1 &
	eval "R$n=$!"
	PIDS+=($!)
	wait_log "$W/relay$n.log" "event=started" || { world_note "relay $n did not start"; tail "$W/relay$n.log"; exit 1; }
}
stop_relay() { # N: SIGTERM, and wait (it flushes)
	local pid
	eval "pid=\$R$1"
	kill "$pid" 2>/dev/null
	for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
for n in 1 2 3; do start_relay "$n"; done
check_match "the relays say where the store is" "$(grep -h event=started "$W"/relay1.log)" \
	"store=\"the database 127\.0\.7\.1:5432/fleet as stsproxy\""

pf_start() { # N: Postfix N on 127.0.3.N, relayhost = relay N
	world_postfix "$W/pf$1" "127.0.3.$1" <<CF
mydomain = $ZONE
myorigin = client.$ZONE
mydestination = client.$ZONE
local_transport = discard:
relayhost = [127.0.0.1]:846$1
smtp_tls_security_level = may
# One attempt: a message the relay defers stays deferred, and the test sees it.
queue_run_delay = 3600s
minimal_backoff_time = 3600s
maximal_backoff_time = 3600s
CF
	postfix -c "$W/pf$1" start >/dev/null 2>&1 || { world_note "postfix $1 failed to start"; cat "$W/pf$1/maillog"; exit 1; }
	PFS+=("$W/pf$1")
}
for n in 1 2 3; do pf_start "$n"; done
cat > "$W/submit.py" <<'PY'
import smtplib, sys
host, n, domain, tag = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
with smtplib.SMTP(host, 25, timeout=30) as s:
    for i in range(n):
        msg = "From: <a@client.stsworld>\r\nSubject: %s %d\r\n\r\nhi\r\n" % (tag, i)
        s.sendmail("a@client.stsworld", ["u%d@%s" % (i, domain)], msg)
PY
SENT_one=0 SENT_two=0 SENT_three=0 SENT_sts=0
submit() { # PF DOMAIN COUNT TAG
	python3 "$W/submit.py" "127.0.3.$1" "$3" "$2.$ZONE" "$4" || world_note "submit to Postfix $1 failed"
	eval "SENT_$2=\$((SENT_$2 + $3))"
}
delivered() { ls "$W"/spool/mx.plain/*.eml 2>/dev/null | wc -l; }
wait_delivered() { # TOTAL
	for _ in $(seq 600); do [ "$(delivered)" -ge "$1" ] && return 0; sleep 0.1; done
	world_note "only $(delivered) of $1 messages arrived"
}
total() { echo $((SENT_one + SENT_two + SENT_three + SENT_sts)); }

# One policy fetch for the fleet: relay 1 fetches, the others find it in the store.
submit 1 sts 1 first
wait_delivered 1
submit 2 sts 2 second
submit 3 sts 2 second
wait_delivered "$(total)"
check "one MTA-STS policy fetch serves the fleet" "$(world_fetches "mta-sts.sts.$ZONE")" "1"
check "... and the policy is in the shared cache, as any relay lists it" \
	"$(sts 3 cache list 2>/dev/null | awk -v d="sts.$ZONE" '$1 == d { print $2, $3, $4 }')" "sts1 testing live"

for n in 1 2 3; do
	submit "$n" one 3 day1
	submit "$n" two 2 day1
	submit "$n" three 1 day1
done
wait_delivered "$(total)"
check "traffic through the three relays arrived" "$(delivered)" "$(total)"

# ---- the database goes away in the middle of traffic ------------------------------------
world_pg_stop
for n in 1 2 3; do submit "$n" one 2 outage; submit "$n" sts 1 outage; done
wait_delivered "$(total)"
check "database down: every message still arrives" "$(delivered)" "$(total)"
wait_log "$W/relay1.log" "event=report_store_degraded" 50
check_match "the log says the store is degraded, and why" "$(grep -h event=report_store_degraded "$W"/relay1.log | head -1)" \
	"event=report_store_degraded database=\"the database 127\.0\.7\.1:5432/fleet as stsproxy\" reason=.*(refused|connect|closed|terminat)"
health=$(http_get http://127.0.0.1:9187/healthz)
check_match "/healthz: 200, and says the store is degraded and what is buffered" "$(echo $health)" \
	"^200 degraded: report store degraded: .*; [0-9]+ records in memory, [0-9]+ batches spilled to reports.mdb"
wait_log "$W/relay2.log" "event=report_store_spilled" 50
check_match "relay 2 (buffer = 1) spills to its reports.mdb, and says so" \
	"$(grep -h event=report_store_spilled "$W/relay2.log" | head -1)" "event=report_store_spilled batch=relay2\.$ZONE/[0-9]+/[0-9a-f]+/[0-9]+ records=[0-9]+ path=$W/r2/reports.mdb"
check_match "/metrics: the store is degraded" "$(python3 -c 'import urllib.request; print(urllib.request.urlopen("http://127.0.0.1:9187/metrics").read().decode())' | grep '^stsproxy_store_degraded')" \
	'stsproxy_store_degraded\{part="reports"\} 1'
# Relay 3 stops while the database is down: what it counted goes to its reports.mdb.
stop_relay 3
check_match "relay 3 stopped with the database down: its counts are spilled, not lost" \
	"$(grep -h event=report_store_spilled "$W/relay3.log" | tail -1)" "records=[1-9]"
check "... and nothing was lost" "$(grep -c lost_records "$W"/relay*.log | awk -F: '{ s += $2 } END { print s }')" "0"
# Kept to stage a crash later: the spill as it is before its replay.
cp "$W/r3/reports.mdb" "$W/r3-spilled.mdb"
start_relay 3
submit 3 two 2 outage-restarted
wait_delivered "$(total)"

world_pg_start_again
for n in 1 2 3; do
	wait_log "$W/relay$n.log" "event=report_store_recovered" 200 ||
		world_note "relay $n did not recover"
done
check "the database is back: every relay replays what it holds" \
	"$(grep -l event=report_store_recovered "$W"/relay[123].log | wc -l)" "3"
check_match "... relay 3 replays what it spilled before its restart" \
	"$(grep -h event=report_store_recovered "$W/relay3.log" | tail -1)" "replayed_batches=[1-9]"
submit 1 one 1 after
submit 2 sts 1 after
wait_delivered "$(total)"
sleep 2
check "/healthz is plain ok again" "$(echo $(http_get http://127.0.0.1:9187/healthz))" "200 ok"
# A database that stops answering (every process of the cluster stopped):
# the relays give up on it after [store] timeout, and mail still flows.
PGPIDS="$(head -1 "$PG_DIR/data/postmaster.pid") $(pgrep -P "$(head -1 "$PG_DIR/data/postmaster.pid")")"
kill -STOP $PGPIDS
t0=$(date +%s)
for n in 1 2 3; do submit "$n" two 1 slow; submit "$n" sts 1 slow; done
wait_delivered "$(total)"
t1=$(date +%s)
check "database hung: every message still arrives" "$(delivered)" "$(total)"
check "... without waiting for it (6 messages in $((t1 - t0)) s)" "$([ $((t1 - t0)) -le 15 ] && echo fast)" "fast"
for _ in $(seq 150); do
	[ "$(grep -l 'event=report_store_degraded .*within 2000 ms' "$W"/relay[123].log | wc -l)" -ge 3 ] && break
	sleep 0.1
done
check "every relay logs that the database did not answer within [store] timeout" \
	"$(grep -lE 'event=report_store_degraded .*(did not answer|did not take a statement|connecting to .*: no answer) within 2000 ms' "$W"/relay[123].log | wc -l)" "3"
kill -CONT $PGPIDS
caught_up() {
	for n in 1 2 3; do
		grep -E 'event=report_store_(degraded|recovered)' "$W/relay$n.log" | tail -1 | grep -q recovered || return 1
	done
}
for _ in $(seq 200); do caught_up && break; sleep 0.1; done
check "the database answers again: every relay catches up" "$(caught_up && echo yes)" "yes"

# A crash between a replay and the removal of the spilled batch: relay 3
# finds the batch again, and the database, which knows its id, adds nothing.
stop_relay 3
cp "$W/r3-spilled.mdb" "$W/r3/reports.mdb"
before=$(grep -c event=report_store_recovered "$W/relay3.log")
start_relay 3
for _ in $(seq 100); do [ "$(grep -c event=report_store_recovered "$W/relay3.log")" -gt "$before" ] && break; sleep 0.1; done
check_match "a spilled batch found again after a crash is replayed..." \
	"$(grep -h event=report_store_recovered "$W/relay3.log" | tail -1)" "replayed_batches=[1-9]"
deferred=$(cat "$W"/pf[123]/maillog | grep -c 'status=deferred')
check "no message was deferred because of the database" "$deferred" "0"
check "every message was relayed in its first attempt" "$(cat "$W"/pf[123]/maillog | grep -c 'status=sent')" "$(total)"

# ---- the reports of the day ---------------------------------------------------------------
for n in 1 2 3; do stop_relay "$n"; done
TODAY=$(date -u +%F)
# Each relay's sessions, from its own log: the reports must hold their sum.
sessions() { cat "$W"/relay[123].log | grep "event=outcome domain=$1\.$ZONE " | grep -v ' report=no' |
	grep -c 'result=starttls-not-supported'; }
for d in one two three sts; do eval "SESSIONS_$d=$(sessions $d)"; done
check "one session per message to a domain without a policy" "$SESSIONS_one $SESSIONS_two $SESSIONS_three" \
	"$SENT_one $SENT_two $SENT_three"
check "under the testing policy, at least one session per message" \
	"$([ "$SESSIONS_sts" -ge "$SENT_sts" ] && echo "at least $SENT_sts")" "at least $SENT_sts"
out=$(sts 2 report list --day "$TODAY" 2>/dev/null)
check_match "report list on any relay sees the fleet's counts" "$out" \
	"$TODAY +one\.$ZONE +1 +0 +$SESSIONS_one"
check "report show on another relay: the same report" \
	"$(sts 3 report show "two.$ZONE" --day "$TODAY" --json 2>/dev/null | jq '[.policies[]."failure-details"[]."failed-session-count"] | add')" "$SESSIONS_two"

# The next day: every relay runs the sender; one plans and sends.
for n in 1 2 3; do start_relay "$n" STSPROXY_TEST_TIME_OFFSET=86400; done
posts() { ls "$W"/received/*.json 2>/dev/null | xargs -r grep -l "\"path\": \"$1\"" | wc -l; }
for _ in $(seq 300); do
	[ "$(posts /tlsrpt/one)" -ge 1 ] && [ "$(posts /tlsrpt/two)" -ge 1 ] && [ "$(posts /tlsrpt/sts)" -ge 1 ] &&
		ls "$W"/received/*.stalled >/dev/null 2>&1 && break
	sleep 0.1
done
check "exactly one relay planned the day" "$(grep -l "event=report_planned day=$TODAY" "$W"/relay[123].log | wc -l)" "1"
LEADER=$(grep -l "event=report_planned day=$TODAY" "$W"/relay[123].log | head -1 | sed 's/.*relay\([123]\)\.log/\1/')
check_match "the sender says it holds the role" "$(grep -h 'event=report_sender_role' "$W/relay$LEADER.log" | tail -1)" "state=taken"
check "the POST to three hangs: the sender is in the middle of it" "$(ls "$W"/received/*.stalled 2>/dev/null | wc -l)" "1"
# Kill the sender mid-send: another relay takes the role and sends it.
eval "kill -9 \$R$LEADER"
for _ in $(seq 300); do [ "$(posts /stallfirst/three)" -ge 1 ] && break; sleep 0.1; done
NEW=$(grep -l "event=report_delivered domain=three" "$W"/relay[123].log | head -1 | sed 's/.*relay\([123]\)\.log/\1/')
check_match "another relay sent three's report after the sender died" "${NEW:-none} $LEADER" "^[123] [123]$"
[ "${NEW:-x}" != "$LEADER" ] || check "... and it is not the dead one" "$NEW" "not $LEADER"
sleep 3
for d in one two sts; do
	check "one report for $d reached its destination, once for the fleet" "$(posts /tlsrpt/$d)" "1"
done
out=$(STSPROXY_TEST_TIME_OFFSET=86400 sts 1 report send --day "$TODAY" --domain "one.$ZONE" 2>/dev/null)
check_match "report send on any relay sees the fleet's outbox: already delivered, not sent again" "$out" \
	"one\.$ZONE  https://reports\.$ZONE/tlsrpt/one  already delivered on [0-9TZ:-]+ by daemon; not sent again"
check "one report for three was accepted, after one stalled and abandoned" \
	"$(posts /stallfirst/three) $(ls "$W"/received/*.stalled | wc -l)" "1 1"
count_of() { # PATH: the failed sessions of the report accepted there
	local f
	f=$(ls "$W"/received/*.json | xargs grep -l "\"path\": \"$1\"" | head -1)
	gunzip -c < "${f%.json}.body" | jq '[.policies[]."failure-details"[]."failed-session-count"] | add'
}
for d in one two sts; do
	eval "check \"the report for $d counts every relay's sessions, once: \$SESSIONS_$d\" \"\$(count_of /tlsrpt/$d)\" \"\$SESSIONS_$d\""
done
check "the report for three too: $SESSIONS_three" "$(count_of /stallfirst/three)" "$SESSIONS_three"
f=$(ls "$W"/received/*.json | xargs grep -l '"path": "/tlsrpt/sts"' | head -1)
check "the sts report names the policy the fleet shared" \
	"$(gunzip -c < "${f%.json}.body" | jq -r '.policies[0].policy["policy-type"] + " " + (.policies[0].policy["mx-host"] | join(","))')" \
	"sts mx.plain.$ZONE"
for n in 1 2 3; do stop_relay "$n"; done
check "no sanitizer reports (the relays that stopped, stopped cleanly)" \
	"$(cat "$W"/relay*.log | grep -cE 'ERROR: (Address|Leak)Sanitizer|runtime error:')" "0"
[ "$FAIL" -gt 0 ] && for n in 1 2 3; do world_note "relay $n log:"; grep -v 'event=outcome\|level=info' "$W/relay$n.log" | tail -25 | sed 's/^/#   /'; done
world_summary
