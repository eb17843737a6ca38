// Package config reads vibe.yaml, the one configuration file shared by
// vibe-build and vibe. Reading is strict: an unknown key, a wrong type or an
// invalid value is an error that names the file, line and column and says
// what is allowed. Defaults are embedded, so no file is needed at all.
//
// The package knows nothing of cloud-init or incus; it only produces a
// validated Config.
package config

import (
	_ "embed"

	"github.com/vibesandbox/vibe/allowlist"
)

// DefaultYAML is the embedded default configuration, with comments; it is
// both the defaults and their documentation.
//
//go:embed default.yaml
var DefaultYAML []byte

// FileName is the configuration file's base name.
const FileName = "vibe.yaml"

// Instance types.
const (
	VM        = "vm"
	Container = "container"
)

// Config is the whole of vibe.yaml.
type Config struct {
	Name       string     `yaml:"name" json:"name"`
	Image      Image      `yaml:"image" json:"image"`
	Instance   Instance   `yaml:"instance" json:"instance"`
	User       User       `yaml:"user" json:"user"`
	Packages   Packages   `yaml:"packages" json:"packages"`
	Toolchains Toolchains `yaml:"toolchains" json:"toolchains"`
	Agent      Agent      `yaml:"agent" json:"agent"`
	Agents     Agents     `yaml:"agents" json:"agents"`
	Egress     Egress     `yaml:"egress" json:"egress"`
	Mirrors    Mirrors    `yaml:"mirrors" json:"mirrors"`
	TLS        TLS        `yaml:"tls" json:"tls"`
	Sandbox    Sandbox    `yaml:"sandbox" json:"sandbox"`

	// Source names where the configuration came from ("(defaults)" or a path).
	Source string `yaml:"-" json:"-"`
	// Project is the project file found in the current directory (nil
	// for none), and whether it was trusted and is part of the result.
	Project *Project `yaml:"-" json:"-"`
	// Allowlist is Egress.Allow parsed, plus the mirrors' hosts.
	Allowlist allowlist.List `yaml:"-" json:"-"`
	// UIDSource says how User.UID was chosen, for people reading validate's output.
	UIDSource string `yaml:"-" json:"-"`
	pos       positions
}

type Image struct {
	Base  string `yaml:"base" json:"base"`
	Alias string `yaml:"alias" json:"alias"`
}

type Instance struct {
	Type   string `yaml:"type" json:"type"`
	CPU    int    `yaml:"cpu" json:"cpu"`
	Memory string `yaml:"memory" json:"memory"`
	Disk   string `yaml:"disk" json:"disk"`
}

type User struct {
	Name  string `yaml:"name" json:"name"`
	UID   int    `yaml:"uid" json:"uid"`
	GID   int    `yaml:"gid" json:"gid"`
	Shell string `yaml:"shell" json:"shell"`
}

// Home is the user's home folder in the guest: always /home/NAME, so the
// name (checked to be a plain login name) decides it and nothing else.
func (u User) Home() string { return "/home/" + u.Name }

type Packages struct {
	Extra  []string `yaml:"extra" json:"extra"`
	Update bool     `yaml:"update" json:"update"`
}

type Toolchains struct {
	Node     Node   `yaml:"node" json:"node"`
	Java     Java   `yaml:"java" json:"java"`
	Maven    Tool   `yaml:"maven" json:"maven"`
	Gradle   Tool   `yaml:"gradle" json:"gradle"`
	Python   Python `yaml:"python" json:"python"`
	Go       Go     `yaml:"go" json:"go"`
	Chrome   Chrome `yaml:"chrome" json:"chrome"`
	OpenTofu Tool   `yaml:"opentofu" json:"opentofu"`
	Helm     Tool   `yaml:"helm" json:"helm"`
	Docker   Docker `yaml:"docker" json:"docker"`
}

// Tool is a toolchain installed at one pinned version.
type Tool struct {
	Enabled bool   `yaml:"enabled" json:"enabled"`
	Version string `yaml:"version" json:"version"`
}

// Go is fetched as the golang.org/toolchain module from a module proxy
// (mirrors.go, else Go's public one) and must match a pinned checksum.
type Go struct {
	Enabled bool   `yaml:"enabled" json:"enabled"`
	Version string `yaml:"version" json:"version"`
	// Sums pins each toolchain module zip's h1 checksum, as Go's checksum
	// database records it, keyed "VERSION/linux-ARCH".
	Sums map[string]string `yaml:"sums" json:"sums"`
}

// GoSumKey is Sums' key for a Go release on a Linux architecture (Go's
// spelling: amd64, arm64).
func GoSumKey(version, arch string) string { return version + "/linux-" + arch }

