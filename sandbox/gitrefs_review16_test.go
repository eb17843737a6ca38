package sandbox

// A sixteenth hostile review, of the comparison of other refs (otherRefs):
// each attack runs real git as the control (the user's ordinary command,
// then a commit, runs the agent's hook: rrCase), then the snapshot must
// report a change or a cut.

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/workspace"
)

// r16Ancestor: the agent commits its hook (E), then a commit on top that
// puts the hook back (E2, "fix lint"), and moves the current branch to E2
// as git commit would (its reflog names E2 only). HEAD's tree, the index
// and the worktree are as before; E is only HEAD~1.
func r16Ancestor(t *testing.T, app, evil, _ string) {
	head := git(t, app, "rev-parse", "HEAD")
	e2 := git(t, app, "commit-tree", git(t, app, "rev-parse", head+"^{tree}"), "-p", evil, "-m", "fix lint")
	git(t, app, "update-ref", "-m", "commit: fix lint", "refs/heads/feature", e2)
}

// 1. git reset --hard HEAD~1: "drop the agent's last commit".
func TestSnapshotReview16AncestorResetHard(t *testing.T) {
	rrCase(t, nil, r16Ancestor, []string{"reset", "-q", "--hard", "HEAD~1"})
}

// 1b. git revert HEAD: "revert the agent's last commit" (E2 put the hook
// back, its revert takes E's).
func TestSnapshotReview16AncestorRevert(t *testing.T) {
	rrCase(t, nil, r16Ancestor, []string{"revert", "--no-edit", "HEAD"})
}

// 1c. git checkout HEAD^ (look at the state before the last commit).
func TestSnapshotReview16AncestorCheckout(t *testing.T) {
	rrCase(t, nil, r16Ancestor, []string{"checkout", "-q", "HEAD^"})
}

// 1d. git checkout :/evil (the youngest commit whose message matches,
// searched through every ref's history).
func TestSnapshotReview16AncestorMessageSearch(t *testing.T) {
	rrCase(t, nil, r16Ancestor, []string{"checkout", "-q", ":/evil"})
}

// 2. An upper-case object id: git reads loose refs and top-level files
// with get_oid_hex, which takes A-F; vibe's objectID only a-f.
func TestSnapshotReview16UpperOrigHead(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		writeFile(t, filepath.Join(app, ".git/ORIG_HEAD"), strings.ToUpper(evil)+"\n")
	}, []string{"reset", "-q", "--hard", "ORIG_HEAD"})
}

// 2b. The same in HEAD's reflog: git reset --hard HEAD@{1}.
func TestSnapshotReview16UpperReflog(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		up := strings.ToUpper(evil)
		rrLogHEAD(t, app, rrReflog(head, up, "reset: moving to x")+rrReflog(up, head, "reset: moving to HEAD~1"))
	}, []string{"reset", "-q", "--hard", "HEAD@{1}"})
}

// 2c. The same in "checkout: moving from X": git checkout -.
func TestSnapshotReview16UpperCheckoutDash(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		rrLogHEAD(t, app, rrReflog(head, head, "checkout: moving from "+strings.ToUpper(evil)+" to feature"))
	}, []string{"checkout", "-q", "-"})
}

// 3. A reflog entry with no tab before its message: git takes the message
// right after the time zone, vibe's Cut at the first tab finds none.
func TestSnapshotReview16ReflogNoTab(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		rrLogHEAD(t, app, head+" "+head+" t <t@t> 1700000000 +0000checkout: moving from "+evil+" to feature\n")
	}, []string{"checkout", "-q", "-"})
}

// 3b. A tab in the committer's name: vibe's message starts there.
func TestSnapshotReview16ReflogTabInName(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		rrLogHEAD(t, app, head+" "+head+" t\t<t@t> 1700000000 +0000\tcheckout: moving from "+evil+" to feature\n")
	}, []string{"checkout", "-q", "-"})
}

// 4. The reflog of a one-level ref at the top of .git (.git/main, which
// git dwims before refs/heads/main, holding HEAD's own commit): git reads
// main@{1} from .git/logs/main, which vibe does not read (only logs/HEAD
// and logs/refs).
func TestSnapshotReview16TopLevelReflog(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		writeFile(t, filepath.Join(app, ".git/main"), head+"\n")
		writeFile(t, filepath.Join(app, ".git/logs/main"), rrReflog(evil, head, "commit: x"))
	}, []string{"reset", "-q", "--hard", "main@{1}"})
}

