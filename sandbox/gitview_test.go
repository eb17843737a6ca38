package sandbox

import (
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

// hookedProject is a project whose own .git/config (the user's) runs
// .githooks, with a harmless pre-commit committed there.
func hookedProject(t *testing.T) (app string, mounts []workspace.Mount) {
	t.Helper()
	gitEnv(t)
	app = t.TempDir()
	hookedRepo(t, app)
	return app, []workspace.Mount{{Name: "p", Source: app}}
}

// hookedRepo makes dir a repository whose own configuration (the
// user's) runs .githooks, with a harmless pre-commit committed there.
func hookedRepo(t *testing.T, dir string) {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	git(t, dir, "init", "-q")
	git(t, dir, "config", "core.hooksPath", ".githooks")
	writeFile(t, filepath.Join(dir, ".githooks", "pre-commit"), "#!/bin/sh\nexit 0\n")
	os.Chmod(filepath.Join(dir, ".githooks", "pre-commit"), 0o755)
	git(t, dir, "add", "-A")
	git(t, dir, "commit", "-q", "-m", "hooks")
}

// The agent commits its own hook and puts the worktree's file back as it
// was: the worktree compares equal, and the user's git reset --hard (or
// git restore, git stash, a checkout) later writes the agent's hook out,
// which the next commit runs. What git's HEAD and index hold at host-run
// paths is compared too.
func TestSnapshotComparesHEADAndIndex(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after func(t *testing.T, app, old string)
	}{
		// Committed: HEAD and the index hold the agent's hook.
		{"committed", func(t *testing.T, app, old string) {}},
		// And the index put back too: HEAD alone holds it.
		{"index-put-back", func(t *testing.T, app, old string) {
			git(t, app, "update-index", "--cacheinfo", "100755,"+old+",.githooks/pre-commit")
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, mounts := hookedProject(t)
			hook := filepath.Join(app, ".githooks", "pre-commit")
			orig, _ := os.ReadFile(hook)
			old := git(t, app, "rev-parse", "HEAD:.githooks/pre-commit")
			before := TakeSnapshot(mounts, nil)
			// The agent, in the sandbox: --no-verify, as the hooks
			// folder is read-only there.
			ran := filepath.Join(t.TempDir(), "ran")
			writeFile(t, hook, mark(ran))
			git(t, app, "commit", "-q", "--no-verify", "-am", "tidy")
			writeFile(t, hook, string(orig))
			tc.after(t, app, old)
			after := TakeSnapshot(mounts, nil)
			changed := after.Changed(before)
			t.Logf("changed=%q truncated=%q", changed, after.Truncated())
			// The user, on the host.
			git(t, app, "reset", "-q", "--hard")
			out, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "mine").CombinedOutput()
			if !ranMark(t, ran) {
				t.Fatalf("control: git reset --hard, then git commit, did not run the agent's hook: %s", out)
			}
			if !slices.ContainsFunc(changed, func(p string) bool { return strings.HasPrefix(p, hook) }) && len(after.Truncated()) == 0 {
				t.Errorf("the agent's hook in git's HEAD (the worktree's file put back): not reported, nothing cut")
			}
		})
	}
}

// Nothing changed, nothing reported: the same HEAD and index compare
// equal, and a commit of other files leaves the host-run ones as they
// were.
func TestSnapshotHEADUnchanged(t *testing.T) {
	app, mounts := hookedProject(t)
	before := TakeSnapshot(mounts, nil)
	writeFile(t, filepath.Join(app, "main.go"), "package main\n")
	git(t, app, "add", "main.go")
	git(t, app, "commit", "-q", "--no-verify", "-m", "code")
	after := TakeSnapshot(mounts, nil)
	if c := after.Changed(before); len(c) > 0 || len(after.Truncated()) > 0 {
		t.Errorf("a commit of main.go: changed %q, cut %q", c, after.Truncated())
	}
}

