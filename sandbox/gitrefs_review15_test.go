package sandbox

// A hostile review of the comparison of other refs (otherRefs): each
// attack first runs real git as the control (the user's ordinary command,
// then a commit, runs the agent's hook), then the snapshot must report a
// change or a cut.

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// rrCase runs one attack: setup (the user's, before the session), agent
// (given the evil commit, made on HEAD), user commands, then a commit.
func rrCase(t *testing.T, setup func(t *testing.T, app string), agent func(t *testing.T, app, evil, ran string), user ...[]string) {
	t.Helper()
	app, mounts := refsProject(t)
	if setup != nil {
		setup(t, app)
	}
	before := TakeSnapshot(mounts, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	evil, _ := r13EvilCommit(t, app, git(t, app, "rev-parse", "HEAD"), ".githooks/pre-commit", mark(ran))
	agent(t, app, evil, ran)
	after := TakeSnapshot(mounts, nil, before)
	var outs []string
	for _, u := range user {
		out, _ := exec.Command("git", append([]string{"-C", app, "-c", "user.name=t", "-c", "user.email=t@t"}, u...)...).CombinedOutput()
		outs = append(outs, fmt.Sprintf("git %v: %s", u, out))
	}
	out, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "mine").CombinedOutput()
	outs = append(outs, "commit: "+string(out))
	if !ranMark(t, ran) {
		t.Fatalf("control: the agent's hook did not run:\n%s", strings.Join(outs, "\n"))
	}
	t.Logf("user: %s", strings.Join(outs, "\n"))
	if len(after.Truncated()) > 0 {
		t.Logf("cut: %s", after.Reason(app))
	}
	r13Silent(t, t.Name(), before, after)
}

// A second, ordinary commit of the user's (HEAD~1 exists).
func rrSecondCommit(t *testing.T, app string) {
	writeFile(t, filepath.Join(app, "a.txt"), "a\n")
	git(t, app, "add", "a.txt")
	git(t, app, "commit", "-q", "--no-verify", "-m", "a")
}

// rrStash makes a stash commit on HEAD whose worktree has the hook as
// content, leaving worktree and index as they were (git stash create).
func rrStash(t *testing.T, app, content string) string {
	hook := filepath.Join(app, ".githooks", "pre-commit")
	old, _ := os.ReadFile(hook)
	writeFile(t, hook, content)
	s := git(t, app, "stash", "create")
	writeFile(t, hook, string(old))
	os.Chmod(hook, 0o755)
	return s
}

// rrLogHEAD appends text to app's HEAD reflog, as the agent can.
func rrLogHEAD(t *testing.T, app, text string) {
	t.Helper()
	f, err := os.OpenFile(filepath.Join(app, ".git/logs/HEAD"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(text); err != nil {
		t.Fatal(err)
	}
}

func rrReflog(old, new, msg string) string {
	return old + " " + new + " t <t@t> 1700000000 +0000\t" + msg + "\n"
}

// 1. .git/refs/main: "main" is refs/main before refs/heads/main in git's
// rules (with a warning that it is ambiguous).
func TestSnapshotReview15RefsTopDWIM(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		writeFile(t, filepath.Join(app, ".git/refs/main"), evil+"\n")
	}, []string{"reset", "-q", "--hard", "main"})
}

// 1b. The same, git merge --ff-only main.
func TestSnapshotReview15RefsTopDWIMMerge(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		writeFile(t, filepath.Join(app, ".git/refs/main"), evil+"\n")
	}, []string{"merge", "-q", "--ff-only", "main"})
}

// 1c. A new name only in refs/ (no other match): git switch -c x fix.
func TestSnapshotReview15RefsTopOnly(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		writeFile(t, filepath.Join(app, ".git/refs/fix"), evil+"\n")
	}, []string{"checkout", "-q", "fix"})
}

