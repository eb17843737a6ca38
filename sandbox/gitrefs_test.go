package sandbox

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

// The agent moves or makes a ref other than HEAD's to a commit of its own
// whose hook differs (git update-ref needs no checkout): the worktree,
// the index and HEAD compare equal, and the user's later git checkout (or
// git switch -c from a remote-tracking branch, or git reset --hard
// ORIG_HEAD) writes the agent's hook out, which the next commit runs.
// Every branch, remote-tracking branch and tag is compared, and ORIG_HEAD
// and the other refs users name at the top of the git folder.
func TestSnapshotComparesOtherRefs(t *testing.T) {
	for _, tc := range []struct {
		name string
		// agent points the repository at evil, made on HEAD's commit.
		agent func(t *testing.T, app, evil string)
		// user is what the user runs on the host before a commit.
		user []string
	}{
		{"branch", func(t *testing.T, app, evil string) {
			git(t, app, "update-ref", "refs/heads/main", evil)
		}, []string{"checkout", "-q", "main"}},
		{"branch-packed", func(t *testing.T, app, evil string) {
			git(t, app, "update-ref", "refs/heads/main", evil)
			git(t, app, "pack-refs", "--all")
		}, []string{"checkout", "-q", "main"}},
		{"new-branch", func(t *testing.T, app, evil string) {
			git(t, app, "update-ref", "refs/heads/fix", evil)
		}, []string{"checkout", "-q", "fix"}},
		{"remote-tracking", func(t *testing.T, app, evil string) {
			git(t, app, "update-ref", "refs/remotes/origin/main", evil)
		}, []string{"switch", "-q", "-c", "mine", "origin/main"}},
		{"tag", func(t *testing.T, app, evil string) {
			git(t, app, "update-ref", "refs/tags/v1", evil)
		}, []string{"checkout", "-q", "v1"}},
		{"annotated-tag", func(t *testing.T, app, evil string) {
			git(t, app, "-c", "user.name=t", "-c", "user.email=t@t", "tag", "-a", "-m", "v2", "v2", evil)
		}, []string{"checkout", "-q", "v2"}},
		{"orig-head", func(t *testing.T, app, evil string) {
			writeFile(t, filepath.Join(app, ".git", "ORIG_HEAD"), evil+"\n")
		}, []string{"reset", "-q", "--hard", "ORIG_HEAD"}},
		{"fetch-head", func(t *testing.T, app, evil string) {
			writeFile(t, filepath.Join(app, ".git", "FETCH_HEAD"), evil+"\t\tbranch 'main' of ../up\n")
		}, []string{"checkout", "-q", "FETCH_HEAD"}},
		{"symref", func(t *testing.T, app, evil string) {
			git(t, app, "update-ref", "refs/heads/evil", evil)
			git(t, app, "symbolic-ref", "refs/remotes/origin/HEAD", "refs/heads/evil")
		}, []string{"checkout", "-q", "origin/HEAD"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, mounts := refsProject(t)
			if tc.name == "remote-tracking" {
				git(t, app, "update-ref", "refs/remotes/origin/main", git(t, app, "rev-parse", "main"))
			}
			before := TakeSnapshot(mounts, nil)
			ran := filepath.Join(t.TempDir(), "ran")
			evil, _ := r13EvilCommit(t, app, git(t, app, "rev-parse", "HEAD"), ".githooks/pre-commit", mark(ran))
			tc.agent(t, app, evil)
			after := TakeSnapshot(mounts, nil, before)
			// The user, on the host.
			out1, _ := exec.Command("git", append([]string{"-C", app}, tc.user...)...).CombinedOutput()
			out2, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "mine").CombinedOutput()
			if !ranMark(t, ran) {
				t.Fatalf("control: git %v, then git commit, did not run the agent's hook: %s %s", tc.user, out1, out2)
			}
			changed := after.Changed(before)
			t.Logf("changed=%q cut=%q", changed, after.Truncated())
			hook := filepath.Join(app, ".githooks", "pre-commit")
			if !slices.ContainsFunc(changed, func(p string) bool { return strings.HasPrefix(p, hook) }) && len(after.Truncated()) == 0 {
				t.Errorf("the agent's hook in %s: not reported, nothing cut", tc.name)
			}
		})
	}
}