// How HEAD is kept does not matter: a packed ref, a detached HEAD and a
// repository with no commit yet are read as git reads them, without a
// cut; a HEAD that names a ref outside refs/, an objects folder that is a
// link, or an object git cannot read cut.
func TestSnapshotHEADForms(t *testing.T) {
	for _, tc := range []struct {
		name    string
		setup   func(t *testing.T, app string)
		entries int // HEAD entries recorded
		cut     string
	}{
		{"loose", func(t *testing.T, app string) {}, 1, ""},
		{"packed", func(t *testing.T, app string) { git(t, app, "pack-refs", "--all") }, 1, ""},
		{"detached", func(t *testing.T, app string) { git(t, app, "checkout", "-q", "--detach") }, 1, ""},
		{"packed-objects", func(t *testing.T, app string) { git(t, app, "gc", "-q") }, 1, ""},
		{"unborn", func(t *testing.T, app string) { git(t, app, "checkout", "-q", "--orphan", "new") }, 0, ""},
		{"ref-climbs", func(t *testing.T, app string) {
			writeFile(t, filepath.Join(app, ".git/HEAD"), "ref: refs/../../x\n")
		}, 0, "HEAD cannot be compared"},
		{"objects-link", func(t *testing.T, app string) {
			os.Rename(filepath.Join(app, ".git/objects"), filepath.Join(app, "objs"))
			os.Symlink(filepath.Join(app, "objs"), filepath.Join(app, ".git/objects"))
		}, 0, "HEAD cannot be compared"},
		{"object-missing", func(t *testing.T, app string) {
			tree := git(t, app, "rev-parse", "HEAD^{tree}")
			os.Remove(filepath.Join(app, ".git/objects", tree[:2], tree[2:]))
		}, 0, "HEAD cannot be compared"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app, mounts := hookedProject(t)
			tc.setup(t, app)
			s := TakeSnapshot(mounts, nil)
			n := 0
			for k := range s {
				if strings.HasSuffix(k, inHEAD) {
					n++
				}
			}
			reason := s[filepath.Join(app, tooMany)]
			t.Logf("HEAD entries %d, cut %q", n, reason)
			if n != tc.entries {
				t.Errorf("HEAD entries: %d, want %d", n, tc.entries)
			}
			if tc.cut == "" && reason != "" || !strings.Contains(reason, tc.cut) {
				t.Errorf("cut %q, want %q", reason, tc.cut)
			}
		})
	}
}

// A branch the agent deleted leaves HEAD naming no commit: what HEAD
// held is reported gone.
func TestSnapshotHEADBranchDeleted(t *testing.T) {
	app, mounts := hookedProject(t)
	before := TakeSnapshot(mounts, nil)
	os.Remove(filepath.Join(app, ".git/refs/heads/main"))
	after := TakeSnapshot(mounts, nil)
	want := filepath.Join(app, ".githooks/pre-commit") + inHEAD
	if c := after.Changed(before); !slices.Contains(c, want) {
		t.Errorf("changed %q, want %q", c, want)
	}
}

// A snapshot of a project of 20,000 committed files in 1,000 folders:
// the walk (which lists them all for nested repositories), the index and
// HEAD's tree.
func BenchmarkTakeSnapshotCommitted(b *testing.B) {
	app := benchRepo(b)
	fillTree(b, app)
	writeFileB(b, filepath.Join(app, ".husky", "pre-commit"), "#!/bin/sh\n")
	for _, args := range [][]string{{"add", "-A"}, {"-c", "user.name=t", "-c", "user.email=t@t", "-c", "gc.auto=0", "-c", "maintenance.auto=false", "commit", "-q", "-m", "x"}} {
		if out, err := exec.Command("git", append([]string{"-C", app}, args...)...).CombinedOutput(); err != nil {
			b.Fatalf("%v %s", err, out)
		}
	}
	benchSnapshot(b, app)
}

// benchSnapshot times TakeSnapshot of the project app, whose HEAD holds
// .husky/pre-commit, compared whole, since a first one (as a session's
// after is taken since its before).
func benchSnapshot(b *testing.B, app string) {
	b.Helper()
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	// As a session's: since the one before.
	first := TakeSnapshot(mounts, nil)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		s := TakeSnapshot(mounts, nil, first)
		if _, ok := s[filepath.Join(app, ".husky/pre-commit")+inHEAD]; !ok || len(s.Truncated()) > 0 {
			b.Fatalf("snapshot: %d entries, cut %q", len(s), s.Truncated())
		}
	}
}

func writeFileB(b *testing.B, path, text string) {
	b.Helper()
	os.MkdirAll(filepath.Dir(path), 0o755)
	if err := os.WriteFile(path, []byte(text), 0o755); err != nil {
		b.Fatal(err)
	}
}

// A snapshot an earlier vibe saved holds nothing of git's index, HEAD
// and stash: compared with it, those are left out, not all reported new;
// once one holds them (its mark says so, whatever the project tracks),
// they are compared.
func TestSnapshotSinceLast(t *testing.T) {
	app, mounts := hookedProject(t)
	now := TakeSnapshot(mounts, nil)
	old := Snapshot{}
	for k, v := range now {
		if !gitViewed(k) {
			old[k] = v
		}
	}
	if len(old) == len(now) {
		t.Fatal("no entry of git's index or HEAD to leave out")
	}
	if c := now.SinceLast(old).Changed(old); len(c) > 0 {
		t.Errorf("against an earlier vibe's snapshot: changed %q", c)
	}
	gone := maps.Clone(now)
	delete(gone, filepath.Join(app, ".githooks/pre-commit")+inHEAD)
	if c := now.SinceLast(gone).Changed(gone); len(c) != 1 {
		t.Errorf("against one of this vibe's: changed %q, want HEAD's pre-commit", c)
	}
}
