package main

// End-to-end tests against the real incus daemon that `make testenv` sets
// up. They run under VIBE_E2E=1 (make check, CI), where a missing daemon or
// base image is a failure; without it they are skipped.

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/internal/e2e"
)

const testBase = "vibe-test-base"

// connect is the daemon with the test base image, or a skip/failure per VIBE_E2E.
func connect(t *testing.T) incus.InstanceServer { return e2e.Daemon(t, testBase) }

// env is an isolated environment for the binary: its own store and an alias
// of its own, removed with the images it made when the test ends.
type env struct {
	t     *testing.T
	c     incus.InstanceServer
	data  string
	alias string
}

func newEnv(t *testing.T, c incus.InstanceServer) *env {
	e := &env{t: t, c: c, data: t.TempDir(), alias: "vibe-e2e-" + strings.ToLower(strings.ReplaceAll(t.Name(), "/", "-"))}
	t.Cleanup(func() {
		if a, _, err := c.GetImageAlias(e.alias); err == nil {
			c.DeleteImageAlias(e.alias)
			if op, err := c.DeleteImage(a.Target); err == nil {
				op.Wait()
			}
		}
	})
	return e
}

func (e *env) cmd(args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Dir = e.t.TempDir()
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+e.data, "HOME="+e.data)
	return cmd
}

func (e *env) run(args ...string) (string, string, int) {
	e.t.Helper()
	return e2e.Run(e.t, e.cmd(args...))
}

func offline(t *testing.T) string { return abs(t, "../../examples/offline.yaml") }

