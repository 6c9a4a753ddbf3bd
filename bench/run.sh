#!/usr/bin/env bash
# bench/run.sh - the benchmarks of docs/performance.md (run: make bench).
#
# Builds the loopback world of the end-to-end tests (tests/e2e/world.sh:
# NSD with a DNSSEC-signed zone, nginx serving an enforce policy, a CA),
# a fast TLS sink (bench/sink) as the MX of bench.stsworld, and measures
# stsproxy against a baseline in the same run:
#   1. smtp-source -> stsproxy -> sink    vs  smtp-source -> Postfix -> sink;
#      and the same with the sink's domain authenticated by DANE-EE TLSA
#      records instead of MTA-STS (dbench.stsworld), against the MTA-STS run
#   2. smtp-source -> Postfix -> stsproxy -> sink  vs  Postfix -> sink
#   3. added latency per message, with and without upstream reuse
#   4. RSS per idle client connection; throughput at 1..1000 sessions
#   5. cached policy resolutions per CPU second, in process
#   6. messages to 1, 3 and 10 domains: Postfix -> stsproxy over LMTP vs
#      Postfix delivering directly vs Postfix -> stsproxy over SMTP (452
#      splitting); the time until each message's last recipient is delivered
#   7. benchmark 1 with [store] backend = postgresql (a private cluster,
#      shared policies) against LMDB in the same run; the database's CPU
#   8. the TLS-RPT counter flush: outcomes per second through one flush
#      transaction, to reports.mdb and to PostgreSQL
# Options: --quick (fewer messages), --only LIST (e.g. 1,5).
# Not a test: it prints figures, it does not judge them.
. "$(dirname "$0")/../tests/e2e/world.sh"
world_enter_netns bash "$0" "$@"
. "$E2E_DIR/pgworld.sh"

BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
: "${SINK:?set SINK to bench/sink}" "${POLICY_BENCH:?set POLICY_BENCH to bench/policy_bench}"
N=20000
M6=100
ONLY=1,2,3,4,5,6,7,8
while [ $# -gt 0 ]; do
	case $1 in
	--quick) N=4000; M6=30 ;;
	--only) ONLY=$2; shift ;;
	*) echo "usage: run.sh [--quick] [--only 1,2,3,4,5,6,7,8]" >&2; exit 2 ;;
	esac
	shift
done
want() { case ",$ONLY," in *",$1,"*) return 0 ;; esac; return 1; }
for tool in nsd nginx ldns-signzone drill openssl smtp-source postfix jq; do
	command -v "$tool" >/dev/null || { echo "bench: $tool is not installed (run ./run-tests once)"; exit 1; }
done
ulimit -n "$(ulimit -Hn)" 2>/dev/null
SIZE=4096
SINK_ADDR=127.0.5.1
RELAY=127.0.0.1:8461
LMTP=127.0.0.1:8463
PF_ADDR=127.0.3.1
# Benchmark 6: domN.$ZONE (N = 1..10), each with an enforce policy and its
# own MX mxN.bench.$ZONE at 127.0.5.N, all served by the one sink.
NDOM=10

world_init
world_ca_init "$W/ca" "stsproxy bench CA"
mkdir -p "$W/certs"
world_cert "$W/ca" "$W/certs/mx" "mx.bench.$ZONE" "DNS:mx.bench.$ZONE,DNS:*.bench.$ZONE" || exit 1
world_cert "$W/ca" "$W/certs/sts" "mta-sts.bench.$ZONE" \
	"DNS:mta-sts.bench.$ZONE$(for n in $(seq $NDOM); do printf ',DNS:mta-sts.dom%s.%s' "$n" "$ZONE"; done)" || exit 1
# dbench: the same sink as its MX, authenticated by DANE-EE(3 1 1) of its key.
TLSA_DATA=$(openssl x509 -in "$W/certs/mx.pem" -noout -pubkey | openssl pkey -pubin -outform DER |
	openssl dgst -sha256 -binary | od -An -v -tx1 | tr -d ' \n')
