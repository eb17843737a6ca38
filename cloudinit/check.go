package cloudinit

import (
	"bytes"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/config"
)

var base64Line = regexp.MustCompile(`^[A-Za-z0-9+/]+={0,2}$`)

// KnownKeys are the top-level cloud-config keys vibe emits. cloud-init's own
// schema check does not flag unknown top-level keys, so this one does.
var KnownKeys = map[string]bool{
	"apt": true, "bootcmd": true, "ca_certs": true, "disable_root": true, "package_update": true, "package_upgrade": true,
	"packages": true, "runcmd": true, "ssh_pwauth": true, "users": true, "write_files": true,
}

// Check verifies a rendered document: the #cloud-config header, one YAML
// mapping of known keys, and nothing that looks like a credential.
func Check(doc []byte) error {
	if !bytes.HasPrefix(doc, []byte(Header)) {
		return fmt.Errorf("user-data does not start with %q", strings.TrimSpace(Header))
	}
	var m map[string]any
	if err := yaml.Unmarshal(doc, &m); err != nil {
		return fmt.Errorf("user-data is not valid YAML: %w", err)
	}
	var unknown []string
	for k := range m {
		if !KnownKeys[k] {
			unknown = append(unknown, k)
		}
	}
	if len(unknown) > 0 {
		sort.Strings(unknown)
		return fmt.Errorf("user-data has unknown top-level keys: %s", strings.Join(unknown, ", "))
	}
	// Line by line: short inputs keep Go's regexp on its fast backtracker.
	// The base64 lines of a certificate (tls.ca: public, and re-encoded
	// from parsed certificates) are the one random-looking text allowed.
	inCert := false
	for i, line := range strings.Split(string(doc), "\n") {
		switch t := strings.TrimSpace(line); {
		case t == "-----BEGIN CERTIFICATE-----":
			inCert = true
			continue
		case t == "-----END CERTIFICATE-----":
			inCert = false
			continue
		case inCert && base64Line.MatchString(t):
			continue
		}
		if kind := config.LooksSecret(line); kind != "" {
			return fmt.Errorf("user-data line %d looks like %s; secrets must never be baked into an image", i+1, kind)
		}
	}
	return nil
}
