package sandbox

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

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
	f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
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
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut == "" {
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
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut != "" {
		t.Fatalf("ordinary nested submodules cut: %+v", f)
	}
	// absorbed / un-absorbed: a submodule with its .git dir in place
	repoAt(t, filepath.Join(app, "plain"))
	addGitlink(t, app, "plain", git(t, filepath.Join(app, "plain"), "rev-parse", "HEAD"))
	// a linked worktree of vendor/lib inside the project, as a gitlink
	git(t, filepath.Join(app, "vendor/lib"), "worktree", "add", "-q", "--detach", filepath.Join(app, "wt"))
	addGitlink(t, app, "wt", git(t, filepath.Join(app, "wt"), "rev-parse", "HEAD"))
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut != "" {
		t.Fatalf("a linked worktree submodule cut: %+v", f)
	} else {
		t.Logf("rel=%q", f.rel)
	}
	// worktree of a repo with sha1 written explicitly (version 1)
	git(t, filepath.Join(app, "plain"), "config", "core.repositoryformatversion", "1")
	git(t, filepath.Join(app, "plain"), "config", "extensions.objectFormat", "sha1")
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut != "" {
		t.Fatalf("explicit sha1 cut: %+v", f)
	}
}

// Every spelling of the key and the value that git reads as SHA-256 cuts.
func TestGitHostRunObjectFormatSpellings(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
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
		f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
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
	app, sub := projectWithSubmodule(t)
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
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut != "" {
		t.Errorf("cut: %+v", f)
	} else {
		t.Logf("rel=%q", f.rel)
	}
}

// fsmonitorRuns sets core.fsmonitor in the config file cfg to a command
// that leaves a mark, runs the host's git status in app, and reports
// whether the mark was left.
func fsmonitorRuns(t *testing.T, app, cfg string) bool {
	t.Helper()
	ran := filepath.Join(t.TempDir(), "ran")
	git(t, app, "config", "--file", cfg, "core.fsmonitor", "echo pwned >>"+ran+"; false #")
	out, _ := exec.Command("git", "-C", app, "status", "--short").CombinedOutput()
	t.Logf("git status: %s", out)
	b, _ := os.ReadFile(ran)
	return len(b) > 0
}

// /proc/self/cwd is a path outside the mounts for vibe, and the
// submodule's own worktree for the git that follows it.
func TestGitHostRunProcSelfCwdGitfileIsCut(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	os.MkdirAll(filepath.Join(app, "sub"), 0o755)
	git(t, app, "init", "-q", "--separate-git-dir="+filepath.Join(app, "sub/.g"), "sub")
	git(t, filepath.Join(app, "sub"), "commit", "-q", "--allow-empty", "-m", "x")
	id := git(t, filepath.Join(app, "sub"), "rev-parse", "HEAD")
	writeFile(t, filepath.Join(app, "sub/.git"), "gitdir: /proc/self/cwd/.g\n")
	git(t, app, "init", "-q", "--bare", ".g") // what the parent git (cwd = app) checks
	addGitlink(t, app, "sub", id)
	if !fsmonitorRuns(t, app, filepath.Join(app, "sub/.g/config")) {
		t.Fatal("control: git status did not run sub/.g's fsmonitor")
	}
	if rec, cut := coveredOrCut(t, app, "sub/.g/config"); !rec && cut == "" {
		t.Errorf("sub/.g/config (run by git status) neither recorded nor cut")
	}
}

// The project's .git is a folder and has no commondir at the session's
// start (so nothing protects one): the agent writes one, and git reads the
// configuration of the folder it names instead of .git/config.
func TestGitHostRunProjectCommondirIsCut(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	c := filepath.Join(app, "c")
	git(t, app, "init", "-q", "--bare", "c")
	git(t, app, "config", "--file", filepath.Join(c, "config"), "core.bare", "false")
	writeFile(t, filepath.Join(app, ".git/commondir"), "../c\n")
	if !fsmonitorRuns(t, app, filepath.Join(c, "config")) {
		t.Fatal("control: git status did not run c/config's fsmonitor")
	}
	if rec, cut := coveredOrCut(t, app, "c/config"); !rec && cut == "" {
		t.Errorf("c/config (run by git status) neither recorded nor cut")
	}
}

// With extensions.worktreeConfig, git 2.39 takes core.worktree from a
// linked worktree's common config too, relative to the worktree's git
// folder.
func TestGitHostRunWorktreeConfigFromCommon(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	sub := filepath.Join(app, "sub")
	id := repoAt(t, sub)
	addGitlink(t, app, "sub", id)
	addGitlink(t, sub, "n", id)
	c := filepath.Join(app, "c")
	os.MkdirAll(c, 0o755)
	for _, n := range []string{"config", "objects", "refs"} {
		os.Rename(filepath.Join(sub, ".git", n), filepath.Join(c, n))
	}
	writeFile(t, filepath.Join(sub, ".git/commondir"), "../../c\n")
	cfg := filepath.Join(c, "config")
	git(t, app, "config", "--file", cfg, "core.repositoryformatversion", "1")
	git(t, app, "config", "--file", cfg, "extensions.worktreeConfig", "true")
	git(t, app, "config", "--file", cfg, "core.worktree", "../sub")
	n := filepath.Join(sub, "sub/n")
	os.MkdirAll(n, 0o755)
	git(t, n, "init", "-q")
	if got := git(t, sub, "rev-parse", "--show-toplevel"); got != filepath.Join(sub, "sub") {
		t.Fatalf("control: git's worktree is %s", got)
	}
	if !fsmonitorRuns(t, app, filepath.Join(n, ".git/config")) {
		t.Fatal("control: git status did not run sub/sub/n's fsmonitor")
	}
	if rec, cut := coveredOrCut(t, app, "sub/sub/n/.git/config"); !rec && cut == "" {
		t.Errorf("sub/sub/n/.git/config (run by git status) neither recorded nor cut")
	}
}