world_dns_records <<ZONEDATA
bench MX 10 mx.bench.$ZONE.
mx.bench A $SINK_ADDR
_mta-sts.bench TXT "v=STSv1; id=bench1;"
mta-sts.bench A $WEB_ADDR
dbench MX 10 mx.dbench.$ZONE.
mx.dbench A $SINK_ADDR
_25._tcp.mx.dbench TLSA 3 1 1 $TLSA_DATA
$(for n in $(seq $NDOM); do
	printf 'dom%s MX 10 mx%s.bench.%s.\nmx%s.bench A 127.0.5.%s\n' "$n" "$n" "$ZONE" "$n" "$n"
	printf '_mta-sts.dom%s TXT "v=STSv1; id=dom%s;"\nmta-sts.dom%s A %s\n' "$n" "$n" "$n" "$WEB_ADDR"
done)
ZONEDATA
world_dns_publish >/dev/null || exit 1
: > "$W/nginx.sites"
world_site "mta-sts.bench.$ZONE" "$W/certs/sts"
printf 'version: STSv1\nmode: enforce\nmx: mx.bench.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.bench.$ZONE"
for n in $(seq $NDOM); do
	world_site "mta-sts.dom$n.$ZONE" "$W/certs/sts"
	printf 'version: STSv1\nmode: enforce\nmx: mx%s.bench.%s\nmax_age: 86400\n' "$n" "$ZONE" | world_policy "mta-sts.dom$n.$ZONE"
done
world_web_start || exit 1

"$SINK" $(for n in $(seq 2 $NDOM); do printf -- '-l 127.0.5.%s:25 ' "$n"; done) \
	-l "$SINK_ADDR:25" -c "$W/certs/mx.pem" -k "$W/certs/mx.key" -n "mx.bench.$ZONE" -s "$W/sink.stats" &
SINK_PID=$!
PIDS+=($SINK_PID)

# ---- measuring ------------------------------------------------------------
HZ=$(getconf CLK_TCK)
# cpu PID...: user+system seconds of the processes and their reaped children
cpu() {
	local t=0 p v
	for p in "$@"; do
		v=$(awk '{ print $14 + $15 + $16 + $17 }' "/proc/$p/stat" 2>/dev/null) || continue
		[ -n "$v" ] && t=$(( t + v ))
	done
	awk -v t="$t" -v hz="$HZ" 'BEGIN { printf "%.4f\n", t / hz }'
}
rss_kib() { local t=0 p; for p in "$@"; do t=$(( t + $(awk '/^VmRSS/ { print $2 }' "/proc/$p/status") )); done; echo "$t"; }
sink_count() { cut -d' ' -f1 "$W/sink.stats"; }
sink_field() { cut -d' ' -f"$1" "$W/sink.stats"; }
now() { date +%s.%N; }
wait_sink() { # TARGET TIMEOUT_S
	local end=$(( $(date +%s) + $2 ))
	while [ "$(sink_count)" -lt "$1" ]; do
		[ "$(date +%s)" -gt "$end" ] && { echo "bench: sink stuck at $(sink_count)/$1" >&2; return 1; }
		sleep 0.05
	done
}
relay_pids() { echo "$RELAY_PID" $(pgrep -P "$RELAY_PID"); }
postfix_pids() { local m; m=$(tr -d ' ' < "$PF/queue/pid/master.pid"); echo "$m" $(pgrep -P "$m"); }
# calc EXPR [DECIMALS]: arithmetic with awk (a minimal Debian has no bc).
calc() { awk "BEGIN { printf \"%.${2:-2}f\\n\", ($1) }"; }

