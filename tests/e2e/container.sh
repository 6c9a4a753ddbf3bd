#!/usr/bin/env bash
# End-to-end: the container image. Builds contrib/docker/Dockerfile with
# podman, with no registry: the debian:12-slim base is made here with
# debootstrap and imported once into a podman storage kept between runs.
# Then checks the image itself: the non-root user, the runtime stage only,
# configuration from STSPROXY_* variables alone, `--version` and
# `check-config`, and `serve` relaying a message over verified TLS under an
# enforce policy in the loopback world, with /healthz for an orchestrator's
# probe and its state in the volume.
#
# The image is started with `podman run` where the OCI runtime can start
# containers here. Where it cannot (e.g. a sandbox without CAP_SYS_RESOURCE
# for rlimits, or with hybrid cgroups), it is started from its own
# filesystem: a container made with `podman create` and mounted with `podman
# mount`, entered with chroot as the image's user, with the image's
# entrypoint, command and environment. The output says which way it ran.
#
# STSPROXY_TEST_CACHE (default /var/cache/stsproxy-test) holds the podman
# storage: the base image and the layer cache. Delete it to measure a cold
# run. STSPROXY_TEST_STORAGE_DRIVER=vfs|overlay chooses podman's storage
# driver (default: overlay where it works, else vfs);
# STSPROXY_TEST_CONTAINER_START=chroot takes the second way even where
# podman run works.
. "$(dirname "$0")/world.sh"

SRC=$(cd "$E2E_DIR/../.." && pwd)
DOCKERFILE=$SRC/contrib/docker/Dockerfile
CACHE=${STSPROXY_TEST_CACHE:-/var/cache/stsproxy-test}
BASE=docker.io/library/debian:12-slim
IMAGE=localhost/stsproxy:e2e
BUILDER=localhost/stsproxy-build:e2e
DRIVER=${STSPROXY_TEST_STORAGE_DRIVER:-}

# podman on the test's own storage; the runroot is per boot, as podman expects.
pod() {
	podman --root "$CACHE/$DRIVER" --runroot "/run/stsproxy-test-podman/$DRIVER" \
		--tmpdir "/run/stsproxy-test-podman/$DRIVER/libpod" --storage-driver "$DRIVER" \
		--cgroup-manager=cgroupfs --events-backend=file "$@"
}

# The Debian sources this host's apt uses, as "URI SUITE COMPONENT" lines.
debian_sources() {
	apt-get indextargets --format '$(REPO_URI) $(RELEASE) $(COMPONENT)' \
		'Origin: Debian' 'Target-Of: deb' 'Identifier: Packages' | sort -u
}

