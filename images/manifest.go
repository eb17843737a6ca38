package images

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/vibesandbox/vibe/config"
)

// ManifestFormat versions manifest.json.
const ManifestFormat = 1

// Manifest records every input of a baked image and what the bake found, so
// anyone can audit an image without the daemon that made it.
type Manifest struct {
	Format         int               `json:"format"`
	VibeBuild      string            `json:"vibe_build_version"`
	Recipe         string            `json:"recipe"`
	UserDataSHA256 string            `json:"user_data_sha256"`
	Base           BaseImage         `json:"base"`
	InstanceType   string            `json:"instance_type"`
	Architecture   string            `json:"architecture"`
	Config         *config.Config    `json:"config"`
	Versions       map[string]string `json:"versions"`
	Rootfs         FileDigest        `json:"rootfs"`
	Created        time.Time         `json:"created"`
}

// BaseImage names the image the builder started from.
type BaseImage struct {
	Source      string `json:"source"`
	Fingerprint string `json:"fingerprint"`
}

// FileDigest is a file's name, SHA-256 and size.
type FileDigest struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Marshal renders the manifest as indented JSON with a final newline.
func (m *Manifest) Marshal() ([]byte, error) {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	return append(b, '\n'), nil
}

// ParseManifest reads manifest.json.
func ParseManifest(b []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("manifest: format %d, this vibe-build reads %d", m.Format, ManifestFormat)
	}
	// The fields everything else trusts the form of (a hostile image
	// writes metadata.yaml to agree with anything here).
	if m.InstanceType != "container" && m.InstanceType != "vm" {
		return nil, fmt.Errorf("manifest: instance type %.40q is neither container nor vm", m.InstanceType)
	}
	for what, v := range map[string]string{"recipe": m.Recipe, "user-data hash": m.UserDataSHA256, "rootfs hash": m.Rootfs.SHA256} {
		if !IsFingerprint(v) {
			return nil, fmt.Errorf("manifest: the %s %.80q is not a SHA-256 in hex", what, v)
		}
	}
	return &m, nil
}
