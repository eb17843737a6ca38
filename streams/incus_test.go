package streams

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/internal/e2e"
)

// incus's own tool accepts the tree: verify checks every file, list parses
// the index the way incus does and finds our fingerprints.
func TestIncusSimplestreamsAcceptsTree(t *testing.T) {
	bin := e2e.Tool(t, "incus-simplestreams", "apt-get install -t bookworm-backports incus-extra")
	dir := t.TempDir()
	ct := testImage(t, "ct", "container", t0, "dev")
	ct.SigPath = filepath.Join(t.TempDir(), "sig")
	os.WriteFile(ct.SigPath, []byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"), 0o644)
	vm := testImage(t, "vm", "vm", t0.Add(time.Hour), "dev")
	mustPublish(t, dir, ct, true)
	mustPublish(t, dir, vm, true)
	run := func(args ...string) (string, string, int) {
		cmd := exec.Command(bin, args...)
		cmd.Dir = dir
		return e2e.Run(t, cmd)
	}
	if out, errOut, code := run("verify"); code != 0 {
		t.Fatalf("incus-simplestreams verify: exit %d\n%s%s", code, out, errOut)
	}
	out, errOut, code := run("list", "--format", "json")
	if code != 0 {
		t.Fatalf("incus-simplestreams list: exit %d\n%s", code, errOut)
	}
	var listed []api.Image
	if err := json.Unmarshal([]byte(out), &listed); err != nil {
		t.Fatalf("incus-simplestreams list: %v\n%s", err, out)
	}
	types := map[string]string{}
	for _, img := range listed {
		types[img.Fingerprint] = img.Type
	}
	if len(listed) != 2 || types[ct.Fingerprint] != "container" || types[vm.Fingerprint] != "virtual-machine" {
		t.Fatalf("incus-simplestreams lists %v, want %s container and %s virtual-machine\n%s", types, ct.Fingerprint, vm.Fingerprint, out)
	}
	t.Logf("incus-simplestreams list: %s", out)

	// The check can fail: a flipped byte in the signature file.
	p := filepath.Join(dir, "images", ct.Fingerprint+".sshsig")
	b, _ := os.ReadFile(p)
	b[0] ^= 1
	os.WriteFile(p, b, 0o644)
	out, errOut, code = run("verify")
	if code == 0 {
		t.Fatalf("incus-simplestreams verify accepted a tampered tree:\n%s%s", out, errOut)
	}
	t.Logf("incus-simplestreams verify on a tampered tree: exit %d: %s", code, errOut)
}

// incus's Go simplestreams client, the one incus launch uses, sees the same
// images under the same fingerprints, and downloads files that add up to them.
func TestIncusClientFindsImages(t *testing.T) {
	for _, c := range []struct{ instanceType, apiType string }{{"container", "container"}, {"vm", "virtual-machine"}} {
		t.Run(c.instanceType, func(t *testing.T) {
			dir := t.TempDir()
			img := testImage(t, "a", c.instanceType, t0, "vibe-dev")
			mustPublish(t, dir, img, true)
			srv := tlsServer(http.FileServer(http.Dir(dir)))
			defer srv.Close()
			is := connectTree(t, srv)
			alias, _, err := is.GetImageAlias("vibe-dev")
			if err != nil || alias.Target != img.Fingerprint {
				t.Fatalf("GetImageAlias = %+v, %v; want target %s", alias, err, img.Fingerprint)
			}
			got, _, err := is.GetImage(img.Fingerprint)
			if err != nil || got.Type != c.apiType || got.Fingerprint != img.Fingerprint || got.Architecture != "x86_64" {
				t.Fatalf("GetImage = %+v, %v; want a %s", got, err, c.apiType)
			}
			meta, rootfs := tempFile(t), tempFile(t)
			if _, err := is.GetImageFile(img.Fingerprint, incus.ImageFileRequest{MetaFile: meta, RootfsFile: rootfs}); err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			for _, f := range []*os.File{meta, rootfs} {
				b, _ := os.ReadFile(f.Name())
				h.Write(b)
			}
			if fp := hex.EncodeToString(h.Sum(nil)); fp != img.Fingerprint {
				t.Errorf("downloaded files hash to %s, want %s", fp, img.Fingerprint)
			}
		})
	}
}

// connectTree connects incus's simplestreams client to a test server,
// trusting its certificate.
func connectTree(t testing.TB, srv *httptest.Server) incus.ImageServer {
	t.Helper()
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	is, err := incus.ConnectSimpleStreams(srv.URL, &incus.ConnectionArgs{TLSServerCert: string(cert)})
	if err != nil {
		t.Fatal(err)
	}
	return is
}

// tlsServer is httptest.NewTLSServer without the log lines incus's clients
// cause: they try plain http first for image files (safe: the files are
// checked against the index's hashes).
func tlsServer(h http.Handler) *httptest.Server {
	srv := httptest.NewUnstartedServer(h)
	srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	srv.StartTLS()
	return srv
}

func tempFile(t testing.TB) *os.File {
	f, err := os.CreateTemp(t.TempDir(), "dl")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}
