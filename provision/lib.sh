# shellcheck shell=bash
# Shared helpers for vibe's guest scripts. Sourced, never run.
# Values come from /etc/vibe/build.json through jq, never from text pasted
# into a script, so no configuration value is ever parsed by the shell.

VIBE_BUILD_JSON=${VIBE_BUILD_JSON:-/etc/vibe/build.json}
VIBE_PROXY=http://vibe-proxy:3128
# The system trust store, which holds tls.ca's extra authorities: Node and
# Python's requests keep bundles of their own unless told.
VIBE_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt

log() { printf 'vibe: %s\n' "$*" >&2; }
die() { printf 'vibe: error: %s\n' "$*" >&2; exit 1; }

# cfg PATH: print one value of build.json (a jq path such as .user.name).
# A missing value is an error, never an empty string.
cfg() {
	local v
	v=$(jq -er "$1 // empty" "$VIBE_BUILD_JSON") || die "build.json has no value at $1"
	printf '%s\n' "$v"
}

# cfg_list PATH: print the elements of a list, one per line.
cfg_list() { jq -r "$1[]?" "$VIBE_BUILD_JSON"; }

# as_user CMD...: run CMD as the sandbox user in a login environment
# (proxy variables, nvm), from the user's home.
as_user() {
	local user home
	user=$(cfg .user.name)
	home=$(cfg .user.home)
	(cd "$home" && runuser -u "$user" -- env -i HOME="$home" USER="$user" LOGNAME="$user" \
		PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		http_proxy="$VIBE_PROXY" https_proxy="$VIBE_PROXY" HTTP_PROXY="$VIBE_PROXY" HTTPS_PROXY="$VIBE_PROXY" \
		no_proxy=localhost,127.0.0.1 NO_PROXY=localhost,127.0.0.1 NODE_USE_ENV_PROXY=1 \
		NODE_EXTRA_CA_CERTS="$VIBE_CA_BUNDLE" REQUESTS_CA_BUNDLE="$VIBE_CA_BUNDLE" SSL_CERT_FILE="$VIBE_CA_BUNDLE" \
		"$@")
}

# link_node_bin DIR: a stable path to the default node's bin folder DIR, in
# the sandbox user's own home: it goes on that user's PATH only
# (profile.d, vibe exec), never on root's, since the user can write it.
link_node_bin() {
	local home
	home=$(cfg .user.home)
	as_user mkdir -p "$home/.vibe"
	as_user ln -sfn "$1" "$home/.vibe/node-bin"
}

# arch_go: the machine's architecture in Go's spelling (amd64, arm64).
arch_go() {
	case "$(uname -m)" in
	x86_64) echo amd64 ;;
	aarch64) echo arm64 ;;
	*) die "unsupported architecture $(uname -m)" ;;
	esac
}

# download URL FILE: fetch through the egress proxy, failing on HTTP errors.
download() {
	curl --proxy "$VIBE_PROXY" -fsSL --retry 3 --retry-delay 2 --connect-timeout 20 --max-time 900 -o "$2" "$1" ||
		die "download failed: $1 (is its host in egress.allow?)"
}

# apt_install PKG...: install through the proxy, non-interactively.
apt_install() {
	DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::http::Proxy="$VIBE_PROXY" -o Acquire::https::Proxy="$VIBE_PROXY" \
		install -y --no-install-recommends "$@"
}

# record NAME VERSION: note an installed version for the image manifest.
record() {
	mkdir -p /etc/vibe/versions
	printf '%s\n' "$2" >"/etc/vibe/versions/$1"
}

# verify_sha256 FILE HEX: refuse a download whose digest differs.
verify_sha256() {
	local got
	got=$(sha256sum "$1" | cut -d' ' -f1)
	[ "$got" = "$2" ] || die "checksum mismatch for $(basename "$1"): got $got, want $2"
}

# sdk ARGS...: run SDKMAN's sdk command as the sandbox user.
sdk() {
	# shellcheck disable=SC2016
	as_user bash -c '. "$HOME/.sdkman/bin/sdkman-init.sh" && sdk "$@"' sdk "$@"
}
