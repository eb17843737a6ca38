package images

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/lxc/incus/v6/shared/api"
	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/sbom"
)

// Contents is what a metadata tarball says about its image.
type Contents struct {
	Manifest    *Manifest
	ManifestRaw []byte
	UserData    []byte
	Properties  map[string]string // metadata.yaml's properties
	// Metadata is the whole metadata.yaml: incus writes its templates into
	// every new instance, as root, so an audit must show them.
	Metadata api.ImageMetadata
	// Templates holds the template files (templates/NAME), by NAME.
	Templates map[string][]byte
	// SBOM is the CycloneDX document of every installed package; nil for
	// images baked before vibe-build recorded one.
	SBOM []byte
}

// SBOMEntry is the SBOM's name in the metadata tarball.
const SBOMEntry = "vibe/sbom.cdx.json"

// ErrNoSBOM is returned for images baked before vibe-build recorded one.
var ErrNoSBOM = errors.New("the image has no SBOM: an older vibe-build baked it; bake it again (vibe-build build --force) to record one")

// Packages reads the image's SBOM.
func (c *Contents) Packages() ([]sbom.Package, error) {
	if c.SBOM == nil {
		return nil, ErrNoSBOM
	}
	return sbom.Parse(c.SBOM)
}

// KnownTemplates are the templates vibe's images carry, from the base: the
// NoCloud seed through which incus hands cloud-init its data, and the
// hostname and hosts files. Any other target is flagged wherever an image
// is verified, inspected or compared.
var KnownTemplates = map[string]bool{
	"/var/lib/cloud/seed/nocloud-net/meta-data":      true,
	"/var/lib/cloud/seed/nocloud-net/user-data":      true,
	"/var/lib/cloud/seed/nocloud-net/vendor-data":    true,
	"/var/lib/cloud/seed/nocloud-net/network-config": true,
	"/etc/hostname": true,
	"/etc/hosts":    true,
}

// UnknownTemplates lists the template targets not in KnownTemplates, sorted.
func (c *Contents) UnknownTemplates() []string {
	var out []string
	for target := range c.Metadata.Templates {
		if !KnownTemplates[target] {
			out = append(out, target)
		}
	}
	sort.Strings(out)
	return out
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
	tpls := map[string][]byte{}
	for name, data := range files {
		if rest, ok := strings.CutPrefix(name, "templates/"); ok {
			tpls[rest] = data
		}
	}
	return &Contents{Manifest: m, ManifestRaw: raw, UserData: ud, Properties: md.Properties, Metadata: md, Templates: tpls, SBOM: files[SBOMEntry]}, nil
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
