package images

import (
	"fmt"
	"io"
	"os"

	"github.com/lxc/incus/v6/shared/api"
	"gopkg.in/yaml.v3"
)

// Contents is what a metadata tarball says about its image.
type Contents struct {
	Manifest    *Manifest
	ManifestRaw []byte
	UserData    []byte
	Properties  map[string]string // metadata.yaml's properties
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
	var md api.ImageMetadata
	if err := yaml.Unmarshal(files["metadata.yaml"], &md); err != nil {
		return nil, fmt.Errorf("metadata.yaml: %w", err)
	}
	return &Contents{Manifest: m, ManifestRaw: raw, UserData: ud, Properties: md.Properties}, nil
}

// ErrNotVibe is returned for images vibe-build did not make.
var ErrNotVibe = fmt.Errorf("not a vibe image")

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
