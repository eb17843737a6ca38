package workspace

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParseList(t *testing.T) {
	list := `# my projects
/srv/code/app
api=/srv/code/backend
?/srv/maybe
~/notes
docs=/srv/docs:ro
  /srv/spaced   

?named=~/opt:ro
hooks=/srv/hooks:hostrun-rw
`
	got, err := ParseList(list, "/home/me")
	if err != nil {
		t.Fatal(err)
	}
	want := []Mount{
		{Name: "app", Source: "/srv/code/app", Line: 2},
		{Name: "api", Source: "/srv/code/backend", Line: 3},
		{Name: "maybe", Source: "/srv/maybe", Optional: true, Line: 4},
		{Name: "notes", Source: "/home/me/notes", Line: 5},
		{Name: "docs", Source: "/srv/docs", ReadOnly: true, Line: 6},
		{Name: "spaced", Source: "/srv/spaced", Line: 7},
		{Name: "named", Source: "/home/me/opt", Optional: true, ReadOnly: true, Line: 9},
		{Name: "hooks", Source: "/srv/hooks", HostRunWritable: true, Line: 10},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries %+v", len(got), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestParseListRefuses(t *testing.T) {
	for line, want := range map[string]string{
		"relative/path":      "not an absolute path",
		"x=relative":         "not an absolute path",
		"/":                  "mounting / is refused",
		"../=/srv/a":         "contains '/'",
		"a/b=/srv/a":         "contains '/'",
		"..=/srv/a":          "not allowed",
		".hidden=/srv/a":     "use letters",
		"=/srv/a":            "not allowed",
		"$(id)=/srv/a":       "use letters",
		"a;b=/srv/a":         "use letters",
		"/srv/a\r":           "",
		"/srv/with space/..": "",
	} {
		_, err := ParseList(line, "/home/me")
		if want == "" {
			continue // accepted or refused, both fine; must not panic
		}
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("%q: error %v, want %q with its line", line, err, want)
		}
	}
	if _, err := ParseList("~/x", ""); err == nil {
		t.Error("~ without a home was accepted")
	}
}

