package sandbox

// A seventeenth hostile review, of the commits that came since the
// snapshot before (newCommits): each attack runs real git as the control
// (rrCase: the user's ordinary command, then a commit, runs the agent's
// hook), then the snapshot must report a change or a cut.

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// r17Graph patches the commit-graph of app: edit gets the CDAT entry of
// each commit (its tree, parents, date) and the index of any commit.
func r17Graph(t *testing.T, app string, edit func(entry func(oid string) []byte, index func(oid string) uint32)) {
	t.Helper()
	git(t, app, "commit-graph", "write", "--reachable")
	cg := filepath.Join(app, ".git/objects/info/commit-graph")
	data, err := os.ReadFile(cg)
	if err != nil {
		t.Fatal(err)
	}
	n := int(data[6])
	chunks := map[string]int{}
	for i := 0; i < n; i++ {
		off := 8 + 12*i
		chunks[string(data[off:off+4])] = int(binary.BigEndian.Uint64(data[off+4 : off+12]))
	}
	oidl, cdat := chunks["OIDL"], chunks["CDAT"]
	count := (cdat - oidl) / 20
	index := func(oid string) uint32 {
		b, _ := hex.DecodeString(oid)
		for i := 0; i < count; i++ {
			if bytes.Equal(data[oidl+20*i:oidl+20*i+20], b) {
				return uint32(i)
			}
		}
		t.Fatalf("%s not in the graph", oid)
		return 0
	}
	entry := func(oid string) []byte {
		i := int(index(oid))
		return data[cdat+36*i : cdat+36*i+36]
	}
	edit(entry, index)
	os.Chmod(cg, 0o644)
	if err := os.WriteFile(cg, data, 0o444); err != nil {
		t.Fatal(err)
	}
}

// 1. A packed replace ref for HEAD's own commit K (known: the snapshot
// before named it) with a commit of K's tree whose parent is the agent's
// E: git rev-list E ^K (replace refs honoured) lists nothing, so E, which
// a new branch names, is never compared. The replacement has HEAD's tree:
// nothing else differs.
func TestSnapshotReview17ReplaceKnownTip(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		k2 := git(t, app, "commit-tree", git(t, app, "rev-parse", "HEAD^{tree}"), "-p", evil, "-m", "x")
		git(t, app, "update-ref", "refs/heads/evil", evil)
		packed, _ := os.ReadFile(filepath.Join(app, ".git/packed-refs"))
		writeFile(t, filepath.Join(app, ".git/packed-refs"), string(packed)+k2+" refs/replace/"+head+"\n")
	}, []string{"checkout", "-q", "evil"})
}

// 2. The same without a replace ref: a commit-graph (objects/info,
// agent-writable) whose entry for HEAD's commit K gives it E as a second
// parent. vibe's rev-list reads parents from the graph; the user's git
// checkout reads E's tree (true in the graph).
func TestSnapshotReview17GraphParentKnown(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		git(t, app, "update-ref", "refs/heads/evil", evil)
		r17Graph(t, app, func(entry func(string) []byte, index func(string) uint32) {
			binary.BigEndian.PutUint32(entry(head)[24:28], index(evil))
		})
	}, []string{"checkout", "-q", "evil"})
}

// 3. A commit-graph whose entry for E (new, named by a branch) gives
// HEAD's tree, and an empty .git/shallow: the user's git, in a shallow
// repository, ignores the graph and reads E's own tree; vibe's empty
// repository is not shallow and reads the graph's.
func TestSnapshotReview17GraphTreeShallow(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		tree, _ := hex.DecodeString(git(t, app, "rev-parse", "HEAD^{tree}"))
		git(t, app, "update-ref", "refs/heads/evil", evil)
		r17Graph(t, app, func(entry func(string) []byte, _ func(string) uint32) {
			copy(entry(evil)[:20], tree)
		})
		writeFile(t, filepath.Join(app, ".git/shallow"), "")
	}, []string{"checkout", "-q", "evil"})
}

// 4. Two sessions. In the first the agent names E by a branch and hides it
// as in 1 (packed replace ref of K); after1 records E among the commits
// it knows. Before the second ends (or by a process left running) the
// replace ref goes; the agent puts a fix-up commit on E and moves the
// current branch there. E is known: never compared. git reset --hard
// HEAD~1 writes the hook out.
func TestSnapshotReview17KnownAcrossSessions(t *testing.T) {
	app, mounts := refsProject(t)
	before1 := TakeSnapshot(mounts, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	head := git(t, app, "rev-parse", "HEAD")
	evil, _ := r13EvilCommit(t, app, head, ".githooks/pre-commit", mark(ran))
	k2 := git(t, app, "commit-tree", git(t, app, "rev-parse", "HEAD^{tree}"), "-p", evil, "-m", "x")
	git(t, app, "update-ref", "refs/heads/wip", evil)
	packed, _ := os.ReadFile(filepath.Join(app, ".git/packed-refs"))
	writeFile(t, filepath.Join(app, ".git/packed-refs"), string(packed)+k2+" refs/replace/"+head+"\n")
	after1 := TakeSnapshot(mounts, nil, before1)
	// Between sessions / in session 2.
	writeFile(t, filepath.Join(app, ".git/packed-refs"), string(packed))
	before2 := TakeSnapshot(mounts, nil, after1)
	e2 := git(t, app, "commit-tree", git(t, app, "rev-parse", "HEAD^{tree}"), "-p", evil, "-m", "fix lint")
	git(t, app, "update-ref", "-m", "commit: fix lint", "refs/heads/feature", e2)
	git(t, app, "update-ref", "-d", "refs/heads/wip")
	after2 := TakeSnapshot(mounts, nil, before2)
	out, _ := exec.Command("git", "-C", app, "reset", "-q", "--hard", "HEAD~1").CombinedOutput()
	out2, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "mine").CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: hook did not run: %s %s", out, out2)
	}
	c1, c2, c3 := after1.Changed(before1), before2.Changed(after1), after2.Changed(before2)
	cut := append(append(after1.Truncated(), before2.Truncated()...), after2.Truncated()...)
	t.Logf("after1=%q before2=%q after2=%q cut=%q", c1, c2, c3, cut)
	if len(c1)+len(c2)+len(c3)+len(cut) == 0 {
		t.Errorf("two sessions: git runs the agent's hook; vibe reported no change and no cut")
	}
}

// 1b. The same hiding the fix-up history of r16Ancestor: the current
// branch moves to E2 (HEAD's tree, parent E); the replace ref of the known
// K names a commit whose parent is E2. git reset --hard HEAD~1.
func TestSnapshotReview17ReplaceKnownAncestor(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		tree := git(t, app, "rev-parse", "HEAD^{tree}")
		e2 := git(t, app, "commit-tree", tree, "-p", evil, "-m", "fix lint")
		k2 := git(t, app, "commit-tree", tree, "-p", e2, "-m", "x")
		git(t, app, "update-ref", "-m", "commit: fix lint", "refs/heads/feature", e2)
		packed, _ := os.ReadFile(filepath.Join(app, ".git/packed-refs"))
		writeFile(t, filepath.Join(app, ".git/packed-refs"), string(packed)+k2+" refs/replace/"+head+"\n")
	}, []string{"reset", "-q", "--hard", "HEAD~1"})
}
