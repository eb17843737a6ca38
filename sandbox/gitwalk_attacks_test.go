package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

// Attacks on the walk through a project's git folders, each one the
// host's git 2.39 fell for (its core.fsmonitor ran on git status) while
// vibe neither recorded the file nor cut the project short, and setups
// that must not be cut short.

// coveredOrCut reports whether gitHostRun, for project app, either
// records rel or cuts the project short.
func coveredOrCut(t *testing.T, app, rel string) (recorded bool, cut string) {
	t.Helper()
	f := gitHostRun([]workspace.Mount{{Source: app}})[app]
	if f == nil {
		return false, ""
	}
	t.Logf("rel=%q cut=%q", f.rel, f.cut)
	for _, r := range f.rel {
		if r == rel || strings.HasPrefix(rel, r+"/") {
			return true, f.cut
		}
	}
	return false, f.cut
}

// Two gitlinks whose gitfiles name one git folder: the host's git status
// goes into the gitlinks of each worktree, which a walk by git folder
// alone looked at for the first only. Such a folder cuts the project.
func TestGitHostRunSharedGitDirIsCut(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	os.MkdirAll(filepath.Join(app, "x"), 0o755)
	git(t, app, "init", "-q", "--separate-git-dir=.g", "x")
	writeFile(t, filepath.Join(app, "x/.git"), "gitdir: ../.g\n")
	git(t, filepath.Join(app, "x"), "commit", "-q", "--allow-empty", "-m", "x")
	id := git(t, filepath.Join(app, "x"), "rev-parse", "HEAD")
	writeFile(t, filepath.Join(app, "y/.git"), "gitdir: ../.g\n")
	addGitlink(t, app, "x", id)
	addGitlink(t, app, "y", id)
	addGitlink(t, filepath.Join(app, "x"), "z", id) // in .g/index
	repoAt(t, filepath.Join(app, "y/z"))
	git(t, filepath.Join(app, "y/z"), "config", "core.fsmonitor", "echo pwned")
	if rec, cut := coveredOrCut(t, app, "y/z/.git/config"); !rec && cut == "" {
		t.Errorf("y/z/.git/config (run by the host's git status) neither recorded nor cut")
	}
}

// A commondir through a symlink, then "..": git resolves it on disk
// (strbuf_realpath), so the text names another folder than git's.
func TestGitHostRunCommondirThroughLink(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	os.MkdirAll(filepath.Join(app, "deep/a"), 0o755)
	id := repoAt(t, filepath.Join(app, "deep/r"))
	os.Rename(filepath.Join(app, "deep/r/.git"), filepath.Join(app, "deep/c"))
	os.MkdirAll(filepath.Join(app, "sub/.git"), 0o755)
	os.Symlink("../../deep/a", filepath.Join(app, "sub/.git/lnk"))
	writeFile(t, filepath.Join(app, "sub/.git/HEAD"), "ref: refs/heads/main\n")
	writeFile(t, filepath.Join(app, "sub/.git/commondir"), "lnk/../c\n")
	if got := git(t, filepath.Join(app, "sub"), "rev-parse", "--git-common-dir"); got != filepath.Join(app, "deep/c") {
		t.Fatalf("control: git's common dir is %s", got)
	}
	addGitlink(t, app, "sub", id)
	git(t, app, "config", "--file", filepath.Join(app, "deep/c/config"), "core.fsmonitor", "echo pwned")
	if rec, cut := coveredOrCut(t, app, "deep/c/config"); !rec && cut == "" {
		t.Errorf("the common dir's config git reads is neither recorded nor cut")
	}
	// and the new objectFormat check is bypassed the same way
	git(t, app, "config", "--file", filepath.Join(app, "deep/c/config"), "extensions.objectFormat", "sha256")
	if f := gitHostRun([]workspace.Mount{{Source: app}})[app]; f == nil || f.cut == "" {
		t.Errorf("objectFormat=sha256 in the real common dir not cut: %+v", f)
	}
}

