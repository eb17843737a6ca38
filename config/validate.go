package config

import (
	"fmt"
	"maps"
	"net/netip"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/vibesandbox/vibe/allowlist"
)

// Host is what the defaults depend on about the machine running the tool.
type Host struct {
	UID, GID int
}

// CurrentHost describes the invoking user: under sudo, the user who ran sudo.
func CurrentHost() Host {
	h := Host{UID: os.Getuid(), GID: os.Getgid()}
	if h.UID == 0 {
		if u, err := strconv.Atoi(os.Getenv("SUDO_UID")); err == nil {
			h.UID = u
		}
		if g, err := strconv.Atoi(os.Getenv("SUDO_GID")); err == nil {
			h.GID = g
		}
	}
	return h
}

// Ordinary user and group ids: below is the system range, above nobody's.
const (
	minID       = 1000
	maxID       = 60000
	fallbackID  = 1000
	minMemory   = 512 << 20
	minDisk     = 4 << 30
	maxCPU      = 512
	maxVersions = 8
)

var (
	// instanceName follows incus's rules for instance names.
	instanceName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]{0,62}$`)
	remoteName   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)
	imageName    = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/+-]{0,254}$`)
	userName     = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,30}$`)
	shellPath    = regexp.MustCompile(`^/[A-Za-z0-9/._-]+$`)
	debPackage   = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+(=[A-Za-z0-9.+~:-]+)?$`)
	version      = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]{0,63}$`)
	nodeVersion  = regexp.MustCompile(`^(lts/[a-z*]+|[0-9]+(\.[0-9]+){0,2})$`)
	semver3      = regexp.MustCompile(`^[0-9]+\.[0-9]+\.[0-9]+$`)
	goSumKey     = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+|rc[0-9]+)?/linux-(amd64|arm64)$`)
	goSum        = regexp.MustCompile(`^h1:[A-Za-z0-9+/]{43}=$`)
	javaVersion  = regexp.MustCompile(`^([0-9]+|[0-9][0-9.]*[0-9]-[a-z]+)$`)
	npmPackage   = regexp.MustCompile(`^(@[a-z0-9][a-z0-9._-]*/)?[a-z0-9][a-z0-9._-]*$`)
	npmVersion   = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9.+-]{0,63}$`)
	sizeValue    = regexp.MustCompile(`^([0-9]+)(B|kB|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$`)
	sizeUnits    = map[string]int64{"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "TiB": 1 << 40}
	systemUsers  = map[string]bool{"root": true, "daemon": true, "bin": true, "sys": true, "sync": true, "games": true, "man": true, "lp": true, "mail": true, "news": true, "uucp": true, "proxy": true, "www-data": true, "backup": true, "list": true, "irc": true, "gnats": true, "nobody": true, "tinyproxy": true, "messagebus": true, "syslog": true, "docker": true, "_apt": true, "chrony": true, "_chrony": true, "polkitd": true}
	allowedShell = map[string]string{"/bin/bash": "", "/usr/bin/bash": "", "/bin/sh": "", "/bin/zsh": "zsh", "/usr/bin/zsh": "zsh", "/usr/bin/fish": "fish"}
)

func (c *Config) errAt(path, format string, args ...any) error {
	e := &Error{Path: path, Msg: fmt.Sprintf(format, args...)}
	if p, ok := c.pos[path]; ok {
		e.Pos = &p
	} else if c.Source != "(defaults)" {
		e.Msg += " (a default value)"
	}
	return e
}

// has reports whether the user wrote path.
func (c *Config) has(path string) bool { _, ok := c.pos[path]; return ok }

// PosOf returns where the user wrote path, if they did.
func (c *Config) PosOf(path string) (Pos, bool) { p, ok := c.pos[path]; return p, ok }

func (c *Config) validate(h Host) error {
	for _, check := range []func(Host) error{c.checkIdentity, c.checkInstance, c.checkUser, c.checkPackages, c.checkToolchains, c.checkAgent, c.checkEgress, c.checkSecrets, c.checkTLS} {
		if err := check(h); err != nil {
			return err
		}
	}
	return nil
}

func (c *Config) checkIdentity(Host) error {
	if !instanceName.MatchString(c.Name) || strings.HasSuffix(c.Name, "-") {
		return c.errAt("name", "%q is not a valid instance name: a letter, then letters, digits and '-', at most 63 characters, not ending in '-'", c.Name)
	}
	if err := checkImageRef(c.Image.Base); err != nil {
		return c.errAt("image.base", "%v", err)
	}
	if strings.Contains(c.Image.Alias, ":") || !imageName.MatchString(c.Image.Alias) {
		return c.errAt("image.alias", "%q is not a valid local image alias: letters, digits and . _ / + -, no remote prefix", c.Image.Alias)
	}
	return nil
}

// checkImageRef accepts [remote:]alias-or-fingerprint.
func checkImageRef(ref string) error {
	remote, name, found := strings.Cut(ref, ":")
	if !found {
		remote, name = "", ref
	}
	if found && !remoteName.MatchString(remote) {
		return fmt.Errorf("%q: remote name %q is not valid (letters, digits, . _ -)", ref, remote)
	}
	if !imageName.MatchString(name) {
		return fmt.Errorf("%q is not an image reference: write [remote:]alias (images:ubuntu/26.04/cloud) or a fingerprint", ref)
	}
	return nil
}

// ValidateImageRef checks an image reference given on a command line.
func ValidateImageRef(ref string) error { return checkImageRef(ref) }

// ValidateInstanceType checks an instance type given on a command line.
func ValidateInstanceType(t string) error {
	if t != VM && t != Container {
		return fmt.Errorf("instance type %q: use %q or %q", t, VM, Container)
	}
	return nil
}

func (c *Config) checkInstance(Host) error {
	if err := ValidateInstanceType(c.Instance.Type); err != nil {
		return c.errAt("instance.type", "%v", err)
	}
	if c.Instance.CPU < 1 || c.Instance.CPU > maxCPU {
		return c.errAt("instance.cpu", "%d CPUs: give 1 to %d", c.Instance.CPU, maxCPU)
	}
	if n, err := ParseSize(c.Instance.Memory); err != nil {
		return c.errAt("instance.memory", "%v", err)
	} else if n < minMemory {
		return c.errAt("instance.memory", "%s is too little: give at least 512MiB", c.Instance.Memory)
	}
	if n, err := ParseSize(c.Instance.Disk); err != nil {
		return c.errAt("instance.disk", "%v", err)
	} else if n < minDisk {
		return c.errAt("instance.disk", "%s is too small: give at least 4GiB", c.Instance.Disk)
	}
	return nil
}

// ParseSize parses sizes as incus writes them (16GiB, 512MB) into bytes.
func ParseSize(s string) (int64, error) {
	m := sizeValue.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size: write a whole number and a unit, like 16GiB or 512MiB", s)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > (1<<62)/sizeUnits[m[2]] {
		return 0, fmt.Errorf("%q is too large", s)
	}
	return n * sizeUnits[m[2]], nil
}

func (c *Config) checkUser(h Host) error {
	u := &c.User
	if !userName.MatchString(u.Name) {
		return c.errAt("user.name", "%q is not a valid user name: lowercase letters, digits, '_' and '-', starting with a letter or '_', at most 31 characters", u.Name)
	}
	if systemUsers[u.Name] || strings.HasPrefix(u.Name, "systemd-") {
		return c.errAt("user.name", "%q is a system account name; choose another", u.Name)
	}
	for _, id := range []struct {
		path string
		v    *int
		host int
	}{{"user.uid", &u.UID, h.UID}, {"user.gid", &u.GID, h.GID}} {
		if c.has(id.path) {
			if *id.v < minID || *id.v > maxID {
				return c.errAt(id.path, "%d is refused: 0 is root and ids below %d are system accounts; give an ordinary id (%d-%d) or leave it out to use the invoking user's", *id.v, minID, minID, maxID)
			}
			continue
		}
		*id.v = id.host
		if *id.v < minID || *id.v > maxID {
			*id.v = fallbackID
		}
	}
	switch {
	case c.has("user.uid"):
		c.UIDSource = "configured"
	case u.UID == h.UID:
		c.UIDSource = "the invoking user's"
	default:
		c.UIDSource = fmt.Sprintf("fallback: the invoking user's uid %d is not an ordinary user's", h.UID)
	}
	if _, ok := allowedShell[u.Shell]; !ok || !shellPath.MatchString(u.Shell) {
		return c.errAt("user.shell", "%q is not supported: use /bin/bash, /bin/sh, /usr/bin/zsh or /usr/bin/fish", u.Shell)
	}
	return nil
}

func (c *Config) checkPackages(Host) error {
	for i, p := range c.Packages.Extra {
		if !debPackage.MatchString(p) {
			return c.errAt(fmt.Sprintf("packages.extra[%d]", i), "%q is not a Debian package name (lowercase letters, digits, + . -, optionally =version)", p)
		}
	}
	return nil
}

func (c *Config) checkToolchains(Host) error {
	t := &c.Toolchains
	if t.Node.Source != NodeNVM && t.Node.Source != NodeDistro {
		return c.errAt("toolchains.node.source", "%q: use %q (Node.js's own builds) or %q (the distribution's packages)", t.Node.Source, NodeNVM, NodeDistro)
	}
	checks := []struct {
		on   bool
		path string
		v    string
		re   *regexp.Regexp
		hint string
	}{
		{t.Node.Enabled, "toolchains.node.version", t.Node.Version, nodeVersion, `a major ("24"), an exact version ("24.11.1") or lts/NAME`},
		{t.Node.Enabled, "toolchains.node.nvm", t.Node.NVM, semver3, `an nvm release such as "0.40.3"`},
		{t.Java.Enabled, "toolchains.java.version", t.Java.Version, javaVersion, `a major ("25") or an SDKMAN identifier ("21.0.5-tem")`},
		{t.Maven.Enabled, "toolchains.maven.version", t.Maven.Version, semver3, `an exact Maven version such as "3.9.11"`},
		{t.Gradle.Enabled, "toolchains.gradle.version", t.Gradle.Version, version, `an exact Gradle version such as "9.0.0"`},
		{t.Python.Enabled, "toolchains.python.version", t.Python.Version, version, `a Python version uv knows, such as "3.13"`},
		{t.Python.Enabled, "toolchains.python.uv", t.Python.UV, semver3, `an exact uv release such as "0.9.0"`},
		{t.Go.Enabled, "toolchains.go.version", t.Go.Version, version, `an exact Go release such as "1.26.8"`},
		{t.Chrome.Enabled, "toolchains.chrome.lighthouse", t.Chrome.Lighthouse, npmVersion, `an npm version of lighthouse such as "13.5.0"`},
		{t.OpenTofu.Enabled, "toolchains.opentofu.version", t.OpenTofu.Version, semver3, `an exact OpenTofu release such as "1.10.0"`},
		{t.Helm.Enabled, "toolchains.helm.version", t.Helm.Version, semver3, `an exact Helm release such as "3.19.0"`},
	}
	for _, ch := range checks {
		if ch.on && !ch.re.MatchString(ch.v) {
			return c.errAt(ch.path, "%q is not a valid version: give %s", ch.v, ch.hint)
		}
	}
	if err := c.checkGoSums(); err != nil {
		return err
	}
	if t.Java.Enabled {
		if len(t.Java.Extra) > maxVersions {
			return c.errAt("toolchains.java.extra", "at most %d extra Java versions", maxVersions)
		}
		for i, v := range t.Java.Extra {
			if !javaVersion.MatchString(v) {
				return c.errAt(fmt.Sprintf("toolchains.java.extra[%d]", i), "%q is not a valid version: give a major (\"21\") or an SDKMAN identifier (\"21.0.5-tem\")", v)
			}
		}
	}
	needs := []struct {
		on     bool
		path   string
		needOn bool
		need   string
	}{
		{t.Maven.Enabled, "toolchains.maven.enabled", t.Java.Enabled, "toolchains.java (Maven is installed with SDKMAN and runs on Java)"},
		{t.Gradle.Enabled, "toolchains.gradle.enabled", t.Java.Enabled, "toolchains.java (Gradle is installed with SDKMAN and runs on Java)"},
		{t.Chrome.Enabled, "toolchains.chrome.enabled", t.Node.Enabled, "toolchains.node (Lighthouse is an npm package)"},
	}
	for _, n := range needs {
		if n.on && !n.needOn {
			return c.errAt(n.path, "needs %s to be enabled", n.need)
		}
	}
	return nil
}

func (c *Config) checkAgent(Host) error {
	if len(c.Agent.Command) == 0 || c.Agent.Command[0] == "" {
		return c.errAt("agent.command", "give the command that starts the agent, such as [claude, --dangerously-skip-permissions]")
	}
	for i, a := range c.Agent.Command {
		if strings.ContainsRune(a, 0) {
			return c.errAt(fmt.Sprintf("agent.command[%d]", i), "contains a NUL byte")
		}
	}
	for _, p := range []struct{ path, v string }{{"sandbox.workspace", c.Sandbox.Workspace}, {"sandbox.workspaces", c.Sandbox.Workspaces}} {
		if p.v != "" && !strings.HasPrefix(p.v, "/") && !strings.HasPrefix(p.v, "~/") {
			return c.errAt(p.path, "%q: give an absolute path or one starting with ~/", p.v)
		}
	}
	for _, name := range AgentNames()[1:] {
		p := c.Agents.Extra(name)
		at := func(f string) string { return "agents." + name + "." + f }
		if !p.Enabled {
			continue
		}
		if len(p.Command) == 0 || p.Command[0] == "" {
			return c.errAt(at("command"), "give the command that starts %s in auto mode", name)
		}
		for i, a := range p.Command {
			if strings.ContainsRune(a, 0) {
				return c.errAt(fmt.Sprintf("%s[%d]", at("command"), i), "contains a NUL byte")
			}
		}
		if !npmPackage.MatchString(p.Package) {
			return c.errAt(at("package"), "%q is not an npm package name", p.Package)
		}
		if !npmVersion.MatchString(p.Version) {
			return c.errAt(at("version"), "%q is not an npm version or tag (0.171.0, latest)", p.Version)
		}
		if !c.Toolchains.Node.Enabled {
			return c.errAt("toolchains.node.enabled", "agent %s is an npm package: toolchains.node must be enabled", name)
		}
	}
	if !c.Agent.Enabled {
		return nil
	}
	if !npmPackage.MatchString(c.Agent.Package) {
		return c.errAt("agent.package", "%q is not an npm package name", c.Agent.Package)
	}
	if !npmVersion.MatchString(c.Agent.Version) {
		return c.errAt("agent.version", "%q is not an npm version or tag (2.1.330, latest)", c.Agent.Version)
	}
	if !c.Toolchains.Node.Enabled {
		return c.errAt("toolchains.node.enabled", "the agent CLI is an npm package: toolchains.node must be enabled")
	}
	return nil
}

var (
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)
	headerName = regexp.MustCompile("^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,64}$")
	incusName  = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9-]*$`)
)

