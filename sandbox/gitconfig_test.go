package sandbox

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

func needGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		if os.Getenv("VIBE_TEST_STRICT") != "" {
			t.Fatal("git is needed (VIBE_TEST_STRICT)")
		}
		t.Skip("no git")
	}
}

// hostRunPaths is gitHostRun's paths by mount.
func hostRunPaths(mounts []workspace.Mount) map[string][]string {
	out := map[string][]string{}
	for root, f := range gitHostRun(mounts, nil) {
		if len(f.rel) > 0 {
			out[root] = f.rel
		}
	}
	return out
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The paths a project's git configuration sends the host's git to are
// host-run files of that project: its hooks folder, the files it includes
// and, through them, what those set.
func TestGitHostRunFollowsHooksPathAndIncludes(t *testing.T) {
	gitEnv(t)
	app, other, ro := t.TempDir(), t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(app, ".git/config"), "[core]\n\thooksPath = .githooks\n[include]\n\tpath = ../conf/project.gitconfig\n[includeIf \"onbranch:main\"]\n\tpath = \""+filepath.Join(other, "shared.gitconfig")+"\"\n[include]\n\tpath = /etc/gitconfig-elsewhere\n\tpath = "+filepath.Join(ro, "x")+"\n")
	// An included file sets more: another hooks folder and another include.
	writeFile(t, filepath.Join(app, "conf/project.gitconfig"), "[core]\n\thooksPath = tools/hooks\n[include]\n\tpath = more.gitconfig\n")
	writeFile(t, filepath.Join(app, "conf/more.gitconfig"), "[user]\n\tname = x\n"+
		// Commands that start the project's scripts, and some that do not.
		"[filter \"gen\"]\n\tclean = ./tools/clean.sh --fast\n[alias]\n\tup = !scripts/up.sh now\n\tst = status\n"+
		"[core]\n\tfsmonitor = true\n\tpager = less -R\n[diff \"bin\"]\n\ttextconv = \"odd dir/x\"\n")
	writeFile(t, filepath.Join(other, "shared.gitconfig"), "[include]\n\tpath = nested\n")
	got := hostRunPaths([]workspace.Mount{{Source: app}, {Source: other}, {Source: ro, ReadOnly: true}})
	want := map[string][]string{
		app:   {".githooks", "conf/more.gitconfig", "conf/project.gitconfig", "dir/x", "now", "scripts/up.sh", "tools/clean.sh", "tools/hooks"},
		other: {"nested", "shared.gitconfig"},
	}
	for root, paths := range want {
		if !slices.Equal(got[root], paths) {
			t.Errorf("%s: %v, want %v", root, got[root], paths)
		}
	}
	if len(got) != 2 {
		t.Errorf("paths outside the writable mounts: %v", got)
	}
}

// A hooks folder that is the project itself protects the hooks, not the
// project; the user's own core.hooksPath, relative, is every project's.
func TestGitHostRunHooksAtRootAndGlobal(t *testing.T) {
	home := gitEnv(t)
	global := filepath.Join(home, "global.gitconfig")
	writeFile(t, global, "[core]\n\thooksPath = .hooks\n")
	t.Setenv("GIT_CONFIG_GLOBAL", global)
	app, lib := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(app, ".git/config"), "[core]\n\thooksPath = .\n")
	got := hostRunPaths([]workspace.Mount{{Source: app}, {Source: lib}})
	if !slices.Contains(got[app], "pre-commit") || slices.Contains(got[app], ".") || !slices.Contains(got[app], ".hooks") {
		t.Errorf("app: %v", got[app])
	}
	if !slices.Equal(got[lib], []string{".hooks"}) {
		t.Errorf("lib: %v", got[lib])
	}
}

