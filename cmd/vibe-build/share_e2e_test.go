package main

// End-to-end tests of sharing: export, verify, sign, import, publish, diff,
// against the real daemon and the offline image.

import (
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	incus "github.com/lxc/incus/v6/client"

	"github.com/vibesandbox/vibe/internal/e2e"
)

// bakeShared bakes (or finds) the offline image under the test's alias.
func (e *env) bakeShared() string {
	e.t.Helper()
	out, errOut, code := e.run("build", "--config", offline(e.t), "--alias", e.alias, "--json")
	if code != 0 {
		e.t.Fatalf("bake failed (exit %d):\n%s", code, errOut)
	}
	var res struct{ Fingerprint string }
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		e.t.Fatal(err)
	}
	return res.Fingerprint
}

// forget removes the image from the daemon and this test's store, so that
// an import has to do everything again.
func (e *env) forget(fp string) {
	e.t.Helper()
	if op, err := e.c.DeleteImage(fp); err == nil {
		if err := op.Wait(); err != nil {
			e.t.Fatal(err)
		}
	}
	os.RemoveAll(filepath.Join(e.data, "vibe", "images", fp))
}

// assertAbsent: neither the daemon nor the store has fp, and no staging
// folder is left.
func (e *env) assertAbsent(fp string) {
	e.t.Helper()
	if _, _, err := e.c.GetImage(fp); err == nil {
		e.t.Errorf("image %s is in the daemon", fp[:12])
	}
	if _, err := os.Stat(filepath.Join(e.data, "vibe", "images", fp)); err == nil {
		e.t.Errorf("image %s is in the store", fp[:12])
	}
	e.assertNothingLeft()
}

// sshKey makes an ed25519 key pair with ssh-keygen and an allowed-signers
// file listing it.
func sshKey(t *testing.T, principal string) (key, signers string) {
	t.Helper()
	dir := t.TempDir()
	key = filepath.Join(dir, "id_ed25519")
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", principal, "-f", key).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v\n%s", err, out)
	}
	pub, err := os.ReadFile(key + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	signers = filepath.Join(dir, "allowed_signers")
	if err := os.WriteFile(signers, []byte(principal+" "+string(pub)), 0o644); err != nil {
		t.Fatal(err)
	}
	return key, signers
}

func flip(t *testing.T, path string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	at := st.Size() / 2
	b := make([]byte, 1)
	f.ReadAt(b, at)
	b[0] ^= 0x01
	if _, err := f.WriteAt(b, at); err != nil {
		t.Fatal(err)
	}
}

