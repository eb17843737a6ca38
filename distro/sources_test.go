package distro

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

const debianSources = `# the host's Debian archive
Types: deb deb-src
URIs: http://mirror.test/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://mirror.test/debian-security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb-src
URIs: http://src.test/debian
Suites: trixie

Enabled: no
Types: deb
URIs: http://disabled.test/debian
Suites: trixie

Types: deb
URIs: http://inline.test/debian
Suites: sid
Signed-By:
 -----BEGIN PGP PUBLIC KEY BLOCK-----
 .
 -----END PGP PUBLIC KEY BLOCK-----
`

func TestParseDeb822(t *testing.T) {
	got, err := ParseDeb822(strings.NewReader(debianSources))
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{
		{URI: "http://mirror.test/debian", Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}, SignedBy: "/usr/share/keyrings/debian-archive-keyring.gpg"},
		{URI: "http://mirror.test/debian-security", Suites: []string{"bookworm-security"}, Components: []string{"main"}, SignedBy: "/usr/share/keyrings/debian-archive-keyring.gpg"},
		// An inline key is no file to hand mmdebstrap.
		{URI: "http://inline.test/debian", Suites: []string{"sid"}, Components: []string{}, InlineKey: true},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{" continuation first\n", "Types deb\n"} {
		if _, err := ParseDeb822(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseOneLine(t *testing.T) {
	in := `# comment
deb http://archive.test/ubuntu noble main restricted # trailing
deb-src http://archive.test/ubuntu noble main
deb [arch=amd64 signed-by=/usr/share/keyrings/ubuntu-archive-keyring.gpg] http://archive.test/ubuntu noble-security main universe

`
	got, err := ParseOneLine(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Source{
		{URI: "http://archive.test/ubuntu", Suites: []string{"noble"}, Components: []string{"main", "restricted"}},
		{URI: "http://archive.test/ubuntu", Suites: []string{"noble-security"}, Components: []string{"main", "universe"}, SignedBy: "/usr/share/keyrings/ubuntu-archive-keyring.gpg"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	for _, bad := range []string{"deb [arch=amd64 http://x noble\n", "deb http://x\n"} {
		if _, err := ParseOneLine(strings.NewReader(bad)); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestHostSources(t *testing.T) {
	root := t.TempDir()
	d := filepath.Join(root, "etc/apt/sources.list.d")
	os.MkdirAll(d, 0o755)
	os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte("deb http://one.test/debian bookworm main\n"), 0o644)
	os.WriteFile(filepath.Join(d, "b.sources"), []byte("Types: deb\nURIs: http://three.test/debian\nSuites: trixie\n"), 0o644)
	os.WriteFile(filepath.Join(d, "a.list"), []byte("deb http://two.test/debian bookworm main\n"), 0o644)
	os.WriteFile(filepath.Join(d, "c.save"), []byte("not read"), 0o644)
	got, err := HostSources(root)
	if err != nil {
		t.Fatal(err)
	}
	var uris []string
	for _, s := range got {
		uris = append(uris, s.URI)
	}
	if want := []string{"http://one.test/debian", "http://two.test/debian", "http://three.test/debian"}; !reflect.DeepEqual(uris, want) {
		t.Errorf("read %v, want %v in that order", uris, want)
	}
	os.WriteFile(filepath.Join(d, "d.sources"), []byte(" bad\n"), 0o644)
	if _, err := HostSources(root); err == nil || !strings.Contains(err.Error(), "d.sources") {
		t.Errorf("a malformed file: %v, want its name in the error", err)
	}
}

// The host's apt sources are parsed without trust in their shape.
func FuzzParseSources(f *testing.F) {
	f.Add(debianSources)
	f.Add("deb [signed-by=/k] http://x/ubuntu noble main\n")
	f.Fuzz(func(t *testing.T, in string) {
		for _, parse := range []func(string) ([]Source, error){
			func(s string) ([]Source, error) { return ParseDeb822(strings.NewReader(s)) },
			func(s string) ([]Source, error) { return ParseOneLine(strings.NewReader(s)) },
		} {
			got, err := parse(in)
			if err != nil {
				continue
			}
			for _, s := range got {
				if s.URI == "" || strings.ContainsAny(s.URI, " \t\n") {
					t.Fatalf("source with URI %q", s.URI)
				}
				if s.SignedBy != "" && !strings.HasPrefix(s.SignedBy, "/") {
					t.Fatalf("keyring %q is not a path", s.SignedBy)
				}
			}
		}
	})
}
