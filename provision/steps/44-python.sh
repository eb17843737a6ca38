#!/bin/bash
# uv and a uv-managed Python for the sandbox user.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

uv_version=$(cfg .toolchains.python.uv)
python_version=$(cfg .toolchains.python.version)
case "$(uname -m)" in
x86_64) triple=x86_64-unknown-linux-gnu ;;
aarch64) triple=aarch64-unknown-linux-gnu ;;
*) die "uv: unsupported architecture $(uname -m)" ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
base="https://github.com/astral-sh/uv/releases/download/${uv_version}/uv-${triple}.tar.gz"
download "$base" "$tmp/uv.tar.gz"
download "$base.sha256" "$tmp/uv.sha256"
verify_sha256 "$tmp/uv.tar.gz" "$(cut -d' ' -f1 "$tmp/uv.sha256")"
tar -xzf "$tmp/uv.tar.gz" -C "$tmp"
install -m 0755 "$tmp/uv-${triple}/uv" "$tmp/uv-${triple}/uvx" /usr/local/bin/
as_user uv python install "$python_version"
record uv "$(as_user uv --version | cut -d' ' -f2)"
record python "$(as_user uv python find "$python_version")"
