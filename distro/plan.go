package distro

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"runtime"
	"slices"
	"strings"

	"github.com/vibesandbox/vibe/provision"
)

// Spec is everything that decides a base image's tree: two equal specs
// build the same packages from the same archive.
type Spec struct {
	Distribution string   `json:"distribution"`
	Release      string   `json:"release"`
	Architecture string   `json:"architecture"` // dpkg's name: amd64, arm64
	Mirror       string   `json:"mirror"`
	Security     string   `json:"security,omitempty"` // "" when the release has no security suite
	Components   []string `json:"components"`
	Keyring      string   `json:"keyring,omitempty"` // host file the archive's signatures are checked against
	Packages     []string `json:"packages"`
}

// releases maps the codenames vibe knows to their distribution.
var releases = map[string]string{
	"bullseye": "debian", "bookworm": "debian", "trixie": "debian", "forky": "debian",
	"sid": "debian", "unstable": "debian",
	"jammy": "ubuntu", "noble": "ubuntu", "plucky": "ubuntu", "questing": "ubuntu", "resolute": "ubuntu",
}

// Packages are what a base holds: systemd and cloud-init, the network
// stack cloud-init configures, and what vibe's recipe uses (the offline
// recipe needs nothing from the network when all of it is in the base).
func Packages(distribution string) []string {
	p := []string{
		"systemd", "systemd-sysv", "dbus", "cloud-init", "nftables", "tinyproxy", "curl", "git", "jq",
		"ca-certificates", "locales", "python3", "iproute2", "procps", "util-linux", "passwd", "netbase",
		"less", "zsh",
	}
	if distribution == "ubuntu" {
		// cloud-init renders eth0's DHCP through netplan to networkd.
		return append(p, "netplan.io")
	}
	// cloud-init renders eth0's DHCP into ifupdown's interfaces.d.
	return append(p, "ifupdown", "isc-dhcp-client")
}

// Request is what the user asked for; Plan fills in the rest from the host.
type Request struct {
	Release  string   // a codename (bookworm, trixie, noble)
	Mirror   string   // archive URI; "" takes the host's
	Security string   // security archive URI; "" takes the host's or none
	Keyring  string   // keyring file; "" takes the host source's Signed-By
	Include  []string // packages beyond Packages()
}

// Plan decides the spec from the request and the host's apt sources.
func Plan(req Request, host []Source) (Spec, error) {
	dist, ok := releases[req.Release]
	if !ok {
		return Spec{}, fmt.Errorf("unknown release %q: give a Debian (bookworm, trixie, forky, sid) or Ubuntu (jammy, noble, resolute) codename", req.Release)
	}
	s := Spec{Distribution: dist, Release: req.Release, Architecture: dpkgArch(runtime.GOARCH), Keyring: req.Keyring}
	s.Components = []string{"main"}
	if dist == "ubuntu" {
		s.Components = []string{"main", "universe"}
	}
	main, sec := HostArchives(dist, host)
	s.Mirror, s.Security = req.Mirror, req.Security
	if s.Mirror == "" {
		if main == nil {
			return Spec{}, fmt.Errorf("the host's apt sources name no %s archive: pass --mirror URL (and --keyring FILE unless apt trusts the archive's key)", dist)
		}
		s.Mirror = main.URI
		if s.Keyring == "" {
			s.Keyring = main.SignedBy
		}
	}
	if s.Security == "" && sec != nil && req.Mirror == "" {
		s.Security = sec.URI
	}
	if dist == "ubuntu" && s.Security == "" {
		s.Security = s.Mirror // Ubuntu's security suite lives in the archive too
	}
	if req.Release == "sid" || req.Release == "unstable" {
		s.Security = "" // no updates, no security suite
	}
	for _, u := range []string{s.Mirror, s.Security} {
		if err := checkURI(u); err != nil {
			return Spec{}, err
		}
	}
	s.Packages = append(Packages(dist), req.Include...)
	for _, p := range s.Packages {
		if !validPackage(p) {
			return Spec{}, fmt.Errorf("package %q: not a Debian package name", p)
		}
	}
	slices.Sort(s.Packages)
	s.Packages = slices.Compact(s.Packages)
	return s, nil
}

