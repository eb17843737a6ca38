package main

import (
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
		agent           []string
		sec             map[string]string
		loggedIn        bool
		running, newest string
		want            []string
	}{
		{"all well", claude, map[string]string{"ANTHROPIC_API_KEY": "k"}, false, "", "", nil},
		{"logged in", claude, nil, true, "", "", nil},
		{"no key", claude, map[string]string{"GITHUB_TOKEN": "x"}, false, "", "", []string{"no API key for the agent: it will ask you to log in (or add ANTHROPIC_API_KEY=… to /s.env)"}},
		{"another agent", []string{"bash"}, nil, false, "", "", nil},
		{"stale image", claude, map[string]string{"ANTHROPIC_AUTH_TOKEN": "t"}, false, fp1, fp2, []string{"vibe runs image aaaaaaaaaaaa, but vibe now points at bbbbbbbbbbbb: vibe restore moves it there (projects are untouched)"}},
	} {
		got := guidance("vibe", "vibe", tc.agent, tc.sec, "/s.env", tc.loggedIn, tc.running, tc.newest)
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
