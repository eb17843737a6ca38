package streams

import (
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// release unblocks an open(2) of the FIFO at p that is waiting for a writer.
func release(p string) {
	if f, err := os.OpenFile(p, os.O_WRONLY|syscall.O_NONBLOCK, 0); err == nil {
		f.Close()
	}
}

// A local tree (a teammate's folder, an unpacked archive) whose
// streams/v1/index.json is a FIFO is refused at once: a blocking open of a
// FIFO waits for a writer, and no context (Ctrl-C) ends it.
func TestLocalTreeFIFOIsRefused(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "streams", "v1"), 0o755)
	fifo := filepath.Join(tree, "streams", "v1", "index.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release(fifo) })
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := Open(ctx, tree, nil); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a FIFO index opened as a tree")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Open of a local tree whose index.json is a FIFO still blocks 2s after its context ended: an untrusted folder hangs import, uninterruptibly")
	}
}

// Publishing into an existing tree (an rsync'd copy of the team's server)
// reads streams/v1/images.json bounded, and refuses one that is not a
// regular file: a FIFO would hang publish, a link to /dev/zero fill memory.
func TestPublishIntoTreeWithFIFOIsRefused(t *testing.T) {
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "streams", "v1"), 0o755)
	os.MkdirAll(filepath.Join(tree, "images"), 0o755)
	fifo := filepath.Join(tree, "streams", "v1", "images.json")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { release(fifo) })
	done := make(chan error, 1)
	go func() { _, err := loadProducts(tree); done <- err }()
	select {
	case err := <-done:
		if err == nil {
			t.Error("a FIFO images.json was read")
		}
	case <-time.After(3 * time.Second):
		t.Fatal("publish's loadProducts blocks on a FIFO images.json: the read is neither bounded nor checked before it starts")
	}
}
