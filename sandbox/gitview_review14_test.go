package sandbox

// A fourteenth hostile review, of git's view in submodules, nested
// repositories and linked worktrees: real git writes and runs the agent's
// hook, then the snapshot must report it or cut.

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

// r14Sub is a project with a submodule sub whose (user-set)
// core.hooksPath is .githooks, a harmless pre-commit committed there.
func r14Sub(t *testing.T) (app, sub string, mounts []workspace.Mount) {
	t.Helper()
	gitEnv(t)
	lib := t.TempDir()
	git(t, lib, "init", "-q")
	writeFile(t, filepath.Join(lib, ".githooks", "pre-commit"), "#!/bin/sh\nexit 0\n")
	os.Chmod(filepath.Join(lib, ".githooks", "pre-commit"), 0o755)
	git(t, lib, "add", "-A")
	git(t, lib, "commit", "-q", "-m", "hooks")
	app = t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "submodule", "-q", "add", lib, "sub")
	git(t, app, "commit", "-q", "-m", "sub")
	sub = filepath.Join(app, "sub")
	git(t, sub, "config", "core.hooksPath", ".githooks")
	return app, sub, []workspace.Mount{{Name: "p", Source: app}}
}

// 1. A loose replace ref in a submodule's git folder: the main repository's
// .git/refs/replace is a host-run path, a submodule's (or nested
// repository's) is neither recorded nor copied into vibe's repository, so
// vibe reads HEAD's own commit; the user's git reads the agent's.
func TestSnapshotReview14SubmoduleReplaceRef(t *testing.T) {
	_, sub, mounts := r14Sub(t)
	r13Attack(t, "submodule refs/replace", mounts, sub, func(head, evil string) {
		gd := git(t, sub, "rev-parse", "--absolute-git-dir")
		writeFile(t, filepath.Join(gd, "refs/replace", head), evil+"\n")
	})
}

// 1b. The same in a nested repository (sub/.git a folder).
func TestSnapshotReview14NestedReplaceRef(t *testing.T) {
	app, mounts := hookedProject(t)
	sub := filepath.Join(app, "sub")
	hookedRepo(t, sub)
	r13Attack(t, "nested refs/replace", mounts, sub, func(head, evil string) {
		writeFile(t, filepath.Join(sub, ".git/refs/replace", head), evil+"\n")
	})
}

// 2. A linked worktree of a repository nested in the project: its git
// folder (main/.git/worktrees/wt) holds HEAD and the index, but its
// branch and objects are in the common folder. refTree looks for the
// branch in the worktree's git folder only, finds none ("no commit yet")
// and records nothing, before and after.
func TestSnapshotReview14NestedLinkedWorktree(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "commit", "-q", "--allow-empty", "-m", "x")
	main := filepath.Join(app, "main")
	hookedRepo(t, main)
	wt := filepath.Join(app, "wt")
	git(t, main, "worktree", "add", "-q", "-b", "feat", wt)
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	r13Attack(t, "nested linked worktree", mounts, wt, func(head, evil string) {
		git(t, wt, "update-ref", "refs/heads/feat", evil) // in main/.git/refs
		git(t, wt, "read-tree", head)                     // the index as it was
	})
}

// 3. Two projects mounted: a repository and its linked worktree (the
// sibling-worktree case the walk supports). The worktree project's .git
// is a file: no view; the repository's walk skips the worktree (another
// mount). Its branch, objects and index are all in the other project.
func TestSnapshotReview14SiblingWorktree(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	hookedRepo(t, app)
	wt := filepath.Join(t.TempDir(), "wt")
	git(t, app, "worktree", "add", "-q", "-b", "feat", wt)
	mounts := []workspace.Mount{{Name: "p", Source: app}, {Name: "w", Source: wt}}
	r13Attack(t, "sibling linked worktree", mounts, wt, func(head, evil string) {
		// Written as a file: no reflog, the worktree's index untouched.
		writeFile(t, filepath.Join(app, ".git/refs/heads/feat"), evil+"\n")
	})
}

// 4. Keys collide between two views: the project's repository tracks
// sub/.githooks/pre-commit as a file, and sub is a nested repository that
// tracks .githooks/pre-commit too. Both views write
// "sub/.githooks/pre-commit (as git's HEAD holds it)"; the nested one,
// later, overwrites the project's. The agent changes the project's HEAD
// only.
func TestSnapshotReview14ViewKeysCollide(t *testing.T) {
	app, mounts := hookedProject(t)
	sub := filepath.Join(app, "sub")
	writeFile(t, filepath.Join(sub, ".githooks", "pre-commit"), "#!/bin/sh\nexit 0\n")
	os.Chmod(filepath.Join(sub, ".githooks", "pre-commit"), 0o755)
	git(t, app, "add", "-A")
	git(t, app, "commit", "-q", "-m", "sub's hooks")
	git(t, sub, "init", "-q")
	git(t, sub, "config", "core.hooksPath", ".githooks")
	git(t, sub, "add", "-A")
	git(t, sub, "commit", "-q", "-m", "hooks")
	before := TakeSnapshot(mounts, nil)
	for k, v := range before {
		if strings.Contains(k, "sub/.githooks/pre-commit (") {
			t.Logf("before %q = %s", k, v)
		}
	}
	ran := filepath.Join(t.TempDir(), "ran")
	head := git(t, app, "rev-parse", "HEAD")
	evil, _ := r13EvilCommit(t, app, head, "sub/.githooks/pre-commit", mark(ran))
	git(t, app, "update-ref", "refs/heads/main", evil)
	git(t, app, "read-tree", head)
	after := TakeSnapshot(mounts, nil)
	// The user: git reset --hard in the project, then a commit in sub.
	git(t, app, "reset", "-q", "--hard")
	exec.Command("git", "-C", sub, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "mine").Run()
	if !ranMark(t, ran) {
		t.Fatal("control: the hook did not run")
	}
	r13Silent(t, "view keys collide", before, after)
}

// 5. SinceLast drops every view key of the whole snapshot when the saved
// one lacks gitViewKey. The agent ends session N with a .git/reftable
// folder (gitView cuts and never sets the key: one cut warning, nothing
// evil yet to review); a process it left removes it and commits its hook
// between sessions: session N+1's "since the last session" report drops
// all view keys, and before/after of N+1 agree: never reported.
func TestSnapshotReview14SinceLastKeyDropped(t *testing.T) {
	app, mounts := hookedProject(t)
	os.MkdirAll(filepath.Join(app, ".git/reftable"), 0o755)
	last := TakeSnapshot(mounts, nil) // session N's after, saved
	if _, ok := last[gitViewKey]; !ok {
		t.Error("a snapshot of this vibe without its mark (reftable cut the view): the next one would drop every view key")
	}
	os.Remove(filepath.Join(app, ".git/reftable"))
	ran := filepath.Join(t.TempDir(), "ran")
	head := git(t, app, "rev-parse", "HEAD")
	evil, _ := r13EvilCommit(t, app, head, ".githooks/pre-commit", mark(ran))
	writeFile(t, filepath.Join(app, ".git/refs/heads/main"), evil+"\n")
	before := TakeSnapshot(mounts, nil) // session N+1
	r13User(t, app, ran)
	c := before.SinceLast(last).Changed(last)
	t.Logf("changed=%q cut=%q", c, before.Truncated())
	if len(c) == 0 && len(before.Truncated()) == 0 {
		t.Errorf("between sessions: git runs the agent's hook; nothing reported since the last session, no cut now")
	}
}