# run_source LABEL SESSIONS MESSAGES TARGET PIDS_FUNCTION: smtp-source into
# TARGET until the sink has every message; prints msg/s and CPU ms/msg
run_source() {
	local label=$1 sessions=$2 msgs=$3 target=$4 pidsfn=$5 domain=${RCPT_DOMAIN:-bench.$ZONE}
	local c0 t0 s0 k0 c1 t1 s1 k1 pids
	pids=$($pidsfn)
	c0=$(sink_count); s0=$(cpu $pids); k0=$(cpu $SINK_PID); t0=$(now)
	local n0=$(sink_field 2) h0=$(sink_field 3) r0=$(sink_field 4)
	smtp-source -d -s "$sessions" -m "$msgs" -l "$SIZE" -f "bench@client.$ZONE" -t "rcpt@$domain" \
		-M "client.$ZONE" "$target" 2> "$W/source.err" || { echo "bench: smtp-source failed:"; cat "$W/source.err"; }
	wait_sink $(( c0 + msgs )) 600 || return 1
	t1=$(sink_field 6); s1=$(cpu $(echo $($pidsfn) $pids | tr ' ' '\n' | sort -u)); k1=$(cpu $SINK_PID)
	RATE=$(calc "$msgs / ($t1 - $t0)" 0)
	CPU_MS=$(calc "($s1 - $s0) * 1000 / $msgs" 3)
	SINK_MS=$(calc "($k1 - $k0) * 1000 / $msgs" 3)
	printf '%-44s %6s msg/s  %7s ms CPU/msg  (sink %s ms/msg; %s connections, %s handshakes, %s resumed; %s open)\n' \
		"$label" "$RATE" "$CPU_MS" "$SINK_MS" $(( $(sink_field 2) - n0 )) $(( $(sink_field 3) - h0 )) \
		$(( $(sink_field 4) - r0 )) "$(sink_field 7)"
}

# ---- stsproxy ---------------------------------------------------------------
world_conf "[server]
listen = $RELAY
lmtp_listen = $LMTP
max_connections = 20000
max_connections_per_client = 20000
[upstream]
${RELAY_UPSTREAM:-}
"
printf 'hostname = relay.%s\nallow_root = yes\nlog_level = warning\nworkers = auto\n' "$ZONE" |
	cat - "$W/stsproxy.conf" > "$W/c" && mv "$W/c" "$W/stsproxy.conf"
start_relay() { # extra env assignments
	env "$@" "$STSPROXY" -c "$W/stsproxy.conf" serve > "$W/relay.log" 2>&1 &
	RELAY_PID=$!
	for _ in $(seq 100); do grep -qs event=started "$W/relay.log" && break; sleep 0.05; done
	sleep 0.2
	smtp-source -m 1 -l 100 -f "bench@client.$ZONE" -t "warm@bench.$ZONE" "$RELAY" 2>/dev/null
	smtp-source -m 1 -l 100 -f "bench@client.$ZONE" -t "warm@dbench.$ZONE" "$RELAY" 2>/dev/null
	wait_sink $(( $(sink_count) )) 5
}
stop_relay() { kill "$RELAY_PID" 2>/dev/null; wait "$RELAY_PID" 2>/dev/null; }

# ---- a private Postfix, delivering with verified TLS like an enforce policy
PF=$W/postfix
printf '[%s]:25 secure match=mx.bench.%s\n' "$SINK_ADDR" "$ZONE" > "$W/tls_policy"
for n in $(seq 2 $NDOM); do printf '[127.0.5.%s]:25 secure match=mx.bench.%s\n' "$n" "$ZONE"; done >> "$W/tls_policy"
set_postfix_route() { # NEXTHOP [DOMAIN_ROUTES]
	{ printf 'bench.%s smtp:%s\n' "$ZONE" "$1"; printf '%s' "${2:-}"; } > "$PF/transport"
	postfix -c "$PF" reload >/dev/null 2>&1
}
world_postfix "$PF" "$PF_ADDR" <<CF
mydestination =
relay_domains = bench.$ZONE
transport_maps = texthash:$PF/transport
smtp_tls_policy_maps = texthash:$W/tls_policy
smtp_tls_CAfile = $W/ca/ca.pem
smtp_tls_security_level = may
smtp_tls_session_cache_database = btree:$PF/data/smtp_scache
default_destination_concurrency_limit = 20
CF
printf 'bench.%s smtp:[%s]:25\n' "$ZONE" "$SINK_ADDR" > "$PF/transport"
postfix -c "$PF" start > "$W/postfix-start.log" 2>&1 || { postfix -c "$PF" check; echo "bench: postfix failed to start"; cat "$W/postfix-start.log" "$PF/maillog" 2>/dev/null; exit 1; }
trap 'postfix -c "$PF" stop >/dev/null 2>&1; world_pg_stop; world_cleanup' EXIT
sleep 1