// A submodule whose git folder is the user's, outside the mounts (in a
// linked-worktree project, git submodule update puts it in
// main/.git/worktrees/app/modules): its index lists a nested gitlink the
// agent makes a repository of.
func TestGitHostRunUserSubmoduleGitDirFollowed(t *testing.T) {
	gitEnv(t)
	base := t.TempDir()
	inner, lib, main := filepath.Join(base, "inner"), filepath.Join(base, "lib"), filepath.Join(base, "main")
	repoAt(t, inner)
	repoAt(t, lib)
	git(t, lib, "submodule", "add", "-q", inner, "inner")
	git(t, lib, "commit", "-q", "-m", "inner")
	repoAt(t, main)
	git(t, main, "submodule", "add", "-q", lib, "lib")
	git(t, main, "commit", "-q", "-m", "lib")
	app := filepath.Join(t.TempDir(), "app")
	git(t, main, "worktree", "add", "-q", app)
	git(t, app, "submodule", "update", "--init", "-q") // not --recursive
	t.Logf("lib/.git: %s", git(t, app, "-C", "lib", "rev-parse", "--absolute-git-dir"))
	// the agent
	n := filepath.Join(app, "lib/inner")
	git(t, n, "init", "-q")
	if !fsmonitorRuns(t, app, filepath.Join(n, ".git/config")) {
		t.Fatal("control: git status did not run lib/inner's fsmonitor")
	}
	if rec, cut := coveredOrCut(t, app, "lib/inner/.git/config"); !rec && cut == "" {
		t.Errorf("lib/inner/.git/config (run by git status) neither recorded nor cut")
	}
}

// A gitfile naming a git folder under .git/modules that the snapshot
// skips (a "bulk" folder of what it takes for a module's git folder):
// recorded like any other.
func TestGitHostRunGitDirInModulesBulk(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	writeFile(t, filepath.Join(app, ".git/modules/x/HEAD"), "ref: refs/heads/main\n")
	os.MkdirAll(filepath.Join(app, ".git/modules/x/objects"), 0o755)
	os.MkdirAll(filepath.Join(app, "sub"), 0o755)
	g := filepath.Join(app, ".git/modules/x/objects/g")
	git(t, app, "init", "-q", "--separate-git-dir="+g, "sub")
	git(t, filepath.Join(app, "sub"), "commit", "-q", "--allow-empty", "-m", "x")
	id := git(t, filepath.Join(app, "sub"), "rev-parse", "HEAD")
	writeFile(t, filepath.Join(app, "sub/.git"), "gitdir: ../.git/modules/x/objects/g\n")
	addGitlink(t, app, "sub", id)
	if !fsmonitorRuns(t, app, filepath.Join(g, "config")) {
		t.Fatal("control: git status did not run the fsmonitor")
	}
	rel := ".git/modules/x/objects/g/config"
	rec, cut := coveredOrCut(t, app, rel)
	mounts := []workspace.Mount{{Source: app}}
	snap := TakeSnapshot(mounts, nil)
	_, inSnap := snap[filepath.Join(app, rel)]
	t.Logf("in snapshot: %v", inSnap)
	if !rec && cut == "" && !inSnap {
		t.Errorf("%s (run by git status) neither recorded, snapshotted nor cut", rel)
	}
}

// Three reasons the agent causes at will do not push out the git walk's.
func TestCutShortGitReasonsFirst(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	git(t, sub, "config", "core.repositoryformatversion", "1")
	git(t, sub, "config", "extensions.objectFormat", "sha256")
	for _, n := range []string{"a", "b", "c"} {
		p := filepath.Join(app, ".claude", n+".bin")
		writeFile(t, p, "")
		os.Truncate(p, snapshotMaxRead+1)
	}
	snap := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
	if why := snap.Reason(app); !strings.Contains(why, "object format") {
		t.Errorf("reason shown: %q (the object-format cut is not)", why)
	}
}

// Not cut: a linked worktree of one mounted project mounted as a
// project of its own (a sibling in the workspace folder).
func TestGitHostRunSiblingWorktreeNotCut(t *testing.T) {
	gitEnv(t)
	ws := t.TempDir()
	app := filepath.Join(ws, "app")
	repoAt(t, app)
	wt := filepath.Join(ws, "app-feature")
	git(t, app, "worktree", "add", "-q", "-b", "feature", wt)
	f := gitHostRun([]workspace.Mount{{Name: "app", Source: app}, {Name: "app-feature", Source: wt}}, nil)
	if f[wt] != nil && f[wt].cut != "" {
		t.Errorf("an ordinary linked worktree next to its repository is cut: %q", f[wt].cut)
	}
}

// A configuration file two worktrees share: a program it names relative
// to the worktree is recorded for each, since git runs it in each.
func TestGitHostRunSharedConfigEachWorktree(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	s1 := filepath.Join(app, "sub1")
	id := repoAt(t, s1)
	git(t, s1, "worktree", "add", "-q", "--detach", filepath.Join(app, "sub2"))
	addGitlink(t, app, "sub1", id)
	addGitlink(t, app, "sub2", id)
	ran := filepath.Join(t.TempDir(), "ran")
	writeFile(t, filepath.Join(app, "sub2/mon"), "#!/bin/sh\necho \"$PWD\" >>"+ran+"\nexit 1\n")
	os.Chmod(filepath.Join(app, "sub2/mon"), 0o755)
	git(t, s1, "config", "core.fsmonitor", "./mon")
	exec.Command("git", "-C", app, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); !strings.Contains(string(b), "sub2") {
		t.Fatalf("control: sub2/mon did not run: %q", b)
	}
	if rec, cut := coveredOrCut(t, app, "sub2/mon"); !rec && cut == "" {
		t.Errorf("sub2/mon (run by git status) neither recorded nor cut")
	}
}

// /proc/self/cwd through an include of a submodule's configuration.
func TestGitHostRunProcSelfCwdIncludeIsCut(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	git(t, sub, "config", "include.path", "/proc/self/cwd/.inc")
	if !fsmonitorRuns(t, app, filepath.Join(sub, ".inc")) {
		t.Fatal("control: git status did not run sub/.inc's fsmonitor")
	}
	if rec, cut := coveredOrCut(t, app, "sub/.inc"); !rec && cut == "" {
		t.Errorf("sub/.inc (run by git status) neither recorded nor cut")
	}
}

