package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The guest's side of the race: swaps a and b (a real folder and a link)
// atomically, as fast as it can, in a process of its own: the new sandbox
// runs while the login comes back.
func TestSwapperHelper(t *testing.T) {
	pair := os.Getenv("VIBE_TEST_SWAP")
	if pair == "" {
		t.Skip("run by the race tests")
	}
	a, b, _ := strings.Cut(pair, "|")
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		_ = unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
	}
}

func startSwapper(t *testing.T, a, b string) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestSwapperHelper$")
	cmd.Env = append(os.Environ(), "VIBE_TEST_SWAP="+a+"|"+b)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
}

// The login comes back while the guest swaps a folder on its way for a
// link out of the state folder: it never lands outside. (From the review
// of the restore under a name of its own: a check, then a rename by path,
// moved it through the link in about 12,500 tries.)
func TestKeepBackRaceFollowsNoLink(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "gemini")
	aside := filepath.Join(root, "aside")
	os.MkdirAll(filepath.Join(dir, ".gemini"), 0o700)
	os.Symlink(outside, filepath.Join(dir, "link"))
	startSwapper(t, filepath.Join(dir, ".gemini"), filepath.Join(dir, "link"))
	to, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer to.Close()
	none := func(*os.Root, string) error { return nil }
	tries := 0
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); tries++ {
		os.MkdirAll(filepath.Join(aside, ".gemini"), 0o700)
		os.WriteFile(filepath.Join(aside, ".gemini", "oauth_creds.json"), []byte("written by the old guest"), 0o600)
		from, err := os.OpenRoot(aside)
		if err != nil {
			t.Fatal(err)
		}
		_ = moveBack(from, to, ".gemini/oauth_creds.json", none)
		from.Close()
		if _, err := os.Lstat(filepath.Join(outside, "oauth_creds.json")); err == nil {
			t.Fatalf("try %d: the login was moved through a link the guest swapped in", tries)
		}
	}
	t.Logf("%d tries", tries)
}

// The drop pass while the guest swaps a project's folder for a link: a
// host folder named memory is never moved.
func TestKeepBackDropRaceMovesNothingOutside(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "claude")
	aside := filepath.Join(root, "aside")
	os.MkdirAll(filepath.Join(dir, "projects", "app"), 0o700)
	os.MkdirAll(filepath.Join(outside, "memory"), 0o700)
	os.WriteFile(filepath.Join(outside, "memory", "user-file"), []byte("the user's"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "projects", "link"))
	startSwapper(t, filepath.Join(dir, "projects", "app"), filepath.Join(dir, "projects", "link"))
	devnull, _ := os.Open(os.DevNull)
	stderr := os.Stderr
	os.Stderr = devnull
	defer func() { os.Stderr = stderr }()
	none := func(*os.Root, string) error { return nil }
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		os.MkdirAll(aside, 0o700)
		keepBack("claude", dir, aside, nil, []string{"projects/*/memory"}, none)
		if _, err := os.Lstat(filepath.Join(outside, "memory")); err != nil {
			os.Stderr = stderr
			t.Fatalf("the drop pass moved the host folder %s through the guest's link", filepath.Join(outside, "memory"))
		}
	}
}