// r16FastImport feeds git fast-import in app.
func r16FastImport(t *testing.T, app string, stream string) {
	t.Helper()
	cmd := exec.Command("git", "-C", app, "fast-import", "--quiet")
	cmd.Stdin = strings.NewReader(stream)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("fast-import: %v %s", err, out)
	}
}

// r16Cloned is a clone (its reflogs name only the tips) of a history
// whose pre-commit changed once: C1 (v1), C2 (another file), C3 (v2), C4,
// C5 (other files). Every ref and reflog holds v2; only ancestors hold v1.
func r16Cloned(t *testing.T) (string, []workspace.Mount) {
	t.Helper()
	gitEnv(t)
	up := filepath.Join(t.TempDir(), "up")
	hookedRepo(t, up)
	code := func(f string) {
		writeFile(t, filepath.Join(up, f), f+"\n")
		git(t, up, "add", f)
		git(t, up, "commit", "-q", "--no-verify", "-m", f)
	}
	code("c2.txt")
	writeFile(t, filepath.Join(up, ".githooks", "pre-commit"), "#!/bin/sh\nexit 0 # v2\n")
	git(t, up, "commit", "-q", "--no-verify", "-am", "hook v2")
	code("c4.txt")
	code("c5.txt")
	app := filepath.Join(t.TempDir(), "app")
	git(t, filepath.Dir(app), "clone", "-q", up, app)
	git(t, app, "config", "core.hooksPath", ".githooks")
	return app, []workspace.Mount{{Name: "p", Source: app}}
}

// r16Quiet asserts that what ran between before and a new snapshot is
// neither a change nor a cut.
func r16Quiet(t *testing.T, what string, mounts []workspace.Mount, app string, before Snapshot) {
	t.Helper()
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("%s (no host-run file differs): changed %q, cut %q (%s)", what, c, after.Truncated(), after.Reason(app))
	}
}

// False alarm: git rebase -i HEAD~3, rewording the oldest of the three
// (C3, the hook's own change), in a clone: the rebase starts at HEAD~3
// (C2, the old hook), and HEAD's reflog keeps it.
func TestSnapshotReview16FPRebaseInteractive(t *testing.T) {
	app, mounts := r16Cloned(t)
	before := TakeSnapshot(mounts, nil)
	cmd := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "rebase", "-q", "-i", "HEAD~3")
	cmd.Env = append(os.Environ(), "GIT_SEQUENCE_EDITOR=sed -i '1s/^pick/reword/'", "GIT_EDITOR=true")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rebase -i: %v %s", err, out)
	}
	t.Logf("%s", git(t, app, "log", "--oneline"))
	r16Quiet(t, "git rebase -i HEAD~3", mounts, app, before)
}

// False alarm: a look at an older commit and back (git checkout HEAD~3,
// git checkout -).
func TestSnapshotReview16FPCheckoutOld(t *testing.T) {
	app, mounts := r16Cloned(t)
	before := TakeSnapshot(mounts, nil)
	git(t, app, "checkout", "-q", "HEAD~3")
	git(t, app, "checkout", "-q", "-")
	r16Quiet(t, "git checkout HEAD~3; git checkout -", mounts, app, before)
}

// False alarm: a bisect over the history, then git bisect reset.
func TestSnapshotReview16FPBisect(t *testing.T) {
	app, mounts := r16Cloned(t)
	before := TakeSnapshot(mounts, nil)
	git(t, app, "bisect", "start", "HEAD", "HEAD~4")
	t.Logf("bisect at %s", git(t, app, "log", "--format=%s", "-1"))
	git(t, app, "bisect", "bad")
	t.Logf("bisect at %s", git(t, app, "log", "--format=%s", "-1"))
	git(t, app, "bisect", "reset")
	r16Quiet(t, "git bisect start HEAD HEAD~4; bad; reset", mounts, app, before)
}