// The project's own .git file (a linked worktree), rewritten by the
// agent to name /proc/self/cwd/.evil: no folder of the user's.
func TestGitHostRunProcSelfCwdProjectGitfileIsCut(t *testing.T) {
	gitEnv(t)
	main := t.TempDir()
	repoAt(t, main)
	app := filepath.Join(t.TempDir(), "wt")
	git(t, main, "worktree", "add", "-q", app)
	git(t, app, "init", "-q", "--bare", ".evil")
	git(t, app, "config", "--file", filepath.Join(app, ".evil/config"), "core.bare", "false")
	writeFile(t, filepath.Join(app, ".git"), "gitdir: /proc/self/cwd/.evil\n")
	if !fsmonitorRuns(t, app, filepath.Join(app, ".evil/config")) {
		t.Fatal("control: git status did not run .evil's fsmonitor")
	}
	if rec, cut := coveredOrCut(t, app, ".evil/config"); !rec && cut == "" {
		t.Errorf(".evil/config (run by git status) neither recorded nor cut")
	}
}

// An include path of an agent-made submodule config, "lnk/../evil.inc",
// where lnk is a symlink: git opens it as written (the kernel resolves
// lnk, then ".."), vibe joins it lexically and records another file.
func TestGitHostRunIncludeDotDotAfterLink(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	os.MkdirAll(filepath.Join(app, "deep/a"), 0o755)
	os.Symlink("../../deep/a", filepath.Join(sub, ".git/lnk"))
	git(t, sub, "config", "include.path", "lnk/../evil.inc")
	evil := filepath.Join(app, "deep/evil.inc")
	writeFile(t, evil, "")
	if !fsmonitorRuns(t, app, evil) {
		t.Fatal("control: git status did not run deep/evil.inc's fsmonitor")
	}
	if rec, cut := coveredOrCut(t, app, "deep/evil.inc"); !rec && cut == "" {
		t.Errorf("deep/evil.inc (run by git status) neither recorded nor cut")
	}
}

// The same for a command's program, relative to the worktree.
func TestGitHostRunProgramDotDotAfterLink(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	os.MkdirAll(filepath.Join(app, "deep/a"), 0o755)
	os.Symlink("../deep/a", filepath.Join(sub, "lnk"))
	ran := filepath.Join(t.TempDir(), "ran")
	writeFile(t, filepath.Join(app, "deep/mon"), "#!/bin/sh\necho pwned >>"+ran+"\nexit 1\n")
	os.Chmod(filepath.Join(app, "deep/mon"), 0o755)
	git(t, sub, "config", "core.fsmonitor", "lnk/../mon")
	exec.Command("git", "-C", app, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); len(b) == 0 {
		t.Fatal("control: deep/mon did not run")
	}
	if rec, cut := coveredOrCut(t, app, "deep/mon"); !rec && cut == "" {
		t.Errorf("deep/mon (run by git status) neither recorded nor cut")
	}
}

var _ = strings.Contains

// The same, made silent: in the first session lnk is a plain folder
// (git and vibe agree on sub/.git/evil.inc); in the next the agent swaps a
// symlink in for it, which nothing records: no snapshot change, no cut,
// and git status runs deep/evil.inc's fsmonitor.
func TestGitHostRunIncludeDotDotSwapped(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	os.MkdirAll(filepath.Join(sub, ".git/lnk"), 0o755)
	git(t, sub, "config", "include.path", "lnk/../evil.inc")
	writeFile(t, filepath.Join(sub, ".git/evil.inc"), "[user]\n\tname = x\n")
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	before := TakeSnapshot(mounts, nil)
	// the agent, in a later session
	os.MkdirAll(filepath.Join(app, "deep/a"), 0o755)
	os.Remove(filepath.Join(sub, ".git/lnk"))
	os.Symlink("../../deep/a", filepath.Join(sub, ".git/lnk"))
	evil := filepath.Join(app, "deep/evil.inc")
	writeFile(t, evil, "")
	if !fsmonitorRuns(t, app, evil) {
		t.Fatal("control: git status did not run deep/evil.inc's fsmonitor")
	}
	after := TakeSnapshot(mounts, nil)
	t.Logf("changed=%q truncated=%q", after.Changed(before), after.Truncated())
	if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
		t.Errorf("deep/evil.inc runs on git status; no change reported, nothing cut")
	}
}

// A program (or include, or hooks folder) through a symlinked folder
// in the mount: the walk records sub/lnk/mon, the snapshot records the
// link sub/lnk in its place (its target text), and the file git runs,
// deep/a/mon, is compared by nobody: its content changes unseen.
func TestGitHostRunProgramThroughLinkIsCut(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	os.MkdirAll(filepath.Join(app, "deep/a"), 0o755)
	os.Symlink("../deep/a", filepath.Join(sub, "lnk"))
	mon := filepath.Join(app, "deep/a/mon")
	writeFile(t, mon, "#!/bin/sh\nexit 1\n")
	os.Chmod(mon, 0o755)
	git(t, sub, "config", "core.fsmonitor", "lnk/mon")
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	before := TakeSnapshot(mounts, nil)
	// a later session
	ran := filepath.Join(t.TempDir(), "ran")
	writeFile(t, mon, "#!/bin/sh\necho pwned >>"+ran+"\nexit 1\n")
	exec.Command("git", "-C", app, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); len(b) == 0 {
		t.Fatal("control: deep/a/mon did not run")
	}
	after := TakeSnapshot(mounts, nil)
	t.Logf("changed=%q truncated=%q", after.Changed(before), after.Truncated())
	if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
		t.Errorf("deep/a/mon runs on git status; its change is not reported, nothing cut")
	}
}