// A gitfile through a symlink, then "..", likewise.
func TestGitHostRunGitfileThroughLink(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	os.MkdirAll(filepath.Join(app, "deep/a"), 0o755)
	os.MkdirAll(filepath.Join(app, "sub"), 0o755)
	git(t, app, "init", "-q", "--separate-git-dir="+filepath.Join(app, "deep/g"), "sub")
	git(t, filepath.Join(app, "sub"), "commit", "-q", "--allow-empty", "-m", "x")
	id := git(t, filepath.Join(app, "sub"), "rev-parse", "HEAD")
	os.Symlink("../deep/a", filepath.Join(app, "sub/lnk"))
	writeFile(t, filepath.Join(app, "sub/.git"), "gitdir: lnk/../g\n")
	if got := git(t, filepath.Join(app, "sub"), "rev-parse", "--absolute-git-dir"); got != filepath.Join(app, "deep/g") {
		t.Fatalf("control: git's dir is %s", got)
	}
	addGitlink(t, app, "sub", id)
	if rec, cut := coveredOrCut(t, app, "deep/g/config"); !rec && cut == "" {
		t.Errorf("the git folder's config git reads is neither recorded nor cut")
	}
}

// git does not expand ~ in a gitfile (nor in commondir): "~/g" is a
// folder of the submodule's, not one in the host user's home.
func TestGitHostRunGitfileTildeIsLiteral(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	os.MkdirAll(filepath.Join(app, "sub/~"), 0o755)
	git(t, app, "init", "-q", "--separate-git-dir="+filepath.Join(app, "sub/~/g"), "sub")
	git(t, filepath.Join(app, "sub"), "commit", "-q", "--allow-empty", "-m", "x")
	id := git(t, filepath.Join(app, "sub"), "rev-parse", "HEAD")
	writeFile(t, filepath.Join(app, "sub/.git"), "gitdir: ~/g\n")
	if got := git(t, filepath.Join(app, "sub"), "rev-parse", "--absolute-git-dir"); got != filepath.Join(app, "sub/~/g") {
		t.Fatalf("control: git's dir is %s", got)
	}
	addGitlink(t, app, "sub", id)
	if rec, cut := coveredOrCut(t, app, "sub/~/g/config"); !rec && cut == "" {
		t.Errorf("sub/~/g/config (git's) neither recorded nor cut")
	}
}

// Regressions that must hold: ordinary submodules (nested), a submodule
// made a linked worktree of another in the project, a relative commondir
// into the mount.
func TestGitHostRunOrdinarySetupsNotCut(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	lib := t.TempDir()
	repoAt(t, lib)
	inner := t.TempDir()
	repoAt(t, inner)
	git(t, lib, "submodule", "add", "-q", inner, "inner")
	git(t, lib, "commit", "-q", "-m", "inner")
	git(t, app, "init", "-q")
	git(t, app, "commit", "-q", "--allow-empty", "-m", "x")
	git(t, app, "submodule", "add", "-q", lib, "vendor/lib")
	git(t, app, "submodule", "update", "--init", "--recursive", "-q")
	git(t, app, "commit", "-q", "-m", "lib")
	if f := gitHostRun([]workspace.Mount{{Source: app}})[app]; f == nil || f.cut != "" {
		t.Fatalf("ordinary nested submodules cut: %+v", f)
	}
	// absorbed / un-absorbed: a submodule with its .git dir in place
	repoAt(t, filepath.Join(app, "plain"))
	addGitlink(t, app, "plain", git(t, filepath.Join(app, "plain"), "rev-parse", "HEAD"))
	// a linked worktree of vendor/lib inside the project, as a gitlink
	git(t, filepath.Join(app, "vendor/lib"), "worktree", "add", "-q", "--detach", filepath.Join(app, "wt"))
	addGitlink(t, app, "wt", git(t, filepath.Join(app, "wt"), "rev-parse", "HEAD"))
	if f := gitHostRun([]workspace.Mount{{Source: app}})[app]; f == nil || f.cut != "" {
		t.Fatalf("a linked worktree submodule cut: %+v", f)
	} else {
		t.Logf("rel=%q", f.rel)
	}
	// worktree of a repo with sha1 written explicitly (version 1)
	git(t, filepath.Join(app, "plain"), "config", "core.repositoryformatversion", "1")
	git(t, filepath.Join(app, "plain"), "config", "extensions.objectFormat", "sha1")
	if f := gitHostRun([]workspace.Mount{{Source: app}})[app]; f == nil || f.cut != "" {
		t.Fatalf("explicit sha1 cut: %+v", f)
	}
}

