package sandbox

// An eighteenth hostile review: the merged packed-refs (mergePacked), refs
// read without replace objects, and the commit-graph check. Each attack
// runs real git as the control (rrCase), then the snapshot must report a
// change or a cut.

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// 1. A loose ref whose file name holds a newline: the user's git ignores
// it (a broken name); vibe writes "ID refs/heads/a\nID zzz…" into its
// packed-refs, a second record sorted where git does not expect it, so
// git's binary search in vibe's repository misses refs/heads/zfix (loose
// in the user's, the agent's commit): for-each-ref lists it, cat-file
// says "missing", never compared.
func TestSnapshotReview18LooseNewlineName(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		writeFile(t, filepath.Join(app, ".git/refs/heads/zfix"), evil+"\n")
		name := "a\n" + head + " " + strings.Repeat("z", 200)
		writeFile(t, filepath.Join(app, ".git/refs/heads", name), head+"\n")
	}, []string{"checkout", "-q", "zfix"})
}

// 2. packed-refs (sorted) naming refs/heads/x three times: git's binary
// search finds the middle one (the agent's), vibe keeps the last.
func TestSnapshotReview18PackedDuplicate(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		writeFile(t, filepath.Join(app, ".git/packed-refs"), "# pack-refs with: peeled fully-peeled sorted \n"+
			head+" refs/heads/x\n"+evil+" refs/heads/x\n"+head+" refs/heads/x\n")
	}, []string{"checkout", "-q", "x"})
}

// 2b. The same without a header (git sorts the records itself).
func TestSnapshotReview18PackedDuplicateUnsorted(t *testing.T) {
	rrCase(t, nil, func(t *testing.T, app, evil, _ string) {
		head := git(t, app, "rev-parse", "HEAD")
		writeFile(t, filepath.Join(app, ".git/packed-refs"),
			head+" refs/heads/x\n"+evil+" refs/heads/x\n"+head+" refs/heads/x\n")
	}, []string{"checkout", "-q", "x"})
}

// 3. A forged commit-graph in an alternate object folder (objects/info/
// alternates, agent-writable): the main folder has none, so checkGraph
// verifies nothing, while the user's git loads the alternate's graph and
// git revert HEAD takes the parent's tree from it.
func TestSnapshotReview18GraphInAlternate(t *testing.T) {
	rrCase(t, rrSecondCommit, func(t *testing.T, app, _, ran string) {
		parent := git(t, app, "rev-parse", "HEAD~1")
		_, evilTree := r13EvilCommit(t, app, parent, ".githooks/pre-commit", mark(ran))
		r16ForgeGraph(t, app, parent, evilTree)
		alt := filepath.Join(app, ".git/objects/alt")
		if err := os.MkdirAll(filepath.Join(alt, "info"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(app, ".git/objects/info/commit-graph"), filepath.Join(alt, "info/commit-graph")); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(app, ".git/objects/info/alternates"), alt+"\n")
	}, []string{"revert", "--no-edit", "HEAD"})
}