// refsProject is hookedProject on a branch "feature", with "main" beside
// it at the same commit.
func refsProject(t *testing.T) (string, []workspace.Mount) {
	t.Helper()
	app, mounts := hookedProject(t)
	git(t, app, "branch", "-M", "main")
	git(t, app, "checkout", "-q", "-b", "feature")
	return app, mounts
}

// Refs that hold what HEAD holds at the host-run paths add nothing to a
// snapshot, and work on branches that leaves those paths alone is no
// change: a project with many branches is not reported at every session.
func TestSnapshotOtherRefsQuiet(t *testing.T) {
	app, mounts := refsProject(t)
	for _, b := range []string{"a", "b", "c"} {
		git(t, app, "branch", b)
	}
	git(t, app, "tag", "v1")
	before := TakeSnapshot(mounts, nil)
	plain := TakeSnapshot(mounts, nil)
	for k := range before {
		if strings.Contains(k, "as git's ref") {
			t.Errorf("a ref like HEAD recorded: %q", k)
		}
	}
	// Work on other branches and HEAD's, of files that are not host-run.
	writeFile(t, filepath.Join(app, "main.go"), "package main\n")
	git(t, app, "add", "main.go")
	git(t, app, "commit", "-q", "--no-verify", "-m", "code")
	git(t, app, "update-ref", "refs/heads/a", git(t, app, "rev-parse", "HEAD"))
	git(t, app, "branch", "d")
	git(t, app, "branch", "-D", "b")
	after := TakeSnapshot(mounts, nil, before)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("work on other files: changed %q, cut %q (%s)", c, after.Truncated(), after.Reason(app))
	}
	if c := plain.Changed(before); len(c) > 0 {
		t.Errorf("nothing done: changed %q", c)
	}
}

