package sandbox

// An eighth hostile review, of sandbox/gitprograms.go and the command
// walk after it: values with opaque == false whose host-side run starts,
// loads or writes a project file that files does not hold. Each failed
// before the fix; the four end-to-end ones ran the file with real git.

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

func TestCommandFilesReview8Missed(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	for _, tc := range []struct{ key, cmd, runs string }{
		// F1 git's parse-options takes any unique prefix of a long
		// option, and clusters of short ones: gitRuns matches only the
		// full spelling.
		{"alias.f", `fetch --upload="sh x" .`, "x"},
		{"alias.l", `ls-remote --upl="sh x" .`, "x"},
		{"alias.p", `push --receive="sh x" . HEAD`, "x"},
		{"alias.p", `push --exe="sh x" . HEAD`, "x"},
		{"alias.r", `rebase --exe="sh x" -f HEAD~1`, "x"},
		{"alias.r", `rebase -fx "sh x" HEAD~1`, "x"},
		{"alias.g", `grep --open="sh x" RAN`, "x"},
		{"alias.g", `grep -iO"sh x" RAN`, "x"},
		{"alias.g", `grep -iOsh RAN`, "evil.sh"}, // runs every matching worktree file
		{"alias.e", `for-each-repo --conf=my.repos status`, "nest/.git/config"},
		// F2 git appends "$@" to a command with arguments: after a
		// trailing ; or &, git's first argument is the program.
		{"diff.external", `true;`, "t/ev"}, // $1 is the changed file's path
		{"diff.external", `cat &`, "t/ev"},
		// F3 a function that is declared but never defined shadows
		// nothing: the real program runs.
		{"core.pager", `false && make() { true; }; make`, "Makefile"},
		{"core.pager", `(make() { true; }); make`, "Makefile"},
		{"core.pager", `true | sh() { true; }; sh`, "x"}, // sh reads git's output
		{"alias.c", `!false && git() { true; }; git config alias.st "!sh x"`, "x"},
		// F4 a variable passes as any option's value, unchecked.
		{"core.fsmonitor", `vim -u "$1"`, "2"}, // $1 is "2"
		{"mergetool.x.cmd", `vim -u "$MERGED" "$MERGED"`, "$MERGED"},
		{"filter.x.clean", `emacsclient -a %f`, "%f"}, // %f: the worktree file, run
		// F5 external git-X and git-lfs: any words pass.
		{"merge.x.driver", `git-lfs merge-driver --program "sh x" --ancestor %O --current %A --other %B --output %A`, "x"},
		{"merge.x.driver", `git lfs merge-driver --program "sh x" --ancestor %O --current %A --other %B --output %A`, "x"},
		{"alias.fr", `filter-repo --force --commit-callback "import os; os.system('sh x')"`, "x"},
		// F6 keys git runs without sh: split_cmdline (no comments) or
		// the value whole.
		{"gpg.ssh.defaultkeycommand", `ssh # -oProxyCommand="sh x"`, "x"},
		{"core.gitproxy", `./p #`, "./p #"},
		// F7 git >= 2.42: --attr-source takes the next word.
		{"core.fsmonitor", `git --attr-source HEAD config alias.st "!sh x"`, "x"},
		// F8 bash as sh (macOS, Fedora, Arch): printf -v.
		{"core.fsmonitor", `printf -v 'a[$(sh x)]' %s 1`, "x"},
		{"core.pager", `printf -v PATH %s .; cat`, "cat"},
		// F9 remotes on this machine: TestRemoteRepo.
		// F10 a pager that writes the worktree from git's output.
		{"core.pager", "git apply", ".githooks/pre-commit"},
	} {
		recordsOrCuts(t, tc.key, tc.cmd, tc.runs)
	}
}

// F1 for real: an alias in the agent's team.gitconfig.
func TestGitHostRunReview8FetchUploadAbbrev(t *testing.T) {
	app := teamConfig(t, "[alias]\n\tf = fetch --upload=\\\"sh x\\\" .\n")
	ran := plant(t, filepath.Join(app, "x"))
	out, _ := exec.Command("git", "-C", app, "f").CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, `git f with alias.f = fetch --upload="sh x" .`)
}

