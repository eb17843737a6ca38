package main

import (
	"os"
	"path/filepath"
	"testing"
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