// 1d. The same packed (packed-refs is copied whole but only refs/heads,
// remotes and tags are listed).
func TestSnapshotReview15RefsTopPacked(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		git(t, app, "update-ref", "refs/main", evil)
		git(t, app, "pack-refs", "--all")
	}, []string{"reset", "-q", "--hard", "main"})
}

// 2. A top-level .git/main (one-level ref).
func TestSnapshotReview15GitDirTopLevel(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		writeFile(t, filepath.Join(app, ".git/main"), evil+"\n")
	}, []string{"reset", "-q", "--hard", "main"})
}

// 3. A packed replace ref for HEAD's parent: git reset --hard HEAD~1.
func TestSnapshotReview15ReplaceParentPacked(t *testing.T) {
	rrCase(t, func(t *testing.T, app string) {
		rrSecondCommit(t, app)
		git(t, app, "branch", "-D", "main") // no ref holds HEAD~1
	}, func(t *testing.T, app, _, ran string) {
		parent := git(t, app, "rev-parse", "HEAD~1")
		evil, _ := r13EvilCommit(t, app, parent, ".githooks/pre-commit", mark(ran))
		packed, _ := os.ReadFile(filepath.Join(app, ".git/packed-refs"))
		writeFile(t, filepath.Join(app, ".git/packed-refs"), string(packed)+evil+" refs/replace/"+parent+"\n")
	}, []string{"reset", "-q", "--hard", "HEAD~1"})
}

// 4. git checkout -: the previous branch is read from HEAD's reflog, a
// detached commit there is checked out.
func TestSnapshotReview15CheckoutDash(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		rrLogHEAD(t, app, rrReflog(evil, head, "checkout: moving from "+evil+" to feature"))
	}, []string{"checkout", "-q", "-"})
}

// 5. git reset --hard HEAD@{1} (undoing a reset).
func TestSnapshotReview15HeadReflog(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		rrLogHEAD(t, app, rrReflog(head, evil, "reset: moving to x")+rrReflog(evil, head, "reset: moving to HEAD~1"))
	}, []string{"reset", "-q", "--hard", "HEAD@{1}"})
}

// 6. The stash's older entries are in its reflog: the agent stashes its
// hook, then something harmless; the user pops twice.
func TestSnapshotReview15StashReflog(t *testing.T) {
	rrCase(t, func(t *testing.T, app string) {
		// The user's own stash, before the session.
		writeFile(t, filepath.Join(app, "notes.txt"), "x\n")
		git(t, app, "add", "notes.txt")
		git(t, app, "stash", "push", "-q")
	}, func(t *testing.T, app, _, ran string) {
		bad := rrStash(t, app, mark(ran))
		// An older entry of the stash's reflog: refs/stash is unchanged.
		log := filepath.Join(app, ".git/logs/refs/stash")
		old, _ := os.ReadFile(log)
		zero := strings.Repeat("0", 40)
		writeFile(t, log, rrReflog(zero, bad, "On feature: wip")+string(old))
	}, []string{"stash", "pop", "-q"}, []string{"stash", "pop", "-q"})
}

// 7. A remote-tracking branch that is a symref to a loose ref outside
// refs/heads, remotes and tags: broken in vibe's repository.
func TestSnapshotReview15SymrefOutside(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		writeFile(t, filepath.Join(app, ".git/refs/evil"), evil+"\n")
		writeFile(t, filepath.Join(app, ".git/refs/remotes/origin/main"), "ref: refs/evil\n")
	}, []string{"switch", "-q", "-c", "mine", "origin/main"})
}

// 7b. ORIG_HEAD as a symref to refs/evil.
func TestSnapshotReview15OrigHeadSymref(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		writeFile(t, filepath.Join(app, ".git/refs/evil"), evil+"\n")
		writeFile(t, filepath.Join(app, ".git/ORIG_HEAD"), "ref: refs/evil\n")
	}, []string{"reset", "-q", "--hard", "ORIG_HEAD"})
}