// A submodule's hooks folder that is a symlink: git runs
// post-index-change from its target on git status.
func TestGitHostRunHooksLinkIsCut(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	writeFile(t, filepath.Join(sub, "f"), "x")
	git(t, sub, "add", "f")
	git(t, sub, "commit", "-q", "-m", "f")
	os.RemoveAll(filepath.Join(sub, ".git/hooks"))
	os.MkdirAll(filepath.Join(app, "deep/hooks"), 0o755)
	os.Symlink("../../deep/hooks", filepath.Join(sub, ".git/hooks"))
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	before := TakeSnapshot(mounts, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	hook := filepath.Join(app, "deep/hooks/post-index-change")
	writeFile(t, hook, "#!/bin/sh\necho pwned >>"+ran+"\n")
	os.Chmod(hook, 0o755)
	os.Chtimes(filepath.Join(sub, "f"), time.Now(), time.Now().Add(time.Hour)) // stat changed: status refreshes the index
	exec.Command("git", "-C", app, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); len(b) == 0 {
		t.Fatal("control: post-index-change did not run")
	}
	after := TakeSnapshot(mounts, nil)
	t.Logf("changed=%q truncated=%q", after.Changed(before), after.Truncated())
	if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
		t.Errorf("deep/hooks/post-index-change runs on git status; not reported, nothing cut")
	}
}

// The user's ~/.gitconfig is a symlink into a dotfiles repository
// that is a mounted project: the host user's own global configuration is
// the agent's to write, and gitHostRun neither records it nor cuts.
func TestGitHostRunGlobalConfigInMount(t *testing.T) {
	home := gitEnv(t)
	os.Unsetenv("GIT_CONFIG_GLOBAL") // t.Setenv restores it
	dot := t.TempDir()
	repoAt(t, dot)
	writeFile(t, filepath.Join(dot, "gitconfig"), "[user]\n\tname = me\n")
	os.Symlink(filepath.Join(dot, "gitconfig"), filepath.Join(home, ".gitconfig"))
	other := t.TempDir()
	repoAt(t, other)
	ran := filepath.Join(t.TempDir(), "ran")
	git(t, dot, "config", "--file", filepath.Join(dot, "gitconfig"), "core.fsmonitor", "echo pwned >>"+ran+"; false #")
	exec.Command("git", "-C", other, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); len(b) == 0 {
		t.Fatal("control: the global config's fsmonitor did not run")
	}
	if rec, cut := coveredOrCut(t, dot, "gitconfig"); !rec && cut == "" {
		t.Errorf("gitconfig (the user's global config, in a mount) neither recorded nor cut")
	}
}

// A git folder the agent writes in its own state folder (mounted
// writable at /var/lib/vibe/state/NAME, held on the host in vibe's data
// folder, never among gitHostRun's mounts): a gitfile in the project
// names it by its host path, and the walk takes it for the user's.
func TestGitHostRunGitDirInStateFolderIsCut(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	state := t.TempDir() // spec.StateDir: ~/.local/share/vibe/state/<name>/claude
	git(t, app, "init", "-q")
	g := filepath.Join(state, "g")
	git(t, state, "init", "-q", "--bare", "g")
	git(t, state, "config", "--file", filepath.Join(g, "config"), "core.bare", "false")
	writeFile(t, filepath.Join(app, "sub/.git"), "gitdir: "+g+"\n")
	git(t, filepath.Join(app, "sub"), "commit", "-q", "--allow-empty", "-m", "x")
	addGitlink(t, app, "sub", git(t, filepath.Join(app, "sub"), "rev-parse", "HEAD"))
	if !fsmonitorRuns(t, app, filepath.Join(g, "config")) {
		t.Fatal("control: git status did not run the state folder's fsmonitor")
	}
	states := map[string]string{"claude": state}
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	snap := TakeSnapshot(mounts, states)
	_, inSnap := snap[filepath.Join(g, "config")]
	if len(snap.Truncated()) == 0 && !inSnap {
		t.Errorf("%s/config (the agent's, run by git status) neither compared nor cut", g)
	}
}

func notCut(t *testing.T, app string, ms ...workspace.Mount) {
	t.Helper()
	if len(ms) == 0 {
		ms = []workspace.Mount{{Source: app}}
	}
	f := gitHostRun(ms, nil)[app]
	if f != nil && f.cut != "" {
		t.Errorf("cut: %q", f.cut)
	}
	if f != nil {
		t.Logf("rel=%q", f.rel)
	}
}

