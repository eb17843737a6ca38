package main

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/vibesandbox/vibe/sandbox"
)

// What the snapshot recorded below the state folder is looked at there,
// never through a link the sandbox made on the way (from a second review:
// a link to a host folder decided what was kept, and one into a hung
// network mount would have stalled vibe).
func TestForgetSnapshotFollowsNoLink(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "claude")
	outside := filepath.Join(base, "host-elsewhere")
	os.MkdirAll(outside, 0o700)
	os.MkdirAll(dir, 0o700)
	if err := os.Symlink(outside, filepath.Join(dir, "hooks")); err != nil {
		t.Fatal(err)
	}
	snapPath := filepath.Join(base, "host-run.json")
	key := filepath.Join(dir, "hooks", "x.sh")
	gone := filepath.Join(dir, "settings.json")
	if err := saveSnapshot(snapPath, sandbox.Snapshot{key: "h1", gone: "h2"}); err != nil {
		t.Fatal(err)
	}
	forgetSnapshot(snapPath, dir)
	snap, _ := loadSnapshot(snapPath)
	if _, kept := snap[key]; !kept {
		t.Errorf("%s was judged through the sandbox's link to %s", key, outside)
	}
	if _, kept := snap[gone]; kept {
		t.Errorf("%s, set aside, is still in the snapshot", gone)
	}
}
