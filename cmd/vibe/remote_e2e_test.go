package main

import (
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// vibe --image https://… fetches the image from a simplestreams tree,
// verifies it (signed by a trusted key) and creates the sandbox from it.
func TestE2ERemoteImage(t *testing.T) {
	w := newWorld(t)
	a, _, err := w.c.GetImageAlias("vibe-offline")
	if err != nil {
		t.Fatal(err)
	}
	fp := a.Target
	key := filepath.Join(w.dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "baker", "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, _ := os.ReadFile(key + ".pub")
	trusted := filepath.Join(w.dir, "allowed_signers")
	os.WriteFile(trusted, []byte("baker@example.com "+string(pub)), 0o644)
	stranger := filepath.Join(w.dir, "other_signers")
	os.WriteFile(stranger, []byte("someone@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIGnRWOUPtN3XvXt0WIvLNuVEpbpCMRtmGD7gQC0YfrP4\n"), 0o644)

	tree := filepath.Join(w.dir, "tree")
	cmd := exec.Command(vibeBuildBin, "publish", "vibe-offline", tree, "--sign", key)
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"), "HOME="+w.dir)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("publish: %v\n%s", err, out)
	}
	srv := httptest.NewTLSServer(http.FileServer(http.Dir(tree)))
	defer srv.Close()
	ca := filepath.Join(w.dir, "ca.pem")
	os.WriteFile(ca, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	t.Setenv("SSL_CERT_FILE", ca)

	// The daemon and the store forget the image: vibe must fetch it.
	if op, err := w.c.DeleteImage(fp); err == nil {
		op.Wait()
	}
	os.RemoveAll(filepath.Join(w.dir, "data", "vibe", "images", fp))

	_, errOut, code := w.vibe("--image", srv.URL, "--trust", stranger, "up")
	if code == 0 || !strings.Contains(errOut, "not in allowed signers") {
		t.Fatalf("an image signed by an untrusted key was used: exit %d\n%s", code, errOut)
	}
	if _, _, err := w.c.GetImage(fp); err == nil {
		t.Fatal("the untrusted image was imported")
	}
	_, errOut, code = w.vibe("--image", srv.URL, "--trust", trusted, "up")
	if code != 0 || !strings.Contains(errOut, "imported "+srv.URL+" as "+fp[:12]+": verified, signed by baker@example.com (trusted)") {
		t.Fatalf("vibe --image URL up: exit %d\n%s", code, errOut)
	}
	// --trust where it cannot apply is an error, never ignored.
	if _, errOut, code := w.vibe("--image", srv.URL, "--trust", trusted, "up"); code == 0 || !strings.Contains(errOut, "exists already") {
		t.Errorf("--trust for an existing sandbox: exit %d %s", code, errOut)
	}
	if _, errOut, code := w.vibe("--image", "vibe-offline", "--trust", trusted, "up"); code == 0 || !strings.Contains(errOut, "is an image on this machine") {
		t.Errorf("--trust for a local alias: exit %d %s", code, errOut)
	}
	inst, _, err := w.c.GetInstance(w.instance())
	if err != nil || inst.Config["volatile.base_image"] != fp {
		t.Fatalf("sandbox made from %q, want %s (%v)", inst.Config["volatile.base_image"], fp, err)
	}
	img, _, err := w.c.GetImage(fp)
	if err != nil || img.Properties["vibe.recipe"] == "" {
		t.Fatalf("imported image lacks its vibe properties: %v %+v", err, img)
	}
}
