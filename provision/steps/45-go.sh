#!/bin/bash
# Go in /usr/local/go.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

v=$(cfg .toolchains.go.version)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download "https://go.dev/dl/go${v}.linux-$(arch_go).tar.gz" "$tmp/go.tar.gz"
rm -rf /usr/local/go
tar -xzf "$tmp/go.tar.gz" -C /usr/local
ln -sf /usr/local/go/bin/go /usr/local/go/bin/gofmt /usr/local/bin/
record go "$(/usr/local/go/bin/go version | cut -d' ' -f3)"
