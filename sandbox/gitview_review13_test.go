package sandbox

// A thirteenth hostile review, of what snapshots record of git (the
// index, HEAD, the stash) and of the walk's look for nested
// repositories: each attack runs with real git first (the user's git
// reset --hard, stash pop or checkout --ours writes the agent's hook,
// and a commit runs it), then the snapshot must report it or cut.

import (
	"bytes"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/workspace"
)

// r13GitIdx runs git in dir with GIT_INDEX_FILE=idx (a scratch index).
func r13GitIdx(t *testing.T, dir, idx string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t"}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_INDEX_FILE="+idx)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// r13EvilCommit makes, without touching the worktree nor the index, a
// commit whose tree is parent's (or empty) with rel = content (100755).
func r13EvilCommit(t *testing.T, app, parent, rel, content string) (commit, tree string) {
	t.Helper()
	f := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(f, []byte(content), 0o755)
	blob := git(t, app, "hash-object", "-w", f)
	idx := filepath.Join(t.TempDir(), "index")
	if parent != "" {
		r13GitIdx(t, app, idx, "read-tree", parent)
	}
	r13GitIdx(t, app, idx, "update-index", "--add", "--cacheinfo", "100755,"+blob+","+rel)
	tree = r13GitIdx(t, app, idx, "write-tree")
	args := []string{"commit-tree", tree, "-m", "evil"}
	if parent != "" {
		args = append(args, "-p", parent)
	}
	return r13GitIdx(t, app, idx, args...), tree
}

// r13User is the user on the host: git reset --hard, then a commit.
func r13User(t *testing.T, app, ran string) {
	t.Helper()
	out1, _ := exec.Command("git", "-C", app, "reset", "-q", "--hard").CombinedOutput()
	out2, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "mine").CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: git reset --hard + git commit did not run the agent's hook: %s %s", out1, out2)
	}
}

