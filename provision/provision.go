// Package provision embeds the guest-side programs: the provisioning driver
// and its numbered steps (one concern each), the firewall control command,
// the self-test, the nftables rulesets and the systemd units. The scripts
// are static: they read every configured value from /etc/vibe/build.json
// with jq, so no value is ever pasted into shell text.
package provision

import (
	"crypto/sha256"
	"embed"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"
)

//go:embed end-user gateway-install port-relay apt-components bake-proxy base-customize inventory lib.sh run seal settle guarded launch proxy-env.sh vibe-egress vibe-firewall vibe-selftest vibe-statusline *.nft *.service steps/*.sh
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
	out := []string{"apt-components", "end-user", "gateway-install", "bake-proxy", "base-customize", "inventory", "lib.sh", "run", "seal", "settle", "guarded", "launch", "proxy-env.sh", "vibe-egress", "vibe-firewall", "vibe-selftest", "vibe-statusline"}
	return append(out, Steps()...)
}

// Guarded maps the guest path of every file root runs or loads to enforce
// containment to its embedded source. vibe checks them by digest before
// anything of the user's starts, so a ruleset or program changed in the
// guest stops the sandbox instead of being trusted.
var Guarded = map[string]string{
	"/usr/local/lib/vibe/firewall.nft":        "firewall.nft",
	"/usr/local/lib/vibe/firewall-off.nft":    "firewall-off.nft",
	"/usr/local/lib/vibe/firewall-closed.nft": "firewall-closed.nft",
	"/usr/local/lib/vibe/launch":              "launch",
	"/usr/local/sbin/vibe-egress":             "vibe-egress",
	"/usr/local/sbin/vibe-firewall":           "vibe-firewall",
	"/usr/local/sbin/vibe-selftest":           "vibe-selftest",
}

// Digests returns `sha256sum -c` lines for the Guarded files, sorted by path.
func Digests() string {
	var b strings.Builder
	for _, p := range slices.Sorted(maps.Keys(Guarded)) {
		c, err := FS.ReadFile(Guarded[p])
		if err != nil {
			panic("provision: " + err.Error()) // embedded: cannot happen
		}
		fmt.Fprintf(&b, "%x  %s\n", sha256.Sum256(c), p)
	}
	return b.String()
}