func (c *Config) checkEgress(Host) error {
	var list allowlist.List
	seen := map[string]bool{}
	for i, raw := range c.Egress.Allow {
		e, err := allowlist.Parse(raw)
		if err != nil {
			return c.errAt(fmt.Sprintf("egress.allow[%d]", i), "%v", err)
		}
		if !seen[e.String()] {
			seen[e.String()] = true
			list = append(list, e)
		}
	}
	// An enabled agent's login hosts join the list (its API key goes
	// through the gateway's credential route instead).
	for _, name := range c.EnabledAgents() {
		for _, raw := range AgentPresetNamed(name).Allow {
			e, err := allowlist.Parse(raw)
			if err != nil {
				return fmt.Errorf("agent %s: allowlist entry %q: %w", name, raw, err)
			}
			if !seen[e.String()] {
				seen[e.String()] = true
				list = append(list, e)
			}
		}
	}
	mi := c.Mirrors
	for _, m := range []struct {
		path, v string
		http    bool // apt checks signatures: plain http is fine
	}{
		{"mirrors.apt", mi.Apt, true}, {"mirrors.apt_security", mi.AptSecurity, true},
		{"mirrors.npm", mi.NPM, false}, {"mirrors.pypi", mi.PyPI, false}, {"mirrors.go", mi.Go, false},
		{"mirrors.node", mi.Node, false}, {"mirrors.maven", mi.Maven, false}, {"mirrors.docker", mi.Docker, false},
	} {
		if m.v == "" {
			continue
		}
		host, err := checkMirrorURL(m.v, m.http)
		if err != nil {
			return c.errAt(m.path, "%v", err)
		}
		e, err := allowlist.Parse("=" + host)
		if err != nil {
			return c.errAt(m.path, "%v", err)
		}
		if !seen[e.String()] {
			seen[e.String()] = true
			list = append(list, e)
		}
	}
	if mi.AptSecurity != "" && mi.Apt == "" {
		return c.errAt("mirrors.apt_security", "is set without mirrors.apt; set both (cloud-init writes the sources anew, and the archive would otherwise be the distribution's public one)")
	}
	if c.Mirrors.Docker != "" && !c.Toolchains.Docker.Enabled {
		return c.errAt("mirrors.docker", "is set but toolchains.docker is off; enable Docker or remove the mirror")
	}
	gw := c.Egress.Gateway
	for _, n := range []struct {
		path, v string
		max     int
		empty   bool
	}{{"egress.gateway.network", gw.Network, 15, false}, {"egress.gateway.instance", gw.Instance, 63, false}, {"egress.gateway.uplink", gw.Uplink, 15, true}} {
		if n.v == "" && n.empty {
			continue
		}
		if !incusName.MatchString(n.v) || len(n.v) > n.max {
			return c.errAt(n.path, "%q is not an incus name: letters, digits and -, starting with a letter, at most %d characters", n.v, n.max)
		}
	}
	if gw.Image != "" {
		if err := checkImageRef(gw.Image); err != nil {
			return c.errAt("egress.gateway.image", "%v", err)
		}
	}
	for i, p := range gw.Private {
		if _, err := GatewayPrivate(p); err != nil {
			return c.errAt(fmt.Sprintf("egress.gateway.private[%d]", i), "%v", err)
		}
	}
	for i, cr := range c.Egress.Credentials {
		at := func(f string) string { return fmt.Sprintf("egress.credentials[%d].%s", i, f) }
		if !envName.MatchString(cr.Key) {
			return c.errAt(at("key"), "%q is not a variable name (letters, digits and _)", cr.Key)
		}
		if _, err := checkMirrorURL(cr.Upstream, false); err != nil {
			return c.errAt(at("upstream"), "%v", err)
		}
		if !headerName.MatchString(cr.Header) {
			return c.errAt(at("header"), "%q is not an HTTP header name", cr.Header)
		}
		if strings.ContainsAny(cr.Prefix, "\r\n") || len(cr.Prefix) > 64 {
			return c.errAt(at("prefix"), "must be one short line")
		}
		if !envName.MatchString(cr.BaseURLEnv) {
			return c.errAt(at("base_url_env"), "%q is not a variable name (letters, digits and _)", cr.BaseURLEnv)
		}
	}
	c.Allowlist = list
	return nil
}