// r13Attack is the shape of most attacks here: a snapshot of mounts; the
// agent's commit on repo's HEAD, whose pre-commit marks ran, which agent
// puts where git reads it (given HEAD's commit and its own); a snapshot
// again; the user's reset and commit in repo (the control, which must run
// the hook); and the snapshot must report a change or a cut.
func r13Attack(t *testing.T, what string, mounts []workspace.Mount, repo string, agent func(head, evil string)) {
	t.Helper()
	before := TakeSnapshot(mounts, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	head := git(t, repo, "rev-parse", "HEAD")
	evil, _ := r13EvilCommit(t, repo, head, ".githooks/pre-commit", mark(ran))
	agent(head, evil)
	after := TakeSnapshot(mounts, nil, before)
	r13User(t, repo, ran)
	r13Silent(t, what, before, after)
}

func r13Silent(t *testing.T, what string, before, after Snapshot) {
	t.Helper()
	c := after.Changed(before)
	t.Logf("changed=%q cut=%q", c, after.Truncated())
	if len(c) == 0 && len(after.Truncated()) == 0 {
		t.Errorf("%s: git runs the agent's hook; vibe reported no change and no cut", what)
	}
}

// 1. Replace refs: .git/refs/replace/<HEAD> (agent-writable, not a
// host-run path) makes the user's git read another commit for HEAD; vibe's
// empty repository has no refs/replace and reads the original.
func TestSnapshotReview13ReplaceRef(t *testing.T) {
	app, mounts := hookedProject(t)
	r13Attack(t, "refs/replace", mounts, app, func(head, evil string) {
		// What `git replace HEAD evil` writes; the agent can write it itself.
		writeFile(t, filepath.Join(app, ".git/refs/replace", head), evil+"\n")
	})
}

// 1b. The same with the replace ref only in packed-refs (no folder).
func TestSnapshotReview13ReplaceRefPacked(t *testing.T) {
	app, mounts := hookedProject(t)
	r13Attack(t, "packed refs/replace", mounts, app, func(head, evil string) {
		writeFile(t, filepath.Join(app, ".git/packed-refs"), "# pack-refs with: peeled fully-peeled sorted \n"+evil+" refs/replace/"+head+"\n")
	})
}

// 2. A commit-graph whose entry for HEAD's commit names the old tree:
// vibe's git reads the tree from the graph; the user's git, in a repository
// with a .git/shallow (agent-writable), does not use the graph and reads
// the commit object's (the agent's) tree.
func TestSnapshotReview13CommitGraphShallow(t *testing.T) {
	app, mounts := hookedProject(t)
	before := TakeSnapshot(mounts, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	head := git(t, app, "rev-parse", "HEAD")
	oldTree := git(t, app, "rev-parse", "HEAD^{tree}")
	evil, evilTree := r13EvilCommit(t, app, head, ".githooks/pre-commit", mark(ran))
	git(t, app, "update-ref", "refs/heads/main", evil)
	git(t, app, "commit-graph", "write", "--reachable")
	cg := filepath.Join(app, ".git/objects/info/commit-graph")
	data, err := os.ReadFile(cg)
	if err != nil {
		t.Fatal(err)
	}
	eb, _ := hex.DecodeString(evilTree)
	ob, _ := hex.DecodeString(oldTree)
	if bytes.Count(data, eb) != 1 {
		t.Fatalf("evil tree in the graph %d times", bytes.Count(data, eb))
	}
	os.WriteFile(cg, bytes.Replace(data, eb, ob, 1), 0o444)
	writeFile(t, filepath.Join(app, ".git/shallow"), "")
	after := TakeSnapshot(mounts, nil, before)
	// vibe's view, for the log: HEAD's tree as the graph says.
	t.Logf("user's HEAD^{tree}=%s (evil %s, old %s)", git(t, app, "rev-parse", "HEAD^{tree}"), evilTree, oldTree)
	r13User(t, app, ran)
	r13Silent(t, "commit-graph + shallow", before, after)
}

// 3. Ref resolution that differs from git's: a loose ref that is itself a
// symbolic ref (resolved by vibe through packed-refs to the old commit, by
// git through a loose ref vibe did not copy to the agent's).
func TestSnapshotReview13SymrefChain(t *testing.T) {
	app, mounts := hookedProject(t)
	r13Attack(t, "loose symref to a ref vibe resolves from packed-refs", mounts, app, func(head, evil string) {
		writeFile(t, filepath.Join(app, ".git/packed-refs"), "# pack-refs with: peeled fully-peeled sorted \n"+head+" refs/heads/evil\n")
		writeFile(t, filepath.Join(app, ".git/refs/heads/evil"), evil+"\n")
		writeFile(t, filepath.Join(app, ".git/refs/heads/main"), "ref: refs/heads/evil\n")
	})
}

// huskyProject: a project whose user config runs .husky (hooksPath) and
// that tracks no host-run file (so no HEAD/index key is recorded).
func huskyProject(t *testing.T) (string, []workspace.Mount) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "config", "core.hooksPath", ".husky")
	writeFile(t, filepath.Join(app, "README"), "hi\n")
	git(t, app, "add", "README")
	git(t, app, "commit", "-q", "-m", "x")
	return app, []workspace.Mount{{Name: "p", Source: app}}
}

