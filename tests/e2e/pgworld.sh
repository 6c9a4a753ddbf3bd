# pgworld.sh - a private PostgreSQL cluster for the tests of the shared
# store ([store] backend = postgresql), sourced after world.sh.
#
# world_pg_start DIR initialises an unprivileged cluster (the postgres
# user of Debian's package) in DIR, listening on $PG_ADDR:$PG_PORT and a
# socket in DIR, with a role stsproxy whose password only a passfile
# holds ($PG_PASSFILE, readable by the relay's user) and a database
# $PG_DB it owns; $PG_CONNINFO connects to it. world_pg_stop stops it
# (world_cleanup does too), world_pg_start_again starts it once more
# with its data, world_pg_sql runs SQL as the superuser.

PG_ADDR=127.0.7.1
PG_PORT=5432
PG_DB=fleet
PG_DIR=
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)

world_pg_available() {
	[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] && getent passwd postgres >/dev/null
}

# As the postgres user: the server refuses to run as root.
world_pg_as() { runuser -u postgres -- "$@"; }

world_pg_start() {
	PG_DIR=$1
	mkdir -p "$PG_DIR"
	chown postgres "$PG_DIR"
	chmod 755 "$W"
	world_pg_as "$PG_BIN/initdb" -D "$PG_DIR/data" -U postgres --auth-local=trust \
		--auth-host=scram-sha-256 --no-sync > "$PG_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_DIR/initdb.log"; return 1; }
	world_pg_start_again || return 1
	PG_PASSWORD=$(openssl rand -hex 12)
	world_pg_sql "CREATE ROLE stsproxy LOGIN PASSWORD '$PG_PASSWORD'" >/dev/null &&
		world_pg_sql "CREATE DATABASE $PG_DB OWNER stsproxy" >/dev/null || return 1
	PG_PASSFILE=$W/pgpass
	printf '%s:%s:*:stsproxy:%s\n' "$PG_ADDR" "$PG_PORT" "$PG_PASSWORD" > "$PG_PASSFILE"
	chmod 600 "$PG_PASSFILE"
	chown stsproxy "$PG_PASSFILE" 2>/dev/null
	PG_CONNINFO="hostaddr=$PG_ADDR port=$PG_PORT dbname=$PG_DB user=stsproxy passfile=$PG_PASSFILE"
}

world_pg_start_again() {
	# fsync off: a test cluster, thrown away after the run.
	world_pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 30 \
		-o "-c listen_addresses=$PG_ADDR -p $PG_PORT -k $PG_DIR -c fsync=off -c max_connections=60" \
		start > "$PG_DIR/pg_ctl.log" 2>&1 || { cat "$PG_DIR/pg_ctl.log" "$PG_DIR/server.log"; return 1; }
}

world_pg_stop() {
	[ -n "$PG_DIR" ] && [ -f "$PG_DIR/data/postmaster.pid" ] &&
		world_pg_as "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w stop >/dev/null 2>&1
	return 0
}

# world_pg_sql SQL [DATABASE]: one statement as the superuser, unaligned output.
world_pg_sql() {
	world_pg_as "$PG_BIN/psql" -X -q -A -t -v ON_ERROR_STOP=1 -h "$PG_DIR" -p "$PG_PORT" -U postgres \
		-d "${2:-postgres}" -c "$1"
}
