package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"
	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/images"
)

// hostileImage writes an unsigned image folder (store layout) whose manifest
// edit changes; metadata.yaml agrees with it, so Verify's consistency
// checks pass. It returns the folder.
func hostileImage(t *testing.T, edit func(*images.Manifest)) string {
	t.Helper()
	var rb bytes.Buffer
	tw := tar.NewWriter(&rb)
	tw.WriteHeader(&tar.Header{Name: "./x", Mode: 0o644, Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	tw.Close()
	root := rb.Bytes()
	ud := []byte("#cloud-config\n")
	uds, rs := sha256.Sum256(ud), sha256.Sum256(root)
	m := &images.Manifest{Format: images.ManifestFormat, Recipe: strings.Repeat("ab", 32), UserDataSHA256: hex.EncodeToString(uds[:]),
		InstanceType: "container", Architecture: "x86_64",
		Rootfs:  images.FileDigest{Name: "rootfs.tar", SHA256: hex.EncodeToString(rs[:]), Size: int64(len(root))},
		Created: time.Unix(1700000000, 0).UTC()}
	edit(m)
	mj, _ := m.Marshal()
	md := api.ImageMetadata{Architecture: "x86_64", CreationDate: 1700000000,
		Properties: map[string]string{images.PropRecipe: m.Recipe, images.PropType: m.InstanceType}}
	my, _ := yaml.Marshal(&md)
	var mb bytes.Buffer
	if err := images.WriteMetaTarball(&mb, []images.MetaEntry{{Name: "metadata.yaml", Data: my}, {Name: "vibe/manifest.json", Data: mj}, {Name: "vibe/user-data", Data: ud}}); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "img")
	os.MkdirAll(dir, 0o755)
	os.WriteFile(filepath.Join(dir, images.MetaFile), mb.Bytes(), 0o644)
	os.WriteFile(filepath.Join(dir, "rootfs.tar"), root, 0o644)
	return dir
}

// An unsigned image whose instance type (which only metadata.yaml, the
// same attacker's, must agree with) prints a forged "signed by ...,
// trusted" line and conceals (ESC[8m) the real "unsigned" line is refused,
// and nothing of it reaches the terminal raw.
func TestVerifyRefusesAForgedInstanceType(t *testing.T) {
	typ := "container, recipe 0123456789ab, 0.1 MiB)\n  signed by team@example.com (ssh-ed25519 SHA256:x), trusted\x1b[8m"
	dir := hostileImage(t, func(m *images.Manifest) { m.InstanceType = typ })
	out, errOut, code := run(t, "verify", dir)
	if code == 0 || strings.ContainsRune(out+errOut, 0x1b) {
		t.Fatalf("verify of an unsigned image with a forged instance type: exit %d\n%q\n%q", code, out, errOut)
	}
}

// A manifest whose recipe is not a hash is refused with a message (verify
// took its first 12 characters, and panicked on a short one).
func TestVerifyRefusesAShortRecipe(t *testing.T) {
	dir := hostileImage(t, func(m *images.Manifest) { m.Recipe = "x" })
	_, errOut, code := run(t, "verify", dir)
	if code == 0 || strings.Contains(errOut, "panic:") || !strings.Contains(errOut, "recipe") {
		t.Fatalf("verify of an image whose recipe is short: exit %d\n%s", code, firstLines(errOut, 3))
	}
}

func firstLines(s string, n int) string {
	l := strings.SplitN(s, "\n", n+1)
	if len(l) > n {
		l = l[:n]
	}
	return strings.Join(l, "\n")
}

// inspect, the audit of images nobody has verified yet, prints none of an
// image's escape sequences.
func TestInspectPrintsNoEscapes(t *testing.T) {
	dir := hostileImage(t, func(m *images.Manifest) {
		esc := "\x1b]0;owned\x07\x1b[8m\u009b2J"
		m.VibeBuild, m.Base.Source, m.Architecture, m.Versions = esc, esc, "x86_64"+esc, map[string]string{"node" + esc: esc}
	})
	out, _, code := run(t, "inspect", dir)
	if code != 0 || strings.ContainsAny(out, "\x1b\x07\u009b") {
		t.Fatalf("inspect (exit %d) writes the image's escape sequences to the terminal:\n%q", code, out)
	}
}

// diff, the audit of two images (a teammate's against one's own), prints
// none of a hostile manifest's escape sequences (in versions, config
// strings or field names), which could hide or forge rows.
func TestDiffPrintsNoEscapes(t *testing.T) {
	a := hostileImage(t, func(m *images.Manifest) { m.Versions = map[string]string{"node": "v22.1.0"} })
	esc := "v22.1.0\x1b[8m\x1b]0;owned\x07\u009b2J"
	b := hostileImage(t, func(m *images.Manifest) {
		m.Versions = map[string]string{"node": esc, "x\x1b[1Aforged": "1"}
	})
	out, errOut, code := run(t, "diff", a, b)
	if code != 1 {
		t.Logf("diff exited %d: %s", code, firstLines(errOut, 3))
	}
	if strings.ContainsAny(out+errOut, "\x1b\x07\u009b") {
		t.Fatalf("diff writes a hostile manifest's escape sequences to the terminal:\n%q", out)
	}
}
