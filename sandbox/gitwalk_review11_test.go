package sandbox

// An eleventh hostile review: what the closing note left open. Each test
// runs the attack with real git first (the control), then asks the walk
// to record the file git ran or cut.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

// A dotfiles project is mounted and ~/.gitconfig links into it; its
// gitconfig includes .gitconfig.local, which git takes from ~ (the
// folder of the path it opened), a file of the user's outside every
// mount. That file's relative hooks folder is the project's: the walk,
// which read no file outside the mounts that a file in one includes,
// missed it.
func TestGitHostRunReview11DotfilesIncludeFromHome(t *testing.T) {
	home := gitEnv(t)
	os.Unsetenv("GIT_CONFIG_GLOBAL")
	dot := t.TempDir()
	repoAt(t, dot)
	writeFile(t, filepath.Join(dot, "gitconfig"), "[include]\n\tpath = .gitconfig.local\n")
	if err := os.Symlink(filepath.Join(dot, "gitconfig"), filepath.Join(home, ".gitconfig")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(home, ".gitconfig.local"), "[core]\n\thooksPath = .githooks\n")
	app := t.TempDir()
	repoAt(t, app)
	ran := plant(t, filepath.Join(app, ".githooks", "pre-commit"))
	out, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "y").CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: git commit did not run .githooks/pre-commit: %s", out)
	}
	f := gitHostRun([]workspace.Mount{{Source: app}, {Source: dot}}, nil)
	for k, v := range f {
		t.Logf("%s: cut=%q rel=%q", k, v.cut, v.rel)
	}
	if a := f[app]; a == nil || !slices.Contains(a.rel, ".githooks") && a.cut == "" {
		t.Errorf("~/.gitconfig -> dotfiles/gitconfig including ~/.gitconfig.local (hooksPath = .githooks): the project's hooks neither recorded nor cut")
	}
}

// nestedRepo makes a repository at app/sub, inside the project app's
// worktree and named by no index, whose core.fsmonitor is sub/x (which
// marks ran): what the agent can leave behind.
func nestedRepo(t *testing.T, app string) (sub, ran string) {
	t.Helper()
	sub = filepath.Join(app, "sub")
	repoAt(t, sub)
	git(t, sub, "config", "core.fsmonitor", "./x")
	return sub, plant(t, filepath.Join(sub, "x"))
}

// A repository the agent made inside the project, named by no index: the
// host's git add -A makes it a gitlink (with a warning), and from then on
// git status runs its core.fsmonitor. The walk, which went into gitlinks
// only, did not look at it.
func TestGitHostRunReview11NestedRepoAddedLater(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	nestedRepo(t, app)
	deep, deepRan := nestedRepo(t, filepath.Join(app, "a", "b"))
	rec, cut := coveredOrCut(t, app, "sub/.git/config")
	deepRec, _ := coveredOrCut(t, app, "a/b/sub/.git/config")
	git(t, app, "add", "-A")
	out, _ := exec.Command("git", "-C", app, "status").CombinedOutput()
	if !ranMark(t, deepRan) {
		t.Fatalf("control: git status after git add -A did not run %s/x: %s", deep, out)
	}
	if !rec && cut == "" {
		t.Errorf("sub/.git/config (its core.fsmonitor runs once git add -A takes sub in): neither recorded nor cut")
	}
	if !deepRec && cut == "" {
		t.Errorf("a/b/sub/.git/config: neither recorded nor cut")
	}
}

// Made during the session, such a repository is reported after it: the
// snapshot after holds its configuration, the one before did not.
func TestGitHostRunReview11NestedRepoReported(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	before := TakeSnapshot(mounts, nil)
	nestedRepo(t, filepath.Join(app, "vendor"))
	after := TakeSnapshot(mounts, nil)
	changed := after.Changed(before)
	t.Logf("changed=%q truncated=%q", changed, after.Truncated())
	if !slices.Contains(changed, filepath.Join(app, "vendor/sub/.git/config")) {
		t.Errorf("a repository made in the project during the session: its configuration not reported")
	}
}

// Past its bound of entries, the look for nested repositories cuts.
func TestGitHostRunNestedScanBound(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	for _, d := range []string{"a", "b", "c", "d"} {
		writeFile(t, filepath.Join(app, d, "f"), "")
	}
	defer func(n int) { gitMaxScan = n }(gitMaxScan)
	gitMaxScan = 4
	if cut := cutOf(t, app); !strings.Contains(cut, "nested") {
		t.Errorf("more entries than the bound: not cut (%q)", cut)
	}
	gitMaxScan = 100
	if cut := cutOf(t, app); cut != "" {
		t.Errorf("within the bound: cut %q", cut)
	}
}

// The whole walk of a project whose worktree holds 20,000 files in 1,000
// folders (the look for nested repositories lists them all) and one
// nested repository.
func BenchmarkGitHostRunWorktree(b *testing.B) {
	app := benchRepo(b)
	fillTree(b, app)
	if out, err := exec.Command("git", "init", "-q", filepath.Join(app, "src", "7", "nested")).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
		if f == nil || f.cut != "" || !slices.Contains(f.rel, "src/7/nested/.git/config") {
			b.Fatalf("walk: %+v", f)
		}
	}
}