# debian:12-slim made locally: debootstrap minbase, with the host's Debian
# sources and apt settings (proxy, Release date checks), so that apt-get in
# the build reaches the same mirror the same way as the host.
make_base() {
	local tmp mirror
	tmp=$(mktemp -d "$CACHE/base.XXXXXX") || return 1
	mirror=$(debian_sources | awk '$2 == "bookworm" { print $1; exit }')
	world_note "making $BASE: debootstrap --variant=minbase bookworm ${mirror:-with the default mirror}"
	if ! debootstrap --variant=minbase bookworm "$tmp/root" $mirror > "$CACHE/debootstrap.log" 2>&1; then
		rm -rf "$tmp"
		return 1
	fi
	debian_sources | sed 's/^/deb /' > "$tmp/root/etc/apt/sources.list"
	apt-config dump | grep -E '^Acquire::(Check-Valid-Until|Check-Date|Max-FutureTime|https?::Proxy) ' \
		> "$tmp/root/etc/apt/apt.conf.d/90stsproxy-test-host"
	rm -rf "$tmp"/root/var/lib/apt/lists/* "$tmp"/root/var/cache/apt/archives/*.deb
	tar -C "$tmp/root" --numeric-owner -c . | pod import - "$BASE" > /dev/null 2>> "$CACHE/debootstrap.log"
	local rc=$?
	rm -rf "$tmp"
	return $rc
}

# ---- phase 1, on the host's network: build the image ----------------------------
if [ -z "${STSP_IN_NETNS:-}" ]; then
	export CONTAINER_T0=$(date +%s)
	[ "$(id -u)" = 0 ] || { echo "SKIP: needs root (podman storage, debootstrap, network namespace)"; exit 77; }
	for tool in podman debootstrap nsd nginx ldns-signzone drill jq openssl python3 unshare; do
		command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed (contrib/packages/test.txt)"; exit 77; }
	done

	# One package list: the Dockerfile installs the files contrib/bootstrap.sh reads.
	check "Dockerfile: its two apt-get installs read contrib/packages/build.txt and run.txt, as contrib/bootstrap.sh does" \
		"$(grep -c 'apt-get install' "$DOCKERFILE") $(grep -o "\$(sed 's/#\.\*//' /tmp/packages/[a-z]*\.txt)" "$DOCKERFILE" | tr '\n' ' ')$(grep -c 'bootstrap_list build\|bootstrap_list run' "$SRC/contrib/bootstrap.sh")" \
		"2 \$(sed 's/#.*//' /tmp/packages/build.txt) \$(sed 's/#.*//' /tmp/packages/run.txt) 2"

	mkdir -p "$CACHE"
	exec 9> "$CACHE/lock"
	flock -w 1800 9 || { echo "not ok - another run holds $CACHE/lock"; exit 1; }
	# overlay where the kernel and the file system under $CACHE allow it
	# (no copies: a cached rebuild takes a second); vfs otherwise.
	if [ -z "$DRIVER" ]; then
		DRIVER=overlay
		if ! err=$(pod info 2>&1 >/dev/null); then
			world_note "overlay storage unavailable ($(printf '%s' "$err" | tail -1)); using vfs"
			DRIVER=vfs
		fi
	fi
	world_note "podman $(podman version --format '{{.Client.Version}}' 2>/dev/null), storage $DRIVER in $CACHE/$DRIVER"

	t0=$(date +%s)
	if pod image exists "$BASE"; then
		world_note "$BASE: cached"
	elif ! make_base; then
		sed 's/^/#   /' "$CACHE/debootstrap.log" | tail -15
		echo "SKIP: debootstrap cannot make the debian:12-slim base here (log above, $CACHE/debootstrap.log)"
		exit 77
	else
		world_note "$BASE made in $(( $(date +%s) - t0 ))s"
	fi

	t1=$(date +%s)
	LOG=$CACHE/build.log
	build() { pod build --isolation=chroot --network=host --pull=never --layers -f "$DOCKERFILE" "$@" "$SRC"; }
	# The build stage gets a tag of its own, so that its layers stay cached.
	build --target build -t "$BUILDER" > "$LOG" 2>&1 && build -t "$IMAGE" >> "$LOG" 2>&1
	rc=$?
	check "podman build -f contrib/docker/Dockerfile succeeds (log: $LOG)" "$rc" "0"
	if [ "$rc" != 0 ]; then
		tail -30 "$LOG" | sed 's/^/#   /'
		world_summary
		exit 1
	fi
	world_note "summary: image built in $(( $(date +%s) - t1 ))s ($(grep -c 'Using cache' "$LOG") steps from the cache); $(( $(date +%s) - t0 ))s with the base"
	# Earlier builds' layers, now untagged, would pile up.
	pod image prune -f > /dev/null 2>&1
	# From here on the image by its id: another run may move the tag.
	IMAGE=$(pod image inspect --format '{{.Id}}' "$IMAGE")

	# Phase 2 in a network namespace of its own, on its loopback. Not `ip
	# netns exec`: it remounts /sys, which hides the cgroups an OCI runtime needs.
	# The lock guards the build and the tags; servers started later must not hold it.
	exec 9>&-
	if [ "${STSP_NO_NETNS:-0}" != 1 ] && unshare --net true 2>/dev/null; then
		export STSP_IN_NETNS=1 STSPROXY_TEST_STORAGE_DRIVER=$DRIVER P1_PASS=$PASS P1_FAIL=$FAIL P1_IMAGE=$IMAGE
		exec unshare --net -- bash "$0" "$@"
	fi
	world_note "no network namespace: using the host's loopback"
	P1_PASS=$PASS P1_FAIL=$FAIL P1_IMAGE=$IMAGE
fi

# ---- phase 2, in the network namespace: the image ----------------------------------
ip link set lo up
world_init
IMAGE=${P1_IMAGE:-$IMAGE}
PASS=${P1_PASS:-0} FAIL=${P1_FAIL:-0}
NAME=stsproxy-e2e-$$
CID= MNT= CPID=
cleanup() {
	[ -n "$CPID" ] && kill "$CPID" 2>/dev/null
	pod rm -f -v "$NAME" > /dev/null 2>&1
	if [ -n "$CID" ]; then pod umount "$CID" > /dev/null 2>&1; pod rm -f -v "$CID" > /dev/null 2>&1; fi
	world_cleanup
}
trap cleanup EXIT

# What the image says about itself.
CONFIG=$(pod image inspect --format '{{json .Config}}' "$IMAGE")
IMG_USER=$(jq -r '.User // ""' <<< "$CONFIG")
mapfile -t ENTRY < <(jq -r '.Entrypoint // [] | .[]' <<< "$CONFIG")
mapfile -t CMD < <(jq -r '.Cmd // [] | .[]' <<< "$CONFIG")
mapfile -t IMG_ENV < <(jq -r '.Env // [] | .[]' <<< "$CONFIG")
check "image: USER stsproxy, ENTRYPOINT stsproxy, CMD serve" "$IMG_USER ${ENTRY[*]} ${CMD[*]}" "stsproxy /usr/bin/stsproxy serve"

# Its file system, in a container of its own (the image stays untouched).
CID=$(pod create --name "$NAME-fs" "$IMAGE")
MNT=$(pod mount "$CID")
UG=$(awk -F: -v u="$IMG_USER" '$1 == u { print $3 ":" $4 }' "$MNT/etc/passwd")
check_match "image: the user is in the image's /etc/passwd and is not root ($UG)" "$UG" '^[1-9][0-9]*:[1-9][0-9]*$'
check "image: state_dir /var/lib/stsproxy (the volume) belongs to the user, mode 700" \
	"$(stat -c '%u:%g %a' "$MNT/var/lib/stsproxy")" "$UG 700"
check "image: runtime stage only: no compiler, make, headers or -dev packages" \
	"$(ls "$MNT"/usr/bin/{gcc,cc,make,autoconf} 2>/dev/null | wc -l) $(find "$MNT/usr/include" -name '*.h' 2>/dev/null | wc -l) $(dpkg-query --admindir="$MNT/var/lib/dpkg" -W -f '${Package}\n' | grep -c -- '-dev$')" \
	"0 0 0"
check "image: every library the binary links is there (ldd in the image)" \
	"$(chroot "$MNT" /usr/bin/ldd /usr/bin/stsproxy 2>&1 | grep -c 'not found')" "0"
check "image: no configuration file: the environment alone configures it" \
	"$(ls "$MNT"/etc/stsproxy/stsproxy.conf 2>/dev/null | wc -l)" "0"
size=$(pod image inspect --format '{{.Size}}' "$IMAGE")
base_size=$(pod image inspect --format '{{.Size}}' "$BASE")
world_note "summary: image size: $((size / 1000000)) MB ($((base_size / 1000000)) MB base + $(((size - base_size) / 1000000)) MB runtime stage)"
check "image: the runtime stage adds less than 150 MB to its base (a build stage would add 400)" \
	"$([ $((size - base_size)) -lt 150000000 ] && echo yes)" "yes"

# ---- how to start it here ---------------------------------------------------------
# Whether the OCI runtime can start a container here is asked with the
# image's /bin/true, so that a broken relay in the image fails the checks
# below instead of choosing the way it is started.
# Limits podman's default would raise (which needs CAP_SYS_RESOURCE): the
# unit's LimitNOFILE and room for the workers' processes and threads, both
# lowered to what this shell has.
lim() { [ "$1" = unlimited ] || [ "$1" -gt "$2" ] && echo "$2" || echo "$1"; }
ULIMITS=(--ulimit "nofile=$(lim "$(ulimit -Hn)" 4096):$(lim "$(ulimit -Hn)" 4096)"
	--ulimit "nproc=$(lim "$(ulimit -Hu)" 4096):$(lim "$(ulimit -Hu)" 4096)")
RUNTIME=()
MODE=
if [ "${STSPROXY_TEST_CONTAINER_START:-}" = chroot ]; then
	MODE=chroot
	world_note "summary: started with: chroot into the mounted image as $IMG_USER ($UG) with its entrypoint, command and environment (STSPROXY_TEST_CONTAINER_START=chroot)"
elif err=$(pod run --rm --network=host "${ULIMITS[@]}" --entrypoint /bin/true "$IMAGE" 2>&1 >/dev/null); then
	MODE=run
	world_note "summary: started with: podman run (its default OCI runtime)"
else
	why=$(printf '%s' "$err" | tail -1)
	if command -v runc >/dev/null &&
	    pod run --rm --network=host "${ULIMITS[@]}" --runtime runc --entrypoint /bin/true "$IMAGE" >/dev/null 2>&1; then
		MODE=run RUNTIME=(--runtime runc)
		world_note "summary: started with: podman run --runtime runc (the default runtime cannot start containers here: $why)"
	else
		MODE=chroot
		world_note "summary: started with: chroot into the mounted image as $IMG_USER ($UG) with its entrypoint, command and environment; podman run cannot start containers here: $why"
	fi
fi

# The world the relay will use, shared with the container read-only.
chmod 755 "$W"
world_ca_init "$W/ca" "stsproxy test CA"
mkdir -p "$W/certs" "$W/spool" "$W/world"
world_cert "$W/ca" "$W/certs/mta-sts" "mta-sts.good.$ZONE" "DNS:mta-sts.good.$ZONE" || exit 1
world_cert "$W/ca" "$W/certs/mx" "mx.good.$ZONE" "DNS:mx.good.$ZONE" || exit 1
cp "$W/ca/ca.pem" "$W/trust-anchor.key" "$W/world/"
chmod 644 "$W"/world/*
: > "$W/nginx.sites"
world_site "mta-sts.good.$ZONE" "$W/certs/mta-sts"
printf 'version: STSv1\nmode: enforce\nmx: mx.good.%s\nmax_age: 86400\n' "$ZONE" | world_policy "mta-sts.good.$ZONE"
world_dns_records <<ZONEDATA
_mta-sts.good TXT "v=STSv1; id=c1;"
mta-sts.good A $WEB_ADDR
good MX 10 mx.good.$ZONE.
mx.good A 127.0.4.1
ZONEDATA
world_dns_publish > /dev/null || exit 1
world_web_start || exit 1
python3 "$E2E_DIR/mxserver.py" --listen 127.0.4.1:25 --name mx.good --spool "$W/spool" \
	--cert "$W/certs/mx.pem" --key "$W/certs/mx.key" > "$W/mx.out" 2>&1 &
PIDS+=($!)

RELAY=127.0.0.1:10095
HEALTH=127.0.0.1:9195
# What a sidecar sets: where to listen, its name, the resolver and trust.
cat > "$W/env" <<ENV
STSPROXY_SERVER_LISTEN=$RELAY
STSPROXY_HOSTNAME=relay.container.$ZONE
STSPROXY_METRICS_LISTEN=$HEALTH
STSPROXY_DNS_FORWARDERS=$DNS_ADDR
STSPROXY_DNS_TRUST_ANCHOR_FILE=/world/trust-anchor.key
STSPROXY_DNS_TIMEOUT=3s
STSPROXY_TLS_CA_FILE=/world/ca.pem
STSPROXY_POLICY_FETCH_TIMEOUT=2s
ENV
mapfile -t RUN_ENV < "$W/env"

if [ "$MODE" = run ]; then
	# img ARGS: the entrypoint with ARGS, as `podman run IMAGE ARGS` does.
	img() { pod run --rm --network=host "${ULIMITS[@]}" "${RUNTIME[@]}" --env-file "$W/env" \
		-v "$W/world:/world:ro" "$IMAGE" "$@"; }
	img_serve() { pod run -d --name "$NAME" --network=host "${ULIMITS[@]}" "${RUNTIME[@]}" \
		--env-file "$W/env" -v "$W/world:/world:ro" "$IMAGE" > /dev/null; }
	img_pid() { pod inspect --format '{{.State.Pid}}' "$NAME"; }
	img_log() { pod logs "$NAME" 2>&1; }
	img_stop() { pod stop -t 30 "$NAME" > /dev/null; }
	img_state() { pod inspect --format '{{range .Mounts}}{{if eq .Destination "/var/lib/stsproxy"}}{{.Source}}{{end}}{{end}}' "$NAME"; }
else
	mkdir -p "$MNT/world"
	# IMG_EXEC PROGRAM ARGS: in the image's root, as its user, with only the
	# image's and the test's environment, /proc, /dev and /world mounted in a
	# mount namespace that ends with it. Every step execs the next, so the
	# process started is the relay itself.
	IMG_EXEC=(unshare --mount --propagation private -- /bin/sh -c '
		r=$1 ug=$2 world=$3; shift 3
		mount -t proc proc "$r/proc" && mount --rbind /dev "$r/dev" &&
			mount --bind -o ro "$world" "$r/world" || exit 125
		exec chroot --userspec="$ug" --groups="${ug#*:}" "$r" /usr/bin/env -i "$@"' \
		sh "$MNT" "$UG" "$W/world" "${IMG_ENV[@]}" "${RUN_ENV[@]}")
	img() { "${IMG_EXEC[@]}" "${ENTRY[@]}" "$@"; }
	img_serve() { "${IMG_EXEC[@]}" "${ENTRY[@]}" "${CMD[@]}" > "$W/container.log" 2>&1 & CPID=$!; }
	img_pid() { echo "$CPID"; }
	img_log() { cat "$W/container.log"; }
	img_stop() { kill -TERM "$CPID"; wait "$CPID" 2>/dev/null; CPID=; }
	img_state() { echo "$MNT/var/lib/stsproxy"; }
fi

# ---- the image at work ------------------------------------------------------------
check_match "container: stsproxy --version" "$(img --version 2>&1)" '^stsproxy [0-9]+\.[0-9]+'
out=$(img check-config 2>&1)
check_match "container: check-config passes on the embedded defaults, no file" "$(printf '%s' "$out" | head -1)" \
	'^# config="?embedded defaults"?: (configuration )?OK'
check "container: check-config shows the STSPROXY_* values" \
	"$(printf '%s\n' "$out" | grep -E '^(listen|hostname|forwarders|ca_file) =' | tr '\n' ' ')" \
	"hostname = relay.container.$ZONE listen = $RELAY forwarders = $DNS_ADDR ca_file = /world/ca.pem "

img_serve
for _ in $(seq 100); do img_log | grep -q 'event=started' && break; sleep 0.1; done
pid=$(img_pid)
check "container: serve started as the image's user, from the start" \
	"$(awk '/^Uid:/ { print $2 } /^Gid:/ { print $2 }' "/proc/$pid/status" 2>/dev/null | tr '\n' ':')" "$UG:"
check "container: no privilege switch was needed or attempted" \
	"$(img_log | grep -c 'privileges_dropped\|running_as_root')" "0"
greet=$(python3 -c 'import socket, sys; s = socket.create_connection(sys.argv[1].split(":"), 5); print(s.recv(512).decode().strip())' \
	"$RELAY" 2>&1)
check_match "container: answers SMTP with the name from STSPROXY_HOSTNAME" "$greet" "^220 relay\.container\.$ZONE "
out=$(printf 'C: EHLO client.%s\nC: MAIL FROM:<a@client.%s>\nC: RCPT TO:<u@good.%s>\nC: DATA\nR: Subject: container1\\r\\n\\r\\nfrom the image\\r\\n.\\r\\n\nW:\nC: QUIT\n' \
	"$ZONE" "$ZONE" "$ZONE" | python3 "$E2E_DIR/smtpdialog.py" "$RELAY" 2>&1)
check_match "container: relays a message (the upstream's 250 for DATA)" "$out" '250 2\.0\.0'
check "STS-36, STS-38: it arrived at the enforce domain's MX over verified TLS with SNI" \
	"$(grep -l 'Subject: container1' "$W"/spool/mx.good/*.eml 2>/dev/null | wc -l) $(jq -r '.tls + " " + .sni' "$W"/spool/mx.good/1.json 2>/dev/null)" \
	"1 TLSv1.3 mx.good.$ZONE"
health=$(python3 -c 'import sys, urllib.request
r = urllib.request.urlopen("http://" + sys.argv[1] + "/healthz", timeout=5); print(r.status, r.read().decode().strip())' "$HEALTH" 2>&1)
check_match "container: /healthz answers 200 for the orchestrator's probe" "$health" '^200 '
state=$(img_state)
check "container: the policy cache and the TLS-RPT database are in state_dir /var/lib/stsproxy (the VOLUME), the user's" \
	"$(stat -c '%u:%g %n' "$state/policy.mdb" "$state/reports.mdb" 2>/dev/null | sed "s|$state/||" | tr '\n' ' ')" \
	"$UG policy.mdb $UG reports.mdb "
img_stop
check_match "container: SIGTERM stops it cleanly" "$(img_log | grep -o 'event=stopped')" "event=stopped"
if [ "$FAIL" -gt 0 ]; then img_log | tail -20 | sed 's/^/#   /'; fi
world_note "summary: $(( $(date +%s) - CONTAINER_T0 ))s in all"
world_summary
