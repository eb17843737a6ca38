package setup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/internal/e2e"
)

// vibe setup on the test machine (where make testenv installed incus):
// what is there is found and kept, what is missing is made (the uplink, a
// local base image since no image server can be reached here, completions,
// the user's vibe.yaml), and a second run changes nothing.
func TestE2ESetup(t *testing.T) {
	c := e2e.Daemon(t, "vibe-test-base")
	bin := t.TempDir()
	for _, cmd := range []string{"vibe", "vibe-build"} {
		if out, err := exec.Command("go", "build", "-o", filepath.Join(bin, cmd), "../cmd/"+cmd).CombinedOutput(); err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
	}
	_, _, err := c.GetNetwork(Uplink)
	hadUplink := err == nil
	t.Cleanup(func() {
		if !hadUplink {
			_ = c.DeleteNetwork(Uplink)
		}
	})
	dir := t.TempDir()
	o := Options{
		Storage: "dir", UID: 1000, GID: 1000, Base: "images:ubuntu/26.04/cloud", Type: "container",
		Self: filepath.Join(bin, "vibe"), ConfigPath: filepath.Join(dir, "config", "vibe", "vibe.yaml"),
		CompletionDir: filepath.Join(dir, "completions"), CacheDir: "/var/cache/vibe/base",
		Log: func(l string) { t.Log(l) },
		// No test traffic leaves the machine, not even a name lookup of a
		// public download site: here none resolves.
		Resolve: func(context.Context, string) error { return errors.New("not looked up in tests") },
	}
	os.MkdirAll(o.CompletionDir, 0o755)
	reports, err := Run(context.Background(), must(New(o).Steps()), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	state := map[string]Report{}
	for _, r := range reports {
		state[r.Step] = r
		t.Logf("%s: done=%v changed=%v %s", r.Step, r.Done, r.Changed, r.Detail)
	}
	for _, s := range []string{"incus", "ids", "daemon", "storage"} {
		if !state[s].Done || state[s].Changed {
			t.Errorf("%s: %+v, want found in place", s, state[s])
		}
	}
	for _, s := range []string{"completion", "vibe.yaml"} {
		if !state[s].Changed {
			t.Errorf("%s: %+v, want made", s, state[s])
		}
	}
	n, _, err := c.GetNetwork(Uplink)
	if err != nil || n.Config["ipv4.nat"] != "true" {
		t.Errorf("uplink: %v %v", err, n)
	}
	if _, _, err := c.GetImageAlias("vibe-base-bookworm"); err != nil {
		t.Errorf("no local base: %v", err)
	}
	b, err := os.ReadFile(o.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(o.ConfigPath, b, config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if cfg.Image.Base != "vibe-base-bookworm" || cfg.Instance.Type != "container" || !cfg.Egress.Gateway.Enabled || cfg.Egress.Gateway.Uplink != Uplink ||
		cfg.Toolchains.Node.Source != config.NodeDistro || cfg.Toolchains.Java.Enabled || cfg.Toolchains.Chrome.Enabled {
		t.Errorf("vibe.yaml:\n%s", b)
	}
	comp, _ := os.ReadFile(filepath.Join(o.CompletionDir, "vibe"))
	if !strings.Contains(string(comp), "complete ") || !strings.Contains(string(comp), o.Self) {
		t.Errorf("bash completion: %q", comp)
	}

	// Again: everything in place, nothing changed, the user's file kept.
	os.WriteFile(o.ConfigPath, []byte("# mine\n"), 0o644)
	reports, err = Run(context.Background(), must(New(o).Steps()), false, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range reports {
		if !r.Done || r.Changed {
			t.Errorf("second run: %+v", r)
		}
	}
	if b, _ := os.ReadFile(o.ConfigPath); string(b) != "# mine\n" {
		t.Errorf("the user's vibe.yaml was replaced: %q", b)
	}
}

func must(s []Step, err error) []Step {
	if err != nil {
		panic(err)
	}
	return s
}
