package distro

import (
	"archive/tar"
	"bytes"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"
	"github.com/ulikunitz/xz"
	"gopkg.in/yaml.v3"
)

var bookwormHost = []Source{
	{URI: "http://mirror.test/debian", Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}, SignedBy: "/usr/share/keyrings/debian-archive-keyring.gpg"},
	{URI: "http://mirror.test/debian-security", Suites: []string{"bookworm-security"}, Components: []string{"main"}},
	{URI: "http://mirror.test/debian", Suites: []string{"bookworm-backports"}, Components: []string{"main"}},
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name    string
		req     Request
		host    []Source
		sources []string
		keyring string
		err     string
	}{
		{"host's release", Request{Release: "bookworm"}, bookwormHost, []string{
			"deb http://mirror.test/debian bookworm main",
			"deb http://mirror.test/debian bookworm-updates main",
			"deb http://mirror.test/debian-security bookworm-security main",
		}, "/usr/share/keyrings/debian-archive-keyring.gpg", ""},
		// Debian 13 from the same archive the host's Debian 12 uses.
		{"newer release, host's archive", Request{Release: "trixie"}, bookwormHost, []string{
			"deb http://mirror.test/debian trixie main",
			"deb http://mirror.test/debian trixie-updates main",
			"deb http://mirror.test/debian-security trixie-security main",
		}, "/usr/share/keyrings/debian-archive-keyring.gpg", ""},
		{"sid has no updates or security", Request{Release: "sid"}, bookwormHost, []string{
			"deb http://mirror.test/debian sid main",
		}, "/usr/share/keyrings/debian-archive-keyring.gpg", ""},
		{"ubuntu needs a mirror on a Debian host", Request{Release: "noble"}, bookwormHost, nil, "", "no ubuntu archive"},
		{"ubuntu with a mirror", Request{Release: "noble", Mirror: "http://ubuntu.test/ubuntu", Keyring: "/k.gpg"}, bookwormHost, []string{
			"deb http://ubuntu.test/ubuntu noble main universe",
			"deb http://ubuntu.test/ubuntu noble-updates main universe",
			"deb http://ubuntu.test/ubuntu noble-security main universe",
		}, "/k.gpg", ""},
		// A third-party repository for the same codename comes first in
		// the host's sources: it is not the archive.
		{"docker's repository first", Request{Release: "bookworm"}, append([]Source{
			{URI: "https://download.docker.test/linux/debian", Suites: []string{"bookworm"}, Components: []string{"stable"}, SignedBy: "/etc/apt/keyrings/docker.asc"},
			{URI: "https://other.test/debian", Suites: []string{"bookworm"}, Components: []string{"main"}, SignedBy: "/etc/apt/keyrings/other.gpg"},
			{URI: "https://ppa.test/debian", Suites: []string{"bookworm"}, Components: []string{"main"}, InlineKey: true},
			{URI: "https://unsigned.test/debian", Suites: []string{"bookworm"}, Components: []string{"main"}},
		}, bookwormHost...), []string{
			"deb http://mirror.test/debian bookworm main",
			"deb http://mirror.test/debian bookworm-updates main",
			"deb http://mirror.test/debian-security bookworm-security main",
		}, "/usr/share/keyrings/debian-archive-keyring.gpg", ""},
		// Debian 13's own sources name the keyring .pgp.
		{"trixie host", Request{Release: "trixie"}, []Source{
			{URI: "http://mirror.test/debian", Suites: []string{"trixie", "trixie-updates"}, Components: []string{"main"}, SignedBy: "/usr/share/keyrings/debian-archive-keyring.pgp"},
		}, []string{
			"deb http://mirror.test/debian trixie main",
			"deb http://mirror.test/debian trixie-updates main",
		}, "/usr/share/keyrings/debian-archive-keyring.pgp", ""},
		// Apt's default keyrings, with no Signed-By, when nothing names the keyring.
		{"one-line sources without signed-by", Request{Release: "bookworm"}, []Source{
			{URI: "http://plain.test/debian", Suites: []string{"bookworm"}, Components: []string{"main", "contrib"}},
		}, []string{
			"deb http://plain.test/debian bookworm main",
			"deb http://plain.test/debian bookworm-updates main",
		}, "", ""},
		{"unknown release", Request{Release: "hamm"}, bookwormHost, nil, "", "unknown release"},
		{"no archive at all", Request{Release: "bookworm"}, nil, nil, "", "pass --mirror"},
		{"mirror that is an option", Request{Release: "bookworm", Mirror: "--hook=x"}, nil, nil, "", "want an http"},
		{"mirror with a space", Request{Release: "bookworm", Mirror: "http://a b"}, nil, nil, "", "want an http"},
		{"package that is an option", Request{Release: "bookworm", Include: []string{"--customize-hook=sh"}}, bookwormHost, nil, "", "not a Debian package name"},
		{"package that is a pattern", Request{Release: "bookworm", Include: []string{"?essential"}}, bookwormHost, nil, "", "not a Debian package name"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Plan(tc.req, tc.host)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := s.Sources(); !slices.Equal(got, tc.sources) {
				t.Errorf("sources\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(tc.sources, "\n"))
			}
			if s.Keyring != tc.keyring {
				t.Errorf("keyring %q, want %q", s.Keyring, tc.keyring)
			}
			if !slices.Contains(s.Packages, "cloud-init") || !slices.IsSorted(s.Packages) {
				t.Errorf("packages %v: want cloud-init, sorted", s.Packages)
			}
		})
	}
}