// HostArchives finds the host's archive for dist (a source serving one of
// its codenames, not a security, updates or backports suite) and its
// security archive. Only the distribution's own archives count: component
// main, signed by the distribution's keyring; a source with no Signed-By
// (apt's default keyrings) counts only when no source names the keyring.
// So a third-party repository for the same codename (Docker's, a PPA with
// its key inline) is never taken for the archive.
func HostArchives(dist string, host []Source) (main, sec *Source) {
	for _, strong := range []bool{true, false} {
		for i := range host {
			s := &host[i]
			if !official(dist, s, strong) {
				continue
			}
			for _, suite := range s.Suites {
				base, kind, _ := strings.Cut(suite, "-")
				if releases[base] != dist {
					continue
				}
				switch {
				case kind == "security" && sec == nil:
					sec = s
				case kind == "" && main == nil && !strings.Contains(s.URI, "security"):
					main = s
				}
			}
		}
	}
	return main, sec
}

// keyrings are the distributions' archive keyrings (Debian 13 names its
// .pgp).
var keyrings = map[string][]string{
	"debian": {"/usr/share/keyrings/debian-archive-keyring.gpg", "/usr/share/keyrings/debian-archive-keyring.pgp"},
	"ubuntu": {"/usr/share/keyrings/ubuntu-archive-keyring.gpg", "/usr/share/keyrings/ubuntu-archive-keyring.pgp"},
}

// official: component main and, when strong, the distribution's keyring
// named; otherwise no Signed-By at all (never an inline key or another
// keyring).
func official(dist string, s *Source, strong bool) bool {
	if !slices.Contains(s.Components, "main") || s.InlineKey {
		return false
	}
	if strong {
		return slices.Contains(keyrings[dist], s.SignedBy)
	}
	return s.SignedBy == ""
}

func checkURI(u string) error {
	if u == "" {
		return nil
	}
	p, err := url.Parse(u)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https" && p.Scheme != "file") || strings.ContainsAny(u, " \t\n[]") {
		return fmt.Errorf("mirror %q: want an http, https or file URI", u)
	}
	return nil
}

// validPackage is Debian policy's package name (5.6.1), so no name can
// become an mmdebstrap option or an apt pattern.
func validPackage(p string) bool {
	if len(p) < 2 || !(p[0] >= 'a' && p[0] <= 'z' || p[0] >= '0' && p[0] <= '9') {
		return false
	}
	for _, r := range p {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

func dpkgArch(goarch string) string {
	switch goarch {
	case "386":
		return "i386"
	case "arm":
		return "armhf"
	}
	return goarch // amd64, arm64, ppc64le, riscv64, s390x
}

// incusArch is the architecture name incus images carry.
func incusArch(dpkg string) string {
	switch dpkg {
	case "amd64":
		return "x86_64"
	case "arm64":
		return "aarch64"
	case "armhf":
		return "armv7l"
	case "i386":
		return "i686"
	}
	return dpkg
}

// Key identifies the tree the spec builds, with the customize hook that
// finishes it.
func (s Spec) Key() string {
	b, _ := json.Marshal(s)
	hook, _ := provision.File(HookFile)
	h := sha256.New()
	fmt.Fprintf(h, "vibe-base 1\n%s\n%s", b, hook)
	return hex.EncodeToString(h.Sum(nil))
}

// HookFile is the embedded mmdebstrap customize hook that finishes a tree.
const HookFile = "base-customize"

// Args are mmdebstrap's arguments to build the spec into target with the
// customize hook at hook. Every source is one "deb" line: the archive's
// release and updates suites, then security.
func (s Spec) Args(target, hook string) []string {
	args := []string{
		"--variant=apt", "--mode=auto", "--format=tar",
		"--architectures=" + s.Architecture,
		"--include=" + strings.Join(s.Packages, ","),
		"--customize-hook=" + hook,
	}
	if s.Keyring != "" {
		args = append(args, "--keyring="+s.Keyring)
	}
	args = append(args, "--", s.Release, target)
	return append(args, s.Sources()...)
}

// Sources are the deb lines the tree's apt keeps: the release, its updates
// (not for sid) and its security suite where there is a security archive.
func (s Spec) Sources() []string {
	comps := strings.Join(s.Components, " ")
	line := func(uri, suite string) string { return fmt.Sprintf("deb %s %s %s", uri, suite, comps) }
	out := []string{line(s.Mirror, s.Release)}
	if s.Release != "sid" && s.Release != "unstable" {
		out = append(out, line(s.Mirror, s.Release+"-updates"))
	}
	if s.Security != "" {
		out = append(out, line(s.Security, s.Release+"-security"))
	}
	return out
}

// Known reports whether vibe can build the codename.
func Known(release string) bool { return releases[release] != "" }
