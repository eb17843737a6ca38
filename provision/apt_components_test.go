package provision

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Ubuntu's tinyproxy and jq live in universe: apt-components adds it to
// every source of an Ubuntu base that lacks it, in both formats, and leaves
// other distributions and commented lines alone.
func TestAptComponents(t *testing.T) {
	for _, tc := range []struct {
		name, osID, file, in, want string
	}{
		{"deb822 without universe", "ubuntu", "etc/apt/sources.list.d/ubuntu.sources",
			"Types: deb\nURIs: http://archive.example/ubuntu\nSuites: noble noble-updates\nComponents: main restricted\n",
			"Types: deb\nURIs: http://archive.example/ubuntu\nSuites: noble noble-updates\nComponents: main restricted universe\n"},
		{"deb822 with universe", "ubuntu", "etc/apt/sources.list.d/ubuntu.sources",
			"Components: main universe restricted\n", "Components: main universe restricted\n"},
		{"one-line format", "\"ubuntu\"", "etc/apt/sources.list",
			"# deb http://archive.example/ubuntu noble main\ndeb http://archive.example/ubuntu noble main restricted  \ndeb-src http://archive.example/ubuntu noble main universe\n",
			"# deb http://archive.example/ubuntu noble main\ndeb http://archive.example/ubuntu noble main restricted universe\ndeb-src http://archive.example/ubuntu noble main universe\n"},
		{"debian untouched", "debian", "etc/apt/sources.list.d/debian.sources",
			"Components: main\n", "Components: main\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			os.MkdirAll(filepath.Join(root, "etc/apt/sources.list.d"), 0o755)
			os.WriteFile(filepath.Join(root, "etc/os-release"), []byte("NAME=x\nID="+tc.osID+"\n"), 0o644)
			p := filepath.Join(root, tc.file)
			os.WriteFile(p, []byte(tc.in), 0o644)
			cmd := exec.Command("bash", "apt-components")
			cmd.Env = append(os.Environ(), "VIBE_SYSROOT="+root)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("%v\n%s", err, out)
			}
			got, _ := os.ReadFile(p)
			if string(got) != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}
