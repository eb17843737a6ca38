#!/bin/bash
# OpenTofu, checked against its published SHA256SUMS.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

v=$(cfg .toolchains.opentofu.version)
file="tofu_${v}_linux_$(arch_go).tar.gz"
base="https://github.com/opentofu/opentofu/releases/download/v${v}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download "$base/$file" "$tmp/$file"
download "$base/tofu_${v}_SHA256SUMS" "$tmp/SHA256SUMS"
verify_sha256 "$tmp/$file" "$(awk -v f="$file" '$2 == f { print $1 }' "$tmp/SHA256SUMS")"
tar -xzf "$tmp/$file" -C "$tmp" tofu
install -m 0755 "$tmp/tofu" /usr/local/bin/tofu
record opentofu "$v"
