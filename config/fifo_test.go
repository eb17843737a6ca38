package config

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A project folder (an unpacked archive, or a repository whose vibe.yaml is
// a symlink to a FIFO on the host) whose vibe.yaml is a FIFO is refused at
// once: an open of a FIFO waits for a writer, and every vibe command in
// that folder (and the shell completion at each TAB) would hang before any
// trust decision.
func TestProjectFIFOIsRefused(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(dir, "xdg"))
	repo := filepath.Join(dir, "repo")
	os.MkdirAll(repo, 0o755)
	fifo := filepath.Join(repo, FileName)
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if f, err := os.OpenFile(fifo, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
			f.Close()
		}
	})
	t.Chdir(repo)
	done := make(chan error, 1)
	go func() { _, err := Load("", host); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a FIFO vibe.yaml was read as a project file")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("config.Load blocks on a project vibe.yaml that is a FIFO: an untrusted folder hangs vibe before any trust decision")
	}
}
