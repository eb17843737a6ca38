package config

import (
	"net/url"
	"slices"
)

// Download is a part of the configuration that fetches from sites of its
// own at bake time (besides the distribution's archive), and those sites.
// vibe setup checks that their names resolve on the machine, so that a
// configuration it writes does not ask for a site the machine cannot
// reach.
type Download struct {
	Key   string   `json:"key"` // the vibe.yaml key that turns it on: toolchains.java, agent…
	Hosts []string `json:"hosts"`
}

// Downloads lists what the configuration fetches beyond the archive, each
// with its sites: the mirror's host where one is configured. The steps
// under provision/steps download from exactly these (a test holds them to
// it). A package registry is named only as the configuration's mirror:
// without mirrors.npm, the registry of the agent and Lighthouse (npm's own
// default) goes unchecked.
func (c *Config) Downloads() []Download {
	t, m := &c.Toolchains, &c.Mirrors
	npm := mirrorHost(m.NPM, "")
	var out []Download
	add := func(on bool, key string, hosts ...string) {
		hosts = slices.DeleteFunc(hosts, func(h string) bool { return h == "" })
		if on && len(hosts) > 0 {
			out = append(out, Download{Key: key, Hosts: hosts})
		}
	}
	add(t.Node.Enabled && t.Node.Source == NodeNVM, "toolchains.node", "raw.githubusercontent.com", mirrorHost(m.Node, "nodejs.org"))
	add(c.Agent.Enabled, "agent", npm)
	// Maven and Gradle come with SDKMAN, which Java brings.
	add(t.Java.Enabled, "toolchains.java", "get.sdkman.io", "api.sdkman.io")
	// uv's own release, and the interpreters uv fetches from GitHub.
	add(t.Python.Enabled, "toolchains.python", "github.com")
	// Go needs mirrors.go (validation says so).
	add(t.Go.Enabled, "toolchains.go", mirrorHost(m.Go, ""))
	// Chrome's apt repository, and Lighthouse from npm.
	add(t.Chrome.Enabled, "toolchains.chrome", "dl.google.com", npm)
	add(t.OpenTofu.Enabled, "toolchains.opentofu", "github.com")
	add(t.Helm.Enabled, "toolchains.helm", "get.helm.sh")
	return out
}

// mirrorHost is the host of the mirror URL, or def when none is set.
func mirrorHost(mirror, def string) string {
	if u, err := url.Parse(mirror); err == nil && u.Hostname() != "" {
		return u.Hostname()
	}
	return def
}