echo "# stsproxy benchmarks, $(date -u +%Y-%m-%d), $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"
echo "# $N messages of $SIZE bytes per run, enforce policy cached, verified TLS to the sink"

if want 1 || want 2; then
	start_relay
	echo "## 1. relay capacity (20 client sessions, connection per session)"
	if [ -n "${PERF:-}" ] && command -v perf >/dev/null; then
		# PERF=1: profile the workers during the run (what bounds the figure)
		perf record -q -g -o "$W/perf.data" -p "$(relay_pids | tr ' ' ',')" 2>/dev/null &
		PERF_PID=$!
	fi
	run_source "smtp-source -> stsproxy -> sink" 20 "$N" "$RELAY" relay_pids; R1=$RATE
	if [ -n "${PERF_PID:-}" ]; then
		kill -INT "$PERF_PID"; wait "$PERF_PID" 2>/dev/null
		echo "profile of the workers (perf, self time):"
		perf report -i "$W/perf.data" --stdio --no-children -g none --sort dso 2>/dev/null | grep '%' | head -8
		perf report -i "$W/perf.data" --stdio --no-children -g none --sort symbol 2>/dev/null | grep '%' | head -20
	fi
	D_CPU=; R_CPU=$CPU_MS
	if want 1; then
		# The same with DANE instead of MTA-STS, right after: what governs
		# mx.dbench as the relay decides it (its outcome lines are at info,
		# below this run's log level), then the run.
		echo "mx.dbench.$ZONE: $("$STSPROXY" -c "$W/stsproxy.conf" policy "dbench.$ZONE" --json 2>/dev/null |
			jq -r '.mx.hosts[0] | .regime + ": " + .reason')"
		RCPT_DOMAIN=dbench.$ZONE run_source "smtp-source -> stsproxy -> sink, DANE-EE" 20 "$N" "$RELAY" relay_pids
		D1=$RATE; D_CPU=$CPU_MS
	fi
	run_source "smtp-source -> Postfix -> sink (baseline)" 20 "$N" "$PF_ADDR:25" postfix_pids; B1=$RATE
	echo "ratio: $(calc "$R1 / $B1") x"
	[ -n "$D_CPU" ] && echo "DANE / MTA-STS: $(calc "$D1 / $R1") x the rate, $(calc "$D_CPU / $R_CPU") x the CPU per message"

	if want 2; then
		echo "## 2. end to end: Postfix with relayhost = stsproxy vs Postfix alone"
		# Postfix is the bottleneck of both paths and a 2-core machine is
		# noisy: measure the baseline again right before, same queue state.
		run_source "smtp-source -> Postfix -> sink (baseline)" 20 "$N" "$PF_ADDR:25" postfix_pids; B2=$RATE
		set_postfix_route "[127.0.0.1]:8461"
		run_source "smtp-source -> Postfix -> stsproxy -> sink" 20 "$N" "$PF_ADDR:25" postfix_pids; R2=$RATE
		set_postfix_route "[$SINK_ADDR]:25"
		echo "ratio: $(calc "$R2 / $B2") x"
	fi
	stop_relay
fi

if want 3; then
	echo "## 3. added latency per message (one client session, sequential messages)"
	M=$(( N / 10 ))
	lat() { "$DEBPY" "$BENCH_DIR/latency.py" "$1" "$M" "$SIZE" "bench@client.$ZONE" "rcpt@bench.$ZONE"; }
	direct=$(lat "$SINK_ADDR:25"); echo "direct to the sink:        $direct"
	start_relay
	reuse=$(lat "$RELAY"); echo "via stsproxy, reuse on:    $reuse"
	stop_relay
	start_relay STSPROXY_UPSTREAM_REUSE=no
	noreuse=$(lat "$RELAY"); echo "via stsproxy, reuse off:   $noreuse"
	stop_relay
	p() { echo "$1" | sed -n "s/.*$2=\([0-9.]*\).*/\1/p"; }
	echo "added p50/p99 with reuse:    $(calc "$(p "$reuse" p50_ms) - $(p "$direct" p50_ms)" 3) / $(calc "$(p "$reuse" p99_ms) - $(p "$direct" p99_ms)" 3) ms"
	echo "added p50/p99 without reuse: $(calc "$(p "$noreuse" p50_ms) - $(p "$direct" p50_ms)" 3) / $(calc "$(p "$noreuse" p99_ms) - $(p "$direct" p99_ms)" 3) ms"
