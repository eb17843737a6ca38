package sandbox

// An eleventh hostile review: what the closing note left open. Each test
// runs the attack with real git first (the control), then asks the walk
// to record the file git ran or cut.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
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
