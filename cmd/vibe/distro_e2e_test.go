package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"

	"github.com/vibesandbox/vibe/sbom"
)

// Debian 13 end to end, with nothing from an image server: vibe-build base
// makes the base from the machine's own apt mirror and keyring, the offline
// recipe bakes on it (with an extra certificate authority, tls.ca), and a
// sandbox from that image passes its self-test, trusts the authority in
// curl, and runs the agent with the trust store in its environment. (The
// tree is cached across runs; the first run on a machine builds it, about
// 100 s.)
func TestE2EDebian13Container(t *testing.T) {
	w := newWorld(t)
	const base, alias = "vibe-test-trixie", "vibe-offline-trixie"
	if out, err := exec.Command(vibeBuildBin, "base", "trixie", "--alias", base).CombinedOutput(); err != nil {
		t.Fatalf("vibe-build base trixie: %v\n%s", err, out)
	}
	img, _, err := w.c.GetImageAlias(base)
	if err != nil {
		t.Fatal(err)
	}
	info, _, err := w.c.GetImage(img.Target)
	if err != nil {
		t.Fatal(err)
	}
	if info.Properties["os"] != "debian" || info.Properties["release"] != "trixie" {
		t.Errorf("base properties %v, want debian trixie", info.Properties)
	}
	caPEM, certPEM, keyPEM := testPKI(t)
	caFile := filepath.Join(w.dir, "corp-ca.pem")
	os.WriteFile(caFile, caPEM, 0o644)
	recipe, _ := os.ReadFile("../../examples/offline.yaml")
	cfg := strings.Replace(strings.Replace(string(recipe), "base: vibe-test-base", "base: "+base, 1), "alias: vibe-offline", "alias: "+alias, 1)
	cfg += "tls:\n  ca: [" + caFile + "]\n"
	p := filepath.Join(w.dir, "trixie.yaml")
	os.WriteFile(p, []byte(cfg), 0o644)
	if out, err := exec.Command(vibeBuildBin, "build", "--config", p).CombinedOutput(); err != nil {
		t.Fatalf("bake on trixie: %v\n%s", err, out)
	}
	// The manifest records the authority by digest.
	if out, err := exec.Command(vibeBuildBin, "inspect", alias, "--manifest").CombinedOutput(); err != nil || !strings.Contains(string(out), "CN=vibe e2e corporate CA") {
		t.Errorf("manifest does not record the CA: %v\n%s", err, out)
	}
	// Against the bookworm image of the same recipe, diff names the
	// packages whose versions differ between the two releases.
	diffOut, err := exec.Command(vibeBuildBin, "diff", "vibe-offline", alias, "--json").Output()
	var d struct {
		Packages []sbom.Change `json:"packages"`
	}
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 || json.Unmarshal(diffOut, &d) != nil {
		code := 0
		if exit != nil {
			code = exit.ExitCode()
		}
		t.Fatalf("diff bookworm trixie: exit %d, want 1 (different)\n%s", code, diffOut)
	}
	changed := map[string]string{}
	for _, c := range d.Packages {
		changed[c.Type+" "+c.Name] = c.Kind()
	}
	if changed["deb bash:amd64"] != "changed" && changed["deb bash:arm64"] != "changed" {
		t.Errorf("diff does not show bash changed between Debian 12 and 13: %d changes", len(d.Packages))
	}
	mine, _ := os.ReadFile(filepath.Join(w.dir, "vibe.yaml"))
	os.WriteFile(filepath.Join(w.dir, "vibe.yaml"), []byte(strings.Replace(string(mine), "alias: vibe-offline\n", "alias: "+alias+"\n", 1)), 0o644)

	// up self-tests the sandbox: it fails unless containment holds.
	w.must("up")
	if out, _ := w.guest("cat", "/etc/debian_version"); !strings.HasPrefix(out, "13") {
		t.Errorf("the sandbox runs Debian %q, want 13", out)
	}
	// A TLS server in the guest with a certificate from the authority:
	// curl (the system trust store) accepts it.
	for path, data := range map[string][]byte{"/root/server.pem": certPEM, "/root/server.key": keyPEM} {
		if err := w.c.CreateInstanceFile(w.instance(), path, incus.InstanceFileArgs{Content: strings.NewReader(string(data)), Mode: 0o600, Type: "file", WriteMode: "overwrite"}); err != nil {
			t.Fatal(err)
		}
	}
	w.guest("sh", "-c", "setsid openssl s_server -quiet -accept 127.0.0.1:8443 -cert /root/server.pem -key /root/server.key -www >/dev/null 2>&1 < /dev/null &")
	out, code := w.guest("sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do curl -sS --noproxy '*' -o /dev/null -w '%{http_code}' https://localhost:8443/ && exit 0; sleep 0.5; done; exit 1")
	if code != 0 || out != "200" {
		t.Errorf("curl to a server of the extra authority: exit %d %q", code, out)
	}
	stdout, stderr, code := w.vibe("exec", "--", "sh", "-c", "echo $NODE_EXTRA_CA_CERTS $REQUESTS_CA_BUNDLE")
	if code != 0 || strings.TrimSpace(stdout) != "/etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt" {
		t.Errorf("the trust store in the sandbox user's environment: exit %d %q %s", code, stdout, stderr)
	}
	stdout, stderr, code = w.vibe("app")
	if code != 0 || !strings.Contains(stdout, "agent cwd=/workspace/app user=vibe key="+secretValue) {
		t.Errorf("agent on Debian 13: exit %d\n%s%s", code, stdout, stderr)
	}
}

// testPKI makes a certificate authority and a localhost server certificate
// it signed.
func testPKI(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "vibe e2e corporate CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"}, DNSNames: []string{"localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, KeyUsage: x509.KeyUsageDigitalSignature,
	}
	caCert, _ := x509.ParseCertificate(caDER)
	der, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(key)
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}