// The same request on the same host is the same tree; any change is another.
func TestKey(t *testing.T) {
	a, _ := Plan(Request{Release: "bookworm"}, bookwormHost)
	b, _ := Plan(Request{Release: "bookworm"}, bookwormHost)
	if a.Key() != b.Key() {
		t.Error("equal specs, different keys")
	}
	for _, req := range []Request{
		{Release: "trixie"},
		{Release: "bookworm", Include: []string{"vim"}},
		{Release: "bookworm", Mirror: "http://other.test/debian"},
	} {
		c, _ := Plan(req, bookwormHost)
		if c.Key() == a.Key() {
			t.Errorf("%+v has the same key as the default", req)
		}
	}
}

// mmdebstrap's arguments: options first, then "--", so that nothing after
// it (the release, the target, the sources) is read as an option.
func TestArgs(t *testing.T) {
	s, _ := Plan(Request{Release: "trixie", Include: []string{"vim"}}, bookwormHost)
	args := s.Args("/out/rootfs.tar", "/tmp/hook")
	i := slices.Index(args, "--")
	if i < 0 {
		t.Fatalf("no -- in %v", args)
	}
	for _, a := range args[:i] {
		if !strings.HasPrefix(a, "--") {
			t.Errorf("%q before --", a)
		}
	}
	rest := args[i+1:]
	if rest[0] != "trixie" || rest[1] != "/out/rootfs.tar" || len(rest) != 5 {
		t.Errorf("after --: %v", rest)
	}
	for _, want := range []string{"--variant=apt", "--customize-hook=/tmp/hook", "--keyring=/usr/share/keyrings/debian-archive-keyring.gpg"} {
		if !slices.Contains(args, want) {
			t.Errorf("no %s in %v", want, args)
		}
	}
	if inc := args[slices.IndexFunc(args, func(a string) bool { return strings.HasPrefix(a, "--include=") })]; !strings.Contains(inc, ",vim,") && !strings.HasSuffix(inc, ",vim") {
		t.Errorf("%s does not include vim", inc)
	}
}

// The meta tarball carries the NoCloud seed templates (through them the
// builder's cloud-init receives the recipe) and is the same bytes for the
// same spec and date.
func TestMetadata(t *testing.T) {
	s, _ := Plan(Request{Release: "trixie"}, bookwormHost)
	when := time.Unix(1700000000, 0)
	a, err := Metadata(s, when)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := Metadata(s, when)
	if !bytes.Equal(a, b) {
		t.Error("the same spec gave different bytes")
	}
	files := untar(t, a)
	var md api.ImageMetadata
	if err := yaml.Unmarshal(files["metadata.yaml"], &md); err != nil {
		t.Fatal(err)
	}
	if md.Architecture != "x86_64" && s.Architecture == "amd64" {
		t.Errorf("architecture %q", md.Architecture)
	}
	if md.CreationDate != 1700000000 || md.Properties["os"] != "debian" || md.Properties["release"] != "trixie" {
		t.Errorf("metadata %+v", md)
	}
	for _, p := range []string{"user-data", "vendor-data", "meta-data", "network-config"} {
		tpl := md.Templates["/var/lib/cloud/seed/nocloud-net/"+p]
		if tpl == nil || !slices.Equal(tpl.When, []string{"create", "copy"}) {
			t.Fatalf("no create/copy template for %s", p)
		}
		if _, ok := files["templates/"+tpl.Template]; !ok {
			t.Errorf("template file %s missing", tpl.Template)
		}
	}
	if !strings.Contains(string(files["templates/cloud-init-user.tpl"]), `config_get("cloud-init.user-data"`) {
		t.Error("the user-data template does not read cloud-init.user-data")
	}
}

func untar(t *testing.T, b []byte) map[string][]byte {
	t.Helper()
	xr, err := xz.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(xr)
	out := map[string][]byte{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		out[strings.TrimPrefix(h.Name, "./")] = data
	}
}

// A cached tree serves until it is older than the limit; then the base is
// built again with the archive's updates.
func TestCached(t *testing.T) {
	p := filepath.Join(t.TempDir(), "rootfs.tar")
	now := time.Now()
	if ok, _ := cached(p, time.Hour, now); ok {
		t.Error("no tree is cached")
	}
	os.WriteFile(p, nil, 0o644)
	if ok, _ := cached(p, 0, now); ok {
		t.Error("an empty tree is cached")
	}
	os.WriteFile(p, []byte("x"), 0o644)
	os.Chtimes(p, now.Add(-8*24*time.Hour), now.Add(-8*24*time.Hour))
	if ok, age := cached(p, 7*24*time.Hour, now); ok || age < 8*24*time.Hour-time.Minute {
		t.Errorf("an 8-day-old tree with a 7-day limit: cached %v, age %v", ok, age)
	}
	if ok, _ := cached(p, 0, now); !ok {
		t.Error("no limit, yet not cached")
	}
}

// Without a named release, vibe-build base and vibe setup build the host's
// own, when vibe knows it, else Debian 12.
func TestBuildRelease(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("ID=debian\nVERSION_ID=\"13\"\nVERSION_CODENAME=trixie\n"), 0o644)
	o := ReadOSRelease(root)
	if o.ID != "debian" || o.Version != "13" || o.BuildRelease() != "trixie" {
		t.Errorf("%+v builds %s", o, o.BuildRelease())
	}
	if r := (OSRelease{ID: "fedora", Codename: "x"}).BuildRelease(); r != "bookworm" {
		t.Errorf("an unknown host builds %s", r)
	}
}
