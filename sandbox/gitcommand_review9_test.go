package sandbox

// A ninth hostile review, of HEAD~1/HEAD~2 (gitSub, gitRunsLong,
// gitConfigRead, "$@", top-level functions, remoteRepo): values with
// opaque == false (or keys not walked) whose host-side run starts, loads
// or writes a project file that the walk neither records nor cuts.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestCommandFilesReview9Missed(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	for _, tc := range []struct{ key, cmd, runs string }{
		// N1 a function's call words reach its body's "$@"/$1: the body
		// is looked at with git's variables, the call with no rules.
		{"alias.f", `!f() { git fetch "$@"; }; f --upload-pack="sh x" .`, "x"},
		{"alias.g", `!f() { git grep "$@"; }; f -O"sh x" -e RAN`, "x"},
		{"alias.g", `!f() { git grep "$1" -e RAN; }; f -Osh`, "RAN"}, // sh runs each matching file
		{"core.pager", `f() { less "$@"; }; f -kkeys`, "keys"},
		{"core.sshcommand", `f() { ssh "$@"; }; f -oProxyCommand="sh x"`, "x"},
		// N2 an option that takes the next word takes "--" too: git
		// parses what follows as options; vibe as words.
		{"alias.f", `fetch -o -- --upload-pack="sh x" .`, "x"},
		{"alias.g", `grep -e -- -O"sh x"`, "x"},
		// N3 config's read action is switched off again (OPT_BIT takes
		// --no-), or -l is config's value pattern, not an action.
		{"alias.c", `config --get --no-get core.fsmonitor "sh x"`, "x"},
		{"alias.c", `config -l --no-list core.fsmonitor "sh x"`, "x"},
		{"alias.c", `config core.fsmonitor "sh x" -l`, "x"},
		// N4 a helper that is no absolute path is git credential-VALUE:
		// ./x is the file git-credential-./x (a folder git-credential-.).
		{"credential.helper", "./x", "git-credential-./x"},
		// N5 git-mergetool--lib sources $MERGE_TOOLS_DIR/$tool.
		{"alias.d", `difftool -y -t ../../../../../../../../proc/self/cwd/x`, "x"},
		{"alias.m", `mergetool --tool=../../../../../../../../proc/self/cwd/x`, "x"},
	} {
		recordsOrCuts(t, tc.key, tc.cmd, tc.runs)
	}
}

// N6 with a relative PATH entry: a strategy is git-merge-NAME from PATH.
func TestCommandFilesReview9Strategy(t *testing.T) {
	t.Setenv("PATH", ".:/usr/bin:/bin")
	for _, tc := range []struct{ key, cmd, runs string }{
		{"alias.m", "merge -s evil", "git-merge-evil"},
		{"alias.p", "pull --strategy=evil", "git-merge-evil"},
		{"alias.r", "rebase -s evil", "git-merge-evil"},
		{"alias.c", "cherry-pick --strategy evil", "git-merge-evil"},
	} {
		recordsOrCuts(t, tc.key, tc.cmd, tc.runs)
	}
}

// N1 for real.
func TestGitHostRunReview9FunctionArgs(t *testing.T) {
	app := teamConfig(t, "[alias]\n\tf = \"!f() { git fetch \\\"$@\\\"; }; f --upload-pack=\\\"sh x\\\" .\"\n")
	ran := plant(t, filepath.Join(app, "x"))
	out, _ := exec.Command("git", "-C", app, "f").CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, `git f with alias.f = !f() { git fetch "$@"; }; f --upload-pack="sh x" .`)
}

// N2 for real.
func TestGitHostRunReview9DashDashValue(t *testing.T) {
	app := teamConfig(t, "[alias]\n\tf = fetch -o -- --upload-pack=\\\"sh x\\\" .\n")
	ran := plant(t, filepath.Join(app, "x"))
	out, _ := exec.Command("git", "-C", app, "f").CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, `git f with alias.f = fetch -o -- --upload-pack="sh x" .`)
}

// N3 for real: the alias writes core.fsmonitor into the user's
// .git/config; the next git status runs x. (The walk is the session
// start's: before the user runs the alias.)
func TestGitHostRunReview9ConfigNoGet(t *testing.T) {
	app := teamConfig(t, "[alias]\n\tc = config --get --no-get core.fsmonitor \\\"sh x\\\"\n")
	ran := plant(t, filepath.Join(app, "x"))
	rec, cut := coveredOrCut(t, app, "x")
	out, _ := exec.Command("git", "-C", app, "c").CombinedOutput()
	out2, _ := exec.Command("git", "-C", app, "status").CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: git c; git status did not run x: %s%s", out, out2)
	}
	if !rec && cut == "" {
		t.Errorf(`git c (alias.c = config --get --no-get core.fsmonitor "sh x") then git status runs x; neither recorded nor cut`)
	}
}