// What the agent writes cannot lead the walk anywhere that blocks or out
// of the mounts: an included FIFO, a symlink out, a loop of includes, a
// flood of them, garbage.
func TestGitHostRunHostileIncludes(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	var b strings.Builder
	b.WriteString("[include]\n\tpath = ../fifo\n\tpath = ../out\n\tpath = ../loop\n\tpath = ../flood\n\tpath = ../garbage\n")
	writeFile(t, filepath.Join(app, ".git/config"), b.String())
	if err := syscall.Mkfifo(filepath.Join(app, "fifo"), 0o644); err != nil {
		t.Fatal(err)
	}
	secret := filepath.Join(t.TempDir(), "secret.gitconfig")
	writeFile(t, secret, "[include]\n\tpath = leaked-name\n")
	os.Symlink(secret, filepath.Join(app, "out"))
	writeFile(t, filepath.Join(app, "loop"), "[include]\n\tpath = loop\n")
	b.Reset()
	for i := range 500 {
		b.WriteString("[include]\n\tpath = f" + strings.Repeat("x", i%7) + string(rune('a'+i%26)) + "\n")
	}
	writeFile(t, filepath.Join(app, "flood"), b.String())
	writeFile(t, filepath.Join(app, "garbage"), "[[[ not a config\n")
	got := hostRunPaths([]workspace.Mount{{Source: app}})[app]
	if len(got) > gitMaxExtra+len(gitHooks) {
		t.Errorf("the flood was not bounded: %d paths", len(got))
	}
	for _, p := range got {
		if strings.Contains(p, "leaked") || strings.HasPrefix(p, "..") || filepath.IsAbs(p) {
			t.Errorf("a path from outside the mount: %q", p)
		}
	}
	for _, p := range []string{"fifo", "out", "loop", "garbage"} {
		if !slices.Contains(got, p) {
			t.Errorf("%s is not a host-run path: %v", p, got)
		}
	}
}

// The snapshot compares the files a project's configuration names: a hook
// the agent adds to .githooks is reported.
func TestSnapshotSeesConfiguredHooks(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	writeFile(t, filepath.Join(app, ".git/config"), "[core]\n\thooksPath = .githooks\n[include]\n\tpath = ../.gitconfig.local\n")
	mounts := []workspace.Mount{{Source: app}}
	before := TakeSnapshot(mounts, nil)
	writeFile(t, filepath.Join(app, ".githooks/pre-push"), "#!/bin/sh\ncurl evil\n")
	writeFile(t, filepath.Join(app, ".gitconfig.local"), "[core]\n\tfsmonitor = evil\n")
	changed := TakeSnapshot(mounts, nil).Changed(before)
	for _, want := range []string{".githooks/pre-push", ".gitconfig.local"} {
		if !slices.ContainsFunc(changed, func(c string) bool { return strings.HasSuffix(c, want) }) {
			t.Errorf("%s is not reported: %v", want, changed)
		}
	}
}