// Every spelling of the key and the value that git reads as SHA-256 cuts.
func TestGitHostRunObjectFormatSpellings(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	sub := filepath.Join(app, "sub")
	addGitlink(t, app, "sub", repoAt(t, sub))
	cfg := filepath.Join(sub, ".git/config")
	base, _ := os.ReadFile(cfg)
	for _, extra := range []string{
		"[extensions]\nobjectformat = sha256\n",
		"[Extensions]\n\tObjectFormat = \"sha256\"\n",
		"[extensions]objectFormat=sha256 ; c\n",
		"[extensions]\nobjectformat = sha25\\\n6\n",
		"[extensions]\nobjectFormat = sha256\nobjectFormat = sha1\nobjectFormat = sha256\n",
		"[core]\nrepositoryformatversion = 1\n[extensions]\n objectformat=sha256\n",
	} {
		writeFile(t, cfg, string(base)+"[core]\nrepositoryformatversion = 1\n"+extra)
		out, _ := exec.Command("git", "-C", sub, "rev-parse", "--show-object-format").CombinedOutput()
		f := gitHostRun([]workspace.Mount{{Source: app}})[app]
		t.Logf("%q: git says %q; cut %q", extra, strings.TrimSpace(string(out)), f.cut)
		if strings.TrimSpace(string(out)) == "sha256" && (f == nil || f.cut == "") {
			t.Errorf("git reads sha256, vibe does not cut: %q", extra)
		}
	}
}

// A project that is a linked worktree (its .git a file): its index, the
// user's outside the mount, lists a gitlink the agent can make a
// repository of.
func TestGitHostRunProjectIsLinkedWorktree(t *testing.T) {
	gitEnv(t)
	main := t.TempDir()
	id := repoAt(t, main)
	addGitlink(t, main, "sub", id)
	git(t, main, "commit", "-q", "-m", "sub")
	app := filepath.Join(t.TempDir(), "wt")
	git(t, main, "worktree", "add", "-q", app)
	// the agent: a repository where the gitlink is
	repoAt(t, filepath.Join(app, "sub"))
	ran := filepath.Join(t.TempDir(), "ran")
	git(t, filepath.Join(app, "sub"), "config", "core.fsmonitor", "echo pwned >>"+ran+"; false #")
	exec.Command("git", "-C", app, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); len(b) == 0 {
		t.Fatal("control: the host's git status did not run the submodule's fsmonitor")
	}
	if rec, cut := coveredOrCut(t, app, "sub/.git/config"); !rec && cut == "" {
		t.Errorf("sub/.git/config of a linked-worktree project neither recorded nor cut")
	}
}

// A reason the agent can cause at will (a big file in .claude) does not
// hide another.
func TestCutShortKeepsSeveralReasons(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	sub := filepath.Join(app, "sub")
	addGitlink(t, app, "sub", repoAt(t, sub))
	git(t, sub, "config", "core.repositoryformatversion", "1")
	git(t, sub, "config", "extensions.objectFormat", "sha256")
	writeFile(t, filepath.Join(app, ".claude/cache.bin"), "")
	os.Truncate(filepath.Join(app, ".claude/cache.bin"), snapshotMaxRead+1)
	snap := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
	if why := snap.Reason(app); !strings.Contains(why, "object format") {
		t.Errorf("reason shown: %q (the object-format cut is not)", why)
	}
}

// A linked worktree of the superproject itself, held as a gitlink:
// commondir "../.." leads to the project's .git: not cut.
func TestGitHostRunSuperprojectWorktreeGitlink(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	id := repoAt(t, app)
	git(t, app, "worktree", "add", "-q", "--detach", filepath.Join(app, "wt"))
	addGitlink(t, app, "wt", id)
	if f := gitHostRun([]workspace.Mount{{Source: app}})[app]; f == nil || f.cut != "" {
		t.Errorf("cut: %+v", f)
	} else {
		t.Logf("rel=%q", f.rel)
	}
}
