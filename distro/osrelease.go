package distro

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// OSRelease is what /etc/os-release says about the host.
type OSRelease struct {
	ID       string // debian, ubuntu
	Codename string // bookworm, noble
	Version  string // 12, 24.04
}

// ReadOSRelease reads root/etc/os-release (root is "/" for the host).
func ReadOSRelease(root string) OSRelease {
	b, _ := os.ReadFile(filepath.Join(root, "etc/os-release"))
	var o OSRelease
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			o.ID = v
		case "VERSION_CODENAME":
			o.Codename = v
		case "VERSION_ID":
			o.Version = v
		}
	}
	return o
}

// BuildRelease is the release vibe-build base builds when none is named:
// the host's own, when vibe knows it, else Debian 12.
func (o OSRelease) BuildRelease() string {
	if Known(o.Codename) {
		return o.Codename
	}
	return "bookworm"
}