// False alarm: git reset --hard HEAD~3 then git reset --hard ORIG_HEAD
// (undo): ORIG_HEAD and the reflogs now name the old hook's commit.
func TestSnapshotReview16FPResetUndo(t *testing.T) {
	app, mounts := r16Cloned(t)
	before := TakeSnapshot(mounts, nil)
	git(t, app, "reset", "-q", "--hard", "HEAD~3")
	git(t, app, "reset", "-q", "--hard", "ORIG_HEAD")
	r16Quiet(t, "git reset --hard HEAD~3; git reset --hard ORIG_HEAD", mounts, app, before)
}

// False alarm: a clone of a busy repository, 17,000 remote-tracking
// branches at distinct commits (each with its reflog, as git fetch keeps
// them), no host-run file differing: every ref counts twice, by name and
// by its reflog's id, against the bound of 32,768.
func TestSnapshotReview16FPManyBranches(t *testing.T) {
	app, mounts := refsProject(t)
	head := git(t, app, "rev-parse", "HEAD")
	var s strings.Builder
	for i := 0; i < 17000; i++ {
		fmt.Fprintf(&s, "commit refs/remotes/origin/b%05d\ncommitter t <t@t> 1700000000 +0000\ndata %d\n%d\nfrom %s\n\n", i, len(strconv.Itoa(i))+1, i, head)
	}
	r16FastImport(t, app, s.String())
	start := time.Now()
	s0 := TakeSnapshot(mounts, nil)
	took := time.Since(start)
	s1 := TakeSnapshot(mounts, nil, s0)
	t.Logf("17,000 remote-tracking branches: a snapshot in %v, then since it in %v", took, time.Since(start)-took)
	for _, s := range []Snapshot{s0, s1} {
		if len(s.Truncated()) > 0 && !strings.Contains(s.Reason(app), "took more than") {
			t.Errorf("17,000 remote-tracking branches: cut %q (%s)", s.Truncated(), s.Reason(app))
		}
	}
}

// r16ForgeGraph writes the commit-graph (objects/info, agent-writable)
// and replaces in it commit's tree with evilTree. git's revision walks
// (git revert, git cherry-pick) take a commit's tree from the graph; vibe's
// cat-file C^{tree} reads the commit object.
func r16ForgeGraph(t *testing.T, app, commit, evilTree string) {
	git(t, app, "commit-graph", "write", "--reachable")
	cg := filepath.Join(app, ".git/objects/info/commit-graph")
	data, err := os.ReadFile(cg)
	if err != nil {
		t.Fatal(err)
	}
	real, _ := hex.DecodeString(git(t, app, "rev-parse", commit+"^{tree}"))
	fake, _ := hex.DecodeString(evilTree)
	if n := bytes.Count(data, real); n != 1 {
		t.Fatalf("the tree is in the graph %d times", n)
	}
	os.Chmod(cg, 0o644)
	if err := os.WriteFile(cg, bytes.Replace(data, real, fake, 1), 0o444); err != nil {
		t.Fatal(err)
	}
}

// 5. git revert HEAD, whose parent's tree the graph says is the agent's:
// the revert's 3-way merge (base HEAD, theirs the parent's) takes it.
func TestSnapshotReview16CommitGraphRevert(t *testing.T) {
	rrCase(t, rrSecondCommit, func(t *testing.T, app, _, ran string) {
		parent := git(t, app, "rev-parse", "HEAD~1")
		_, evilTree := r13EvilCommit(t, app, parent, ".githooks/pre-commit", mark(ran))
		r16ForgeGraph(t, app, parent, evilTree)
	}, []string{"revert", "--no-edit", "HEAD"})
}

// 5b. git cherry-pick of the agent's branch (an honest commit of x.go;
// the graph gives it the hook too).
func TestSnapshotReview16CommitGraphCherryPick(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, _, ran string) {
		writeFile(t, filepath.Join(app, "x.go"), "package x\n")
		git(t, app, "add", "x.go")
		git(t, app, "commit", "-q", "--no-verify", "-m", "fix")
		fix := git(t, app, "rev-parse", "HEAD")
		git(t, app, "branch", "fix")
		git(t, app, "reset", "-q", "--hard", "HEAD~1")
		_, evilTree := r13EvilCommit(t, app, fix, ".githooks/pre-commit", mark(ran))
		r16ForgeGraph(t, app, fix, evilTree)
	}, []string{"checkout", "-q", "main"}, []string{"cherry-pick", "fix"})
}