func TestCommandFiles(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin") // no entry in the worktree
	for _, tc := range []struct {
		key, cmd string
		files    []string
		opaque   bool
	}{
		{"core.fsmonitor", "./tools/clean.sh --fast", []string{"./tools/clean.sh"}, false},
		{"core.fsmonitor", "!scripts/up.sh now", []string{"scripts/up.sh", "now"}, false},
		{"core.fsmonitor", "  ../x/y", []string{"../x/y"}, true},
		{"core.pager", "/usr/bin/less -R", []string{"/usr/bin/less"}, false},
		{"core.pager", "less -R", nil, false},
		{"core.editor", "code --wait", nil, false},
		{"core.fsmonitor", "true", nil, false},
		{"filter.lfs.clean", "git-lfs clean -- %f", nil, false},
		{"filter.git-crypt.smudge", `"git-crypt" smudge`, []string{"smudge"}, false},
		{"difftool.x.cmd", "code --wait --diff $LOCAL $REMOTE", nil, false},
		{"core.sshcommand", "ssh -i ~/.ssh/deploy_key", []string{"~/.ssh/deploy_key"}, false},
		{"core.fsmonitor", "sh mon.sh", []string{"mon.sh"}, false},
		{"core.fsmonitor", "'./mon.sh'", []string{"./mon.sh"}, false},
		{"core.fsmonitor", "env ./mon.sh", []string{"./mon.sh"}, true},
		{"core.fsmonitor", "tool --config=./evil", []string{"./evil"}, true},
		{"alias.up", "!git fetch && git rebase", nil, false},
		{"alias.lg", "log --graph --oneline", nil, false},
		{"core.fsmonitor", `"odd dir/x"`, []string{"odd dir/x"}, false},
		{"core.fsmonitor", "$HOME/bin/x", nil, true},
		{"core.fsmonitor", "a/b;c", []string{"a/b"}, true},
		{"core.fsmonitor", "sh $(echo x)", nil, true},
		{"core.fsmonitor", "sh *.sh", nil, true},
		{"core.fsmonitor", "X=./m.sh sh", []string{"./m.sh"}, true},
		{"alias.st", "-c core.fsmonitor=./x.sh status", []string{"status"}, true},
		{"filter.x.clean", "~nosuchuser/mon", nil, true},
		{"core.fsmonitor", "", nil, false},
		{"core.fsmonitor", "./mon%x", []string{"./mon%x"}, false},
		{"core.fsmonitor", "./mon\u00a0x", []string{"./mon\u00a0x"}, true},
		{"core.fsmonitor", "./mon\vx", []string{"./mon\vx"}, true},
		{"core.fsmonitor", "cd ..\n./mon", []string{"..", "./mon"}, true},
		{"core.fsmonitor", "sh -- -mon", []string{"-mon"}, false},
		{"core.fsmonitor", "env -S./mon", nil, true},
		{"core.fsmonitor", "env -C.. ./mon", []string{"./mon"}, true},
		{"core.fsmonitor", "python3.11 -m mon", []string{"mon"}, true},
		{"core.fsmonitor", "node ./mon", []string{"./mon"}, true},
		{"core.pager", "less -FRX", nil, false},
		// Programs outside the project that read its files unnamed.
		{"core.fsmonitor", "make", nil, true},
		{"core.fsmonitor", "/usr/bin/make -s", []string{"/usr/bin/make"}, true},
		{"core.fsmonitor", "nice ./mon.sh", []string{"./mon.sh"}, true},
		{"core.fsmonitor", "../../../usr/bin/make", []string{"../../../usr/bin/make"}, true},
		{"core.fsmonitor", "python3 .", []string{"."}, true},
		{"core.fsmonitor", "/bin/sh -e ./mon.sh", []string{"/bin/sh", "./mon.sh"}, false},
		{"core.fsmonitor", "bash -l ./mon.sh", []string{"./mon.sh"}, true},
		{"core.fsmonitor", "sh -s", nil, true},
		{"core.fsmonitor", "-make", nil, true},
		{"filter.lfs.process", "git-lfs filter-process --skip", nil, false},
		{"credential.helper", "cache --timeout=3600", nil, false},
		{"credential.https://x.example.helper", "!gh auth git-credential", nil, false},
		{"credential.helper", "!make", nil, true},
		{"core.editor", "/usr/local/bin/nvim", []string{"/usr/local/bin/nvim"}, false},
		{"core.editor", "vim -S ./session.vim", []string{"./session.vim"}, true}, // the session sources more,
	} {
		files, opaque := commandFiles(tc.key, tc.cmd)
		if !slices.Equal(files, tc.files) || opaque != tc.opaque {
			t.Errorf("commandFiles(%q, %q) = %q, %v; want %q, %v", tc.key, tc.cmd, files, opaque, tc.files, tc.opaque)
		}
	}
}

// Whatever a configured command says, each file found is one word of it
// that no shell would read another way.
func FuzzCommandFiles(f *testing.F) {
	for _, s := range []string{"./x --y", "!a/b c", "less", `"q/x"`, "a/b;rm", "sh 'x.sh' --c=./d", "$A ~/b"} {
		f.Add(s)
	}
	os.Setenv("PATH", "/usr/bin:/bin") // no entry in the worktree: every file is a word
	f.Fuzz(func(t *testing.T, cmd string) {
		files, _ := commandFiles("core.fsmonitor", cmd)
		for _, p := range files {
			// A quoted word is a file of its own, spaces and all, with
			// its quotes off (and sh's line continuations).
			if p == "" || strings.ContainsAny(p, "\n\x00") || !quotesOff(strings.ReplaceAll(cmd, "\\\n", ""), p) {
				t.Errorf("commandFiles(%q) gives %q", cmd, p)
			}
		}
	})
}