func TestGitHostRunOrdinarySetupsNotCutMore(t *testing.T) {
	home := gitEnv(t)
	base := t.TempDir()
	inner, lib := filepath.Join(base, "inner"), filepath.Join(base, "lib")
	repoAt(t, inner)
	repoAt(t, lib)
	git(t, lib, "submodule", "add", "-q", inner, "inner")
	git(t, lib, "commit", "-q", "-m", "inner")
	mk := func() string {
		app := t.TempDir()
		repoAt(t, app)
		git(t, app, "submodule", "add", "-q", lib, "vendor/lib")
		git(t, app, "submodule", "update", "--init", "--recursive", "-q")
		git(t, app, "commit", "-q", "-m", "lib")
		return app
	}
	t.Run("recursive", func(t *testing.T) { notCut(t, mk()) })
	t.Run("clone-recursive", func(t *testing.T) {
		src := mk()
		app := filepath.Join(t.TempDir(), "c")
		git(t, base, "clone", "-q", "--recurse-submodules", src, app)
		notCut(t, app)
	})
	t.Run("unabsorbed-then-absorb", func(t *testing.T) {
		app := t.TempDir()
		repoAt(t, app)
		git(t, app, "clone", "-q", lib, "vendor/lib")
		git(t, filepath.Join(app, "vendor/lib"), "submodule", "update", "--init", "-q")
		git(t, app, "submodule", "add", "-q", lib, "vendor/lib")
		notCut(t, app)
		git(t, app, "submodule", "absorbgitdirs")
		t.Logf("%s", git(t, app, "-C", "vendor/lib/inner", "rev-parse", "--absolute-git-dir"))
		notCut(t, app)
	})
	t.Run("worktree-in-project", func(t *testing.T) {
		app := mk()
		git(t, app, "worktree", "add", "-q", "-b", "f", filepath.Join(app, ".worktrees/f"))
		git(t, filepath.Join(app, ".worktrees/f"), "submodule", "update", "--init", "--recursive", "-q")
		notCut(t, app)
	})
	t.Run("worktree-of-submodule", func(t *testing.T) {
		app := mk()
		git(t, filepath.Join(app, "vendor/lib"), "worktree", "add", "-q", "--detach", filepath.Join(t.TempDir(), "w"))
		git(t, filepath.Join(app, "vendor/lib"), "worktree", "add", "-q", "--detach", filepath.Join(app, "vendor/lib2"))
		notCut(t, app)
	})
	t.Run("project-is-worktree-outside-main", func(t *testing.T) {
		main := mk()
		app := filepath.Join(t.TempDir(), "wt")
		git(t, main, "worktree", "add", "-q", "-b", "g", app)
		git(t, app, "submodule", "update", "--init", "--recursive", "-q")
		notCut(t, app)
	})
	t.Run("separate-git-dir-outside", func(t *testing.T) {
		app := t.TempDir()
		git(t, app, "init", "-q", "--separate-git-dir="+filepath.Join(t.TempDir(), "g"))
		git(t, app, "commit", "-q", "--allow-empty", "-m", "x")
		git(t, app, "submodule", "add", "-q", lib, "vendor/lib")
		git(t, app, "submodule", "update", "--init", "--recursive", "-q")
		notCut(t, app)
	})
	t.Run("sparse-checkout", func(t *testing.T) {
		app := mk()
		os.MkdirAll(filepath.Join(app, "docs"), 0o755)
		writeFile(t, filepath.Join(app, "docs/a"), "a")
		git(t, app, "add", "docs")
		git(t, app, "commit", "-q", "-m", "d")
		git(t, app, "sparse-checkout", "set", "vendor")
		notCut(t, app)
		git(t, app, "sparse-checkout", "set", "--no-cone", "/vendor/")
		notCut(t, app)
	})
	t.Run("sparse-index", func(t *testing.T) {
		app := mk()
		os.MkdirAll(filepath.Join(app, "docs"), 0o755)
		writeFile(t, filepath.Join(app, "docs/a"), "a")
		git(t, app, "add", "docs")
		git(t, app, "commit", "-q", "-m", "d")
		git(t, app, "sparse-checkout", "set", "--sparse-index", "vendor")
		// cut by design (folder entries), with a misleading reason
		t.Logf("cut: %q", gitHostRun([]workspace.Mount{{Source: app}}, nil)[app].cut)
	})
	t.Run("gitconfig-symlink-dotfiles", func(t *testing.T) {
		os.Unsetenv("GIT_CONFIG_GLOBAL")
		dot := t.TempDir()
		writeFile(t, filepath.Join(dot, "gitconfig"), "[include]\n\tpath = extra\n[core]\n\thooksPath = ~/hooks\n")
		writeFile(t, filepath.Join(dot, "extra"), "[user]\n\tname = x\n")
		os.Symlink(filepath.Join(dot, "gitconfig"), filepath.Join(home, ".gitconfig"))
		defer os.Remove(filepath.Join(home, ".gitconfig"))
		defer os.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
		notCut(t, mk())
	})
}

// A command in an agent-written configuration whose program is not its
// first word, or is quoted: git's shell runs the project's file, which is
// recorded.
func TestGitHostRunShellShapedProgramIsRecorded(t *testing.T) {
	for _, cmd := range []string{"sh mon.sh", "'./mon.sh'", "env ./mon.sh", "exec ./mon.sh"} {
		t.Run(cmd, func(t *testing.T) {
			fsmonitorInSubmodule(t, cmd, "mon.sh", "#!/bin/sh\necho pwned >>RAN\nexit 1\n", true)
		})
	}
}

// fsmonitorInSubmodule sets a submodule's core.fsmonitor to cmd beside
// file (content with RAN for the file that marks a run), runs the host's
// git status (which must run it, where mustRun), and fails unless vibe
// records the file or cuts the project short.
func fsmonitorInSubmodule(t *testing.T, cmd, file, content string, mustRun bool) {
	t.Helper()
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	ran := filepath.Join(t.TempDir(), "ran")
	writeFile(t, filepath.Join(sub, file), strings.ReplaceAll(content, "RAN", ran))
	os.Chmod(filepath.Join(sub, file), 0o755)
	git(t, sub, "config", "core.fsmonitor", cmd)
	exec.Command("git", "-C", app, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); len(b) == 0 && mustRun {
		t.Fatalf("control: %s did not run", file)
	}
	if rec, cut := coveredOrCut(t, app, "sub/"+file); !rec && cut == "" {
		t.Errorf("sub/%s (run by git status through %q) neither recorded nor cut", file, cmd)
	}
}

// A gitfile that climbs down a deep folder and back up with "..": each
// folder on the way is looked at once (it was once per "..", for every
// prefix: cubic), and a path past snapshotMaxPath is cut, not followed.
func TestGitHostRunDeepDotDotIsBounded(t *testing.T) {
	gitEnv(t)
	for _, d := range []int{100, 300} {
		app := t.TempDir()
		git(t, app, "init", "-q")
		sub := filepath.Join(app, "sub")
		id := repoAt(t, sub)
		addGitlink(t, app, "sub", id)
		os.MkdirAll(filepath.Join(sub, strings.Repeat("x/", d)), 0o755)
		os.Rename(filepath.Join(sub, ".git"), filepath.Join(sub, ".g"))
		writeFile(t, filepath.Join(sub, ".git"), "gitdir: "+strings.Repeat("x/", d)+strings.Repeat("../", d)+".g\n")
		f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
		if long := 5*d+3 > snapshotMaxPath; long != (f != nil && f.cut != "") {
			t.Errorf("depth %d: cut %q", d, f.cut)
		}
		if d == 100 && !slices.Contains(f.rel, "sub/.g/config") {
			t.Errorf("depth %d: sub/.g/config not recorded: %q", d, f.rel)
		}
	}
}