type Node struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
	// Source is nvm (Node.js's own builds, from its download site) or
	// distro (the distribution's nodejs and npm packages, from its mirror).
	Source  string `yaml:"source" json:"source"`
	Version string `yaml:"version" json:"version"`
	NVM     string `yaml:"nvm" json:"nvm"`
}

// Node sources.
const (
	NodeNVM    = "nvm"
	NodeDistro = "distro"
)

type Java struct {
	Enabled bool     `yaml:"enabled" json:"enabled"`
	Version string   `yaml:"version" json:"version"`
	Extra   []string `yaml:"extra" json:"extra"`
}

type Python struct {
	Enabled bool   `yaml:"enabled" json:"enabled"`
	Version string `yaml:"version" json:"version"`
	UV      string `yaml:"uv" json:"uv"`
}

type Chrome struct {
	Enabled    bool   `yaml:"enabled" json:"enabled"`
	Lighthouse string `yaml:"lighthouse" json:"lighthouse"`
}

type Docker struct {
	Enabled bool `yaml:"enabled" json:"enabled"`
}

// Sandbox holds what the launcher (vibe) needs and the image does not.
type Sandbox struct {
	// Workspace is the drop-in folder: every folder in it is mounted.
	Workspace string `yaml:"workspace" json:"workspace"`
	// Workspaces is the list file of further folders to mount.
	Workspaces string `yaml:"workspaces" json:"workspaces"`
	// Persist keeps the agent's state folder (~/.claude) on the host.
	Persist bool `yaml:"persist" json:"persist"`
}

type Agent struct {
	// Enabled installs the agent CLI; off for images without network access.
	Enabled bool   `yaml:"enabled" json:"enabled"`
	Package string `yaml:"package" json:"package"`
	Version string `yaml:"version" json:"version"`
	// Command starts the agent in auto mode; extra arguments follow it.
	Command []string `yaml:"command" json:"command"`
	// StatusLine installs vibe's status line for Claude Code.
	StatusLine bool `yaml:"statusline" json:"statusline"`
}

type Egress struct {
	Allow       []string     `yaml:"allow" json:"allow"`
	Gateway     Gateway      `yaml:"gateway" json:"gateway"`
	Credentials []Credential `yaml:"credentials" json:"credentials"`
}

// Credential binds one secrets.env key to the API it is for: behind the
// gateway, the key stays there and is added to requests for Upstream only.
type Credential struct {
	Key        string `yaml:"key" json:"key"`
	Upstream   string `yaml:"upstream" json:"upstream"`
	Header     string `yaml:"header" json:"header"`
	Prefix     string `yaml:"prefix" json:"prefix"`
	BaseURLEnv string `yaml:"base_url_env" json:"base_url_env"`
}

// Gateway places egress enforcement and credentials outside the guest: the
// sandbox sits on an isolated bridge whose only way out is a gateway
// instance running vibe's filtering proxy.
type Gateway struct {
	Enabled  bool   `yaml:"enabled" json:"enabled"`
	Uplink   string `yaml:"uplink" json:"uplink"`
	Image    string `yaml:"image" json:"image"`
	Network  string `yaml:"network" json:"network"`
	Instance string `yaml:"instance" json:"instance"`
	// Private are the private ranges (RFC 1918, shared, unique local) the
	// gateway may reach for an allowed name: none by default, since a name
	// resolves wherever its owner says (this machine's LAN included).
	Private []string `yaml:"private" json:"private"`
}

// Mirrors are where the guest's package managers fetch from instead of
// their public servers; each host joins the allowlist.
type Mirrors struct {
	Apt         string `yaml:"apt" json:"apt"`
	AptSecurity string `yaml:"apt_security" json:"apt_security"`
	NPM         string `yaml:"npm" json:"npm"`
	PyPI        string `yaml:"pypi" json:"pypi"`
	Go          string `yaml:"go" json:"go"`
	Node        string `yaml:"node" json:"node"`
	Maven       string `yaml:"maven" json:"maven"`
	Docker      string `yaml:"docker" json:"docker"`
}

// Warnings are accepted choices a user should hear about.
func (c *Config) Warnings() []string {
	var w []string
	if c.Toolchains.Docker.Enabled && c.Egress.Gateway.Enabled {
		w = append(w, "toolchains.docker is on: the sandbox user joins the docker group, which is root-equivalent inside the guest (egress stays enforced by the gateway, outside it)")
	} else if c.Toolchains.Docker.Enabled {
		w = append(w, "toolchains.docker is on: the sandbox user joins the docker group, which is root-equivalent inside the guest, and containers' traffic bypasses the egress allowlist (egress.gateway.enabled keeps it enforced)")
	}
	if c.Agent.Version == "latest" {
		w = append(w, `agent.version is "latest": the baked version depends on the day of the bake and an unchanged recipe stays a cache hit; pin a version for reproducible images`)
	}
	return w
}
