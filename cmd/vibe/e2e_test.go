package main

// End-to-end tests of every vibe command against the real daemon and the
// offline image (containers). They run under VIBE_E2E=1 (make check, CI),
// where a missing daemon is a failure; without it they are skipped.

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/internal/e2e"
	"github.com/vibesandbox/vibe/sandbox"
)

var vibeBin, vibeBuildBin string

func TestMain(m *testing.M) {
	if os.Getenv("VIBE_TEST_RELAY_HOLDER") != "" {
		os.Exit(m.Run()) // a helper process (relays_test.go): no binaries
	}
	dir, err := os.MkdirTemp("", "vibe-test")
	if err != nil {
		panic(err)
	}
	vibeBin, vibeBuildBin = filepath.Join(dir, "vibe"), filepath.Join(dir, "vibe-build")
	for bin, pkg := range map[string]string{vibeBin: ".", vibeBuildBin: "../vibe-build"} {
		if out, err := exec.Command("go", "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			panic(string(out))
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

const secretValue = "sk-vibe-e2e-not-a-real-key-7f3a"

// world is a host user's setup: configuration, secrets, projects.
type world struct {
	t       *testing.T
	c       incus.InstanceServer
	dir     string
	name    string
	project string
}

func newWorld(t *testing.T) *world {
	c := e2e.Daemon(t, "vibe-test-base")
	w := &world{t: t, c: c, dir: t.TempDir(), name: "vibe-e2e-" + strings.ToLower(strings.ReplaceAll(strings.TrimPrefix(t.Name(), "TestE2E"), "/", "-"))}
	os.Chmod(w.dir, 0o755)
	// The offline image: a cache hit once baked.
	abs, _ := filepath.Abs("../../examples/offline.yaml")
	if out, err := exec.Command(vibeBuildBin, "build", "--config", abs).CombinedOutput(); err != nil {
		t.Fatalf("bake the offline image: %v\n%s", err, out)
	}
	w.project = filepath.Join(w.dir, "config", "vibe", "workspace", "app")
	for _, d := range []string{w.project + "/src/deep", w.project + "/.git/hooks"} {
		os.MkdirAll(d, 0o755)
	}
	exec.Command("chown", "-R", "1000:1000", filepath.Join(w.dir, "config", "vibe", "workspace")).Run()
	cfg := fmt.Sprintf(`name: %s
image:
  alias: vibe-offline
instance:
  type: container
  cpu: 1
  memory: 1GiB
user:
  uid: 1000
  gid: 1000
toolchains:
  node: {enabled: false}
  java: {enabled: false}
  maven: {enabled: false}
  gradle: {enabled: false}
  chrome: {enabled: false}
  opentofu: {enabled: false}
  helm: {enabled: false}
agent:
  enabled: false
  command: [bash, -c, 'echo "agent cwd=$PWD user=$(id -un) key=$ANTHROPIC_API_KEY git=$GIT_AUTHOR_NAME args=$*"; if [ -n "$PLANT" ]; then echo "echo pwned" >>.envrc; fi', agent]
sandbox:
  workspace: %s/config/vibe/workspace
  workspaces: %s/config/vibe/workspaces
  persist: true
`, w.name, w.dir, w.dir) + gatewayOff
	os.WriteFile(filepath.Join(w.dir, "vibe.yaml"), []byte(cfg), 0o644)
	// The same file is the user's own configuration, for commands run
	// without --config (completion).
	os.WriteFile(filepath.Join(w.dir, "config", "vibe", "vibe.yaml"), []byte(cfg), 0o644)
	os.WriteFile(filepath.Join(w.dir, "config", "vibe", "secrets.env"), []byte("ANTHROPIC_API_KEY="+secretValue+"\n"), 0o600)
	t.Cleanup(func() { w.vibe("rm") })
	return w
}

// gatewayOff ends the offline recipe and the test world's configuration:
// most tests exercise the guest's own layer, on no network of their own.
// Tests behind the gateway put their settings in its place (withEgress).
const gatewayOff = "egress:\n  gateway:\n    enabled: false\n"

// withEgress replaces the configuration's gatewayOff with an egress block.
func withEgress(t *testing.T, cfg, egress string) string {
	t.Helper()
	if !strings.HasSuffix(cfg, gatewayOff) || !strings.HasPrefix(egress, "egress:\n") {
		t.Fatalf("the configuration does not end with %q, or %q is not an egress block", gatewayOff, egress)
	}
	return strings.TrimSuffix(cfg, gatewayOff) + egress
}

// vibe runs the binary in dir (default: the world's root) and returns
// stdout, stderr and the exit code.
func (w *world) vibeIn(dir string, stdin string, args ...string) (string, string, int) {
	w.t.Helper()
	return e2e.Run(w.t, w.command(context.Background(), dir, stdin, args...))
}

// command is vibe in dir with the world's configuration and folders.
func (w *world) command(ctx context.Context, dir string, stdin string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, vibeBin, append([]string{"--config", filepath.Join(w.dir, "vibe.yaml")}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(w.dir, "config"), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"), "HOME="+w.dir)
	cmd.Stdin = strings.NewReader(stdin)
	return cmd
}

func (w *world) vibe(args ...string) (string, string, int) {
	w.t.Helper()
	return w.vibeIn(w.dir, "", args...)
}

func (w *world) must(args ...string) string {
	w.t.Helper()
	out, errOut, code := w.vibe(args...)
	if code != 0 {
		w.t.Fatalf("vibe %s: exit %d\n%s%s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// instance is the name of the instance that holds the world's sandbox:
// vibe restore makes the new one under a name of its own.
func (w *world) instance() string {
	w.t.Helper()
	insts, err := w.c.GetInstances(api.InstanceTypeAny)
	if err != nil {
		w.t.Fatalf("list instances: %v", err)
	}
	for _, in := range insts {
		if in.Config[sandbox.KeySandbox] == "true" && in.Config[sandbox.KeyDiscarded] == "" &&
			(in.Config[sandbox.KeyName] == w.name || in.Config[sandbox.KeyName] == "" && in.Name == w.name) {
			return in.Name
		}
	}
	return w.name
}

// guest runs a command as root in the sandbox, outside vibe.
func (w *world) guest(argv ...string) (string, int) {
	w.t.Helper()
	return e2e.Exec(w.t, w.c, w.instance(), argv...)
}

// diskHotplug reports whether the daemon can add a disk to the running
// sandbox. On kernel 6.18 with incus 6.0.4 (this machine since December
// 2026) it cannot: LXC's move of the new mount into the container fails
// with EINVAL, for any disk, so vibe refuses to start anything in a
// sandbox it cannot give a new project (fail closed). Tests that add a
// project to a running sandbox then assert that refusal instead, and say
// so in their log.
func (w *world) diskHotplug() bool {
	w.t.Helper()
	dir := w.t.TempDir()
	os.Chmod(dir, 0o755)
	out, err := exec.Command("incus", "config", "device", "add", w.instance(), "vibe-hotplug-probe", "disk", "source="+dir, "path=/mnt/vibe-hotplug-probe").CombinedOutput()
	if err != nil {
		if strings.Contains(string(out), "Failed to add mount for device inside container") {
			w.t.Logf("THIS DAEMON CANNOT ADD A DISK TO A RUNNING CONTAINER (%s): the refusal is asserted instead", strings.TrimSpace(string(out)))
			return false
		}
		w.t.Fatalf("probe disk hot-plug: %v: %s", err, out)
	}
	if out, err := exec.Command("incus", "config", "device", "remove", w.instance(), "vibe-hotplug-probe").CombinedOutput(); err != nil {
		w.t.Fatalf("remove the hot-plug probe: %v: %s", err, out)
	}
	return true
}

func TestE2ELifecycle(t *testing.T) {
	w := newWorld(t)

	// up: creates, mounts, applies, self-tests, and reports phases.
	out := w.must("up", "--json")
	var up struct {
		Seconds float64         `json:"seconds"`
		Phases  []sandbox.Phase `json:"phases"`
	}
	if err := json.Unmarshal([]byte(out), &up); err != nil {
		t.Fatalf("up --json: %v\n%s", err, out)
	}
	var names []string
	for _, p := range up.Phases {
		names = append(names, p.Name)
	}
	// A fresh container: created with its mounts, booted, self-tested.
	if got := strings.Join(names, " "); got != "create ready selftest" {
		t.Errorf("up phases: %s, want create ready selftest", got)
	}
	t.Logf("up from the image: %.1fs %+v", up.Seconds, up.Phases)
	// The provisioned image needs no cloud-init: it stays off in a
	// sandbox, so a profile's cloud-init.user-data runs nothing there.
	if out, _ := w.guest("cloud-init", "status"); !strings.Contains(out, "disabled") {
		t.Errorf("cloud-init in a sandbox: %q, want disabled", out)
	}
	if out, code := w.guest("test", "-e", "/var/lib/cloud/instance"); code == 0 {
		t.Errorf("cloud-init ran in the sandbox: /var/lib/cloud/instance exists %s", out)
	}

	// The agent: as the sandbox user, in the project, with the secret and
	// the host's git identity, arguments passed through.
	// The host's git identity, in the world's HOME (vibe runs with it).
	git := exec.Command("git", "config", "--global", "user.name", "Vibe Tester")
	git.Env = append(os.Environ(), "HOME="+w.dir)
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git config: %v %s", err, out)
	}
	stdout, stderr, code := w.vibe("app", "--", "--resume", "x y")
	if code != 0 || !strings.Contains(stdout, "agent cwd=/workspace/app user=vibe key="+secretValue+" git=Vibe Tester") || !strings.Contains(stdout, "args=--resume x y") {
		t.Errorf("agent: exit %d\n%s%s", code, stdout, stderr)
	}
	// vibe . maps the host directory to the project and sub-path.
	stdout, _, _ = w.vibeIn(filepath.Join(w.project, "src", "deep"), "", ".")
	if !strings.Contains(stdout, "cwd=/workspace/app/src/deep") {
		t.Errorf("vibe . from src/deep: %s", stdout)
	}
	if _, stderr, code := w.vibeIn(w.dir, "", "."); code == 0 || !strings.Contains(stderr, "not inside any mounted workspace") {
		t.Errorf("vibe . outside the workspaces: exit %d %s", code, stderr)
	}

	// exec: stdout, stderr, stdin and the exit code pass through; same
	// environment as the agent.
	stdout, stderr, code = w.vibeIn(w.dir, "from-stdin", "exec", "--", "sh", "-c", `cat; echo " out $(id -un) $PWD"; echo err >&2; exit 42`)
	if code != 42 || stdout != "from-stdin out vibe /workspace\n" || stderr != "err\n" {
		t.Errorf("exec: exit %d stdout %q stderr %q", code, stdout, stderr)
	}
	// Files keep the host user's ownership.
	w.must("exec", "-p", "app", "--", "touch", "made-in-sandbox")
	if st, err := os.Stat(filepath.Join(w.project, "made-in-sandbox")); err != nil {
		t.Error("a file made in the sandbox is not on the host")
	} else if owner := st.Sys().(*syscall.Stat_t).Uid; owner != 1000 {
		t.Errorf("a file made in the sandbox belongs to uid %d on the host, want the host user's 1000", owner)
	}

	// The secret is in the agent's environment only: nowhere on the guest's disk.
	if out, _ := w.guest("sh", "-c", "grep -rls "+secretValue+" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev --exclude-dir=run 2>/dev/null; true"); strings.TrimSpace(out) != "" {
		t.Errorf("the secret is on the guest's disk: %s", out)
	}

	// A planted host-run file is reported after the session.
	_, stderr, _ = w.vibe("exec", "-p", "app", "--", "sh", "-c", `echo 'echo pwned' > .envrc; echo '#!/bin/sh' > .git/hooks/pre-commit`)
	if !strings.Contains(stderr, "changed during the session") || !strings.Contains(stderr, ".envrc") || !strings.Contains(stderr, "pre-commit") {
		t.Errorf("no warning about planted host-run files:\n%s", stderr)
	}

	// The sandbox user cannot touch the firewall.
	if _, _, code := w.vibe("exec", "--", "nft", "flush", "ruleset"); code == 0 {
		t.Error("the sandbox user flushed nftables")
	}
	if _, _, code := w.vibe("exec", "--", "/usr/local/sbin/vibe-firewall", "off"); code == 0 {
		t.Error("the sandbox user switched the firewall off")
	}

	// status and ls.
	out = w.must("status", "--json")
	var st sandbox.Info
	json.Unmarshal([]byte(out), &st)
	if st.Name != w.name || st.Status != "running" || !st.Newest || !strings.Contains(st.Firewall, "enforcing: yes") || st.Mounts["/workspace/app"] != w.project || st.Mounts["/var/lib/vibe/state/claude"] == "" {
		t.Errorf("status: %+v", st)
	}
	if out := w.must("ls", "--json"); !strings.Contains(out, `"name": "`+w.name+`"`) {
		t.Errorf("ls --json: %s", out)
	}

	// firewall: the operator can open and close it; an open firewall is
	// announced loudly but does not stop work.
	if out := w.must("firewall", "off"); !strings.Contains(out, "mode: off") {
		t.Errorf("firewall off: %s", out)
	}
	_, stderr, code = w.vibe("exec", "--", "true")
	if code != 0 || !strings.Contains(stderr, "firewall of "+w.name+" is OFF") {
		t.Errorf("exec with the firewall off: exit %d, %s", code, stderr)
	}
	if out := w.must("firewall", "on"); !strings.Contains(out, "enforcing: yes") {
		t.Errorf("firewall on: %s", out)
	}

	// allow: validated, persisted in the sandbox, applied to the proxy.
	if _, stderr, code := w.vibe("allow", "co.uk"); code == 0 || !strings.Contains(stderr, "public suffix") {
		t.Errorf("allow co.uk: exit %d %s", code, stderr)
	}
	w.must("allow", "=api.example.org")
	if out, code := w.guest("grep", "-cxF", `^api\.example\.org$`, "/etc/vibe/allowlist"); strings.TrimSpace(out) != "1" {
		t.Errorf("the proxy's allowlist lacks the new entry: %q (exit %d)", out, code)
	}

	// Fail closed: a firewall that cannot be enforced stops everything.
	w.guest("chmod", "000", "/usr/sbin/nft")
	stdout, stderr, code = w.vibe("exec", "--", "echo", "ran")
	if code == 0 || strings.Contains(stdout, "ran") || !strings.Contains(stderr, "could not be applied, so nothing will start in it (fail closed)") {
		t.Errorf("exec with an unenforceable firewall: exit %d, %q %q", code, stdout, stderr)
	}
	w.guest("chmod", "755", "/usr/sbin/nft")
	// config repairs a tampered table.
	w.guest("nft", "delete", "table", "inet", "vibe")
	if out := w.must("config"); !strings.Contains(out, "self-test passed") {
		t.Errorf("config: %s", out)
	}

	// restore: a fresh guest from the image; host files stay.
	w.guest("touch", "/root/guest-only")
	w.must("restore")
	if _, code := w.guest("test", "-e", "/root/guest-only"); code == 0 {
		t.Error("restore kept the old guest's files")
	}
	if _, err := os.Stat(filepath.Join(w.project, "made-in-sandbox")); err != nil {
		t.Error("restore lost a host file")
	}
	// It runs under an instance name of its own, which status names; the
	// old instance goes once dead.
	inst := w.instance()
	if inst == w.name {
		t.Errorf("the restored sandbox's instance is still %s", inst)
	}
	if out := w.must("status"); !strings.Contains(out, "instance   "+inst) {
		t.Errorf("status does not name the instance %s:\n%s", inst, out)
	}
	for i := 0; ; i++ {
		if _, _, err := w.c.GetInstance(w.name); err != nil {
			break
		}
		if i == 100 {
			t.Fatalf("the old instance %s is still there 20 s after restore", w.name)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// What a restore cut short left (marked discarded, never deleted)
	// stands in for nothing, and rm removes it too.
	if out, err := exec.Command("incus", "init", "vibe-offline", w.name+"-left", "-c", sandbox.KeySandbox+"=true", "-c", sandbox.KeyName+"="+w.name, "-c", sandbox.KeyDiscarded+"=now").CombinedOutput(); err != nil {
		t.Fatalf("make a discarded instance: %v %s", err, out)
	}
	if got := w.instance(); got != inst {
		t.Errorf("with a discarded instance beside it, the sandbox is %s, want %s", got, inst)
	}
	if out := w.must("ls"); strings.Count(out, w.name) != 1 {
		t.Errorf("ls lists the sandbox other than once:\n%s", out)
	}

	// stop, rm.
	w.must("stop")
	if out := w.must("status"); !strings.Contains(out, "stopped") {
		t.Errorf("status after stop: %s", out)
	}
	w.must("rm")
	if _, stderr, code := w.vibe("status"); code == 0 || !strings.Contains(stderr, "no such sandbox") {
		t.Errorf("status after rm: %d %s", code, stderr)
	}
	for _, n := range []string{inst, w.name + "-left"} {
		if _, _, err := w.c.GetInstance(n); err == nil {
			t.Errorf("rm left the instance %s", n)
			e2e.ForceDelete(w.c, n)
		}
	}
}

// A restore cut short (vibe killed after it set the agents' state aside,
// before the login came back) loses nothing: when the restore never got to
// discard the old instance, the next vibe puts the folder back whole (the
// instance still runs with it); when it did, the next vibe kills what is
// left of the old instance and brings the login back, and only the login.
func TestE2ERestoreCutShort(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	w.sh(`echo login >"$CLAUDE_CONFIG_DIR/.credentials.json"; echo '{"hooks":{}}' >"$CLAUDE_CONFIG_DIR/settings.json"`)
	state := filepath.Join(w.dir, "data", "vibe", "state", w.name, "claude")
	cut := func() string {
		t.Helper()
		inst, _, err := w.c.GetInstance(w.instance())
		if err != nil {
			t.Fatal(err)
		}
		st, err := os.Stat(state)
		if err != nil {
			t.Fatal(err)
		}
		// Named and timed as a restore three minutes ago names it.
		aside := fmt.Sprintf("%s.restoring.%s.%d", state, sandbox.FormerID(inst), time.Now().Add(-3*time.Minute).UnixNano())
		if err := os.Rename(state, aside); err != nil {
			t.Fatal(err)
		}
		os.Mkdir(state, 0o700)
		os.Chown(state, int(st.Sys().(*syscall.Stat_t).Uid), int(st.Sys().(*syscall.Stat_t).Gid))
		return inst.Name
	}
	read := func(name string) string { b, _ := os.ReadFile(filepath.Join(state, name)); return string(b) }
	pending := func() []string { m, _ := filepath.Glob(state + ".restoring.*"); return m }

	// Cut short before the old instance was discarded.
	old := cut()
	if _, stderr, code := w.vibe("up"); code != 0 || !strings.Contains(stderr, "back as it was") {
		t.Errorf("up after a restore cut short before its discard: exit %d %s", code, stderr)
	}
	if read(".credentials.json") != "login\n" || read("settings.json") == "" || len(pending()) != 0 {
		t.Errorf("the state did not come back whole: login %q, settings %q, pending %v", read(".credentials.json"), read("settings.json"), pending())
	}
	if got := w.instance(); got != old {
		t.Errorf("the sandbox moved to %s, want %s still", got, old)
	}

	// Cut short after the discard, the old instance still running.
	old = cut()
	if out, err := exec.Command("incus", "config", "set", old, sandbox.KeyDiscarded+"="+time.Now().Add(-3*time.Minute).UTC().Format(time.RFC3339)).CombinedOutput(); err != nil {
		t.Fatalf("discard %s: %v %s", old, err, out)
	}
	_, stderr, code := w.vibe("up")
	if code != 0 || !strings.Contains(stderr, "login and history are back") {
		t.Errorf("up after a restore cut short after its discard: exit %d %s", code, stderr)
	}
	if got := w.instance(); got == old {
		t.Errorf("the sandbox is still its discarded instance %s", old)
	}
	// Nor is the settings' going a change something left running made.
	if out, _ := w.sh(`cat "$CLAUDE_CONFIG_DIR/.credentials.json"; test -e "$CLAUDE_CONFIG_DIR/settings.json" && echo SETTINGS-CAME-BACK`); !strings.Contains(out, "login") || strings.Contains(out, "SETTINGS-CAME-BACK") || strings.Contains(out, "WARNING") {
		t.Errorf("the new sandbox's agent state: %s (want the login, not the settings, and no warning)", out)
	}
	if len(pending()) != 0 {
		t.Errorf("left pending: %v", pending())
	}
}

func TestE2EDoctor(t *testing.T) {
	w := newWorld(t)
	out, _, code := w.vibe("doctor")
	for _, want := range []string{"ok   incus daemon", "ok   image: vibe-offline", "storage"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor lacks %q:\n%s", want, out)
		}
	}
	if code != 0 {
		t.Errorf("doctor failed on a working host:\n%s", out)
	}
	cmd := exec.Command(vibeBin, "--config", filepath.Join(w.dir, "vibe.yaml"), "doctor")
	cmd.Env = append(os.Environ(), "INCUS_SOCKET=/nonexistent")
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "FAIL incus daemon") {
		t.Errorf("doctor without a daemon: %v %s", err, out)
	}
}

// Workspace mistakes are refused before anything is created.
func TestE2EWorkspaceErrors(t *testing.T) {
	w := newWorld(t)
	list := filepath.Join(w.dir, "config", "vibe", "workspaces")
	os.MkdirAll(filepath.Join(w.dir, "other"), 0o755)
	os.WriteFile(list, []byte("app="+w.dir+"/other\n"), 0o644)
	if _, stderr, code := w.vibe("up"); code == 0 || !strings.Contains(stderr, `two workspaces are named "app"`) {
		t.Errorf("collision: %d %s", code, stderr)
	}
	os.WriteFile(list, []byte(w.dir+"/missing\n"), 0o644)
	if _, stderr, code := w.vibe("up"); code == 0 || !strings.Contains(stderr, "prefix the entry with ?") {
		t.Errorf("missing: %d %s", code, stderr)
	}
	if _, _, err := w.c.GetInstance(w.instance()); err == nil {
		t.Error("a sandbox was created despite the errors")
	}
}

// shell: a login shell as the sandbox user on a pseudo-terminal in the
// guest; its exit status comes back. Completion offers sandbox and project
// names.
func TestE2EShellAndCompletion(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	stdout, stderr, code := w.vibeIn(w.dir, "echo \"in=$(id -un):$PWD:$(tty)\"; exit 3\n", "shell", "app")
	if code != 3 || !strings.Contains(stdout, "in=vibe:/workspace/app:/dev/pts/") {
		t.Errorf("shell: exit %d\n%s%s", code, stdout, stderr)
	}
	stdout, _, code = w.vibeIn(w.dir, "id -u; exit\n", "shell", "--root")
	if code != 0 || !strings.Contains(stdout, "0") {
		t.Errorf("shell --root: exit %d %s", code, stdout)
	}
	for line, want := range map[string]string{
		"vibe --name vibe-e2e-sh": w.name,
		"vibe shell ":             "app",
		"vibe ap":                 "app", // the default command's PROJECT
		"vibe sh":                 "shell",
	} {
		cmd := exec.Command(vibeBin)
		cmd.Env = append(os.Environ(), "COMP_LINE="+line, "COMP_POINT="+fmt.Sprint(len(line)),
			"XDG_CONFIG_HOME="+filepath.Join(w.dir, "config"), "HOME="+w.dir)
		cmd.Dir = w.dir
		out, _ := cmd.Output()
		if !strings.Contains(string(out), want) {
			t.Errorf("completion of %q: %q, want %s", line, out, want)
		}
	}
}

// More agents (vibe --agent NAME): each starts with its own command and
// environment, keeps its state folder across sessions, and restore keeps
// only its login and history. opencode's command is a script in its place
// (the offline image bakes no agent).
func TestE2EAgentPresets(t *testing.T) {
	w := newWorld(t)
	script := `echo "agent=opencode data=$XDG_DATA_HOME upd=$OPENCODE_DISABLE_AUTOUPDATE"; mkdir -p "$XDG_DATA_HOME/opencode/storage" "$XDG_DATA_HOME/opencode/bin" && echo login >"$XDG_DATA_HOME/opencode/auth.json" && echo planted >"$XDG_DATA_HOME/opencode/bin/lsp"`
	for _, p := range []string{filepath.Join(w.dir, "vibe.yaml"), filepath.Join(w.dir, "config", "vibe", "vibe.yaml")} {
		b, _ := os.ReadFile(p)
		cfg := strings.Replace(string(b), "node: {enabled: false}", "node: {enabled: true}", 1)
		cfg = strings.Replace(cfg, "sandbox:\n", "agents:\n  opencode:\n    enabled: true\n    command: [bash, -c, '"+script+"', opencode]\nsandbox:\n", 1)
		os.WriteFile(p, []byte(cfg), 0o644)
	}
	out, stderr, code := w.vibe("--agent", "opencode", "app")
	if code != 0 || !strings.Contains(out, "agent=opencode data=/var/lib/vibe/state/opencode upd=1") {
		t.Fatalf("vibe --agent opencode: exit %d\n%s%s", code, out, stderr)
	}
	// A tool it downloaded into its state runs at its next start: the
	// session's report names it.
	if !strings.Contains(stderr, "changed during the session") || !strings.Contains(stderr, "opencode/opencode/bin/lsp") {
		t.Errorf("the planted opencode/bin/lsp is not in the report of host-run changes:\n%s", stderr)
	}
	// Its data folder moves for its own sessions only.
	if out, _, _ := w.vibe("exec", "--", "sh", "-c", `echo "data=$XDG_DATA_HOME"`); strings.TrimSpace(out) != "data=" {
		t.Errorf("another session got opencode's environment: %q", out)
	}
	if _, stderr, code := w.vibe("--agent", "codex", "app"); code == 0 || !strings.Contains(stderr, "agents.codex.enabled is off") {
		t.Errorf("an agent that is not enabled: exit %d %s", code, stderr)
	}
	host := filepath.Join(w.dir, "data", "vibe", "state", w.name, "opencode", "opencode")
	if b, err := os.ReadFile(filepath.Join(host, "auth.json")); err != nil || string(b) != "login\n" {
		t.Errorf("opencode's login is not on the host: %q %v", b, err)
	}
	_, stderr, code = w.vibe("restore")
	if code != 0 || !strings.Contains(stderr, "opencode/bin") {
		t.Fatalf("restore: exit %d, want opencode/bin set aside:\n%s", code, stderr)
	}
	out, _ = w.guest("ls", "-A", "/var/lib/vibe/state/opencode/opencode")
	if got := strings.Join(strings.Fields(out), " "); got != "auth.json storage" {
		t.Errorf("after restore opencode's state holds %q, want its login and sessions only", got)
	}
}
