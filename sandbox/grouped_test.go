package sandbox

import (
	"slices"
	"testing"
)

// A new folder full of files (an agent's first run unpacks its bundled
// skills) is one line, so the change that matters is not lost in a list
// of fifty; a changed or removed file, a new file in a folder that was
// there, and a new folder of a few entries are each named.
func TestGroupedChanges(t *testing.T) {
	root := "/home/u/.config/vibe/state/sb/codex"
	before := Snapshot{
		root + "/config.toml":   "1",
		root + "/rules":         "d",
		root + "/rules/a.rules": "1",
		root + "/AGENTS.md":     "1",
	}
	after := Snapshot{
		root + "/config.toml":   "2", // changed
		root + "/rules":         "d2",
		root + "/rules/a.rules": "1",
		root + "/rules/b.rules": "1", // new, in a folder that was there
		root + "/prompts":       "d", // a new folder of two entries
		root + "/prompts/x.md":  "1",
		root + "/skills":        "d",
	}
	for _, p := range []string{"/.system", "/.system/a", "/.system/a/SKILL.md", "/.system/b", "/.system/b/SKILL.md", "/.system/b/run.sh"} {
		after[root+"/skills"+p] = "1"
	}
	// A project whose root had nothing recorded: a new folder in it is
	// grouped below the root, never as the root (or its parents) itself.
	proj := "/home/u/src/app"
	for _, p := range []string{"/.husky", "/.husky/a", "/.husky/b", "/.husky/c", "/.husky/d"} {
		after[proj+p] = "1"
	}
	got := after.Grouped(before, []string{root, proj + "/"})
	want := []string{
		root + "/AGENTS.md",
		root + "/config.toml",
		root + "/prompts",
		root + "/prompts/x.md",
		root + "/rules",
		root + "/rules/b.rules",
		root + "/skills/ (a new folder of 7 files and folders: review it whole)",
		proj + "/.husky/ (a new folder of 5 files and folders: review it whole)",
	}
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("got\n%q\nwant\n%q", got, want)
	}
	if g := after.Grouped(after, []string{root}); len(g) != 0 {
		t.Errorf("no change, yet %q", g)
	}
}
