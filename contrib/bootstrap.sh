# bootstrap.sh - sourced by ./quickstart and ./run-tests (bash) on Debian 12
# as root. Installs what is missing with apt-get (apt-get update once, only
# if needed) and generates the build system.
#
# The package lists live in contrib/packages/, one package a line, so that
# contrib/docker/Dockerfile installs exactly the same ones:
#   build.txt  what configure and make need        (./quickstart, ./run-tests, image build stage)
#   run.txt    what the installed relay needs       (./quickstart, ./run-tests, image runtime stage)
#   test.txt   what only the tests drive: Postfix, nginx, NSD, podman, ...  (./run-tests)

STSPROXY_PACKAGES_DIR=$(cd "$(dirname "${BASH_SOURCE[0]:-contrib/bootstrap.sh}")" && pwd)/packages

# bootstrap_list NAME: the packages in contrib/packages/NAME.txt, comments stripped.
bootstrap_list() {
	sed 's/#.*//' "$STSPROXY_PACKAGES_DIR/$1.txt" | tr -s ' \t\n' ' '
}

STSPROXY_BUILD_PKGS=$(bootstrap_list build)
STSPROXY_RUN_PKGS=$(bootstrap_list run)
STSPROXY_TEST_PKGS=$(bootstrap_list test)
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
# Exim client test (installing it would remove Postfix), install the
# libraries its Depends names (not the MTA packages), and create the user
# its binary is built to run as.
bootstrap_exim() {
	[ "$(id -u)" -eq 0 ] || return 0
	local exim=$STSPROXY_EXIM_ROOT/usr/sbin/exim4 tmp deb libs missing
	if [ ! -x "$exim" ] || [ ! -s "$STSPROXY_EXIM_ROOT/.depends" ]; then
		tmp=$(mktemp -d) || return 1
		(cd "$tmp" && apt-get download -qq exim4-daemon-light >/dev/null 2>&1) ||
			{ apt-get update -qq && (cd "$tmp" && apt-get download -qq exim4-daemon-light >/dev/null); } ||
			{ rm -rf "$tmp"; echo "stsproxy: cannot download exim4-daemon-light; the Exim test will skip" >&2; return 0; }
		deb=$(echo "$tmp"/exim4-daemon-light_*.deb)
		mkdir -p "$STSPROXY_EXIM_ROOT"
		dpkg -x "$deb" "$STSPROXY_EXIM_ROOT" &&
			dpkg-deb -f "$deb" Depends > "$STSPROXY_EXIM_ROOT/.depends" ||
			{ rm -rf "$tmp"; return 1; }
		rm -rf "$tmp"
	fi
	# "exim4-base (>= 4.96), debconf (>= 0.5) | debconf-2.0, libc6 (>= 2.34), ...":
	# the first alternative of each, without versions, libraries only.
	libs=$(tr ',' '\n' < "$STSPROXY_EXIM_ROOT/.depends" | sed 's/|.*//; s/(.*)//; s/[[:space:]]//g' | grep '^lib')
	bootstrap_packages $libs || return 1
	missing=$(ldd "$exim" | grep 'not found')
	if [ -n "$missing" ]; then
		echo "stsproxy: $exim cannot load:" $missing >&2
		return 1
	fi
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