func TestE2EExportVerifyImport(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	fp := e.bakeShared()
	key, trusted := sshKey(t, "alice@example.com")
	_, stranger := sshKey(t, "mallory@example.com")
	exp := t.TempDir()

	out, errOut, code := e.run("export", e.alias, exp, "--sign", key, "--json")
	if code != 0 {
		t.Fatalf("export (exit %d): %s", code, errOut)
	}
	var ex struct {
		Fingerprint string
		Files       []string
	}
	json.Unmarshal([]byte(out), &ex)
	if ex.Fingerprint != fp || len(ex.Files) != 5 {
		t.Fatalf("export: %s", out)
	}
	for _, f := range ex.Files {
		if !strings.Contains(filepath.Base(f), fp) {
			t.Errorf("%s does not carry the fingerprint in its name", f)
		}
	}

	// The signature by the reference implementation's rules: ssh-keygen
	// verifies what vibe-build signed.
	files := map[string]string{}
	for _, f := range ex.Files {
		files[strings.SplitN(filepath.Base(f), "-", 2)[0]] = f
	}
	if _, errOut, code := e.run("verify", exp, "--trust", trusted); code != 0 {
		t.Fatalf("verify with the signer listed: exit %d: %s", code, errOut)
	}
	if _, errOut, code := e.run("verify", exp, "--trust", stranger); code != exitUntrusted {
		t.Fatalf("verify with the signer not listed: exit %d, want %d: %s", code, exitUntrusted, errOut)
	}
	out, _, code = e.run("verify", exp)
	if code != 0 || !strings.Contains(out, "no --trust file") {
		t.Fatalf("verify without trust: exit %d: %s", code, out)
	}

	// The round trip: forget the image, import it back, same fingerprint.
	e.forget(fp)
	out, errOut, code = e.run("import", exp, "--alias", e.alias, "--trust", trusted, "--json")
	if code != 0 {
		t.Fatalf("import (exit %d): %s", code, errOut)
	}
	var im struct {
		Fingerprint    string
		Added, Trusted bool
	}
	json.Unmarshal([]byte(out), &im)
	if im.Fingerprint != fp || !im.Added || !im.Trusted {
		t.Fatalf("import: %s", out)
	}
	img, _, err := c.GetImage(fp)
	if err != nil || img.Type != "container" {
		t.Fatalf("imported image: %v %+v", err, img)
	}
	if a, _, err := c.GetImageAlias(e.alias); err != nil || a.Target != fp {
		t.Fatalf("alias: %v %+v", err, a)
	}
	out, _, code = e.run("import", exp, "--json")
	if code != 0 || !strings.Contains(out, `"added": false`) {
		t.Fatalf("a second import is a no-op: exit %d: %s", code, out)
	}

	// One flipped byte in any file: refused by verify and by import, and
	// nothing is imported.
	e.forget(fp)
	for _, name := range []string{"meta", "rootfs", "manifest", "user", "signature"} {
		path := files[name]
		t.Run(name, func(t *testing.T) {
			flip(t, path)
			defer flip(t, path)
			_, errOut, code := e.run("verify", exp)
			if code != exitTampered {
				t.Errorf("verify: exit %d, want %d: %s", code, exitTampered, errOut)
			}
			_, errOut, code = e.run("import", exp, "--trust", trusted)
			if code != exitTampered || !strings.Contains(errOut, "nothing was imported") {
				t.Errorf("import: exit %d, want %d: %s", code, exitTampered, errOut)
			}
			e.assertAbsent(fp)
		})
	}
	// Unsigned, with trust required: refused as untrusted.
	os.Rename(files["signature"], files["signature"]+".away")
	if _, errOut, code := e.run("import", exp, "--trust", trusted); code != exitUntrusted {
		t.Errorf("unsigned import with --trust: exit %d, want %d: %s", code, exitUntrusted, errOut)
	}
	os.Rename(files["signature"]+".away", files["signature"])
	// Truncated rootfs.
	if err := os.Truncate(files["rootfs"], 1<<20); err != nil {
		t.Fatal(err)
	}
	if _, errOut, code := e.run("import", exp); code != exitTampered || !strings.Contains(errOut, "truncated") {
		t.Errorf("truncated rootfs: exit %d: %s", code, errOut)
	}
	e.assertAbsent(fp)
	if _, errOut, code := e.run("verify", t.TempDir()); code != exitUnreadable {
		t.Errorf("empty folder: exit %d, want %d: %s", code, exitUnreadable, errOut)
	}
}