// 8. A bisect left "in progress": git status says to run git bisect
// reset, which checks out BISECT_START.
func TestSnapshotReview15BisectStart(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		writeFile(t, filepath.Join(app, ".git/BISECT_START"), evil+"\n")
		writeFile(t, filepath.Join(app, ".git/BISECT_LOG"), "git bisect start\n")
	}, []string{"bisect", "reset"})
}

// 9. A merge left "in progress" with an autostash: git merge --abort
// applies MERGE_AUTOSTASH.
func TestSnapshotReview15MergeAutostash(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, _, ran string) {
		bad := rrStash(t, app, mark(ran))
		writeFile(t, filepath.Join(app, ".git/MERGE_HEAD"), git(t, app, "rev-parse", "HEAD")+"\n")
		writeFile(t, filepath.Join(app, ".git/MERGE_MSG"), "Merge\n")
		writeFile(t, filepath.Join(app, ".git/MERGE_AUTOSTASH"), bad+"\n")
	}, []string{"merge", "--abort"})
}

// 10. FETCH_HEAD's second line: FETCH_HEAD^{tree} is the first line's,
// git merge FETCH_HEAD merges the lines not marked not-for-merge.
func TestSnapshotReview15FetchHeadSecondLine(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		writeFile(t, filepath.Join(app, ".git/FETCH_HEAD"), head+"\tnot-for-merge\tbranch 'x' of ../up\n"+evil+"\t\tbranch 'main' of ../up\n")
	}, []string{"merge", "-q", "--ff-only", "FETCH_HEAD"})
}

// 11. A branch whose tree has .githooks as a link to a folder holding the
// agent's pre-commit.
func TestSnapshotReview15HooksDirLink(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, _, ran string) {
		head := git(t, app, "rev-parse", "HEAD")
		f := filepath.Join(t.TempDir(), "blob")
		os.WriteFile(f, []byte(mark(ran)), 0o755)
		blob := git(t, app, "hash-object", "-w", f)
		os.WriteFile(f, []byte("tools"), 0o644)
		link := git(t, app, "hash-object", "-w", f)
		idx := filepath.Join(t.TempDir(), "index")
		r13GitIdx(t, app, idx, "read-tree", head)
		r13GitIdx(t, app, idx, "update-index", "--force-remove", ".githooks/pre-commit")
		r13GitIdx(t, app, idx, "update-index", "--add", "--cacheinfo", "120000,"+link+",.githooks")
		r13GitIdx(t, app, idx, "update-index", "--add", "--cacheinfo", "100755,"+blob+",tools/pre-commit")
		tree := r13GitIdx(t, app, idx, "write-tree")
		c := r13GitIdx(t, app, idx, "commit-tree", tree, "-p", head, "-m", "x")
		git(t, app, "update-ref", "refs/heads/main", c)
	}, []string{"checkout", "-q", "main"})
}

// rrOldHook makes a branch "old" with an older hook than HEAD's: the
// user's history, before the session.
func rrOldHook(t *testing.T, app string) {
	git(t, app, "branch", "old")
	writeFile(t, filepath.Join(app, ".githooks", "pre-commit"), "#!/bin/sh\nexit 0 # v2\n")
	git(t, app, "commit", "-q", "--no-verify", "-am", "hook v2")
	git(t, app, "update-ref", "refs/heads/main", "HEAD")
}

// False positive: deleting a branch that holds an older hook.
func TestSnapshotReview15FPDeleteBranch(t *testing.T) {
	app, mounts := refsProject(t)
	rrOldHook(t, app)
	before := TakeSnapshot(mounts, nil)
	git(t, app, "branch", "-D", "old")
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("branch -D old: changed %q, cut %q", c, after.Truncated())
	}
}

// False positive: rebasing a branch made before the hook changed onto
// main (its old hook is gone from every ref).
func TestSnapshotReview15FPRebaseOther(t *testing.T) {
	app, mounts := refsProject(t)
	rrOldHook(t, app)
	git(t, app, "checkout", "-q", "old")
	writeFile(t, filepath.Join(app, "x.go"), "package x\n")
	git(t, app, "add", "x.go")
	git(t, app, "commit", "-q", "--no-verify", "-m", "x")
	git(t, app, "checkout", "-q", "feature")
	before := TakeSnapshot(mounts, nil)
	git(t, app, "rebase", "-q", "main", "old")
	git(t, app, "checkout", "-q", "feature")
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("rebase old onto main: changed %q, cut %q", c, after.Truncated())
	}
}

