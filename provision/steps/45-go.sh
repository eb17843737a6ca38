#!/bin/bash
# Go in /usr/local/go: the golang.org/toolchain module from the module
# proxy mirrors.go names (validation requires one), the same zip the go command
# fetches when it switches toolchains. Its h1 checksum must equal the one
# pinned in toolchains.go.sums (as Go's checksum database records it)
# before a byte of it is unpacked or run.
set -euo pipefail
# shellcheck source=../lib.sh
. /usr/local/lib/vibe/lib.sh

v=$(cfg .toolchains.go.version)
arch=$(arch_go)
key="$v/linux-$arch"
want=$(jq -r --arg k "$key" '.toolchains.go.sums[$k] // empty' "$VIBE_BUILD_JSON")
[ -n "$want" ] || die "toolchains.go.sums has no checksum for $key: add it (go mod download -json golang.org/toolchain@v0.0.1-go$v.linux-$arch prints it as Sum)"
proxy=$(jq -r '.mirrors.go // ""' "$VIBE_BUILD_JSON")
[ -n "$proxy" ] || die "toolchains.go needs mirrors.go: a Go module proxy (go env GOPROXY names yours)"
mod="v0.0.1-go$v.linux-$arch"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
download "${proxy%/}/golang.org/toolchain/@v/$mod.zip" "$tmp/go.zip"
rm -rf /usr/local/go.new
# Module zips hold no file modes, and rename every go.mod inside to
# _go.mod: undo both as the go command does (select.go in its toolchain
# package), after checking the zip's h1 (dirhash.Hash1 over its entries).
python3 -c '
import base64, fnmatch, hashlib, os, shutil, sys, zipfile

zpath, want, prefix, dest = sys.argv[1:5]
with zipfile.ZipFile(zpath) as z:
    names = sorted(i.filename for i in z.infolist() if not i.is_dir())
    h = hashlib.sha256()
    for n in names:
        if "\n" in n:
            sys.exit("vibe: error: a file name in the Go toolchain zip holds a newline")
        fh = hashlib.sha256()
        with z.open(n) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                fh.update(chunk)
        h.update(("%s  %s\n" % (fh.hexdigest(), n)).encode())
    got = "h1:" + base64.b64encode(h.digest()).decode()
    if got != want:
        sys.exit("vibe: error: the Go toolchain zip hashes to %s, but toolchains.go.sums pins %s: the proxy served other bytes" % (got, want))
    for n in names:
        rel = n[len(prefix):] if n.startswith(prefix) else ""
        parts = rel.split("/")
        if rel == "" or rel.startswith("/") or ".." in parts or "" in parts:
            sys.exit("vibe: error: the Go toolchain zip holds %r, outside %s" % (n, prefix))
        if parts[-1] == "_go.mod":
            parts[-1] = "go.mod"
        out = os.path.join(dest, *parts)
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with z.open(n) as src, open(out, "xb") as dst:
            shutil.copyfileobj(src, dst)
        run = parts[0] == "bin" or rel.startswith("pkg/tool/") or (parts[0] == "lib" and fnmatch.fnmatch(parts[-1], "go_?*_?*_exec"))
        os.chmod(out, 0o755 if run else 0o644)
' "$tmp/go.zip" "$want" "golang.org/toolchain@$mod/" /usr/local/go.new
rm -rf /usr/local/go
mv /usr/local/go.new /usr/local/go
ln -sf /usr/local/go/bin/go /usr/local/go/bin/gofmt /usr/local/bin/
# As the user: the project may choose the toolchain's bytes (mirrors.go
# with its own go.sums), and nothing of it runs as root.
record go "$(as_user env GOTOOLCHAIN=local /usr/local/go/bin/go version | cut -d' ' -f3)"