func TestE2EPublishServeImport(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	fp := e.bakeShared()
	key, trusted := sshKey(t, "alice@example.com")
	tree := t.TempDir()
	if _, errOut, code := e.run("publish", e.alias, tree, "--alias", e.alias, "--sign", key); code != 0 {
		t.Fatalf("publish (exit %d): %s", code, errOut)
	}
	out, _, code := e.run("publish", e.alias, tree, "--alias", e.alias)
	if code != 0 || !strings.Contains(out, "already published") {
		t.Fatalf("publishing twice: exit %d: %s", code, out)
	}

	// incus's reference tool accepts the tree.
	for _, args := range [][]string{{"verify"}, {"list", "--format", "csv"}} {
		cmd := exec.Command("incus-simplestreams", args...)
		cmd.Dir = tree
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("incus-simplestreams %v: %v\n%s", args, err, out)
		}
		if args[0] == "list" && !strings.Contains(string(out), fp) {
			t.Fatalf("incus-simplestreams list does not show %s:\n%s", fp, out)
		}
	}

	srv := httptest.NewTLSServer(http.FileServer(http.Dir(tree)))
	defer srv.Close()
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})

	// incus's own client finds the image under the same fingerprint, and
	// the daemon copies it from the tree.
	e.forget(fp)
	ss, err := incus.ConnectSimpleStreams(srv.URL, &incus.ConnectionArgs{TLSServerCert: string(certPEM)})
	if err != nil {
		t.Fatal(err)
	}
	a, _, err := ss.GetImageAlias(e.alias)
	if err != nil || a.Target != fp {
		t.Fatalf("simplestreams alias %s: %v %+v", e.alias, err, a)
	}
	img, _, err := ss.GetImage(fp)
	if err != nil {
		t.Fatal(err)
	}
	op, err := c.CopyImage(ss, *img, &incus.ImageCopyArgs{})
	if err == nil {
		err = op.Wait()
	}
	if err != nil {
		t.Fatalf("copy from the tree into the daemon: %v", err)
	}
	if got, _, err := c.GetImage(fp); err != nil || got.Type != "container" {
		t.Fatalf("copied image: %v %+v", err, got)
	}

	// vibe-build import over https, with the test server's certificate
	// trusted through SSL_CERT_FILE.
	e.forget(fp)
	ca := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(ca, certPEM, 0o644)
	imp := func(args ...string) (string, string, int) {
		cmd := e.cmd(append([]string{"import"}, args...)...)
		cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+ca)
		return e2e.Run(t, cmd)
	}
	out, errOut, code := imp(srv.URL, "--image", e.alias, "--alias", e.alias, "--trust", trusted, "--json")
	if code != 0 || !strings.Contains(out, fp) || !strings.Contains(out, `"trusted": true`) {
		t.Fatalf("import from https (exit %d): %s %s", code, out, errOut)
	}
	if _, _, err := c.GetImage(fp); err != nil {
		t.Fatal(err)
	}
	// inspect reads the tree without the daemon or the rootfs.
	cmd := e.cmd("inspect", srv.URL, "--trust", trusted)
	cmd.Env = append(cmd.Env, "SSL_CERT_FILE="+ca)
	out, errOut, code = e2e.Run(t, cmd)
	if code != 0 || !strings.Contains(out, fp) || !strings.Contains(out, "trusted") {
		t.Fatalf("inspect the tree (exit %d): %s %s", code, out, errOut)
	}

	// REMOTE:NAME through the user's incus client configuration.
	e.forget(fp)
	conf := filepath.Join(e.data, ".config", "incus")
	os.MkdirAll(conf, 0o755)
	os.WriteFile(filepath.Join(conf, "config.yml"), []byte("remotes:\n  team:\n    addr: "+srv.URL+"\n    protocol: simplestreams\n    public: true\n"), 0o644)
	out, errOut, code = imp("team:"+e.alias, "--trust", trusted)
	if code != 0 || !strings.Contains(out, "imported") {
		t.Fatalf("import team:%s (exit %d): %s %s", e.alias, code, out, errOut)
	}

	// Refusals: plain http, and a tree whose files do not match its index.
	if _, errOut, code := imp("http://"+strings.TrimPrefix(srv.URL, "https://"), "--image", e.alias); code == 0 || !strings.Contains(errOut, "https") {
		t.Errorf("http:// source: exit %d: %s", code, errOut)
	}
	e.forget(fp)
	rootfs, _ := filepath.Glob(filepath.Join(tree, "images", "*.tar"))
	if len(rootfs) != 1 {
		t.Fatalf("rootfs in the tree: %v", rootfs)
	}
	flip(t, rootfs[0])
	if _, errOut, code := imp(srv.URL, "--image", e.alias); code == 0 || !strings.Contains(errOut, "nothing was imported") {
		t.Errorf("tampered tree: exit %d: %s", code, errOut)
	}
	e.assertAbsent(fp)
	cmd = exec.Command("incus-simplestreams", "verify")
	cmd.Dir = tree
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("incus-simplestreams verify accepts the tampered tree:\n%s", out)
	}
}

func TestE2EDiff(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	fp := e.bakeShared()
	out, _, code := e.run("diff", fp, e.alias)
	if code != 0 || out != "" {
		t.Fatalf("an image against itself: exit %d:\n%s", code, out)
	}
	// A second image: the same recipe with one more allowlist entry.
	cfg := writeConfig(t, "egress:\n  allow: [example.org]\n")
	alias2 := e.alias + "-b"
	t.Cleanup(func() {
		if a, _, err := c.GetImageAlias(alias2); err == nil {
			c.DeleteImageAlias(alias2)
			if op, err := c.DeleteImage(a.Target); err == nil {
				op.Wait()
			}
		}
	})
	if _, errOut, code := e.run("build", "--config", cfg, "--alias", alias2); code != 0 {
		t.Fatalf("bake the second image (exit %d): %s", code, errOut)
	}
	out, errOut, code := e.run("diff", e.alias, alias2)
	if code != 1 {
		t.Fatalf("diff of two images: exit %d, want 1: %s", code, errOut)
	}
	for _, want := range []string{"--- a/user-data", "+++ b/user-data", "+", "config.egress.allow", "example.org", "recipe"} {
		if !strings.Contains(out, want) {
			t.Errorf("diff output lacks %q:\n%s", want, out)
		}
	}
}