// 3b. HEAD "ref:refs/heads/evil" (no space: git takes it as a symref):
// vibe takes it for a detached HEAD, copies no ref, and its git finds no
// commit: nothing recorded, no cut.
func TestSnapshotReview13HeadRefNoSpace(t *testing.T) {
	app, mounts := huskyProject(t)
	before := TakeSnapshot(mounts, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	head := git(t, app, "rev-parse", "HEAD")
	evil, _ := r13EvilCommit(t, app, head, ".husky/pre-commit", mark(ran))
	writeFile(t, filepath.Join(app, ".git/refs/heads/evil"), evil+"\n")
	writeFile(t, filepath.Join(app, ".git/HEAD"), "ref:refs/heads/evil\n")
	after := TakeSnapshot(mounts, nil, before)
	r13User(t, app, ran)
	r13Silent(t, "HEAD ref:refs/heads/evil", before, after)
}

// 4. SinceLast drops every index/HEAD key when the saved snapshot holds
// none, which is what this vibe saves for any project that tracks no
// host-run file. A process left running commits .husky/pre-commit between
// sessions (the worktree untouched): the next session's check compares
// without the keys, and the session's own before/after both hold it.
func TestSnapshotReview13SinceLastNoKeys(t *testing.T) {
	app, mounts := huskyProject(t)
	last := TakeSnapshot(mounts, nil) // saved at the end of session N
	for k := range last {
		if strings.HasSuffix(k, inHEAD) || strings.HasSuffix(k, inIndex) {
			t.Fatalf("setup: %q", k)
		}
	}
	// Between sessions, the agent's leftover process.
	ran := filepath.Join(t.TempDir(), "ran")
	head := git(t, app, "rev-parse", "HEAD")
	evil, _ := r13EvilCommit(t, app, head, ".husky/pre-commit", mark(ran))
	git(t, app, "update-ref", "refs/heads/main", evil)
	git(t, app, "read-tree", "HEAD") // the index holds it too
	before := TakeSnapshot(mounts, nil)
	roots := GroupRoots(mounts, nil)
	changed, added := before.SinceLast(last).Grouped(last, roots)
	after := TakeSnapshot(mounts, nil, before)
	c2, a2 := after.Grouped(before, roots)
	t.Logf("since last: %q %q; during: %q %q; keys in before: %v", changed, added, c2, a2, hasGitKeys(before))
	r13User(t, app, ran)
	if len(changed)+len(added)+len(c2)+len(a2) == 0 && len(after.Truncated()) == 0 {
		t.Errorf("a hook committed between sessions: never reported (SinceLast dropped the keys), nothing cut")
	}
}

func hasGitKeys(s Snapshot) bool {
	for k := range s {
		if strings.HasSuffix(k, inHEAD) || strings.HasSuffix(k, inIndex) {
			return true
		}
	}
	return false
}

// 5. Unmerged index entries of one path share one key; the last stage
// (3) wins. Stage 3 = the original blob, stage 2 = the agent's: the index
// digest is unchanged.
func TestSnapshotReview13IndexStagesCollide(t *testing.T) {
	app, mounts := hookedProject(t)
	before := TakeSnapshot(mounts, nil)
	old := git(t, app, "rev-parse", "HEAD:.githooks/pre-commit")
	ran := filepath.Join(t.TempDir(), "ran")
	f := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(f, []byte(mark(ran)), 0o755)
	evil := git(t, app, "hash-object", "-w", f)
	cmd := exec.Command("git", "-C", app, "update-index", "--index-info")
	cmd.Stdin = strings.NewReader("0 " + strings.Repeat("0", 40) + "\t.githooks/pre-commit\n" +
		"100755 " + old + " 1\t.githooks/pre-commit\n" +
		"100755 " + evil + " 2\t.githooks/pre-commit\n" +
		"100755 " + old + " 3\t.githooks/pre-commit\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Logf("index: %s", git(t, app, "ls-files", "--stage"))
	after := TakeSnapshot(mounts, nil, before)
	// The user resolves "ours" (git checkout --ours, git add) and commits.
	out, _ := exec.Command("git", "-C", app, "checkout", "--ours", "--", ".githooks/pre-commit").CombinedOutput()
	git(t, app, "add", ".githooks/pre-commit")
	exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "mine").Run()
	if !ranMark(t, ran) {
		t.Fatalf("control: did not run: %s", out)
	}
	r13Silent(t, "unmerged index stages", before, after)
}

// 6. Cost: a HEAD tree at .vscode that expands exponentially (one tree
// object referenced 64 times per level). git ls-tree -r walks until the
// timeout; vibe keeps reading past its file bound.
func TestSnapshotReview13TreeBomb(t *testing.T) {
	app, mounts := hookedProject(t)
	f := filepath.Join(t.TempDir(), "blob")
	os.WriteFile(f, []byte("{}"), 0o644)
	blob := git(t, app, "hash-object", "-w", f)
	mk := func(mode, typ, oid string) string {
		var b strings.Builder
		for i := 0; i < 64; i++ {
			b.WriteString(mode + " " + typ + " " + oid + "\t" + "e" + strings.Repeat("x", 3) + string(rune('A'+i%26)) + string(rune('a'+i/26)) + "\n")
		}
		cmd := exec.Command("git", "-C", app, "mktree")
		cmd.Stdin = strings.NewReader(b.String())
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(out))
	}
	tr := mk("100644", "blob", blob)
	for i := 0; i < 5; i++ { // 64^6 entries
		tr = mk("040000", "tree", tr)
	}
	ls := git(t, app, "ls-tree", "HEAD")
	cmd := exec.Command("git", "-C", app, "mktree")
	cmd.Stdin = strings.NewReader(ls + "\n040000 tree " + tr + "\t.vscode\n")
	rootb, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	c := git(t, app, "commit-tree", strings.TrimSpace(string(rootb)), "-p", "HEAD", "-m", "x")
	git(t, app, "update-ref", "refs/heads/main", c)
	start := time.Now()
	s := TakeSnapshot(mounts, nil)
	t.Logf("snapshot took %s, %d keys, cut %q", time.Since(start), len(s), s[filepath.Join(app, tooMany)])
	if !strings.Contains(s[filepath.Join(app, tooMany)], "more than 4096 files") {
		t.Errorf("a tree that expands past the snapshot's bound: not cut for it")
	}
}

