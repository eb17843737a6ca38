package sandbox

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

// A new folder full of files below a recorded entry (an agent's first run
// unpacks its bundled skills) is one line, so the change that matters is
// not lost in a list of fifty; a file that was there and changed or went
// is always named, in a list of its own; a new folder of a few entries,
// or one that is itself what the snapshot records, is named file by file.
func TestGroupedChanges(t *testing.T) {
	state := "/home/u/.local/share/vibe/state/sb/codex"
	proj := "/home/u/src/app"
	roots := GroupRoots([]workspace.Mount{{Source: proj}}, map[string]string{"codex": state})
	before := Snapshot{
		state + "/config.toml":   "1",
		state + "/rules":         "d",
		state + "/rules/a.rules": "1",
		state + "/AGENTS.md":     "1",
	}
	after := Snapshot{
		state + "/config.toml":   "2", // changed
		state + "/rules":         "d2",
		state + "/rules/a.rules": "1",
		state + "/rules/b.rules": "1", // new, in a folder that was there
		state + "/prompts":       "d", // a new folder of two entries
		state + "/prompts/x.md":  "1",
		state + "/skills":        "d",
	}
	for _, p := range []string{"/.system", "/.system/a", "/.system/a/SKILL.md", "/.system/b", "/.system/b/SKILL.md", "/.system/b/run.sh"} {
		after[state+"/skills"+p] = "1"
	}
	// A project that had no .git: the agent's new one is what the
	// snapshot records (.git/config, .git/hooks), so it is never a group.
	for _, p := range []string{"/.git/config", "/.git/hooks", "/.git/hooks/a", "/.git/hooks/b", "/.git/info"} {
		after[proj+p] = "1"
	}
	changed, added := after.Grouped(before, roots)
	if want := []string{state + "/AGENTS.md", state + "/config.toml", state + "/rules"}; !slices.Equal(changed, want) {
		t.Errorf("changed:\n%q\nwant\n%q", changed, want)
	}
	want := []string{
		proj + "/.git/config (new)",
		proj + "/.git/hooks (new)",
		proj + "/.git/hooks/a (new)",
		proj + "/.git/hooks/b (new)",
		proj + "/.git/info (new)",
		state + "/prompts (new)",
		state + "/prompts/x.md (new)",
		state + "/rules/b.rules (new)",
		state + "/skills/.system/ (a new folder of 6 files and folders: review it whole)",
		state + "/skills (new)",
	}
	slices.Sort(want)
	if !slices.Equal(added, want) {
		t.Errorf("added:\n%q\nwant\n%q", added, want)
	}
	if c, a := after.Grouped(after, roots); len(c)+len(a) != 0 {
		t.Errorf("no change, yet %q %q", c, a)
	}
}

// Where the last snapshot was cut short, a folder missing from it may have
// been there all along, uncompared: nothing below it is grouped.
func TestGroupedNotWhereCut(t *testing.T) {
	state := "/s/codex"
	roots := GroupRoots(nil, map[string]string{"codex": state})
	before := Snapshot{filepath.Join(state, tooMany): "truncated"}
	after := Snapshot{}
	for i := 0; i < 6; i++ {
		after[fmt.Sprintf("%s/rules/x/%d.rules", state, i)] = "1"
	}
	_, added := after.Grouped(before, roots)
	if len(added) != 6 {
		t.Errorf("grouped below a cut snapshot: %q", added)
	}
}
