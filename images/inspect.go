package images

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// Contents is what a metadata tarball says about its image.
type Contents struct {
	Manifest    *Manifest
	ManifestRaw []byte
	UserData    []byte
}

// ReadContents reads vibe/manifest.json and vibe/user-data from a metadata
// tarball.
func ReadContents(r io.Reader) (*Contents, error) {
	files, err := ReadMetaTarball(r)
	if err != nil {
		return nil, err
	}
	raw, ok := files["vibe/manifest.json"]
	if !ok {
		return nil, fmt.Errorf("%w: the metadata has no vibe/manifest.json", ErrNotVibe)
	}
	m, err := ParseManifest(raw)
	if err != nil {
		return nil, err
	}
	ud, ok := files["vibe/user-data"]
	if !ok {
		return nil, fmt.Errorf("%w: the metadata has no vibe/user-data", ErrNotVibe)
	}
	return &Contents{Manifest: m, ManifestRaw: raw, UserData: ud}, nil
}

// ErrNotVibe is returned for images vibe-build did not make.
var ErrNotVibe = fmt.Errorf("not a vibe image")

// FindMeta returns the metadata tarball in dir: a store folder's
// meta.tar.xz, or the one meta-*.tar.xz of an exported folder.
func FindMeta(dir string) (string, error) {
	p := filepath.Join(dir, MetaFile)
	if _, err := os.Stat(p); err == nil {
		return p, nil
	}
	matches, _ := filepath.Glob(filepath.Join(dir, "meta-*.tar.xz"))
	sort.Strings(matches)
	switch len(matches) {
	case 1:
		return matches[0], nil
	case 0:
		return "", fmt.Errorf("%s holds no %s or meta-*.tar.xz", dir, MetaFile)
	}
	return "", fmt.Errorf("%s holds several images (%d meta-*.tar.xz); name one image's folder", dir, len(matches))
}

// ReadContentsFile reads the contents of the metadata tarball at path.
func ReadContentsFile(path string) (*Contents, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	c, err := ReadContents(f)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return c, nil
}