// quotesOff reports whether p is a stretch of cmd with some of its quote
// characters left out: a word as sh reads it ("/'" is the word /', 'a"'b
// the word a"b).
func quotesOff(cmd, p string) bool {
	for i := range len(cmd) {
		at := map[int]bool{0: true} // how much of p the stretch from i has matched
		for k := i; k < len(cmd) && len(at) > 0; k++ {
			next := map[int]bool{}
			for j := range at {
				if j < len(p) && p[j] == cmd[k] {
					next[j+1] = true
				}
				if cmd[k] == '\'' || cmd[k] == '"' {
					next[j] = true
				}
			}
			if next[len(p)] {
				return true
			}
			at = next
		}
	}
	return false
}

func gitEnv(t *testing.T) string {
	t.Helper()
	needGit(t)
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	return home
}

// The user's own files are read, wherever they are, and every include
// they name is followed whatever its condition: a hooks folder set in a
// team file the user includes, or under a global includeIf, is found.
func TestGitHostRunUserFiles(t *testing.T) {
	home := gitEnv(t)
	app := t.TempDir()
	writeFile(t, filepath.Join(home, "team.gitconfig"), "[core]\n\thooksPath = .githooks\n")
	writeFile(t, filepath.Join(app, ".git/config"), "[include]\n\tpath = ~/team.gitconfig\n")
	if got := hostRunPaths([]workspace.Mount{{Source: app}})[app]; !slices.Contains(got, ".githooks") {
		t.Errorf("a hooks folder set in an included file of the user's: %v", got)
	}
	lib := t.TempDir()
	writeFile(t, filepath.Join(lib, ".git/config"), "[core]\n\tbare = false\n")
	writeFile(t, filepath.Join(home, "work.gitconfig"), "[core]\n\thooksPath = .hooks-work\n")
	global := filepath.Join(home, "global")
	writeFile(t, global, "[includeIf \"gitdir:"+lib+"/\"]\n\tpath = ~/work.gitconfig\n")
	t.Setenv("GIT_CONFIG_GLOBAL", global)
	if got := hostRunPaths([]workspace.Mount{{Source: lib}})[lib]; !slices.Contains(got, ".hooks-work") {
		t.Errorf("a hooks folder under the user's includeIf: %v", got)
	}
}

// A file in a mount is the agent's to write: what a file it includes
// from outside the mounts names in them cuts, and is not recorded (the
// guest protects what is recorded: the host's files are not the agent's
// to probe). git runs that hooks folder.
func TestGitHostRunAgentFileLeadsNowhereOutside(t *testing.T) {
	home := gitEnv(t)
	app := t.TempDir()
	writeFile(t, filepath.Join(home, "private.gitconfig"), "[core]\n\thooksPath = .private-hooks\n")
	writeFile(t, filepath.Join(app, ".git/config"), "[include]\n\tpath = ../agent.gitconfig\n")
	writeFile(t, filepath.Join(app, "agent.gitconfig"), "[include]\n\tpath = ~/private.gitconfig\n")
	if got := hostRunPaths([]workspace.Mount{{Source: app}})[app]; slices.Contains(got, ".private-hooks") {
		t.Errorf("an include of the agent's file was followed out of the mounts: %v", got)
	}
	if cut := cutOf(t, app); !strings.Contains(cut, `".private-hooks"`) {
		t.Errorf("the hooks folder a host file the agent includes names: not cut (%q)", cut)
	}
}

