package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A certificate made for these tests (CN=vibe test CA).
func testCA(t *testing.T) []byte {
	t.Helper()
	b, err := os.ReadFile("../cloudinit/testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadCAs(t *testing.T) {
	home := t.TempDir()
	ca := testCA(t)
	// Text around the block (as in a bundle with comments) is dropped.
	os.WriteFile(filepath.Join(home, "corp.pem"), append([]byte("Corporate root\n"), ca...), 0o644)
	c, err := Parse("vibe.yaml", []byte("tls:\n  ca: [~/corp.pem]\n"), Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReadCAs(home); err != nil {
		t.Fatal(err)
	}
	if len(c.TLS.Certs) != 1 {
		t.Fatalf("certs %+v", c.TLS.Certs)
	}
	got := c.TLS.Certs[0]
	if got.Subject != "CN=vibe test CA" || len(got.SHA256) != 64 || !strings.HasPrefix(got.PEM, "-----BEGIN CERTIFICATE-----\n") || strings.Contains(got.PEM, "Corporate") {
		t.Errorf("cert %+v", got)
	}
}

func TestParseCAsRefuses(t *testing.T) {
	ca := testCA(t)
	key := []byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF\n-----END PRIVATE KEY-----\n")
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		// The attack: a key beside the certificate would be baked into
		// the image for everyone who pulls it.
		{"a private key", append(append([]byte{}, ca...), key...), "holds a PRIVATE KEY block"},
		{"no certificate", []byte("not PEM at all\n"), "holds no PEM certificate"},
		{"a broken certificate", []byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"), "does not parse"},
	} {
		if _, err := ParseCAs("ca.pem", tc.data); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
}

func TestTLSPaths(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"tls:\n  ca: [corp.pem]\n", "absolute path or one under ~/"},
		{"tls:\n  ca: [" + strings.Repeat("/a.pem, ", 17) + "]\n", "at most 16"},
	} {
		if _, err := Parse("vibe.yaml", []byte(tc.yaml), Host{UID: 1000, GID: 1000}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
	c, _ := Parse("vibe.yaml", []byte("tls:\n  ca: [/nonexistent/ca.pem]\n"), Host{UID: 1000, GID: 1000})
	if err := c.ReadCAs("/"); err == nil || !strings.Contains(err.Error(), "tls.ca[0]") {
		t.Errorf("a missing file: %v, want it named by key", err)
	}
}

// A cloned repository's vibe.yaml cannot make the image trust a CA (or
// read a host file into it): tls is not a project key.
func TestProjectCannotSetTLS(t *testing.T) {
	if err := checkProjectKeys("vibe.yaml", []byte("tls:\n  ca: [/etc/ssl/private/host.pem]\n")); err == nil {
		t.Error("a project file set tls.ca")
	}
}

// Every mirror is a URL without credentials whose host joins the
// allowlist; plain http only for apt, which checks signatures itself.
func TestMirrors(t *testing.T) {
	c, err := Parse("vibe.yaml", []byte("mirrors:\n  apt: http://apt.test/debian\n  npm: https://npm.test/\n  pypi: https://pypi.test/simple/\n  go: https://go.test\n  node: https://node.test/dist\n"), Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range []string{"apt.test", "npm.test", "pypi.test", "go.test", "node.test"} {
		if !c.Allowlist.Allows(h) {
			t.Errorf("%s is not allowed", h)
		}
	}
	for _, tc := range []struct{ yaml, want string }{
		{"mirrors:\n  npm: http://npm.test/\n", "not an https URL"},
		{"mirrors:\n  apt: ftp://apt.test/debian\n", "not an http or https URL"},
		{"mirrors:\n  apt: http://apt.test:8080/debian\n", "port other than 80"},
		{"mirrors:\n  npm: https://user:pw@npm.test/\n", "credentials"},
		// A value that would end the line in npmrc or pip.conf.
		{"mirrors:\n  pypi: \"https://pypi.test/simple;x\"\n", "not allowed"},
		{"mirrors:\n  go: \"https://go.test/#x\"\n", "no query, fragment"},
		// npm expands ${VAR} in .npmrc: the guest's environment would go to the mirror.
		{"mirrors:\n  npm: \"https://npm.test/${HOME}/\"\n", "not allowed"},
		{"mirrors:\n  apt_security: http://apt.test/debian-security\n", "without mirrors.apt"},
	} {
		if _, err := Parse("vibe.yaml", []byte(tc.yaml), Host{UID: 1000, GID: 1000}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.want)
		}
	}
}
