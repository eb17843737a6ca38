package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/sandbox"
)

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "project", "0 projects"},
		{1, "project", "1 project"},
		{2, "project", "2 projects"},
		{1, "allowlist entry", "1 allowlist entry"},
		{12, "allowlist entry", "12 allowlist entries"},
	} {
		if got := count(c.n, c.noun); got != c.want {
			t.Errorf("count(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}

// doctor trusts a virtiofsd only when it says it translates ids.
func TestVirtiofsdMapsIDs(t *testing.T) {
	dir := t.TempDir()
	for name, help := range map[string]string{
		"new":  "Usage: virtiofsd [OPTIONS]\n      --translate-uid <TRANSLATE_UID>\n",
		"old":  "Usage: virtiofsd [OPTIONS]\n      --uid-map <UID_MAP>\n", // maps in its own namespace: not what incus passes
		"none": "Usage: virtiofsd [OPTIONS]\n      --shared-dir <SHARED_DIR>\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte("#!/bin/sh\nprintf '%s' '"+help+"'\n"), 0o755)
		if got, want := virtiofsdMapsIDs(p), name == "new"; got != want {
			t.Errorf("%s: maps ids %v, want %v", name, got, want)
		}
	}
	if virtiofsdMapsIDs(filepath.Join(dir, "missing")) {
		t.Error("a missing virtiofsd maps ids")
	}
}

// Before the agent starts, one line for each thing to do next, and none
// when all is well.
func TestGuidance(t *testing.T) {
	claude := []string{"claude", "--dangerously-skip-permissions"}
	fp1, fp2 := strings.Repeat("a", 64), strings.Repeat("b", 64)
	for _, tc := range []struct {
		name            string
		preset          string
		agent           []string
		sec             map[string]string
		loggedIn        bool
		running, newest string
		want            []string
	}{
		{"all well", "claude", claude, map[string]string{"ANTHROPIC_API_KEY": "k"}, false, "", "", nil},
		{"logged in", "claude", claude, nil, true, "", "", nil},
		{"no key", "claude", claude, map[string]string{"GITHUB_TOKEN": "x"}, false, "", "", []string{"no API key for the agent: it will ask you to log in (or add ANTHROPIC_API_KEY=… to /s.env)"}},
		{"another command", "claude", []string{"bash"}, nil, false, "", "", nil},
		{"codex without its key", "codex", []string{"codex", "--dangerously-bypass-approvals-and-sandbox"}, map[string]string{"ANTHROPIC_API_KEY": "k"}, false, "", "", []string{"no API key for codex: it will ask you to log in (or add OPENAI_API_KEY=… to /s.env)"}},
		{"gemini with its key", "gemini", []string{"gemini"}, map[string]string{"GEMINI_API_KEY": "k"}, false, "", "", nil},
		{"stale image", "claude", claude, map[string]string{"ANTHROPIC_AUTH_TOKEN": "t"}, false, fp1, fp2, []string{"vibe runs image aaaaaaaaaaaa, but vibe now points at bbbbbbbbbbbb: vibe restore moves it there (projects are untouched)"}},
	} {
		got := guidance("vibe", "vibe", tc.preset, tc.agent, tc.sec, "/s.env", tc.loggedIn, tc.running, tc.newest)
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

// A forward reads as where it answers; one whose device was changed to
// listen wider reads as a warning.
func TestPortLine(t *testing.T) {
	if got := portLine(sandbox.Port{Guest: 3000, Host: 13000}, "vibe:", ""); got != "http://127.0.0.1:13000 -> vibe:3000" {
		t.Errorf("got %q", got)
	}
	if got := portLine(sandbox.Port{Guest: 3000, Host: 13000, Exposed: "tcp:0.0.0.0:13000"}, "", "vibe port"); !strings.HasPrefix(got, `WARNING: vibe-port-13000 listens on "tcp:0.0.0.0:13000"`) {
		t.Errorf("got %q", got)
	}
}

// Restore keeps an agent's login and history and sets the rest aside: in a
// kept folder too, and a link where a kept folder should be is moved, not
// followed.
func TestSetAsideState(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "opencode")
	outside := t.TempDir()
	for _, p := range []string{"opencode/auth.json", "opencode/storage/s1", "opencode/bin/lsp", "plugins/x.js"} {
		os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o700)
		os.WriteFile(filepath.Join(dir, p), []byte("x"), 0o600)
	}
	if err := setAsideNow("opencode", dir, []string{"opencode/auth.json", "opencode/storage"}, nil); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"opencode/auth.json": true, "opencode/storage/s1": true, "opencode/bin": false, "plugins": false} {
		if _, err := os.Lstat(filepath.Join(dir, p)); (err == nil) != want {
			t.Errorf("%s kept: %v, want %v", p, err == nil, want)
		}
	}
	// The agent swapped the folder that holds its login for a link.
	os.RemoveAll(filepath.Join(dir, "opencode"))
	os.WriteFile(filepath.Join(outside, "auth.json"), []byte("x"), 0o600)
	os.Symlink(outside, filepath.Join(dir, "opencode"))
	if err := setAsideNow("opencode", dir, []string{"opencode/auth.json"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "opencode")); err == nil {
		t.Error("the link came back")
	}
	if _, err := os.Stat(filepath.Join(outside, "auth.json")); err != nil {
		t.Error("set-aside followed the link")
	}
	// Claude Code's history stays, its auto-memory (read into every
	// session) goes.
	claude := filepath.Join(root, "claude")
	for _, p := range []string{"projects/app/s.jsonl", "projects/app/memory/MEMORY.md", "settings.json"} {
		os.MkdirAll(filepath.Join(claude, filepath.Dir(p)), 0o700)
		os.WriteFile(filepath.Join(claude, p), []byte("x"), 0o600)
	}
	if err := setAsideNow("claude", claude, []string{"projects"}, []string{"projects/*/memory"}); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"projects/app/s.jsonl": true, "projects/app/memory": false, "settings.json": false} {
		if _, err := os.Lstat(filepath.Join(claude, p)); (err == nil) != want {
			t.Errorf("claude %s kept: %v, want %v", p, err == nil, want)
		}
	}
}

// setAsideNow sets the state aside and brings back what is kept, as a
// restore does when the old sandbox was stopped already.
func setAsideNow(agent, dir string, keep, drop []string) error {
	kept, err := setAsideState(agent, dir, "old.uuid", keep, drop)
	if err != nil {
		return err
	}
	return kept()
}

// The state is set aside while the old sandbox may still run, and the new
// one starts before the login comes back. What the old one writes then
// goes to the folder set aside; a link in the new folder on the way of
// what comes back is not followed.
func TestSetAsideStateWhileTheyRun(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	dir := filepath.Join(root, "opencode")
	os.MkdirAll(filepath.Join(dir, "opencode"), 0o700)
	os.WriteFile(filepath.Join(dir, "opencode", "auth.json"), []byte("login"), 0o600)
	old, err := os.Open(dir) // the old sandbox's mount: the folder, wherever it goes
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	kept, err := setAsideState("opencode", dir, "", []string{"opencode/auth.json"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fmt.Sprintf("/proc/self/fd/%d/settings.json", old.Fd()), []byte("hooks"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(dir, "settings.json")); err == nil {
		t.Error("what the old sandbox wrote after the folder was set aside reached the new one")
	}
	if _, err := os.Lstat(filepath.Join(dir, "opencode", "auth.json")); err == nil {
		t.Error("the login came back before the old sandbox was gone")
	}
	os.Symlink(outside, filepath.Join(dir, "opencode"))
	if err := kept(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(filepath.Join(outside, "auth.json")); err == nil {
		t.Error("the login was moved through a link in the new folder")
	}
}

// A kept folder the agent swapped for a link to a host folder: dropping
// entries of it must not reach through the link.
func TestSetAsideStateDropFollowsNoLink(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	claude := filepath.Join(root, "claude")
	os.MkdirAll(filepath.Join(outside, "notes", "memory"), 0o700)
	os.MkdirAll(claude, 0o700)
	os.Symlink(outside, filepath.Join(claude, "projects"))
	if err := setAsideNow("claude", claude, []string{"projects"}, []string{"projects/*/memory"}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(outside, "notes", "memory")); err != nil {
		t.Errorf("restore moved a host folder through the agent's link: %v", err)
	}
}

// cutShort sets agent's state folder dir aside as a restore does (its old
// instance former) and leaves it there, as a vibe killed before the login
// came back does, ago before now.
func cutShort(t *testing.T, agent, dir, former string, ago time.Duration) string {
	t.Helper()
	before, _ := filepath.Glob(dir + pendingMark + "*")
	if _, err := setAsideState(agent, dir, former, nil, nil); err != nil {
		t.Fatal(err)
	}
	after, _ := filepath.Glob(dir + pendingMark + "*")
	made := slices.DeleteFunc(after, func(p string) bool { return slices.Contains(before, p) })
	if len(made) != 1 {
		t.Fatalf("pending folders made: %v", made)
	}
	aged := pendingName(dir, former, time.Now().Add(-ago))
	if err := os.Rename(made[0], aged); err != nil {
		t.Fatal(err)
	}
	return aged
}

// A restore cut short (vibe killed between setting the state aside and
// bringing the login back, or its kill of the old instance failed) loses
// nothing: the next vibe brings the login and history back once the old
// instance is gone, and puts the folder back whole when the restore never
// got to discard it.
func TestRecoverAside(t *testing.T) {
	keep, drop := []string{".credentials.json", "projects"}, []string{"projects/*/memory"}
	fill := func(dir string, login string) {
		for p, text := range map[string]string{".credentials.json": login, "settings.json": "hooks", "projects/app/s.jsonl": "history", "projects/app/memory/M.md": "memory"} {
			os.MkdirAll(filepath.Join(dir, filepath.Dir(p)), 0o700)
			os.WriteFile(filepath.Join(dir, p), []byte(text), 0o600)
		}
	}
	read := func(p string) string { b, _ := os.ReadFile(p); return string(b) }
	pending := func(dir string) []string { m, _ := filepath.Glob(dir + pendingMark + "*"); return m }
	aside := func(dir string) []string { m, _ := filepath.Glob(dir + ".set-aside-*"); return m }
	formerIs := func(t *testing.T, state sandbox.FormerState, want string) func(string) (sandbox.FormerState, error) {
		return func(got string) (sandbox.FormerState, error) {
			if got != want {
				t.Errorf("asked about instance %q, want %q", got, want)
			}
			return state, nil
		}
	}

	t.Run("gone: the login and history come back, the rest stays aside", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "claude")
		fill(dir, "login")
		// The last session's snapshot recorded the settings (set aside
		// now, which vibe says) and a project's hook (still there).
		snapPath := filepath.Join(filepath.Dir(dir), "host-run.json")
		saveSnapshot(snapPath, sandbox.Snapshot{filepath.Join(dir, "settings.json"): "d1", "/p/.git/hooks/pre-commit": "d2"})
		cutShort(t, "claude", dir, "vibe.u1", 3*time.Minute)
		if err := recoverAside("claude", dir, keep, drop, formerIs(t, sandbox.FormerGone, "vibe.u1")); err != nil {
			t.Fatal(err)
		}
		if snap, _ := loadSnapshot(snapPath); len(snap) != 1 || snap["/p/.git/hooks/pre-commit"] != "d2" {
			t.Errorf("the saved snapshot after the state was set aside: %v, want only the project's hook", snap)
		}
		if read(filepath.Join(dir, ".credentials.json")) != "login" || read(filepath.Join(dir, "projects/app/s.jsonl")) != "history" {
			t.Error("the login or the history did not come back")
		}
		for _, p := range []string{"settings.json", "projects/app/memory"} {
			if _, err := os.Lstat(filepath.Join(dir, p)); err == nil {
				t.Errorf("%s came back into the fresh sandbox", p)
			}
		}
		if len(pending(dir)) != 0 || len(aside(dir)) != 1 || read(filepath.Join(aside(dir)[0], "settings.json")) != "hooks" {
			t.Errorf("pending %v, set aside %v", pending(dir), aside(dir))
		}
	})

	t.Run("gone, and logged in again since: the newer login stays", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "claude")
		fill(dir, "old login")
		cutShort(t, "claude", dir, "vibe.u1", 3*time.Minute)
		os.WriteFile(filepath.Join(dir, ".credentials.json"), []byte("new login"), 0o600)
		if err := recoverAside("claude", dir, keep, drop, formerIs(t, sandbox.FormerGone, "vibe.u1")); err != nil {
			t.Fatal(err)
		}
		if got := read(filepath.Join(dir, ".credentials.json")); got != "new login" {
			t.Errorf("login: %q, want the one made since", got)
		}
	})

	t.Run("gone twice: the newest login wins", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "claude")
		fill(dir, "older")
		cutShort(t, "claude", dir, "vibe.u1", 9*time.Minute)
		fill(dir, "newer")
		cutShort(t, "claude", dir, "vibe-r2.u2", 3*time.Minute)
		if err := recoverAside("claude", dir, keep, drop, func(string) (sandbox.FormerState, error) { return sandbox.FormerGone, nil }); err != nil {
			t.Fatal(err)
		}
		if got := read(filepath.Join(dir, ".credentials.json")); got != "newer" {
			t.Errorf("login: %q, want the newest", got)
		}
		if len(pending(dir)) != 0 {
			t.Errorf("left pending: %v", pending(dir))
		}
	})

	t.Run("never discarded: the folder comes back whole", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "claude")
		fill(dir, "login")
		cutShort(t, "claude", dir, "vibe.u1", 3*time.Minute)
		if err := recoverAside("claude", dir, keep, drop, formerIs(t, sandbox.FormerHolds, "vibe.u1")); err != nil {
			t.Fatal(err)
		}
		if read(filepath.Join(dir, "settings.json")) != "hooks" || read(filepath.Join(dir, ".credentials.json")) != "login" || len(pending(dir)) != 0 {
			t.Error("the folder was not put back whole")
		}
	})

	t.Run("never discarded, and written since: left for the user", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "claude")
		fill(dir, "login")
		cutShort(t, "claude", dir, "vibe.u1", 3*time.Minute)
		os.WriteFile(filepath.Join(dir, "x"), nil, 0o600)
		if err := recoverAside("claude", dir, keep, drop, formerIs(t, sandbox.FormerHolds, "vibe.u1")); err != nil {
			t.Fatal(err)
		}
		if len(pending(dir)) != 1 {
			t.Error("a folder written since was replaced")
		}
	})

	t.Run("its old instance discarded so lately a restore may still kill it: untouched", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "claude")
		fill(dir, "login")
		cutShort(t, "claude", dir, "vibe.u1", 3*time.Minute)
		if err := recoverAside("claude", dir, keep, drop, formerIs(t, sandbox.FormerBusy, "vibe.u1")); err != nil {
			t.Fatal(err)
		}
		if len(pending(dir)) != 1 {
			t.Error("a restore's folder was taken while it may be at work")
		}
	})

	t.Run("a link named like a pending folder is not followed", func(t *testing.T) {
		root, outside := t.TempDir(), t.TempDir()
		dir := filepath.Join(root, "claude")
		os.Mkdir(dir, 0o700)
		os.WriteFile(filepath.Join(outside, ".credentials.json"), []byte("x"), 0o600)
		os.Symlink(outside, pendingName(dir, "vibe.u1", time.Now().Add(-time.Hour)))
		if err := recoverAside("claude", dir, keep, drop, func(string) (sandbox.FormerState, error) { return sandbox.FormerGone, nil }); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(outside, ".credentials.json")); err != nil {
			t.Error("moved out of a link")
		}
	})
}

func TestParsePending(t *testing.T) {
	at := time.Unix(0, 1764815312123456789)
	for name, want := range map[string]string{
		"claude.restoring.vibe-r1.0b1c.1764815312123456789": "vibe-r1.0b1c",
		"claude.restoring..1764815312123456789":             "",
		"claude.restoring.vibe.u.x":                         "-",
		"claude.restoring.vibe.u.-5":                        "-",
		"claude.set-aside-20261204-000000-1":                "-",
		"codex.restoring.vibe.u.1764815312123456789":        "-",
		"claude.restoring":                                  "-",
	} {
		f, got, ok := parsePending("claude", name)
		switch {
		case want == "-" && ok:
			t.Errorf("%s: read as pending (%q)", name, f)
		case want != "-" && (!ok || f != want || !got.Equal(at)):
			t.Errorf("%s: %q %v %v, want %q at %v", name, f, got, ok, want, at)
		}
	}
}