// An included file the agent wrote cannot crowd out what the user
// configured (read first), and a bound reached marks the project cut.
func TestGitHostRunFloodIsBoundedAndMarked(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	writeFile(t, filepath.Join(app, ".git/config"), "[include]\n\tpath = ../.gitconfig.local\n")
	writeFile(t, filepath.Join(app, ".git/config.worktree"), "[core]\n\thooksPath = .githooks\n")
	var b strings.Builder
	b.WriteString("[alias]\n")
	for i := range gitMaxExtra + 40 {
		fmt.Fprintf(&b, "\ta%d = !x/%d\n", i, i)
	}
	writeFile(t, filepath.Join(app, ".gitconfig.local"), b.String())
	f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
	if f == nil || !slices.Contains(f.rel, ".githooks") || f.cut == "" {
		t.Fatalf("found %+v", f)
	}
	if _, cut := TakeSnapshot([]workspace.Mount{{Source: app}}, nil)[filepath.Join(app, tooMany)]; !cut {
		t.Error("the snapshot does not say it was cut short")
	}
}

// Files made to blow up git's answer (a long name repeated on every
// line) cost no more than the output bound: the walk ends, marked cut.
func TestGitHostRunAmplificationIsBounded(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	writeFile(t, filepath.Join(app, ".git/config"), "[include]\n\tpath = ../c0\n")
	body := "[filter \"" + strings.Repeat("A", 1024) + "\"]\n" + strings.Repeat("clean\n", (1<<20-2048)/6)
	inc := "[include]\n"
	for i := range 15 {
		name := fmt.Sprintf("c%d", i+1)
		inc += "\tpath = " + name + "\n"
		writeFile(t, filepath.Join(app, name), body)
	}
	writeFile(t, filepath.Join(app, "c0"), inc)
	f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
	if f == nil || f.cut == "" || !slices.Contains(f.rel, "c0") {
		t.Errorf("found %+v", f)
	}
}

// git before 2.46 reads include.path ":(optional)x" as a file of that
// name, newer ones as x: both are host-run paths.
func TestGitHostRunOptionalInclude(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	writeFile(t, filepath.Join(app, ".git/config"), "[include]\n\tpath = :(optional)../inc\n")
	got := hostRunPaths([]workspace.Mount{{Source: app}})[app]
	if !slices.Contains(got, ".git/:(optional)../inc") || !slices.Contains(got, "inc") {
		t.Errorf(":(optional): %v", got)
	}
}

// Commands git runs from the worktree, beyond filters and aliases.
func TestGitHostRunMoreCommands(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	writeFile(t, filepath.Join(app, ".git/config"), "[trailer \"s\"]\n\tcommand = tools/t\n[tar \"x\"]\n\tcommand = tools/tar\n[remote \"l\"]\n\turl = /x\n\tuploadpack = tools/up\n[interactive]\n\tdiffFilter = tools/df\n[mergetool \"m\"]\n\tpath = tools/mt\n[core]\n\tgitProxy = tools/gp\n")
	got := hostRunPaths([]workspace.Mount{{Source: app}})[app]
	for _, p := range []string{"tools/t", "tools/tar", "tools/up", "tools/df", "tools/mt", "tools/gp"} {
		if !slices.Contains(got, p) {
			t.Errorf("missed %s: %v", p, got)
		}
	}
}

// A folder on the way to a configured path swapped for a symlink to a
// faithful copy is reported (os.Root would follow it to the same bytes).
func TestSnapshotSeesConfiguredPathsFolderSwapped(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	writeFile(t, filepath.Join(app, ".git/config"), "[core]\n\thooksPath = tools/hooks\n")
	writeFile(t, filepath.Join(app, "tools/hooks/pre-commit"), "#!/bin/sh\n")
	m := []workspace.Mount{{Source: app}}
	before := TakeSnapshot(m, nil)
	if err := os.Rename(filepath.Join(app, "tools"), filepath.Join(app, "t2")); err != nil {
		t.Fatal(err)
	}
	os.Symlink("t2", filepath.Join(app, "tools"))
	if c := TakeSnapshot(m, nil).Changed(before); len(c) == 0 {
		t.Error("tools swapped for a symlink: nothing reported")
	}
}
