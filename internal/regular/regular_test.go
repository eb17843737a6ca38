package regular

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// What may be read, as a table: a regular file within the bound only.
func TestRead(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("12345"), 0o644)
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	os.Symlink(file, link)
	zero := filepath.Join(dir, "zero")
	os.Symlink("/dev/zero", zero)
	for _, tc := range []struct {
		name, path string
		flags      int
		max        int64
		want       string
		err        error
	}{
		{"a file", file, 0, 5, "12345", nil},
		{"past the bound", file, 0, 4, "", ErrTooLarge},
		{"a FIFO (never waited on)", fifo, 0, 5, "", ErrNotRegular},
		{"a folder", dir, 0, 5, "", ErrNotRegular},
		{"a link to a device", zero, 0, 5, "", ErrNotRegular},
		{"a link, followed", link, 0, 5, "12345", nil},
		{"a link, with O_NOFOLLOW", link, syscall.O_NOFOLLOW, 5, "", syscall.ELOOP},
		{"missing", filepath.Join(dir, "none"), 0, 5, "", os.ErrNotExist},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Read(tc.path, tc.flags, tc.max)
			if string(b) != tc.want || !errors.Is(err, tc.err) {
				t.Errorf("Read = %q, %v; want %q, %v", b, err, tc.want, tc.err)
			}
		})
	}
}
