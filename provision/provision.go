// Package provision embeds the guest-side programs: the provisioning driver
// and its numbered steps (one concern each), the firewall control command,
// the self-test, the nftables rulesets and the systemd units. The scripts
// are static: they read every configured value from /etc/vibe/build.json
// with jq, so no value is ever pasted into shell text.
package provision

import (
	"embed"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed lib.sh run seal proxy-env.sh vibe-firewall vibe-selftest *.nft *.service steps/*.sh
var FS embed.FS

// File returns an embedded file's content.
func File(name string) (string, error) {
	b, err := FS.ReadFile(name)
	return string(b), err
}

// Steps returns the step script names (steps/NN-name.sh) in run order.
func Steps() []string {
	entries, _ := fs.Glob(FS, "steps/*.sh")
	sort.Strings(entries)
	return entries
}

// StepName returns a step's base name without extension ("40-node").
func StepName(p string) string { return strings.TrimSuffix(path.Base(p), ".sh") }

// Scripts returns every embedded shell script, for linting.
func Scripts() []string {
	out := []string{"lib.sh", "run", "seal", "proxy-env.sh", "vibe-firewall", "vibe-selftest"}
	return append(out, Steps()...)
}
