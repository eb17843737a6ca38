package source

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/images"
)

func TestRemoteURL(t *testing.T) {
	conf := t.TempDir()
	t.Setenv("INCUS_CONF", conf)
	os.WriteFile(filepath.Join(conf, "config.yml"), []byte(`remotes:
  team:
    addr: https://images.example.com/vibe
    protocol: simplestreams
  plain:
    addr: http://images.example.com/vibe
    protocol: simplestreams
  cluster:
    addr: https://10.0.0.1:8443
    protocol: incus
`), 0o644)
	tree := t.TempDir()
	os.MkdirAll(filepath.Join(tree, "streams", "v1"), 0o755)
	os.WriteFile(filepath.Join(tree, "streams", "v1", "index.json"), []byte("{}"), 0o644)

	for _, tc := range []struct {
		in, where, name string
		remote          bool
		err             string
	}{
		{in: "https://images.example.com/vibe", where: "https://images.example.com/vibe", remote: true},
		{in: "http://images.example.com/vibe", remote: true, err: "only https://"},
		{in: "ftp://images.example.com/vibe", remote: true, err: "only https://"},
		{in: "team:vibe", where: "https://images.example.com/vibe", name: "vibe", remote: true},
		{in: "team:", where: "https://images.example.com/vibe", remote: true},
		{in: "plain:vibe", remote: true, err: "only https://"},
		{in: "cluster:vibe", remote: true, err: "protocol \"incus\""},
		{in: tree, where: tree, remote: true},
		{in: "unknown:vibe"},
		{in: "vibe"},
		{in: "1ad842d3366c"},
		{in: "./some/dir:x"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			where, name, ok, err := remoteURL(tc.in)
			if ok != tc.remote {
				t.Fatalf("remote = %v, want %v", ok, tc.remote)
			}
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one saying %q", err, tc.err)
				}
				return
			}
			if err != nil || where != tc.where || name != tc.name {
				t.Fatalf("got %q %q %v, want %q %q", where, name, err, tc.where, tc.name)
			}
			if IsRemote(tc.in) != tc.remote {
				t.Errorf("IsRemote disagrees")
			}
		})
	}
}

func TestStoreMatch(t *testing.T) {
	store := &images.Store{Dir: t.TempDir()}
	a := strings.Repeat("a", 64)
	b := strings.Repeat("a", 12) + strings.Repeat("b", 52)
	for _, fp := range []string{a, b} {
		os.MkdirAll(store.Path(fp), 0o755)
	}
	for _, tc := range []struct{ in, want string }{
		{a, a},
		{b[:13], b},
		{a[:12], ""}, // ambiguous
		{a[:11], ""}, // too short to be a prefix
		{"vibe", ""}, // an alias
		{strings.Repeat("c", 64), ""},
	} {
		if got := StoreMatch(store, tc.in); got != tc.want {
			t.Errorf("StoreMatch(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A repository holding a folder named like an alias (vibe/streams/v1/…)
// must not replace the alias: only a reference written as a path is one.
func TestNameIsNeverAFolder(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	os.MkdirAll(filepath.Join("vibe", "streams", "v1"), 0o755)
	os.WriteFile(filepath.Join("vibe", "streams", "v1", "index.json"), []byte("{}"), 0o644)
	t.Setenv("INCUS_CONF", t.TempDir())
	if IsRemote("vibe") {
		t.Error("the alias vibe was taken for the folder ./vibe")
	}
	for _, s := range []string{"./vibe", "dir:vibe", filepath.Join(dir, "vibe")} {
		if !IsRemote(s) {
			t.Errorf("%s, written as a path, is not the tree", s)
		}
	}
	store := &images.Store{Dir: t.TempDir()}
	_, err := Local("vibe", store, nil)
	if err == nil || strings.Contains(err.Error(), "holds no image") {
		t.Errorf("Local(vibe) looked at the folder: %v", err)
	}
	for s, want := range map[string]bool{"/a": true, "./a": true, "../a": true, "~/a": true, "dir:a": true, ".": true, "a": false, "ubuntu/26.04": false, "team:vibe": false, "a/b": false} {
		if IsPath(s) != want {
			t.Errorf("IsPath(%q) = %v", s, !want)
		}
	}
}