fi

if want 4; then
	echo "## 4. scale"
	start_relay
	before=$(rss_kib $(relay_pids))
	"$DEBPY" "$BENCH_DIR/idle.py" 127.0.0.1 8461 5000 "$W/idle.ready" &
	IDLE=$!
	for _ in $(seq 600); do [ -e "$W/idle.ready" ] && break; sleep 0.1; done
	sleep 0.5
	after=$(rss_kib $(relay_pids))
	echo "idle connections: $(cat "$W/idle.ready") RSS before ${before} KiB after ${after} KiB: $(calc "($after - $before) / $(cat "$W/idle.ready")" 2) KiB per idle connection"
	kill $IDLE; wait $IDLE 2>/dev/null
	sleep 1
	for s in 1 10 100 1000; do
		m=$(( s * 20 > N ? s * 20 : N / 2 ))
		run_source "throughput with $s client sessions" "$s" "$m" "$RELAY" relay_pids
	done
	stop_relay
fi

if want 5; then
	echo "## 5. policy engine, cached resolutions in process (one thread + libunbound's)"
	"$POLICY_BENCH" "$W/stsproxy.conf" "bench.$ZONE" "${POLICY_N:-200000}" 64
fi

if want 6; then
	echo "## 6. one message to several domains: time until its last recipient is delivered"
	echo "# $M6 messages of 4 KiB per run, 10 per second, each to one recipient in every domain;"
	echo "# the figure is Postfix's own delay= of each message's last recipient (p50 / p90 / max)"
	md() { "$DEBPY" "$BENCH_DIR/multidomain.py" "$@"; }
	# Recipients deferred with 452 are retried after 10 s instead of Postfix's 300 s.
	postconf -c "$PF" -e queue_run_delay=10s minimal_backoff_time=10s maximal_backoff_time=10s
	start_relay
	# warm-up: every domain's policy cached, a connection to each MX
	md send "$LMTP" 1 10 "bench@client.$ZONE" $(for n in $(seq $NDOM); do echo "dom$n.$ZONE"; done) --lmtp
	wait_sink $(( $(sink_count) )) 5
	routes() { # K NEXTHOP|direct
		local n
		for n in $(seq "$1"); do
			if [ "$2" = direct ]; then
				printf 'dom%s.%s smtp:[127.0.5.%s]:25\n' "$n" "$ZONE" "$n"
			else
				printf 'dom%s.%s %s\n' "$n" "$ZONE" "$2"
			fi
		done
	}
	: > "$W/bench6.txt"
	for k in 1 3 10; do
		for path in direct lmtp smtp; do
			case $path in
			direct) label="Postfix -> sink (direct)"; hop=direct ;;
			lmtp) label="Postfix -> stsproxy LMTP -> sink"; hop="lmtp:inet:[127.0.0.1]:8463" ;;
			smtp) label="Postfix -> stsproxy SMTP -> sink"; hop="smtp:[127.0.0.1]:8461, [127.0.0.1]:8461" ;;
			esac
			set_postfix_route "[$SINK_ADDR]:25" "$(routes "$k" "$hop")"
			sleep 1
			lines=$(wc -l < "$PF/maillog")
			c0=$(sink_count); t0=$(now)
			md send "$PF_ADDR:25" "$M6" 10 "bench@client.$ZONE" $(for n in $(seq "$k"); do echo "dom$n.$ZONE"; done)
			wait_sink $(( c0 + M6 * k )) 900 || break
			t1=$(sink_field 6)
			# Postfix logs through postlogd: wait for every recipient's line.
			for _ in $(seq 100); do
				tail -n +$(( lines + 1 )) "$PF/maillog" > "$W/bench6.log"
				[ "$(grep -c 'status=sent' "$W/bench6.log")" -ge $(( M6 * k )) ] && break
				sleep 0.1
			done
			r=$(md delays "$W/bench6.log")
			p() { echo "$r" | sed -n "s/.*$1=\([0-9.]*\).*/\1/p"; }
			printf '%-34s %2d domains: last recipient p50 %6s s  p90 %6s s  max %6s s  (%s messages; %s deferrals; %s s for all)\n' \
				"$label" "$k" "$(p p50_s)" "$(p p90_s)" "$(p max_s)" "$(p messages)" \
				"$(grep -c 'status=deferred' "$W/bench6.log")" "$(printf '%.1f' "$(calc "$t1 - $t0" 3)")" | tee -a "$W/bench6.txt"
		done
	done
	stop_relay
