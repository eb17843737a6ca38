#!/bin/bash
# Helm, checked against its published .sha256sum.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

v=$(cfg .toolchains.helm.version)
arch=$(arch_go)
file="helm-v${v}-linux-${arch}.tar.gz"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download "https://get.helm.sh/$file" "$tmp/$file"
download "https://get.helm.sh/$file.sha256sum" "$tmp/sum"
verify_sha256 "$tmp/$file" "$(cut -d' ' -f1 "$tmp/sum")"
tar -xzf "$tmp/$file" -C "$tmp" "linux-${arch}/helm"
install -m 0755 "$tmp/linux-${arch}/helm" /usr/local/bin/helm
record helm "$v"
