package main

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/internal/e2e"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vibe-build-test")
	if err != nil {
		panic(err)
	}
	bin = filepath.Join(dir, "vibe-build")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		panic(string(out))
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run executes vibe-build in an empty directory with no user configuration.
func run(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+cmd.Dir, "HOME="+cmd.Dir)
	return e2e.Run(t, cmd)
}

func abs(t *testing.T, p string) string {
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestRenderWithoutAnyFile(t *testing.T) {
	out, errOut, code := run(t, "render")
	if code != 0 || !strings.HasPrefix(out, "#cloud-config\n") {
		t.Fatalf("render on a fresh machine: exit %d, stderr %q", code, errOut)
	}
}

func TestRenderMatchesGolden(t *testing.T) {
	out, errOut, code := run(t, "render", "--config", abs(t, "../../cloudinit/testdata/default.yaml"), "--instance-type", "container")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want, err := os.ReadFile("../../cloudinit/testdata/default-container.golden.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Error("vibe-build render differs from the golden render of the same inputs")
	}
}

func TestRenderToFileIsAtomic(t *testing.T) {
	dir := t.TempDir()
	target := filepath.Join(dir, "user-data")
	if _, errOut, code := run(t, "render", "-o", target); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	first, _ := os.ReadFile(target)
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("toolchains:\n  nodejs: {}\n"), 0o644)
	_, errOut, code := run(t, "render", "--config", bad, "-o", target)
	if code == 0 || !strings.Contains(errOut, "bad.yaml:2:3: unknown key \"nodejs\" in toolchains") {
		t.Fatalf("bad config: exit %d, stderr %q", code, errOut)
	}
	after, _ := os.ReadFile(target)
	if !bytes.Equal(first, after) {
		t.Error("a failed render changed the output file")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 2 {
		t.Errorf("temporary files left behind: %v", entries)
	}
}

func TestValidateJSON(t *testing.T) {
	out, _, code := run(t, "validate", "--json")
	var res validateResult
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("validate --json: %v\n%s", err, out)
	}
	if code != 0 || !res.Valid || len(res.Recipe) != 64 {
		t.Errorf("defaults do not validate: exit %d %+v", code, res)
	}
	bad := filepath.Join(t.TempDir(), "vibe.yaml")
	os.WriteFile(bad, []byte("egress:\n  allow: [github.com, '*']\n"), 0o644)
	out, _, code = run(t, "validate", "--json", "--config", bad)
	res = validateResult{}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("validate --json: %v\n%s", err, out)
	}
	if code != 1 || res.Valid || !strings.Contains(res.Checks[0].Detail, "vibe.yaml:2:23: egress.allow[1]") {
		t.Errorf("bad config: exit %d %+v", code, res)
	}
}

func TestRecipeFollowsInputs(t *testing.T) {
	a, _, _ := run(t, "recipe")
	b, _, _ := run(t, "recipe")
	c, _, _ := run(t, "recipe", "--instance-type", "container")
	d, _, _ := run(t, "recipe", "--base", "images:debian/13/cloud")
	if len(strings.TrimSpace(a)) != 64 || a != b {
		t.Errorf("recipe not stable: %q %q", a, b)
	}
	if a == c || a == d || c == d {
		t.Error("instance type and base image must change the recipe")
	}
}

func TestBadFlagsSayWhatIsAllowed(t *testing.T) {
	_, errOut, code := run(t, "render", "--instance-type", "kvm")
	if code == 0 || !strings.Contains(errOut, `use "vm" or "container"`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = run(t, "render", "--base", "images:bad name")
	if code == 0 || !strings.Contains(errOut, "--base") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

func TestCompletion(t *testing.T) {
	for _, sh := range []string{"bash", "zsh", "fish"} {
		out, errOut, code := run(t, "completion", sh, "-c")
		if code != 0 || !strings.Contains(out, "vibe-build") {
			t.Errorf("%s: exit %d, %q %q", sh, code, out, errOut)
		}
	}
}
