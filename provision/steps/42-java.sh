#!/bin/bash
# Java (Temurin), Maven and Gradle through SDKMAN, for the sandbox user.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

home=$(cfg .user.home)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
chmod 0755 "$tmp"
download "https://get.sdkman.io?rcupdate=false&ci=true" "$tmp/install-sdkman.sh"
chmod 0644 "$tmp/install-sdkman.sh"
as_user env SDKMAN_DIR="$home/.sdkman" bash "$tmp/install-sdkman.sh"
sed -i 's/^sdkman_auto_answer=.*/sdkman_auto_answer=true/; s/^sdkman_selfupdate_feature=.*/sdkman_selfupdate_feature=false/' "$home/.sdkman/etc/config"

# resolve_java V: a bare major becomes its newest Temurin identifier.
resolve_java() {
	local v=$1 id
	if [[ $v =~ ^[0-9]+$ ]]; then
		id=$(sdk list java | grep -oE "(^|[[:space:]|])${v}(\.[0-9]+)*-tem([[:space:]|]|$)" | tr -d ' |' | sort -t. -k1,1n -k2,2n -k3,3n | tail -n 1)
		[ -n "$id" ] || die "SDKMAN lists no Temurin build for Java $v"
		printf '%s\n' "$id"
	elif [[ $v =~ ^[0-9][0-9.]*[0-9]-[a-z]+$ ]]; then
		printf '%s\n' "$v"
	else
		die "invalid Java version $v"
	fi
}

primary=$(resolve_java "$(cfg .toolchains.java.version)")
sdk install java "$primary"
while read -r extra; do
	[ -n "$extra" ] || continue
	sdk install java "$(resolve_java "$extra")"
done < <(cfg_list .toolchains.java.extra)
sdk default java "$primary"
record java "$primary"

if [ "$(jq -r .toolchains.maven.enabled "$VIBE_BUILD_JSON")" = true ]; then
	v=$(cfg .toolchains.maven.version)
	sdk install maven "$v"
	record maven "$v"
fi
if [ "$(jq -r .toolchains.gradle.enabled "$VIBE_BUILD_JSON")" = true ]; then
	v=$(cfg .toolchains.gradle.version)
	sdk install gradle "$v"
	record gradle "$v"
fi
sdk flush tmp >/dev/null 2>&1 || true