// 7. Any other ref the user's git later writes out: here the stash. The
// user stashed a change before the session; the agent rewrites refs/stash
// (same message) so that git stash pop writes its hook.
func TestSnapshotReview13StashRewritten(t *testing.T) {
	app, mounts := hookedProject(t)
	writeFile(t, filepath.Join(app, "README"), "mine\n")
	git(t, app, "add", "README")
	git(t, app, "commit", "-q", "-m", "readme")
	writeFile(t, filepath.Join(app, "README"), "work in progress\n")
	git(t, app, "stash", "-q")
	before := TakeSnapshot(mounts, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	head := git(t, app, "rev-parse", "HEAD")
	msg := git(t, app, "log", "-1", "--format=%s", "refs/stash")
	i := git(t, app, "commit-tree", head+"^{tree}", "-p", head, "-m", "index on main")
	_, evilTree := r13EvilCommit(t, app, head, ".githooks/pre-commit", mark(ran))
	w := git(t, app, "commit-tree", evilTree, "-p", head, "-p", i, "-m", msg)
	old := git(t, app, "rev-parse", "refs/stash")
	writeFile(t, filepath.Join(app, ".git/refs/stash"), w+"\n")
	// stash@{0} is read from the reflog: the entry's new value too.
	lg, _ := os.ReadFile(filepath.Join(app, ".git/logs/refs/stash"))
	writeFile(t, filepath.Join(app, ".git/logs/refs/stash"), strings.Replace(string(lg), " "+old+" ", " "+w+" ", 1))
	after := TakeSnapshot(mounts, nil, before)
	out, _ := exec.Command("git", "-C", app, "stash", "pop").CombinedOutput()
	exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-am", "mine").Run()
	if !ranMark(t, ran) {
		t.Fatalf("control: git stash pop + commit did not run the hook: %s", out)
	}
	r13Silent(t, "refs/stash rewritten", before, after)
}

// 8. A submodule's HEAD is not compared: the agent commits its hook in the
// submodule (objects and refs in .git/modules/sub) and puts the worktree's
// file back; the user's git -C sub reset --hard writes it out.
func TestSnapshotReview13SubmoduleHEAD(t *testing.T) {
	_, sub, mounts := r14Sub(t)
	r13Attack(t, "submodule HEAD", mounts, sub, func(head, evil string) {
		git(t, sub, "update-ref", "refs/heads/main", evil)
		git(t, sub, "read-tree", head) // the index as it was too
	})
}