func TestResolve(t *testing.T) {
	root := t.TempDir()
	drop := filepath.Join(root, "workspace")
	for _, d := range []string{"workspace/alpha", "workspace/.hidden", "elsewhere/beta", "elsewhere/gamma"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	os.WriteFile(filepath.Join(drop, "file.txt"), nil, 0o644)
	os.Symlink(filepath.Join(root, "elsewhere/gamma"), filepath.Join(drop, "gamma"))
	list, _ := ParseList("beta="+root+"/elsewhere/beta:ro\n?"+root+"/missing\n", "")
	got, err := Resolve(drop, list, Guard{})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range got {
		names = append(names, m.Name)
	}
	if strings.Join(names, ",") != "alpha,beta,gamma" {
		t.Errorf("mounts %v", names)
	}
	if got[2].Source != filepath.Join(root, "elsewhere/gamma") {
		t.Errorf("a linked project mounts its target: %s", got[2].Source)
	}
	if !got[1].ReadOnly {
		t.Error("read-only lost")
	}

	// A required entry that is missing is an error naming the line.
	list, _ = ParseList("\n"+root+"/missing\n", "")
	if _, err := Resolve(drop, list, Guard{}); err == nil || !strings.Contains(err.Error(), "line 2") || !strings.Contains(err.Error(), "prefix the entry with ?") {
		t.Errorf("missing required entry: %v", err)
	}
	// Collisions are refused with both sources named.
	list, _ = ParseList(root+"/elsewhere/beta\nalpha="+root+"/elsewhere/beta\n", "")
	if _, err := Resolve(drop, list, Guard{}); err == nil || !strings.Contains(err.Error(), `two workspaces are named "alpha"`) || !strings.Contains(err.Error(), "workspace folder") {
		t.Errorf("collision: %v", err)
	}
	// No drop-in directory at all is fine.
	if _, err := Resolve(filepath.Join(root, "none"), nil, Guard{}); err != nil {
		t.Error(err)
	}
}

func TestLocate(t *testing.T) {
	root := t.TempDir()
	for _, d := range []string{"code/app/src/pkg", "code/app-two", "code/app/vendor/lib"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	mounts := []Mount{
		{Name: "app", Source: filepath.Join(root, "code/app")},
		{Name: "two", Source: filepath.Join(root, "code/app-two")},
		{Name: "lib", Source: filepath.Join(root, "code/app/vendor/lib")},
	}
	tests := []struct {
		path, name, rel string
	}{
		{"code/app", "app", ""},
		{"code/app/src/pkg", "app", "src/pkg"},
		{"code/app-two", "two", ""},        // not a prefix match of app
		{"code/app/vendor/lib", "lib", ""}, // longest source wins
		{"code/app/vendor", "app", "vendor"},
	}
	for _, tt := range tests {
		m, rel, err := Locate(mounts, filepath.Join(root, tt.path))
		if err != nil || m.Name != tt.name || rel != tt.rel {
			t.Errorf("Locate(%s) = %s %q %v, want %s %q", tt.path, m.Name, rel, err, tt.name, tt.rel)
		}
	}
	if _, _, err := Locate(mounts, root); err == nil || !strings.Contains(err.Error(), "not inside any mounted workspace") {
		t.Errorf("outside: %v", err)
	}
	// Through a symlink to a project.
	link := filepath.Join(root, "link")
	os.Symlink(filepath.Join(root, "code/app/src"), link)
	if m, rel, err := Locate(mounts, link); err != nil || m.Name != "app" || rel != "src" {
		t.Errorf("via symlink: %s %q %v", m.Name, rel, err)
	}
}

// FuzzParseList: any list is refused or yields mounts with valid names and
// absolute, clean sources other than /.
func FuzzParseList(f *testing.F) {
	for _, s := range []string{"/a/b\n", "x=/a\n?~/b:ro\n# c\n", "=/\n", "../=/x", "a=/b=c"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, err := ParseList(s, "/home/me")
		if err != nil {
			return
		}
		for _, m := range ms {
			if ValidName(m.Name) != nil || !filepath.IsAbs(m.Source) || filepath.Clean(m.Source) != m.Source || m.Source == "/" {
				t.Fatalf("%q: bad mount %+v", s, m)
			}
		}
	})
}

// A workspaces list from a hostile repository (or a mistake) must not
// mount credentials: the home as a whole, its dot-folders, vibe's own
// folders or the host's system folders, through any symlink.
func TestGuardRefusesSensitiveSources(t *testing.T) {
	root := t.TempDir()
	home := filepath.Join(root, "home")
	for _, d := range []string{".ssh", ".config/vibe/workspace/proj", "code/app", "data/vibe"} {
		os.MkdirAll(filepath.Join(home, d), 0o755)
	}
	os.Symlink(filepath.Join(home, ".ssh"), filepath.Join(home, "code", "innocent"))
	g := Guard{Home: home, Own: []string{filepath.Join(home, ".config", "vibe"), filepath.Join(home, "data", "vibe")}}
	drop := filepath.Join(home, ".config", "vibe", "workspace")
	for entry, want := range map[string]string{
		home:                                    "your home folder",
		root:                                    "your home folder",
		filepath.Join(home, ".ssh"):             "dot-folder",
		filepath.Join(home, "code", "innocent"): "dot-folder",
		"/proc/self/cwd" + home + "/.ssh":       "/proc",
		filepath.Join(home, "data", "vibe"):     "vibe's own folder",
		"/etc":                                  "/etc",
		"/var":                                  "holds the host's",
		filepath.Join(home, "code", "app"):      "",
		filepath.Join(drop, "proj"):             "",
	} {
		list, err := ParseList("p="+entry+"\n", home)
		if err != nil {
			t.Fatal(err)
		}
		_, err = Resolve(drop, list, g)
		switch {
		case want == "" && err != nil:
			t.Errorf("%s: refused: %v", entry, err)
		case want != "" && (err == nil || !strings.Contains(err.Error(), want)):
			t.Errorf("%s: %v, want an error saying %q", entry, err, want)
		}
	}
	// The user's own explicit choice lifts it, and the real path is mounted.
	list, _ := ParseList("keys="+filepath.Join(home, "code", "innocent")+":sensitive-ok\n", home)
	got, err := Resolve(drop, list, g)
	if err != nil || len(got) != 2 || got[0].Source != filepath.Join(home, ".ssh") {
		t.Errorf(":sensitive-ok: %+v %v", got, err)
	}
}