// N4 for real: credential.helper = ./x runs git-credential-./x.
func TestGitHostRunReview9CredentialRelative(t *testing.T) {
	app := teamConfig(t, "[credential]\n\thelper = ./x\n")
	ran := plant(t, filepath.Join(app, "git-credential-.", "x"))
	cmd := exec.Command("git", "-C", app, "credential", "approve")
	cmd.Stdin = strings.NewReader("protocol=https\nhost=example.invalid\nusername=u\npassword=p\n\n")
	out, _ := cmd.CombinedOutput()
	ranAndCovered(t, app, "git-credential-./x", ran, out, "git credential approve with credential.helper = ./x")
}

// N5 for real: diff.tool (not walked) names a file the helper sources.
func TestGitHostRunReview9DiffToolSourced(t *testing.T) {
	app := teamConfig(t, "[diff]\n\ttool = ../../../../../../../../../../proc/self/cwd/x\n")
	ran := filepath.Join(t.TempDir(), "ran")
	// Sourced: no exec bit, and no exit (else difftool guesses vimdiff).
	writeFile(t, filepath.Join(app, "x"), "echo pwned >>'"+ran+"'\n")
	writeFile(t, filepath.Join(app, "f"), "a\n")
	git(t, app, "add", "f")
	git(t, app, "commit", "-qm", "f")
	writeFile(t, filepath.Join(app, "f"), "b\n")
	cmd := exec.Command("git", "-C", app, "difftool", "-y")
	cmd.Env = append(os.Environ(), "GIT_DIFFTOOL_PROMPT=false")
	out, _ := cmd.CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, "git difftool with diff.tool = ../../../proc/self/cwd/x")
}

// N7 for real: remote.X.vcs (not walked) is git-remote-VCS, a path.
func TestGitHostRunReview9RemoteVcs(t *testing.T) {
	app := teamConfig(t, "[remote \"origin\"]\n\turl = https://example.invalid/r\n\tvcs = ./x\n")
	ran := plant(t, filepath.Join(app, "git-remote-.", "x"))
	out, _ := exec.Command("git", "-C", app, "fetch", "origin").CombinedOutput()
	ranAndCovered(t, app, "git-remote-./x", ran, out, "git fetch with remote.origin.vcs = ./x")
}

// N8 for real: a remote named by its path (remote.pushDefault,
// branch.NAME.remote, .pushRemote; none walked) pushes to a repository in
// the project, whose pre-receive runs.
func TestGitHostRunReview9PushDefaultPath(t *testing.T) {
	for _, conf := range []string{
		"[remote]\n\tpushDefault = ./evil.git\n[push]\n\tdefault = current\n",
		"[branch \"main\"]\n\tpushRemote = ./evil.git\n[push]\n\tdefault = current\n",
		"[branch \"main\"]\n\tremote = ./evil.git\n\tmerge = refs/heads/main\n",
	} {
		app := teamConfig(t, conf)
		git(t, app, "init", "-q", "--bare", "evil.git")
		ran := plant(t, filepath.Join(app, "evil.git", "hooks", "pre-receive"))
		git(t, app, "commit", "-q", "--allow-empty", "-m", "x")
		out, _ := exec.Command("git", "-C", app, "push").CombinedOutput()
		ranAndCovered(t, app, "evil.git/hooks/pre-receive", ran, out, "git push with "+strings.ReplaceAll(conf, "\n", " "))
	}
}

// N9 for real: an alias pushes to a path (recorded as a program, not a
// remote): the repository's own core.hooksPath sends receive-pack to
// hooks elsewhere in the project.
func TestGitHostRunReview9AliasPushPath(t *testing.T) {
	app := teamConfig(t, "[alias]\n\tp = push ./evil.git HEAD:refs/heads/x\n")
	git(t, app, "init", "-q", "--bare", "evil.git")
	git(t, filepath.Join(app, "evil.git"), "config", "core.hooksPath", "../hk")
	ran := plant(t, filepath.Join(app, "hk", "pre-receive"))
	git(t, app, "commit", "-q", "--allow-empty", "-m", "x")
	out, _ := exec.Command("git", "-C", app, "p").CombinedOutput()
	ranAndCovered(t, app, "hk/pre-receive", ran, out, "git p with alias.p = push ./evil.git HEAD:refs/heads/x")
}

// False cuts of the new code: ordinary aliases. (Still cut, by design:
// worktree, which can check the agent's commit out anywhere, and
// submodule, which clones and runs update commands.)
func TestCommandFilesReview9Ordinary(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	for _, tc := range []struct{ key, cmd string }{
		{"alias.sc", "show --cc"},
		{"alias.lc", "log -p --cc"},
		{"alias.fp", "format-patch --to=list@example.invalid -1"},
		{"alias.ct", "commit --template=.gitmessage"},
		{"alias.nuke", "clean -fdx"},
		{"alias.hide", "update-index --assume-unchanged"},
		{"alias.rs", "restore --staged --"},
	} {
		passes(t, tc.key, tc.cmd)
	}
}
