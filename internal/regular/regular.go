// Package regular reads files that others may have laid out (a cloned
// repository, a tree or an index from a server): only regular files, as the
// open file itself says, never waiting on a FIFO or reading a device (a
// name can be swapped between a check and an open, or be a link to
// /dev/zero), and never past a bound.
package regular

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

var (
	// ErrNotRegular is returned for anything but a regular file.
	ErrNotRegular = errors.New("not a regular file")
	// ErrTooLarge is returned for a file past the bound.
	ErrTooLarge = errors.New("larger than allowed")
)

// Open opens path for reading if it is a regular file. The open never
// blocks; flags are added to it (syscall.O_NOFOLLOW: no final link).
func Open(path string, flags int) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|flags, 0)
	if err != nil {
		return nil, err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	return f, nil
}

// Read reads the whole of a regular file of at most max bytes, opened as
// Open does.
func Read(path string, flags int, max int64) ([]byte, error) {
	f, err := Open(path, flags)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s: %w (%d bytes)", path, ErrTooLarge, max)
	}
	return b, nil
}
