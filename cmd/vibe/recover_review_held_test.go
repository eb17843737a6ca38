package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/sandbox"
)

// Links the old instance left in the folder set aside (and in the
// live folder) are moved as links or refused, never followed out.
func TestRecoveryFollowsNoLink(t *testing.T) {
	p := config.AgentPresetNamed("claude")
	outside := t.TempDir()
	os.MkdirAll(filepath.Join(outside, "x", "memory"), 0o700)
	os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o600)
	dir := filepath.Join(t.TempDir(), "claude")
	os.MkdirAll(dir, 0o700)
	aside := pendingName(dir, "vibe.u1", time.Now().Add(-3*time.Minute))
	os.MkdirAll(aside, 0o700)
	os.Symlink(filepath.Join(outside, "secret"), filepath.Join(aside, ".credentials.json"))
	os.Symlink(outside, filepath.Join(aside, "projects"))
	if err := recoverAside("claude", dir, p.Keep, p.Drop, func(string) (sandbox.FormerState, error) { return sandbox.FormerGone, nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "x", "memory")); err != nil {
		t.Errorf("a folder outside was moved: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(outside, "secret")); string(b) != "host" {
		t.Error("the host file changed")
	}
	for _, n := range []string{".credentials.json", "projects"} {
		st, err := os.Lstat(filepath.Join(dir, n))
		t.Logf("%s in the fresh state: %v %v", n, st.Mode(), err)
	}
}