// checkMirrorURL accepts an https URL without credentials, query or fragment
// and returns its host.
func checkMirrorURL(s string, http bool) (string, error) {
	u, err := url.Parse(s)
	if http && err == nil && u.Scheme == "http" {
		if u.Port() != "" && u.Port() != "80" {
			return "", fmt.Errorf("%q: no port other than 80 (the proxy allows 80 only for http)", s)
		}
		u.Scheme = "https" // the remaining checks are the same
		u.Host = u.Hostname()
	}
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Opaque != "" {
		if http {
			return "", fmt.Errorf("%q is not an http or https URL (http://host/path)", s)
		}
		return "", fmt.Errorf("%q is not an https URL (https://host/path)", s)
	}
	if u.User != nil {
		return "", fmt.Errorf("%q carries credentials: put them in secrets.env, never in vibe.yaml", s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.Port() != "" && u.Port() != "443" {
		return "", fmt.Errorf("%q: no query, fragment or port other than 443 (the proxy allows 443 only for https)", s)
	}
	if strings.ContainsAny(u.Path, "\"'<>&\\ \t\n;#,${}") {
		return "", fmt.Errorf("%q: path has characters that are not allowed", s)
	}
	return strings.ToLower(u.Hostname()), nil
}

// checkSecrets refuses any value that looks like a credential: there is no
// field for secrets, so one found anywhere is a mistake about to be baked.
func (c *Config) checkSecrets(Host) error {
	var err error
	walkStrings(c, func(path, s string) {
		if err == nil {
			if kind := LooksSecret(s); kind != "" {
				err = c.errAt(path, "looks like %s; secrets never go in vibe.yaml (they would be baked into the image): put them in secrets.env, which vibe injects at exec time only", kind)
			}
		}
	})
	return err
}

// Overrides are command-line choices that take precedence over the file.
type Overrides struct {
	InstanceType string
	Base         string
}

// Override applies command-line choices and validates them.
func (c *Config) Override(o Overrides) error {
	if o.InstanceType != "" {
		if err := ValidateInstanceType(o.InstanceType); err != nil {
			return fmt.Errorf("--instance-type: %w", err)
		}
		c.Instance.Type = o.InstanceType
	}
	if o.Base != "" {
		if err := checkImageRef(o.Base); err != nil {
			return fmt.Errorf("--base: %w", err)
		}
		c.Image.Base = o.Base
	}
	return nil
}

// checkGoSums: every pinned checksum is well formed, and, with Go on, the
// configured release has one, so a changed version fails here, with the
// way to the checksum, rather than halfway through a bake.
func (c *Config) checkGoSums() error {
	g := c.Toolchains.Go
	if len(g.Sums) > maxGoSums {
		return c.errAt("toolchains.go.sums", "at most %d checksums", maxGoSums)
	}
	pinned := false
	for _, k := range slices.Sorted(maps.Keys(g.Sums)) {
		at := "toolchains.go.sums[" + k + "]"
		if !goSumKey.MatchString(k) {
			return c.errAt(at, "key %q: give VERSION/linux-ARCH, such as %q", k, GoSumKey("1.26.8", "amd64"))
		}
		if !goSum.MatchString(g.Sums[k]) {
			return c.errAt(at, "%q is not an h1 checksum (h1: and 44 base64 characters)", g.Sums[k])
		}
		pinned = pinned || strings.HasPrefix(k, g.Version+"/")
	}
	if g.Enabled && c.Mirrors.Go == "" {
		return c.errAt("toolchains.go.enabled", "Go comes as a module from a Go module proxy: set mirrors.go to one (go env GOPROXY names yours; sudo vibe setup --mirrors-from-host copies it)")
	}
	if g.Enabled && !pinned {
		mod := "golang.org/toolchain@v0.0.1-go" + g.Version + ".linux-amd64"
		return c.errAt("toolchains.go.sums", "no checksum for Go %s: add %q (and linux-arm64 for arm machines) with the Sum that `go mod download -json %s` prints, checked against Go's checksum database", g.Version, GoSumKey(g.Version, "amd64")+": h1:…", mod)
	}
	return nil
}

// maxGoSums bounds toolchains.go.sums.
const maxGoSums = 64

// GatewayPrivate parses an egress.gateway.private entry: a prefix
// (10.20.0.0/16) or one address.
func GatewayPrivate(s string) (netip.Prefix, error) {
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%q is neither an address nor a prefix such as 10.20.0.0/16", s)
	}
	return p.Masked(), nil
}

// PrivatePrefixes are egress.gateway.private, parsed (validated already).
func (g Gateway) PrivatePrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, s := range g.Private {
		if p, err := GatewayPrivate(s); err == nil {
			out = append(out, p)
		}
	}
	return out
}
