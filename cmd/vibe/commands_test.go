package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

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
	kept, err := setAsideState(agent, dir, keep, drop)
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
	kept, err := setAsideState("opencode", dir, []string{"opencode/auth.json"}, nil)
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