// False positive: the first stash (with no change to a host-run file).
func TestSnapshotReview15FPStash(t *testing.T) {
	app, mounts := refsProject(t)
	before := TakeSnapshot(mounts, nil)
	writeFile(t, filepath.Join(app, "notes.txt"), "x\n")
	git(t, app, "add", "notes.txt")
	git(t, app, "stash", "push", "-q")
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("git stash: changed %q, cut %q", c, after.Truncated())
	}
}

// False positive: git fetch --prune drops a remote-tracking branch that
// held an older hook.
func TestSnapshotReview15FPFetchPrune(t *testing.T) {
	app, mounts := refsProject(t)
	rrOldHook(t, app)
	up := t.TempDir()
	git(t, up, "clone", "-q", "--bare", app, "up.git")
	git(t, app, "remote", "add", "origin", filepath.Join(up, "up.git"))
	git(t, app, "fetch", "-q", "origin")
	git(t, app, "branch", "-D", "old")
	before := TakeSnapshot(mounts, nil)
	git(t, filepath.Join(up, "up.git"), "branch", "-D", "old")
	git(t, app, "fetch", "-q", "--prune", "origin")
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("fetch --prune: changed %q, cut %q", c, after.Truncated())
	}
}

// False positive: a tag of a blob (as git.git's junio-gpg-pub).
func TestSnapshotReview15FPBlobTag(t *testing.T) {
	app, mounts := refsProject(t)
	before := TakeSnapshot(mounts, nil)
	f := filepath.Join(t.TempDir(), "key")
	os.WriteFile(f, []byte("key\n"), 0o644)
	git(t, app, "tag", "key", git(t, app, "hash-object", "-w", f))
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("blob tag: changed %q, cut %q (%s)", c, after.Truncated(), after.Reason(app))
	}
}

// False positive: an empty FETCH_HEAD (a fetch that fetched nothing), an
// ORIG_HEAD whose commit gc pruned.
func TestSnapshotReview15FPPseudoGone(t *testing.T) {
	app, mounts := refsProject(t)
	before := TakeSnapshot(mounts, nil)
	writeFile(t, filepath.Join(app, ".git/FETCH_HEAD"), "")
	writeFile(t, filepath.Join(app, ".git/ORIG_HEAD"), strings.Repeat("1", 40)+"\n")
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("empty FETCH_HEAD, pruned ORIG_HEAD: changed %q, cut %q (%s)", c, after.Truncated(), after.Reason(app))
	}
}

// False positive: a remote's HEAD left dangling (its default branch
// renamed upstream, then pruned), and ORIG_HEAD after git checkout of
// nothing.
func TestSnapshotReview15FPDanglingRemoteHead(t *testing.T) {
	app, mounts := refsProject(t)
	git(t, app, "update-ref", "refs/remotes/origin/main", "HEAD")
	git(t, app, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/remotes/origin/main")
	before := TakeSnapshot(mounts, nil)
	git(t, app, "update-ref", "-d", "refs/remotes/origin/main")
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("dangling origin/HEAD: changed %q, cut %q (%s)", c, after.Truncated(), after.Reason(app))
	}
}

// A stash's untracked files are in its third parent: git stash pop writes
// a new hook out from there, though the stash's own tree is HEAD's.
func TestSnapshotReview15StashUntracked(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, _, ran string) {
		hook := filepath.Join(app, ".githooks", "post-commit")
		writeFile(t, hook, mark(ran))
		os.Chmod(hook, 0o755)
		git(t, app, "stash", "push", "-q", "-u")
	}, []string{"stash", "pop", "-q"})
}
