package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// Debian 13 end to end, with nothing from an image server: vibe-build base
// makes the base from the machine's own apt mirror and keyring, the offline
// recipe bakes on it, and a sandbox from that image passes its self-test
// and runs the agent. (The tree is cached across runs; the first run on a
// machine builds it, about 100 s.)
func TestE2EDebian13Container(t *testing.T) {
	w := newWorld(t)
	const base, alias = "vibe-test-trixie", "vibe-offline-trixie"
	if out, err := exec.Command(vibeBuildBin, "base", "trixie", "--alias", base).CombinedOutput(); err != nil {
		t.Fatalf("vibe-build base trixie: %v\n%s", err, out)
	}
	img, _, err := w.c.GetImageAlias(base)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := w.c.GetImage(img.Target)
	if err != nil {
		t.Fatal(err)
	}
	if info.Properties["os"] != "debian" || info.Properties["release"] != "trixie" {
		t.Errorf("base properties %v, want debian trixie", info.Properties)
	}
	recipe, _ := os.ReadFile("../../examples/offline.yaml")
	cfg := strings.Replace(strings.Replace(string(recipe), "base: vibe-test-base", "base: "+base, 1), "alias: vibe-offline", "alias: "+alias, 1)
	p := filepath.Join(w.dir, "trixie.yaml")
	os.WriteFile(p, []byte(cfg), 0o644)
	if out, err := exec.Command(vibeBuildBin, "build", "--config", p).CombinedOutput(); err != nil {
		t.Fatalf("bake on trixie: %v\n%s", err, out)
	}
	mine, _ := os.ReadFile(filepath.Join(w.dir, "vibe.yaml"))
	os.WriteFile(filepath.Join(w.dir, "vibe.yaml"), []byte(strings.Replace(string(mine), "alias: vibe-offline\n", "alias: "+alias+"\n", 1)), 0o644)

	// up self-tests the sandbox: it fails unless containment holds.
	w.must("up")
	if out, _ := w.guest("cat", "/etc/debian_version"); !strings.HasPrefix(out, "13") {
		t.Errorf("the sandbox runs Debian %q, want 13", out)
	}
	stdout, stderr, code := w.vibe("app")
	if code != 0 || !strings.Contains(stdout, "agent cwd=/workspace/app user=vibe key="+secretValue) {
		t.Errorf("agent on Debian 13: exit %d\n%s%s", code, stdout, stderr)
	}
}
