package cloudinit

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/internal/e2e"
	"github.com/vibesandbox/vibe/provision"
)

// needRoot: the namespace tests need root; under VIBE_TEST_STRICT=1 its
// absence is a failure, not a skip.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("VIBE_TEST_STRICT") == "1" {
			t.Fatal("needs root (VIBE_TEST_STRICT=1)")
		}
		t.Skip("needs root")
	}
}

// extract writes rendered files into dir under their base names.
func extract(t *testing.T, d decoded, dir string, paths ...string) {
	t.Helper()
	for _, p := range paths {
		if err := os.WriteFile(filepath.Join(dir, filepath.Base(p)), []byte(d.file(t, p)), 0o755); err != nil {
			t.Fatal(err)
		}
	}
}

func tempDir(t *testing.T) string {
	dir := t.TempDir()
	// Other uids (the test's "sandbox user") must be able to read the scripts.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// The rendered firewall enforces default-deny in a real kernel, lets only
// the proxy's uid out to 80/443, and fails closed.
func TestRenderedFirewallEnforces(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"nft", "unshare", "ip", "setpriv", "timeout"} {
		e2e.Tool(t, tool, "")
	}
	doc, err := Render(load(t, "testdata/default.yaml", "vm"))
	if err != nil {
		t.Fatal(err)
	}
	dir := tempDir(t)
	extract(t, decode(t, doc), dir, "/usr/local/sbin/vibe-firewall", "/usr/local/lib/vibe/firewall.nft",
		"/usr/local/lib/vibe/firewall-off.nft", "/usr/local/lib/vibe/firewall-closed.nft")
	script, _ := filepath.Abs("testdata/firewall-netns.sh")
	out, err := exec.Command("unshare", "-n", "bash", script, dir, "daemon", "nobody").CombinedOutput()
	t.Logf("\n%s", out)
	if err != nil {
		t.Fatalf("firewall checks failed: %v", err)
	}
}

func TestRulesetsPassNftCheck(t *testing.T) {
	needRoot(t)
	e2e.Tool(t, "nft", "")
	e2e.Tool(t, "unshare", "")
	dir := tempDir(t)
	for _, name := range []string{"firewall.nft", "firewall-off.nft", "firewall-closed.nft"} {
		src, err := provision.File(name)
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(src), 0o644)
		out, err := exec.Command("unshare", "-n", "nft", "-c", "-D", "proxy_uid=4242", "-f", p).CombinedOutput()
		if err != nil {
			t.Errorf("nft -c %s: %v\n%s", name, err, out)
		}
	}
	// The check can fail.
	bad := filepath.Join(dir, "bad.nft")
	os.WriteFile(bad, []byte("table inet vibe { chain output { policy nonsense; } }\n"), 0o644)
	if err := exec.Command("unshare", "-n", "nft", "-c", "-f", bad).Run(); err == nil {
		t.Error("nft -c accepted a broken ruleset")
	}
}

// The real tinyproxy, with the rendered configuration and allowlist, admits
// listed hosts and refuses lookalikes and other ports.
func TestRenderedProxyFilters(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"tinyproxy", "curl", "unshare", "ip"} {
		e2e.Tool(t, tool, "")
	}
	if _, err := exec.Command("id", "tinyproxy").Output(); err != nil {
		t.Fatal("the tinyproxy user is missing: install Debian's tinyproxy package")
	}
	doc, err := Render(load(t, "testdata/default.yaml", "vm"))
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, doc)
	dir := tempDir(t)
	conf := d.file(t, "/etc/tinyproxy/tinyproxy.conf")
	// Point file paths into the test directory; everything else is as rendered.
	for directive, value := range map[string]string{
		"Filter":  filepath.Join(dir, "allowlist"),
		"LogFile": filepath.Join(dir, "tinyproxy.log"),
		"PidFile": filepath.Join(dir, "tinyproxy.pid"),
	} {
		re := regexp.MustCompile(`(?m)^` + directive + ` ".*"$`)
		if !re.MatchString(conf) {
			t.Fatalf("rendered tinyproxy.conf has no %s line", directive)
		}
		conf = re.ReplaceAllString(conf, directive+` "`+value+`"`)
	}
	os.WriteFile(filepath.Join(dir, "tinyproxy.conf"), []byte(conf), 0o644)
	extract(t, d, dir, "/etc/vibe/allowlist")
	os.Chmod(filepath.Join(dir, "allowlist"), 0o644)
	script, _ := filepath.Abs("testdata/proxy-netns.sh")
	out, err := exec.Command("unshare", "-n", "bash", script, dir).CombinedOutput()
	t.Logf("\n%s", out)
	if err != nil || strings.Contains(string(out), "FAIL") {
		t.Fatalf("proxy checks failed: %v", err)
	}
}
