// Package images turns a provisioned builder into the project's own split
// incus image and keeps it verifiable: a byte-deterministic xz metadata
// tarball (metadata.yaml, the NoCloud seed templates, vibe/manifest.json and
// vibe/user-data) plus the rootfs, fingerprinted as incus does,
// SHA-256(metadata || rootfs), and stored content-addressed on disk.
//
// Everything streams: an image is never held in memory.
package images

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// File names inside a store folder.
const (
	MetaFile     = "meta.tar.xz"
	ManifestFile = "manifest.json"
	UserDataFile = "user-data"
)

// RootfsFile is the data file's name for an instance type.
func RootfsFile(instanceType string) string {
	if instanceType == "vm" {
		return "rootfs.qcow2"
	}
	return "rootfs.tar"
}

// Fingerprint is incus's fingerprint of a split image: SHA-256 over the
// metadata file's bytes followed by the data file's bytes.
func Fingerprint(metaPath, rootfsPath string) (string, error) {
	h := sha256.New()
	for _, p := range []string{metaPath, rootfsPath} {
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("fingerprint: %w", err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("fingerprint %s: %w", p, err)
		}
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// hashingWriter counts and hashes what passes through it.
type hashingWriter struct {
	w    io.Writer
	h    hashState
	size int64
}

type hashState interface {
	io.Writer
	Sum([]byte) []byte
}

func newHashingWriter(w io.Writer) *hashingWriter {
	return &hashingWriter{w: w, h: sha256.New()}
}

func (hw *hashingWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	hw.h.Write(p[:n])
	hw.size += int64(n)
	return n, err
}

func (hw *hashingWriter) sum() string { return hex.EncodeToString(hw.h.Sum(nil)) }