// F2 for real: diff.external = true; runs the changed file.
func TestGitHostRunReview8TrailingSemicolon(t *testing.T) {
	app := teamConfig(t, "[diff]\n\texternal = \"true;\"\n")
	ran := plant(t, filepath.Join(app, "t", "ev"))
	git(t, app, "add", "t/ev")
	git(t, app, "commit", "-qm", "ev")
	f, _ := os.OpenFile(filepath.Join(app, "t", "ev"), os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("# changed\n")
	f.Close()
	out, _ := exec.Command("git", "-C", app, "diff").CombinedOutput()
	ranAndCovered(t, app, "t/ev", ran, out, "git diff with diff.external = true;")
}

// F6 for real: gpg.ssh.defaultKeyCommand is split as an alias, so # is
// a word and ssh gets -oProxyCommand (nothing leaves the machine).
func TestGitHostRunReview8DefaultKeyCommand(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client here; TestCommandFilesReview8Missed holds the value")
	}
	app := teamConfig(t, "[gpg]\n\tformat = ssh\n[gpg \"ssh\"]\n\tdefaultKeyCommand = \"ssh # -oProxyCommand=\\\"sh x\\\" -oBatchMode=yes\"\n")
	ran := plant(t, filepath.Join(app, "x"))
	out, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "--allow-empty", "-S", "-qm", "s").CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, "git commit -S with gpg.ssh.defaultKeyCommand = ssh # -oProxyCommand=\"sh x\"")
}

// F3 for real: make() is declared, never defined; make reads Makefile.
func TestGitHostRunReview8UndefinedFunction(t *testing.T) {
	app := teamConfig(t, "[alias]\n\tm = \"!false && make() { true; }; make\"\n")
	ran := plant(t, filepath.Join(app, "x"))
	writeFile(t, filepath.Join(app, "Makefile"), "all:\n\t@./x\n")
	out, _ := exec.Command("git", "-C", app, "m").CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: git m did not run make: %s", out)
	}
	if rec, cut := coveredOrCut(t, app, "Makefile"); !rec && cut == "" {
		t.Errorf("git m runs make on Makefile; neither recorded nor cut")
	}
}

// F9 for real: an agent-written remote names a bare repository in the
// project, whose pre-receive hook a push runs.
func TestGitHostRunReview8LocalRemote(t *testing.T) {
	app := teamConfig(t, "[remote \"up\"]\n\turl = ./evil.git\n")
	git(t, app, "init", "-q", "--bare", "evil.git")
	ran := plant(t, filepath.Join(app, "evil.git", "hooks", "pre-receive"))
	git(t, app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
	out, _ := exec.Command("git", "-C", app, "push", "-q", "up", "HEAD:refs/heads/x").CombinedOutput()
	ranAndCovered(t, app, "evil.git/hooks/pre-receive", ran, out, "git push with remote.up.url = ./evil.git")
}

// The eighth review's note, for real: the host user's PATH has a folder
// of the project (direnv's PATH_add bin), where the agent puts a less
// that git runs as its pager, named by no configuration at all.
func TestGitHostRunPATHFolderInProject(t *testing.T) {
	app := committed(t)
	ran := plant(t, filepath.Join(app, "bin", "less"))
	t.Setenv("PATH", filepath.Join(app, "bin")+":"+os.Getenv("PATH"))
	t.Setenv("GIT_PAGER", "less") // as git's default pager is
	ranAndCovered(t, app, "bin/less", ran, logOnTerminal(app), "git log's pager less through PATH")
}

// committed is a new repository with one commit, for git log to page.
func committed(t *testing.T) (app string) {
	t.Helper()
	gitEnv(t)
	app = t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x")
	return app
}

// logOnTerminal runs git log in app on a terminal (script), so that git
// starts its pager, and returns what it printed.
func logOnTerminal(app string) []byte {
	out, _ := exec.Command("script", "-qec", "git -C "+app+" log", "/dev/null").CombinedOutput()
	return out
}