// writeConfig writes a variant of the offline recipe.
func writeConfig(t *testing.T, extra string) string {
	base, err := os.ReadFile(offline(t))
	if err != nil {
		t.Fatal(err)
	}
	// The recipe ends with its egress section: more egress settings go into it.
	if rest, ok := strings.CutPrefix(extra, "egress:\n"); ok {
		base = []byte(strings.Replace(string(base), "egress:\n", "egress:\n"+rest, 1))
		extra = ""
	}
	p := filepath.Join(t.TempDir(), "vibe.yaml")
	if err := os.WriteFile(p, append(base, []byte(extra)...), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// assertNothingLeft: no builder instance, no intermediate image, no
// staging folder in the store.
func (e *env) assertNothingLeft() {
	e.t.Helper()
	insts, err := e.c.GetInstances(api.InstanceTypeAny)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, in := range insts {
		if strings.HasPrefix(in.Name, "vibe-builder-") {
			e.t.Errorf("builder %s left behind", in.Name)
		}
	}
	imgs, _ := e.c.GetImages()
	for _, img := range imgs {
		if img.Properties[images.PropIntermediate] != "" {
			e.t.Errorf("intermediate image %s left behind", img.Fingerprint[:12])
		}
	}
	store := filepath.Join(e.data, "vibe", "images")
	entries, _ := os.ReadDir(store)
	for _, en := range entries {
		if strings.HasPrefix(en.Name(), ".tmp-") {
			e.t.Errorf("partial store folder %s left behind", en.Name())
		}
	}
}

func TestE2EBakeOffline(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	out, errOut, code := e.run("build", "--config", offline(t), "--alias", e.alias, "--force", "--json")
	if code != 0 {
		t.Fatalf("bake failed (exit %d):\n%s", code, errOut)
	}
	var res images.Result
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json: %v\n%s", err, out)
	}
	if res.Cached || len(res.Fingerprint) != 64 || res.Alias != e.alias || len(res.Recipe) != 64 || res.Seconds <= 0 || len(res.Phases) < 8 {
		t.Errorf("result %+v", res)
	}
	t.Logf("bake %.1fs: %+v", res.Seconds, res.Phases)

	// The alias points at the fingerprint.
	alias, _, err := c.GetImageAlias(e.alias)
	if err != nil || alias.Target != res.Fingerprint {
		t.Fatalf("alias %s -> %v (%v), want %s", e.alias, alias, err, res.Fingerprint)
	}
	// cat meta rootfs | sha256sum is the fingerprint.
	dir := filepath.Join(e.data, "vibe", "images", res.Fingerprint)
	h := sha256.New()
	for _, f := range []string{"meta.tar.xz", "rootfs.tar"} {
		fh, err := os.Open(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(h, fh)
		fh.Close()
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != res.Fingerprint {
		t.Errorf("sha256(meta || rootfs) = %s, fingerprint %s", got, res.Fingerprint)
	}
	// The manifest describes the rootfs and the recipe.
	contents, err := images.ReadContentsFile(filepath.Join(dir, "meta.tar.xz"))
	if err != nil {
		t.Fatal(err)
	}
	m := contents.Manifest
	st, _ := os.Stat(filepath.Join(dir, "rootfs.tar"))
	if m.Recipe != res.Recipe || m.Rootfs.Size != st.Size() || m.InstanceType != "container" || m.Versions["tinyproxy"] == "" || m.Base.Fingerprint == "" {
		t.Errorf("manifest %+v", m)
	}

	// The SBOM in the metadata tarball lists the distribution's packages
	// and the toolchains provisioning recorded; inspect --sbom prints it
	// exactly, and the summary counts it.
	pkgs, err := contents.Packages()
	if err != nil {
		t.Fatalf("the image's SBOM: %v", err)
	}
	has := map[string]bool{}
	for _, p := range pkgs {
		has[p.Type+" "+p.Name] = true
	}
	for _, want := range []string{"deb bash", "deb nftables", "deb tinyproxy", "deb cloud-init", "tool tinyproxy"} {
		if !has[want] {
			t.Errorf("the SBOM lacks %s (%d packages)", want, len(pkgs))
		}
	}
	if res.Packages != len(pkgs) || len(pkgs) < 100 {
		t.Errorf("bake result counts %d packages, the SBOM %d", res.Packages, len(pkgs))
	}
	if doc, _, code := e.run("inspect", e.alias, "--sbom"); code != 0 || doc != string(contents.SBOM) || !strings.Contains(doc, `"bomFormat": "CycloneDX"`) {
		t.Errorf("inspect --sbom (exit %d) is not the image's SBOM", code)
	}
	if out, _, _ := e.run("inspect", e.alias); !strings.Contains(out, fmt.Sprintf("packages       %d in the SBOM (deb ", len(pkgs))) {
		t.Errorf("inspect does not count the SBOM:\n%s", out)
	}

	// A rebuild is a cache hit on the same fingerprint, in well under a second.
	start := time.Now()
	out, errOut, code = e.run("build", "--config", offline(t), "--alias", e.alias, "--json")
	took := time.Since(start)
	var again images.Result
	json.Unmarshal([]byte(out), &again)
	if code != 0 || !again.Cached || again.Fingerprint != res.Fingerprint {
		t.Errorf("rebuild: exit %d, %+v\n%s", code, again, errOut)
	}
	t.Logf("cache hit: %v (process included)", took)

	// inspect --user-data is exactly what render prints for the same inputs.
	baked, _, code := e.run("inspect", e.alias, "--user-data")
	rendered, _, _ := e.run("render", "--config", offline(t))
	if code != 0 || baked != rendered || !strings.HasPrefix(baked, "#cloud-config") {
		t.Error("inspect --user-data differs from render")
	}
	// Inspect from the store folder works with no daemon at all.
	cmd := e.cmd("inspect", dir, "--manifest")
	cmd.Env = append(cmd.Env, "INCUS_SOCKET=/nonexistent")
	if raw, err := cmd.Output(); err != nil || !bytes.Equal(raw, contents.ManifestRaw) {
		t.Errorf("inspect DIR without a daemon: %v", err)
	}

	// list shows it.
	out, _, _ = e.run("list", "--json")
	if !strings.Contains(out, res.Fingerprint) {
		t.Errorf("list --json does not show the image:\n%s", out)
	}

	// A plain incus launch boots with the sandbox user, the default-drop
	// table and a fresh machine-id, and, pointed at its own proxy as every
	// launch of vibe's does (vibe-egress), passes its self-test.
	name := "vibe-e2e-launch"
	e2e.ForceDelete(c, name)
	op, err := c.CreateInstance(api.InstancesPost{Name: name, Source: api.InstanceSource{Type: "image", Fingerprint: res.Fingerprint}, Start: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := op.Wait(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { e2e.ForceDelete(c, name) })
	check := `set -e
cloud-init status --wait >/dev/null || true
id -u vibe
nft list chain inet vibe output | grep -c 'policy drop'
cat /etc/machine-id
/usr/local/sbin/vibe-egress local </etc/vibe/allowlist && /usr/local/sbin/vibe-selftest >/dev/null && echo selftest-ok`
	var got string
	for i := 0; i < 30; i++ {
		got, _ = e2e.Exec(t, c, name, "bash", "-c", check)
		if strings.Contains(got, "selftest-ok") {
			break
		}
		time.Sleep(time.Second)
	}
	lines := strings.Split(strings.TrimSpace(got), "\n")
	if len(lines) != 4 || lines[0] != "1000" || lines[1] != "1" || len(lines[2]) != 32 || lines[3] != "selftest-ok" {
		t.Fatalf("launched instance: %q", got)
	}
	if lines[2] == machineIDOf(t, dir) {
		t.Error("the launched instance kept the builder's machine-id")
	}
	e.assertNothingLeft()
}

// machineIDOf reads /etc/machine-id out of a stored rootfs tarball: sealing
// leaves it empty.
func machineIDOf(t *testing.T, dir string) string {
	out, err := exec.Command("tar", "-xOf", filepath.Join(dir, "rootfs.tar"), "./etc/machine-id").Output()
	if err != nil {
		t.Fatalf("read machine-id from rootfs: %v", err)
	}
	if len(out) != 0 {
		t.Errorf("sealed image has a machine-id: %q", out)
	}
	return string(out)
}

// A recipe whose provisioning fails: the error names the failing step and
// module and shows the log; nothing is left behind and no alias is made.
func TestE2EFailingProvisioning(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	// Go needs a download; the builder has no network, so its step fails
	// (the name does not resolve: nothing leaves the machine).
	cfg := writeConfig(t, "\n# make a step fail\nmirrors:\n  go: https://goproxy.invalid\n")
	cfgText, _ := os.ReadFile(cfg)
	cfgText = bytes.Replace(cfgText, []byte("toolchains:\n"), []byte("toolchains:\n  go: {enabled: true}\n"), 1)
	os.WriteFile(cfg, cfgText, 0o644)
	_, errOut, code := e.run("build", "--config", cfg, "--alias", e.alias, "--force")
	if code == 0 {
		t.Fatal("a failing recipe baked")
	}
	for _, want := range []string{"bake failed during provision", "failing step: 45-go", "download failed: https://goproxy.invalid/golang.org/toolchain/@v/v0.0.1-go", "cloud-init reported errors", "scripts-user", "vibe: step 45-go: FAILED"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("error output lacks %q:\n%s", want, errOut)
		}
	}
	if _, _, err := c.GetImageAlias(e.alias); err == nil {
		t.Error("an alias was made for a failed bake")
	}
	e.assertNothingLeft()
}

func TestE2EKeepOnFailure(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	_, errOut, code := e.run("build", "--config", offline(t), "--alias", e.alias, "--force", "--keep-on-failure", "--timeout", "1s")
	if code == 0 {
		t.Fatal("a 1s timeout baked")
	}
	if !strings.Contains(errOut, "did not finish within 1s") || !strings.Contains(errOut, "was kept for inspection") {
		t.Errorf("stderr:\n%s", errOut)
	}
	insts, _ := c.GetInstances(api.InstanceTypeAny)
	kept := ""
	for _, in := range insts {
		if strings.HasPrefix(in.Name, "vibe-builder-") {
			kept = in.Name
		}
	}
	if kept == "" {
		t.Fatal("--keep-on-failure did not keep the builder")
	}
	e2e.ForceDelete(c, kept)
}

// Interrupting a bake at any phase removes the builder, leaves no alias and
// no partial store folder.
func TestE2EInterrupt(t *testing.T) {
	c := connect(t)
	for _, phase := range []string{"launch", "provision", "publish", "export"} {
		t.Run(phase, func(t *testing.T) {
			e := newEnv(t, c)
			cmd := e.cmd("build", "--config", offline(t), "--alias", e.alias, "--force")
			stderr, _ := cmd.StderrPipe()
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			var seen strings.Builder
			sc := bufio.NewScanner(stderr)
			sent := false
			for sc.Scan() {
				seen.WriteString(sc.Text() + "\n")
				if !sent && strings.Contains(sc.Text(), "▸ "+phase) {
					time.Sleep(300 * time.Millisecond)
					cmd.Process.Signal(syscall.SIGINT)
					sent = true
				}
			}
			err := cmd.Wait()
			if !sent {
				t.Fatalf("phase %s never began:\n%s", phase, seen.String())
			}
			if err == nil {
				t.Fatalf("an interrupted bake succeeded:\n%s", seen.String())
			}
			if !strings.Contains(seen.String(), "interrupted") {
				t.Errorf("no word of the interrupt:\n%s", seen.String())
			}
			if _, _, err := c.GetImageAlias(e.alias); err == nil {
				t.Error("an alias points at the interrupted bake")
			}
			e.assertNothingLeft()
		})
	}
}

func TestE2EClearErrors(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	_, errOut, code := e.run("build", "--config", offline(t), "--alias", e.alias, "--base", "no-such-image")
	if code == 0 || !strings.Contains(errOut, `base image "no-such-image"`) {
		t.Errorf("missing base: exit %d, %s", code, errOut)
	}
	_, errOut, code = e.run("build", "--config", offline(t), "--alias", e.alias, "--instance-type", "vm")
	supportsVM := false
	if srv, _, err := c.GetServer(); err == nil {
		supportsVM = strings.Contains(srv.Environment.Driver, "qemu")
	}
	if !supportsVM && (code == 0 || !strings.Contains(errOut, "use --instance-type container")) {
		t.Errorf("VM without KVM: exit %d, %s", code, errOut)
	}
	cmd := e.cmd("build", "--config", offline(t))
	cmd.Env = append(cmd.Env, "INCUS_SOCKET=/nonexistent/unix.socket")
	out, err := cmd.CombinedOutput()
	if err == nil || !strings.Contains(string(out), "incus daemon unreachable") || !strings.Contains(string(out), "sudo vibe setup") {
		t.Errorf("no daemon: %v, %s", err, out)
	}
	e.assertNothingLeft()
}

// gc keeps the newest images of an alias and whatever an alias points at,
// and removes the rest from incus and from the store.
func TestE2EListAndGC(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	bake := func() string {
		out, errOut, code := e.run("build", "--config", offline(t), "--alias", e.alias, "--force", "--json")
		if code != 0 {
			t.Fatalf("bake: %s", errOut)
		}
		var r images.Result
		json.Unmarshal([]byte(out), &r)
		return r.Fingerprint
	}
	old, current := bake(), bake()
	t.Cleanup(func() {
		if op, err := c.DeleteImage(old); err == nil {
			op.Wait()
		}
	})
	if old == current {
		t.Fatal("two forced bakes gave the same fingerprint")
	}
	out, _, _ := e.run("list")
	if !strings.Contains(out, current[:12]) || !strings.Contains(out, old[:12]) || !strings.Contains(out, e.alias) {
		t.Errorf("list:\n%s", out)
	}
	out, _, code := e.run("gc", "--keep", "0", "--alias", e.alias, "--dry-run")
	if code != 0 || !strings.Contains(out, "would remove image "+old[:12]) || strings.Contains(out, current[:12]) {
		t.Errorf("gc --dry-run:\n%s", out)
	}
	if _, _, err := c.GetImage(old); err != nil {
		t.Error("--dry-run removed an image")
	}
	out, _, code = e.run("gc", "--keep", "0", "--alias", e.alias)
	if code != 0 || !strings.Contains(out, "removed image "+old[:12]) {
		t.Errorf("gc:\n%s", out)
	}
	if _, _, err := c.GetImage(old); err == nil {
		t.Error("gc kept the old image")
	}
	if _, _, err := c.GetImage(current); err != nil {
		t.Error("gc removed the image the alias points at")
	}
	store := filepath.Join(e.data, "vibe", "images")
	if _, err := os.Stat(filepath.Join(store, old)); !os.IsNotExist(err) {
		t.Error("gc kept the old store folder")
	}
	if _, err := os.Stat(filepath.Join(store, current)); err != nil {
		t.Error("gc removed the current store folder")
	}
}

// A full disk under the store fails the bake with a message that says so and
// what to do, and leaves nothing behind.
func TestE2EDiskFull(t *testing.T) {
	c := connect(t)
	if os.Geteuid() != 0 {
		t.Fatal("needs root to mount a small tmpfs")
	}
	e := newEnv(t, c)
	if err := exec.Command("mount", "-t", "tmpfs", "-o", "size=40M", "tmpfs", e.data).Run(); err != nil {
		t.Fatalf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { exec.Command("umount", e.data).Run() })
	_, errOut, code := e.run("build", "--config", offline(t), "--alias", e.alias, "--force")
	if code == 0 {
		t.Fatal("a bake into a 40 MiB store succeeded")
	}
	for _, want := range []string{"bake failed during export", "no space left on device", "is full; free space", "vibe-build gc"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	e.assertNothingLeft()
}

// A bake killed outright (SIGKILL: no cleanup of its own) leaves a builder;
// the next bake removes it.
func TestE2EKilledBakeIsCleanedUpLater(t *testing.T) {
	c := connect(t)
	e := newEnv(t, c)
	cmd := e.cmd("build", "--config", offline(t), "--alias", e.alias, "--force")
	stderr, _ := cmd.StderrPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "▸ provision") {
			cmd.Process.Kill()
			break
		}
	}
	cmd.Wait()
	var left string
	insts, _ := c.GetInstances(api.InstanceTypeAny)
	for _, in := range insts {
		if strings.HasPrefix(in.Name, "vibe-builder-") {
			left = in.Name
		}
	}
	if left == "" {
		t.Fatal("a killed bake left no builder: the test did not kill it in time")
	}
	// The next bake (a cache hit still runs no cleanup, so force one).
	if _, errOut, code := e.run("build", "--config", offline(t), "--alias", e.alias, "--force"); code != 0 {
		t.Fatalf("bake after a killed one: %s", errOut)
	}
	if _, _, err := c.GetInstance(left); err == nil {
		t.Errorf("the killed bake's builder %s is still there", left)
	}
	e.assertNothingLeft()
}