// A snapshot of a project with 2,000 branches and tags at 1,000 commits
// (each of another file, so 1,000 trees other than HEAD's), packed as a
// clone leaves them, and 100 of them loose: every ref's tree is compared
// with HEAD's at the host-run paths.
func BenchmarkTakeSnapshotManyRefs(b *testing.B) {
	app := benchRepo(b)
	writeFileB(b, filepath.Join(app, ".husky", "pre-commit"), "#!/bin/sh\n")
	gitB := func(args ...string) string {
		out, err := exec.Command("git", append([]string{"-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "gc.auto=0"}, args...)...).CombinedOutput()
		if err != nil {
			b.Fatalf("git %v: %v %s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitB("add", "-A")
	gitB("commit", "-q", "-m", "x")
	var refs strings.Builder
	for i := 0; i < 1000; i++ {
		writeFileB(b, filepath.Join(app, "f.txt"), strconv.Itoa(i))
		gitB("add", "f.txt")
		c := gitB("commit-tree", gitB("write-tree"), "-m", "c")
		fmt.Fprintf(&refs, "create refs/heads/b%d %s\ncreate refs/tags/t%d %s\n", i, c, i, c)
	}
	gitB("reset", "-q", "--hard", "HEAD")
	cmd := exec.Command("git", "-C", app, "update-ref", "--stdin")
	cmd.Stdin = strings.NewReader(refs.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("update-ref: %v %s", err, out)
	}
	gitB("pack-refs", "--all")
	for i := 0; i < 100; i++ {
		gitB("branch", "loose"+strconv.Itoa(i))
	}
	benchSnapshot(b, app)
}

// A snapshot saved by a vibe that recorded the index, HEAD and the stash
// but no other refs: compared with it, other refs' versions are left out
// (not all reported new once), and the index and HEAD are still compared.
func TestSnapshotSinceLastWithoutRefs(t *testing.T) {
	app, mounts := refsProject(t)
	evil, _ := r13EvilCommit(t, app, git(t, app, "rev-parse", "HEAD"), ".githooks/pre-commit", "#!/bin/sh\n")
	git(t, app, "update-ref", "refs/heads/main", evil)
	now := TakeSnapshot(mounts, nil)
	last := Snapshot{}
	for k, v := range now {
		if !refsKey.MatchString(k) {
			last[k] = v
		}
	}
	last[gitViewKey] = "1"
	if len(last) == len(now) {
		t.Fatal("no entry of another ref's to leave out")
	}
	if c := now.SinceLast(last).Changed(last); len(c) > 0 {
		t.Errorf("against a snapshot without other refs: changed %q", c)
	}
	delete(last, filepath.Join(app, ".githooks/pre-commit")+inHEAD)
	if c := now.SinceLast(last).Changed(last); len(c) != 1 {
		t.Errorf("against one without HEAD's pre-commit: changed %q, want it", c)
	}
}

// What the agent writes in a reflog or at the top of .git becomes a name
// git resolves: only object ids (with a stash entry's parents) are taken,
// each once, however the lines are made.
func FuzzRefIDs(f *testing.F) {
	id := strings.Repeat("a", 40)
	f.Add([]byte(id+" "+strings.Repeat("b", 40)+" t <t@t> 1 +0000\tcheckout: moving from "+id+" to main\n"), true)
	f.Add([]byte(id+"\t\tbranch 'main' of ../up\n"+id+"\tnot-for-merge\tx\n"), false)
	f.Add([]byte("ref: refs/heads/main\n\x00\r\n^{}\n"+id+"^2 "+id+"\n"), true)
	f.Fuzz(func(t *testing.T, data []byte, stash bool) {
		r := &refIDs{}
		r.reflogLines(data, stash)
		r.topLines(data)
		seen := map[string]bool{}
		for _, name := range r.ids {
			base, suf, _ := strings.Cut(name, "^")
			if !objectID.MatchString(base) || (suf != "" && suf != "2" && suf != "3") || seen[name] {
				t.Fatalf("took %q from %q", name, data)
			}
			seen[name] = true
		}
		if len(r.ids) > 8*(bytes.Count(data, []byte("\n"))+1) {
			t.Fatalf("%d names from %d lines", len(r.ids), bytes.Count(data, []byte("\n"))+1)
		}
	})
}

// A snapshot that could not compare git's commits (a cut, which is said)
// keeps the commits known before: the next compares what came since
// then, so the agent's commit buried under a fix-up while the cut lasted
// is still found once the cut is gone.
func TestSnapshotCutKeepsKnownCommits(t *testing.T) {
	app, mounts := refsProject(t)
	first := TakeSnapshot(mounts, nil)
	head := git(t, app, "rev-parse", "HEAD")
	evil, _ := r13EvilCommit(t, app, head, ".githooks/pre-commit", "#!/bin/sh\necho evil\n")
	fixup := git(t, app, "commit-tree", git(t, app, "rev-parse", head+"^{tree}"), "-p", evil, "-m", "fix lint")
	git(t, app, "update-ref", "refs/heads/feature", fixup)
	link := filepath.Join(app, ".git/refs/heads/link")
	if err := os.Symlink("feature", link); err != nil {
		t.Fatal(err)
	}
	cut := TakeSnapshot(mounts, nil, first)
	if len(cut.Truncated()) == 0 {
		t.Fatal("a ref that is a link: not cut")
	}
	os.Remove(link)
	next := TakeSnapshot(mounts, nil, cut)
	changed := next.Changed(cut)
	if !slices.ContainsFunc(changed, func(p string) bool { return strings.HasPrefix(p, filepath.Join(app, ".githooks", "pre-commit")) }) {
		t.Errorf("the commit under the fix-up, once the cut is gone: changed %q, cut %q", changed, next.Truncated())
	}
}

// A commit-graph git wrote itself (gc, fetch) matches the commits: it is
// verified when its files change, and nothing is cut.
func TestSnapshotHonestCommitGraph(t *testing.T) {
	app, mounts := refsProject(t)
	git(t, app, "commit-graph", "write", "--reachable")
	first := TakeSnapshot(mounts, nil)
	writeFile(t, filepath.Join(app, "main.go"), "package main\n")
	git(t, app, "add", "main.go")
	git(t, app, "commit", "-q", "--no-verify", "-m", "code")
	git(t, app, "commit-graph", "write", "--reachable") // as gc and fetch do
	after := TakeSnapshot(mounts, nil, first)
	if c := after.Changed(first); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("a commit and a new commit-graph: changed %q, cut %q (%s)", c, after.Truncated(), after.Reason(app))
	}
	if !slices.ContainsFunc(slices.Collect(maps.Keys(after)), func(k string) bool { return strings.HasPrefix(k, graphKey) }) {
		t.Error("no commit-graph was verified")
	}
}