// cutOf is why gitHostRun cuts project app short ("": it does not).
func cutOf(t *testing.T, app string) string {
	t.Helper()
	f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
	if f == nil {
		return ""
	}
	t.Logf("rel=%q", f.rel)
	return f.cut
}

// projectWithLib makes a project with an ordinary submodule, vendor/lib.
func projectWithLib(t *testing.T) (string, string) {
	gitEnv(t)
	base := t.TempDir()
	lib := filepath.Join(base, "lib")
	repoAt(t, lib)
	app := filepath.Join(base, "app")
	repoAt(t, app)
	git(t, app, "submodule", "add", "-q", lib, "vendor/lib")
	git(t, app, "commit", "-q", "-m", "lib")
	return app, filepath.Join(app, "vendor/lib")
}

// Not cut: the commands tools write into a submodule's configuration
// (git lfs install --local, git-crypt) and ordinary ones, there or in
// the project's own.
func TestGitHostRunOrdinaryCommandsNotCut(t *testing.T) {
	cases := map[string][][2]string{
		"lfs-local":  {{"filter.lfs.clean", "git-lfs clean -- %f"}, {"filter.lfs.smudge", "git-lfs smudge -- %f"}, {"filter.lfs.process", "git-lfs filter-process"}, {"filter.lfs.required", "true"}},
		"git-crypt":  {{"filter.git-crypt.smudge", `"git-crypt" smudge`}, {"filter.git-crypt.clean", `"git-crypt" clean`}, {"diff.git-crypt.textconv", `"git-crypt" diff`}},
		"sshcommand": {{"core.sshCommand", "ssh -i ~/.ssh/deploy_key"}},
		"pager":      {{"core.pager", "less -R"}},
		"editor":     {{"core.editor", "code --wait"}},
		"cred":       {{"credential.helper", "cache --timeout=3600"}},
		"alias":      {{"alias.lg", "log --graph --oneline"}},
		"aliasbang":  {{"alias.up", "!git fetch && git rebase"}},
		"gpg":        {{"gpg.program", "gpg2"}},
		"gpgssh":     {{"gpg.format", "ssh"}, {"gpg.ssh.program", "/opt/1Password/op-ssh-sign"}},
		"hookspath":  {{"core.hooksPath", ".husky/_"}},
		"hooksgit":   {{"core.hooksPath", ".githooks"}},
		"textconv":   {{"diff.exif.textconv", "exiftool"}},
		"difftool":   {{"difftool.vscode.cmd", "code --wait --diff $LOCAL $REMOTE"}},
		"fsmon":      {{"core.fsmonitor", "true"}},
		"untracked":  {{"core.untrackedCache", "true"}},
	}
	for name, kvs := range cases {
		t.Run(name, func(t *testing.T) {
			app, sub := projectWithLib(t)
			for _, kv := range kvs {
				git(t, sub, "config", kv[0], kv[1])
			}
			if c := cutOf(t, app); c != "" {
				t.Errorf("submodule %s: cut %q", name, c)
			}
			// project's own .git/config
			app2, _ := projectWithLib(t)
			for _, kv := range kvs {
				git(t, app2, "config", kv[0], kv[1])
			}
			if c := cutOf(t, app2); c != "" {
				t.Errorf("project %s: cut %q", name, c)
			}
		})
	}
}

// Not cut: a committed .gitconfig that .git/config includes (a team's
// shared settings: a filter, an alias, a hooks folder).
func TestGitHostRunCommittedIncludeNotCut(t *testing.T) {
	app, _ := projectWithLib(t)
	writeFile(t, filepath.Join(app, ".gitconfig"), "[filter \"lfs\"]\n\tprocess = git-lfs filter-process\n[alias]\n\tlg = log --graph\n[core]\n\thooksPath = .githooks\n")
	git(t, app, "config", "include.path", "../.gitconfig")
	if c := cutOf(t, app); c != "" {
		t.Errorf("cut %q", c)
	}
}

// Not cut: hooks folders that are links into the project (a submodule's,
// the project's own).
func TestGitHostRunHooksSymlinkedNotCut(t *testing.T) {
	app, sub := projectWithLib(t)
	os.MkdirAll(filepath.Join(app, ".githooks"), 0o755)
	gd := git(t, sub, "rev-parse", "--absolute-git-dir")
	os.RemoveAll(filepath.Join(gd, "hooks"))
	os.Symlink("../../../../.githooks", filepath.Join(gd, "hooks"))
	git(t, app, "config", "core.fsmonitor", ".git/hooks/fsmonitor-watchman")
	if c := cutOf(t, app); c != "" {
		t.Errorf("cut %q", c)
	}
	os.RemoveAll(filepath.Join(app, ".git/hooks"))
	os.Symlink("../.githooks", filepath.Join(app, ".git/hooks"))
	if c := cutOf(t, app); c != "" {
		t.Errorf("cut %q", c)
	}
}

// The user's .git/hooks is a link into the worktree (ln -s ../.githooks
// .git/hooks); the settle script leaves links unprotected, the snapshot
// records the link's text; the agent adds .githooks/post-index-change.
func TestGitHostRunProjectHooksLinkFollowed(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	writeFile(t, filepath.Join(app, "f"), "x")
	git(t, app, "add", "f")
	git(t, app, "commit", "-q", "-m", "f")
	os.MkdirAll(filepath.Join(app, ".githooks"), 0o755)
	writeFile(t, filepath.Join(app, ".githooks/pre-commit"), "#!/bin/sh\nexit 0\n")
	os.RemoveAll(filepath.Join(app, ".git/hooks"))
	os.Symlink("../.githooks", filepath.Join(app, ".git/hooks"))
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	before := TakeSnapshot(mounts, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	hook := filepath.Join(app, ".githooks/post-index-change")
	writeFile(t, hook, "#!/bin/sh\necho pwned >>"+ran+"\n")
	os.Chmod(hook, 0o755)
	os.Chtimes(filepath.Join(app, "f"), time.Now(), time.Now().Add(time.Hour))
	exec.Command("git", "-C", app, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); len(b) == 0 {
		t.Fatal("control: post-index-change did not run")
	}
	after := TakeSnapshot(mounts, nil)
	t.Logf("changed=%q truncated=%q", after.Changed(before), after.Truncated())
	if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
		t.Errorf(".githooks/post-index-change runs on git status; not reported, nothing cut")
	}
}

