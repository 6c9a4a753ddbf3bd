# bootstrap.sh - sourced by ./quickstart and ./run-tests on Debian 12 as root.
# Installs what is missing with apt-get (apt-get update once, only if needed)
# and generates the build system.

STSPROXY_BUILD_PKGS="autoconf automake make gcc pkg-config ca-certificates dns-root-data
	libevent-dev libssl-dev libunbound-dev liblmdb-dev libjansson-dev zlib1g-dev libcmocka-dev libidn2-dev"
# What the tests drive: a DNSSEC zone (NSD, ldns), HTTPS (nginx), JSON (jq),
# fuzzing (clang, libFuzzer), leak checks (valgrind), man page rendering,
# and Postfix as the legacy client of the relay (Exim: bootstrap_exim);
# unbound validates for Postfix's posttls-finger in the DANE differential.
STSPROXY_TEST_PKGS="nsd ldnsutils nginx-light jq python3 openssl iproute2 clang
	libclang-rt-14-dev valgrind man-db postfix libidn12 python3-jsonschema
	python3-dkim python3-nacl prometheus unbound"
# Exim is unpacked here, not installed: Debian allows one MTA package.
STSPROXY_EXIM_ROOT=${STSPROXY_EXIM_ROOT:-/opt/stsproxy-test/exim}

bootstrap_packages() {
	local missing=() p
	for p in "$@"; do
		dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
	done
	[ ${#missing[@]} -eq 0 ] && return 0
	if [ "$(id -u)" -ne 0 ]; then
		echo "stsproxy: missing packages: ${missing[*]} (run as root to install them)" >&2
		return 1
	fi
	echo "stsproxy: installing ${missing[*]}"
	apt-get update -qq || return 1
	# Postfix installs unconfigured: the tests run private instances.
	echo "postfix postfix/main_mailer_type select No configuration" | debconf-set-selections
	# Services these packages start (nginx, nsd) are not used; tests run
	# private instances on loopback addresses.
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
		"${missing[@]}" >/dev/null || return 1
}

# Unpack Debian's exim4-daemon-light under $STSPROXY_EXIM_ROOT for the
# Exim client test (installing it would remove Postfix), and create the
# user its binary is built to run as.
bootstrap_exim() {
	[ -x "$STSPROXY_EXIM_ROOT/usr/sbin/exim4" ] && getent passwd Debian-exim >/dev/null && return 0
	[ "$(id -u)" -eq 0 ] || return 0
	local tmp
	tmp=$(mktemp -d) || return 1
	(cd "$tmp" && apt-get download -qq exim4-daemon-light >/dev/null 2>&1) ||
		{ apt-get update -qq && (cd "$tmp" && apt-get download -qq exim4-daemon-light >/dev/null); } ||
		{ rm -rf "$tmp"; echo "stsproxy: cannot download exim4-daemon-light; the Exim test will skip" >&2; return 0; }
	mkdir -p "$STSPROXY_EXIM_ROOT"
	dpkg -x "$tmp"/exim4-daemon-light_*.deb "$STSPROXY_EXIM_ROOT"
	rm -rf "$tmp"
	getent passwd Debian-exim >/dev/null ||
		useradd --system --user-group --no-create-home --home-dir /var/spool/exim4 \
			--shell /usr/sbin/nologin Debian-exim
}

# The unprivileged user the relay runs as after binding its sockets.
bootstrap_user() {
	getent passwd stsproxy >/dev/null && return 0
	[ "$(id -u)" -eq 0 ] || return 0
	useradd --system --user-group --no-create-home --home-dir /var/lib/stsproxy \
		--shell /usr/sbin/nologin stsproxy
}

bootstrap_autoreconf() {
	if [ ! -x configure ] || [ configure.ac -nt configure ] || [ Makefile.am -nt Makefile.in ] ||
	    [ -n "$(find . -name include.am -newer Makefile.in 2>/dev/null)" ]; then
		autoreconf -fi >/dev/null || return 1
	fi
	# Builds happen in build/*; an in-tree configuration would block them.
	if [ -f config.status ]; then make distclean >/dev/null 2>&1 || rm -f config.status; fi
}

# bootstrap_build DIR [configure args...]
bootstrap_build() {
	local dir=$1; shift
	mkdir -p "$dir"
	(cd "$dir" &&
		{ [ -f Makefile ] || ../../configure -q "$@"; } &&
		make -j"$(nproc)" -s >/dev/null)
}
