package sandbox

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

// A folder whose host-run files vibe could not compare whole is reported
// at every session, with why: the user knows what to look at or remove.
func TestCutShortSaysWhy(t *testing.T) {
	gitEnv(t)
	for _, tc := range []struct {
		name, want string
		make       func(t *testing.T, app string)
	}{
		{"a hook deeper than compared", "deeper than 32 levels", func(t *testing.T, app string) {
			p := filepath.Join(app, ".claude")
			for i := 0; i <= snapshotMaxDepth; i++ {
				p = filepath.Join(p, "d")
			}
			writeFile(t, filepath.Join(p, "hook.sh"), "x")
		}},
		{"a file past the read bound", "larger than 16 MiB", func(t *testing.T, app string) {
			writeFile(t, filepath.Join(app, ".envrc"), "")
			os.Truncate(filepath.Join(app, ".envrc"), snapshotMaxRead+1)
		}},
		{"an index git cannot read", "an index vibe cannot read", func(t *testing.T, app string) {
			git(t, app, "init", "-q")
			writeFile(t, filepath.Join(app, ".git/index"), "DIRC not an index")
		}},
		{"a submodule's worktree moved", "core.worktree", func(t *testing.T, app string) {
			git(t, app, "init", "-q")
			sub := filepath.Join(app, "sub")
			addGitlink(t, app, "sub", repoAt(t, sub))
			git(t, sub, "config", "core.worktree", "../elsewhere")
		}},
		{"a SHA-256 submodule", "SHA-256", func(t *testing.T, app string) {
			git(t, app, "init", "-q")
			sub := filepath.Join(app, "sub")
			os.MkdirAll(sub, 0o755)
			git(t, sub, "init", "-q", "--object-format=sha256")
			writeFile(t, filepath.Join(sub, "a"), "a")
			git(t, sub, "add", "a")
			addGitlink(t, app, "sub", strings.Repeat("1", 40))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := t.TempDir()
			tc.make(t, app)
			snap := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
			cut := snap.Truncated()
			if len(cut) != 1 || cut[0] != app {
				t.Fatalf("cut short: %v, want %s", cut, app)
			}
			if why := snap.Reason(app); !strings.Contains(why, tc.want) {
				t.Errorf("reason %q, want one saying %q", why, tc.want)
			}
		})
	}
}

// The mark of a folder cut short is no file: it is not listed among the
// changed ones when it comes, goes or gives another reason (the warning
// about it is said on its own, after every session).
func TestCutShortIsNoChange(t *testing.T) {
	app := t.TempDir()
	before := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
	writeFile(t, filepath.Join(app, ".envrc"), "")
	os.Truncate(filepath.Join(app, ".envrc"), snapshotMaxRead+1)
	after := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
	if len(after.Truncated()) != 1 {
		t.Fatalf("control: not cut short: %v", after)
	}
	changed := after.Changed(before)
	if len(changed) != 1 || changed[0] != filepath.Join(app, ".envrc") {
		t.Errorf("changed: %q, want only .envrc", changed)
	}
	if changed := before.Changed(after); len(changed) != 1 {
		t.Errorf("changed the other way: %q, want only .envrc", changed)
	}
}

// A repository whose configuration names another object format than
// SHA-1 has its index laid out with longer hashes, which vibe's reading
// (in a SHA-1 repository of its own) would take differently from the
// host's git: its gitlinks are not guessed at, the project is cut short.
// The agent writes a submodule's configuration, so one that only says so
// is enough.
func TestGitHostRunOtherObjectFormatIsCut(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	addGitlink(t, sub, "inner", strings.Repeat("2", 40))
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut != "" {
		t.Fatalf("control: %+v", f)
	}
	for _, format := range []string{"sha256", "SHA1", "x"} {
		git(t, app, "config", "--file", filepath.Join(sub, ".git/config"), "extensions.objectFormat", format)
		if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut == "" {
			t.Errorf("a submodule whose configuration says objectFormat %s is not cut short: %+v", format, f)
		}
	}
	git(t, app, "config", "--file", filepath.Join(sub, ".git/config"), "extensions.objectFormat", "sha1")
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut != "" {
		t.Errorf("objectFormat sha1 cut the project short: %+v", f)
	}
}

// A file the agent names as the mark is a file like any other: its
// changes are reported, and it marks nothing as cut short.
func TestCutShortMarkCannotBeForged(t *testing.T) {
	app := t.TempDir()
	forged := filepath.Join(app, ".claude", "commands", tooMany)
	writeFile(t, forged, "a")
	before := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
	if cut := before.Truncated(); len(cut) != 0 {
		t.Errorf("a file named as the mark cut %v short", cut)
	}
	writeFile(t, forged, "b")
	after := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
	if changed := after.Changed(before); len(changed) != 1 || changed[0] != forged {
		t.Errorf("changed: %q, want the file named as the mark", changed)
	}
	os.Remove(forged)
	if changed := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil).Changed(after); len(changed) != 1 {
		t.Errorf("removed: %q, want the file named as the mark", changed)
	}
}

// lefthook reads more than lefthook.yml: each extension, with or without
// a dot, under .config, a lefthook-local file merged in (which can add
// commands), and its script folders. One the agent writes runs on the
// host's next git commit: each is a host-run path, reported when it
// comes.
func TestSnapshotSeesEveryLefthookFile(t *testing.T) {
	for _, rel := range []string{
		"lefthook.yaml", "lefthook.toml", ".lefthook.json", "lefthook.jsonc",
		"lefthook-local.yml", ".lefthook-local.yaml", ".config/lefthook.yml",
		".config/lefthook-local.toml", ".lefthook/pre-commit/x.sh", ".lefthook-local/pre-commit/x.sh",
	} {
		app := t.TempDir()
		before := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
		writeFile(t, filepath.Join(app, rel), "pre-commit:\n  commands:\n    x:\n      run: ./evil\n")
		after := TakeSnapshot([]workspace.Mount{{Name: "p", Source: app}}, nil)
		if changed := after.Changed(before); !slices.Contains(changed, filepath.Join(app, rel)) {
			t.Errorf("%s written: changed %q", rel, changed)
		}
	}
}
