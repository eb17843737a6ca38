package images

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/cloudinit"
	"github.com/vibesandbox/vibe/config"
)

// The manifest a bake packs into the image (which export and publish hand
// to teammates or a public server, signed) records what the image is made
// of, not the host: neither the host user's home and folders
// (sandbox.workspace and workspaces name the projects mounted) nor the
// host path each tls.ca file was read from.
func TestManifestCarriesNoHostPaths(t *testing.T) {
	hostHome := filepath.Join(t.TempDir(), "home", "alice")
	os.MkdirAll(filepath.Join(hostHome, "corp"), 0o755)
	pem, err := os.ReadFile("../cloudinit/testdata/ca.pem")
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(hostHome, "corp", "mitm-proxy-ca.pem"), pem, 0o644)
	yml := `
sandbox:
  workspace: /srv/alice/clients/acme-merger-2026
  workspaces: ~/secret-projects.list
tls:
  ca: [~/corp/mitm-proxy-ca.pem]
`
	c, err := config.Parse("vibe.yaml", []byte(yml), config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.ReadCAs(hostHome); err != nil {
		t.Fatal(err)
	}
	ud, err := cloudinit.Render(c)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "rootfs.tar"), []byte("rootfs"), 0o644)
	b := &baker{o: Options{Config: c, UserData: ud, Store: &Store{Dir: dir}, Version: "test"}, p: nopProgress{}}
	base := &Base{Source: "images:debian/12", Fingerprint: strings.Repeat("a", 64), Architecture: "x86_64", Properties: map[string]string{}}
	rec := cloudinit.NewRecipe(base.Source+"@"+base.Fingerprint, c.Instance.Type, c.Instance.Disk, ud)
	if _, _, err := b.pack(dir, map[string][]byte{"metadata.yaml": []byte("architecture: x86_64\n")},
		FileDigest{Name: "rootfs.tar", SHA256: strings.Repeat("b", 64), Size: 6}, rec, base, nil, nil); err != nil {
		t.Fatal(err)
	}
	m, err := os.ReadFile(filepath.Join(dir, ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, leak := range []string{"acme-merger-2026", "secret-projects.list", hostHome} {
		if strings.Contains(string(m), leak) {
			t.Errorf("the image's manifest (shared with the image) carries the host's %q", leak)
		}
	}
}