fi
if (want 7 || want 8) && ! world_pg_available; then
	echo "## 7, 8: skipped, PostgreSQL (initdb, pg_ctl, user postgres) is not installed"
elif want 7 || want 8; then
	world_pg_start "$W/pg" || exit 1
	PGSTORE=(STSPROXY_STORE_BACKEND=postgresql STSPROXY_STORE_POSTGRESQL="$PG_CONNINFO")
	env "${PGSTORE[@]}" "$STSPROXY" -c "$W/stsproxy.conf" store init > /dev/null || exit 1
	# postmaster and its backends; exited backends are in the postmaster's children time
	pg_pids() { local m; m=$(head -1 "$PG_DIR/data/postmaster.pid"); echo "$m" $(pgrep -P "$m"); }
fi
if want 7 && world_pg_available; then
	echo "## 7. benchmark 1 with the shared store (PostgreSQL, shared policies) against LMDB, same run"
	start_relay
	run_source "stsproxy, [store] backend = lmdb" 20 "$N" "$RELAY" relay_pids; L1=$RATE
	stop_relay
	p0=$(cpu $(pg_pids))
	start_relay "${PGSTORE[@]}" STSPROXY_STORE_SHARE_POLICIES=yes
	run_source "stsproxy, [store] backend = postgresql" 20 "$N" "$RELAY" relay_pids; P1=$RATE
	stop_relay
	p1=$(cpu $(pg_pids))
	start_relay
	run_source "stsproxy, [store] backend = lmdb (again)" 20 "$N" "$RELAY" relay_pids; L2=$RATE
	stop_relay
	echo "postgresql / lmdb (mean of the two lmdb runs): $(calc "$P1 * 2 / ($L1 + $L2)" 3)"
	echo "database CPU: $(calc "($p1 - $p0) * 1000 * 1000 / $N" 1) ms per 1000 messages" \
		"($(calc "$p1 - $p0" 2) s for $N messages, flushes every 5 s)"
	echo "rows: $(world_pg_sql "SELECT count(*) || ' counter rows, ' || sum(count) || ' sessions' FROM stsproxy_rpt_counter" "$PG_DB")"
fi
if want 8 && world_pg_available; then
	echo "## 8. the counter flush: outcomes per second through one flush transaction"
	: "${FLUSH_BENCH:?set FLUSH_BENCH to bench/flush_bench}"
	mkdir -p "$W/flush-lmdb" "$W/flush-pg"
	printf 'state_dir = %s\n' "$W/flush-lmdb" > "$W/flush-lmdb.conf"
	printf 'state_dir = %s\n[store]\nbackend = postgresql\npostgresql = %s\n' "$W/flush-pg" \
		"$PG_CONNINFO" > "$W/flush-pg.conf"
	for shape in "10000 100" "100000 10000"; do
		for c in lmdb pg; do
			"$FLUSH_BENCH" "$W/flush-$c.conf" $shape 5 | tail -1
		done
	done
	p0=$(cpu $(pg_pids))
	"$FLUSH_BENCH" "$W/flush-pg.conf" 100000 100 5 | tail -1
	p1=$(cpu $(pg_pids))
	echo "database CPU for 500,000 outcomes in 5 flushes of 100 domains: $(calc "($p1 - $p0) * 1000" 1) ms"
fi