// Per-hook link, the common pattern: .git/hooks/pre-commit -> ../../scripts/pre-commit
func TestGitHostRunProjectHookFileLinkFollowed(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	writeFile(t, filepath.Join(app, "scripts/hook"), "#!/bin/sh\nexit 0\n")
	os.Chmod(filepath.Join(app, "scripts/hook"), 0o755)
	os.Symlink("../../scripts/hook", filepath.Join(app, ".git/hooks/post-index-change"))
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	before := TakeSnapshot(mounts, nil)
	writeFile(t, filepath.Join(app, "scripts/hook"), "#!/bin/sh\necho pwned\n")
	after := TakeSnapshot(mounts, nil)
	t.Logf("changed=%q truncated=%q", after.Changed(before), after.Truncated())
	if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
		t.Errorf("scripts/hook (run as a hook) changed; not reported, nothing cut")
	}
}

// Not cut: a mounted dotfiles project that ~/.gitconfig links into, with
// an ordinary pager and editor.
func TestGitHostRunDotfilesPagerNotCut(t *testing.T) {
	home := gitEnv(t)
	os.Unsetenv("GIT_CONFIG_GLOBAL")
	dot := t.TempDir()
	repoAt(t, dot)
	writeFile(t, filepath.Join(dot, "gitconfig"), "[core]\n\tpager = less -R\n\teditor = code --wait\n")
	os.Symlink(filepath.Join(dot, "gitconfig"), filepath.Join(home, ".gitconfig"))
	app := t.TempDir()
	repoAt(t, app)
	f := gitHostRun([]workspace.Mount{{Source: app}, {Source: dot}}, nil)
	for k, v := range f {
		t.Logf("%s: cut=%q rel=%q", k, v.cut, v.rel)
		if v.cut != "" {
			t.Errorf("%s cut", k)
		}
	}
}

// Not cut: a dozen ordinary submodules (the bound on configuration files
// counts those there).
func TestGitHostRunManySubmodulesNotCut(t *testing.T) {
	gitEnv(t)
	base := t.TempDir()
	lib := filepath.Join(base, "lib")
	repoAt(t, lib)
	app := filepath.Join(base, "app")
	repoAt(t, app)
	for i := 0; i < 12; i++ {
		git(t, app, "submodule", "add", "-q", lib, "third_party/l"+string(rune('a'+i)))
	}
	git(t, app, "commit", "-q", "-m", "subs")
	start := time.Now()
	c := cutOf(t, app)
	t.Logf("took %s", time.Since(start))
	if c != "" {
		t.Errorf("12 ordinary submodules: cut %q", c)
	}
}

// core.fsmonitor = ~nosuchuser/mon: git runs it through sh (~ is a shell
// character to git), sh leaves an unknown ~user as it is, and runs
// ./~nosuchuser/mon in the submodule's worktree. vibe takes it for
// another user's home: neither recorded nor cut.
func TestGitHostRunTildeUserProgramIsCut(t *testing.T) {
	for _, prog := range []string{"~nosuchuser/mon", "~+/mon"} {
		t.Run(prog, func(t *testing.T) {
			gitEnv(t)
			app, sub := projectWithSubmodule(t)
			ran := filepath.Join(t.TempDir(), "ran")
			for _, p := range []string{"~nosuchuser/mon", "~+/mon", "mon"} {
				writeFile(t, filepath.Join(sub, p), "#!/bin/sh\necho pwned >>"+ran+"\nexit 1\n")
				os.Chmod(filepath.Join(sub, p), 0o755)
			}
			writeFile(t, filepath.Join(sub, "f"), "x")
			git(t, sub, "add", "f")
			git(t, sub, "commit", "-q", "-m", "f")
			writeFile(t, filepath.Join(sub, ".gitattributes"), "f filter=x\n")
			git(t, sub, "config", "filter.x.clean", prog)
			os.Chtimes(filepath.Join(sub, "f"), time.Now(), time.Now().Add(time.Hour))
			out, _ := exec.Command("git", "-C", app, "status", "--short").CombinedOutput()
			t.Logf("%s", out)
			exec.Command("git", "-C", app, "status", "--short").Run()
			if b, _ := os.ReadFile(ran); len(b) == 0 {
				t.Fatal("control: did not run")
			}
			rec1, cut := coveredOrCut(t, app, "sub/~nosuchuser/mon")
			rec2, _ := coveredOrCut(t, app, "sub/~+/mon")
			rec3, _ := coveredOrCut(t, app, "sub/mon")
			if !rec1 && !rec2 && !rec3 && cut == "" {
				t.Errorf("%s runs on git status; neither recorded nor cut", prog)
			}
		})
	}
}

// A command in an agent-written submodule configuration whose words, as
// they were once split, were not the file sh runs: each is recorded or
// cut.
func TestGitHostRunCommandWordsAsShSplits(t *testing.T) {
	cases := []struct {
		name, cmd, runs string // runs: relative to app
	}{
		{"percent", "./mon%x", "sub/mon%x"},
		{"nbsp", "./mon\u00a0x", "sub/mon\u00a0x"},
		{"vtab", "./mon\vx", "sub/mon\vx"},
		{"envC-attached", "env -C.. ./mon", "mon"},
		{"envchdir", "env --chdir=.. ./mon", "mon"},
		{"newline-cd", "cd ..\n./mon", "mon"},
		{"dashdash", "sh -- -mon", "sub/-mon"},
		{"envS", "env -S./mon", "sub/mon"},
		{"python-m", "python3.11 -m mon", "sub/mon.py"},
		{"python-mattached", "python3.11 -mmon", "sub/mon.py"},
		{"node-ext", "node ./mon", "sub/mon.js"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gitEnv(t)
			app, sub := projectWithSubmodule(t)
			ran := filepath.Join(t.TempDir(), "ran")
			p := filepath.Join(app, tc.runs)
			switch filepath.Ext(p) {
			case ".py":
				writeFile(t, p, "open('"+ran+"','a').write('pwned')\nraise SystemExit(1)\n")
			case ".js":
				writeFile(t, p, "require('fs').appendFileSync('"+ran+"','pwned');process.exit(1)\n")
			default:
				writeFile(t, p, "#!/bin/sh\necho pwned >>'"+ran+"'\nexit 1\n")
			}
			os.Chmod(p, 0o755)
			git(t, sub, "config", "core.fsmonitor", tc.cmd)
			out, _ := exec.Command("git", "-C", app, "status", "--short").CombinedOutput()
			ranAndCovered(t, app, tc.runs, ran, out, "git status with core.fsmonitor = "+tc.cmd)
		})
	}
}

// A bare program name that the host user's PATH (a trailing ':' or a
// relative entry such as node_modules/.bin) finds in the worktree.
func TestGitHostRunRelativePATHProgram(t *testing.T) {
	for _, entry := range []string{"", "node_modules/.bin"} {
		t.Run(entry, func(t *testing.T) {
			gitEnv(t)
			t.Setenv("PATH", os.Getenv("PATH")+":"+entry)
			app, sub := projectWithSubmodule(t)
			p := filepath.Join(sub, entry, "vibe-review-mon")
			ran := plant(t, p)
			git(t, sub, "config", "core.fsmonitor", "vibe-review-mon")
			out, _ := exec.Command("git", "-C", app, "status", "--short").CombinedOutput()
			rel, _ := filepath.Rel(app, p)
			ranAndCovered(t, app, rel, ran, out, "git status with PATH entry "+strconv.Quote(entry))
		})
	}
}

// An alias in an included configuration file of the worktree (the
// user's .git/config includes ../.gitconfig): its shell-shaped command's
// words are recorded, and a git alias's -c sets one.
func TestGitHostRunAliasWords(t *testing.T) {
	for _, v := range []string{"!sh ./x.sh && true", "-c core.fsmonitor=./x.sh status"} {
		t.Run(v, func(t *testing.T) {
			app := teamConfig(t, "[alias]\n\tst = \""+v+"\"\n")
			ran := plant(t, filepath.Join(app, "x.sh"))
			out, _ := exec.Command("git", "-C", app, "st").CombinedOutput()
			ranAndCovered(t, app, "x.sh", ran, out, "alias st = "+v)
		})
	}
}

// The user's own .git/config names a worktree script in a command with a
// redirection: the script is recorded, though the user's file is never
// cut for.
func TestGitHostRunUserShellShapedCommand(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	ran := filepath.Join(t.TempDir(), "ran")
	writeFile(t, filepath.Join(app, "tools/mon.sh"), "#!/bin/sh\necho pwned >>'"+ran+"'\nexit 1\n")
	os.Chmod(filepath.Join(app, "tools/mon.sh"), 0o755)
	git(t, app, "config", "core.fsmonitor", "./tools/mon.sh 2>/dev/null")
	exec.Command("git", "-C", app, "status", "--short").Run()
	if b, _ := os.ReadFile(ran); len(b) == 0 {
		t.Fatal("control: did not run")
	}
	if rec, cut := coveredOrCut(t, app, "tools/mon.sh"); !rec && cut == "" {
		t.Errorf("tools/mon.sh runs on git status; neither recorded nor cut")
	}
}

// Hook managers that run files the snapshot does not compare are named
// by a cut, and lefthook's files are host-run paths: husky 9's
// .husky/_/h puts node_modules/.bin first in PATH and then runs `sh`;
// pre-commit's hook runs python -mpre_commit from the worktree (cwd first
// in sys.path); lefthook merges lefthook-local.yml (and .config/, .yaml,
// .toml, .json, .jsonc, .lefthook-local/).
func TestGitHostRunHookManagers(t *testing.T) {
	for _, add := range []string{"node_modules/.bin/sh", "pre_commit/__main__.py", "argparse.py", "lefthook-local.yml", ".config/lefthook-local.yml", "lefthook.yaml", ".lefthook-local/pre-commit/x.sh"} {
		t.Run(add, func(t *testing.T) {
			gitEnv(t)
			app := t.TempDir()
			git(t, app, "init", "-q")
			git(t, app, "config", "core.hooksPath", ".husky/_")
			writeFile(t, filepath.Join(app, ".husky/_/h"), "export PATH=\"node_modules/.bin:$PATH\"\nsh -e x\n")
			writeFile(t, filepath.Join(app, ".git/hooks/pre-commit"), "exec /usr/bin/python3 -mpre_commit hook-impl\n")
			writeFile(t, filepath.Join(app, "lefthook.yml"), "pre-commit:\n  commands: {}\n")
			m := []workspace.Mount{{Source: app}}
			before := TakeSnapshot(m, nil)
			writeFile(t, filepath.Join(app, add), "evil\n")
			after := TakeSnapshot(m, nil)
			if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
				t.Errorf("%s added: no change reported, nothing cut", add)
			}
		})
	}
}

// A program outside the project that reads its work from the folder git
// runs it in (make and its Makefile; npm, cargo, pytest and many more):
// in an agent-written configuration, git status ran the agent's Makefile,
// which no word of the command names. Only programs known to run just
// their words (plainProgram) are taken at their words; any other program
// outside the project cuts.
func TestGitHostRunProgramReadingItsFolderIsCut(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("no make on this machine")
	}
	for _, cmd := range []string{"make", "/usr/bin/make -s", "nice make", "timeout 5 make", "xargs make"} {
		t.Run(cmd, func(t *testing.T) {
			fsmonitorInSubmodule(t, cmd, "Makefile", "%:\n\t@echo pwned >>RAN\n", !strings.HasPrefix(cmd, "xargs"))
		})
	}
}
