package source

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/signing"
	"github.com/vibesandbox/vibe/streams"
)

// signedImage writes a small vibe image (container) into dir as meta.tar.xz
// and rootfs.tar and returns its fingerprint, manifest and paths.
func signedImage(t *testing.T, dir string, note string) (fp string, manifest []byte, meta, rootfs string) {
	t.Helper()
	var rb bytes.Buffer
	tw := tar.NewWriter(&rb)
	body := []byte("rootfs " + note + "\n")
	tw.WriteHeader(&tar.Header{Name: "./etc/motd", Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg, ModTime: time.Unix(0, 0)})
	tw.Write(body)
	tw.Close()
	root := rb.Bytes()
	userData := []byte("#cloud-config\n# " + note + "\n")
	uds, rs := sha256.Sum256(userData), sha256.Sum256(root)
	m := &images.Manifest{
		Format: images.ManifestFormat, VibeBuild: "test", Recipe: strings.Repeat("ab", 32),
		UserDataSHA256: hex.EncodeToString(uds[:]), InstanceType: "container", Architecture: "x86_64",
		Base:    images.BaseImage{Source: "vibe-test-base", Fingerprint: strings.Repeat("cd", 32)},
		Rootfs:  images.FileDigest{Name: "rootfs.tar", SHA256: hex.EncodeToString(rs[:]), Size: int64(len(root))},
		Created: time.Unix(1700000000, 0).UTC(),
	}
	manifest, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	md := api.ImageMetadata{Architecture: "x86_64", CreationDate: 1700000000,
		Properties: images.ImageProperties(m, &images.Base{Properties: map[string]string{"os": "debian", "release": "bookworm"}})}
	mdYAML, _ := yaml.Marshal(&md)
	var mb bytes.Buffer
	if err := images.WriteMetaTarball(&mb, []images.MetaEntry{
		{Name: "metadata.yaml", Data: mdYAML}, {Name: "vibe/manifest.json", Data: manifest}, {Name: "vibe/user-data", Data: userData},
	}); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(append(mb.Bytes(), root...))
	fp = hex.EncodeToString(sum[:])
	meta, rootfs = filepath.Join(dir, "meta.tar.xz"), filepath.Join(dir, "rootfs.tar")
	os.WriteFile(meta, mb.Bytes(), 0o644)
	os.WriteFile(rootfs, root, 0o644)
	return fp, manifest, meta, rootfs
}

// fakeDaemon holds every image already, so an import only fills the store
// (the trust decision needs no daemon import).
type fakeDaemon struct{ incus.InstanceServer }

func (fakeDaemon) GetImage(fp string) (*api.Image, string, error) {
	return &api.Image{Fingerprint: fp}, "", nil
}

// A trusted signature binds the name it was made for to the name the user
// asked for, never to the names the tree lists: a server holding an old
// image the team once signed as "vibe-2024" lists it as "vibe" too, and
// the rollback record (kept per signed name) would never see it. Asked by
// its signed name or by fingerprint, it is taken.
func TestClaimIsCheckedAgainstTheAskedName(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewSignerFromKey(priv)
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey())))
	trust, err := signing.ParseAllowedSigners([]byte("team@example.com " + pub + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	claim := signing.Claim{Name: "vibe-2024", SignedAt: time.Unix(1600000000, 0).UTC()}
	tree := t.TempDir()
	fp := publishSigned(t, key, tree, "old and vulnerable", claim, "vibe", "vibe-2024")
	for _, c := range []struct {
		asked string
		ok    bool
	}{{"vibe", false}, {"vibe-2024", true}, {fp[:16], true}} {
		// This machine accepted a newer "vibe" before.
		store := &images.Store{Dir: filepath.Join(t.TempDir(), "images")}
		os.MkdirAll(store.Dir, 0o755)
		prev, _ := json.Marshal(map[string]images.Accepted{"vibe": {
			SignedAt: time.Unix(1760000000, 0).UTC(), Fingerprint: strings.Repeat("1", 64), Signer: "team@example.com",
		}})
		os.WriteFile(store.AcceptedFile(), prev, 0o600)
		_, err := Import(context.Background(), fakeDaemon{}, store, tree, c.asked, images.ImportOptions{Trust: trust})
		if c.ok && err != nil {
			t.Errorf("asked for %q: %v", c.asked, err)
		}
		if !c.ok && (err == nil || !strings.Contains(err.Error(), `signed as "vibe-2024"`)) {
			t.Errorf("asked for %q, an image signed as %q was taken (%v)", c.asked, claim.Name, err)
		}
	}
}

// publishSigned publishes a new image into tree, signed with c by key,
// under aliases (c's name when none), and returns its fingerprint.
func publishSigned(t *testing.T, key ssh.Signer, tree, note string, c signing.Claim, aliases ...string) string {
	t.Helper()
	if len(aliases) == 0 {
		aliases = []string{c.Name}
	}
	work := t.TempDir()
	fp, manifest, meta, rootfs := signedImage(t, work, note)
	armored, err := signing.SignWith(key, signing.MessageV2(fp, manifest, c))
	if err != nil {
		t.Fatal(err)
	}
	sig := filepath.Join(work, "sig")
	os.WriteFile(sig, signing.Envelope(c, armored), 0o644)
	if _, err := streams.Publish(tree, streams.Image{
		Fingerprint: fp, MetaPath: meta, RootfsPath: rootfs, SigPath: sig,
		InstanceType: "container", Architecture: "x86_64", OS: "debian", Release: "bookworm", Variant: "vibe",
		Aliases: aliases, Created: time.Now(),
	}); err != nil {
		t.Fatal(err)
	}
	return fp
}

// A signature dated in the future (a signer's wrong clock, a mistake, a
// key retired since) is refused: accepted, it would stay the newest under
// its name, and every real update after it would be refused as a rollback.
func TestFutureSignatureIsRefused(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewSignerFromKey(priv)
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey())))
	trust, _ := signing.ParseAllowedSigners([]byte("team@example.com " + pub + "\n"))
	store := &images.Store{Dir: filepath.Join(t.TempDir(), "images")}
	future := t.TempDir()
	publishSigned(t, key, future, "future", signing.Claim{Name: "vibe", SignedAt: time.Now().AddDate(80, 0, 0).UTC().Truncate(time.Second)})
	if _, err := Import(context.Background(), fakeDaemon{}, store, future, "vibe", images.ImportOptions{Trust: trust}); err == nil || !strings.Contains(err.Error(), "ahead of this machine's clock") {
		t.Fatalf("a signature dated 80 years ahead: %v", err)
	}
	today := t.TempDir()
	publishSigned(t, key, today, "today's fix", signing.Claim{Name: "vibe", SignedAt: time.Now().UTC().Truncate(time.Second)})
	if _, err := Import(context.Background(), fakeDaemon{}, store, today, "vibe", images.ImportOptions{Trust: trust}); err != nil {
		t.Fatalf("today's signed update: %v", err)
	}
}

// vibe's own path: spec.Image is a tree URL with no name, so the tree's
// only image is taken whatever its signed name. The tree keeps a rollback
// record of its own: when the server that published the team's current
// "vibe" swaps its tree for one holding only an old image the team once
// signed as "vibe-2024" (listed under "vibe"), it is refused.
func TestOnlyImageKeepsTheTreesRollbackRecord(t *testing.T) {
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewSignerFromKey(priv)
	pub := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(key.PublicKey())))
	trust, _ := signing.ParseAllowedSigners([]byte("team@example.com " + pub + "\n"))
	store := &images.Store{Dir: filepath.Join(t.TempDir(), "images")}
	os.MkdirAll(store.Dir, 0o755)

	// Day 1: the tree holds the team's current image, signed as "vibe".
	current := t.TempDir()
	publishSigned(t, key, current, "current", signing.Claim{Name: "vibe", SignedAt: time.Now().Add(-time.Hour).UTC().Truncate(time.Second)})
	if _, err := Import(context.Background(), fakeDaemon{}, store, current, "", images.ImportOptions{Trust: trust}); err != nil {
		t.Fatalf("the current image: %v", err)
	}

	// Day 2: same URL, the server now lists only an old image signed as
	// "vibe-2024", under the alias "vibe".
	claim := signing.Claim{Name: "vibe-2024", SignedAt: time.Unix(1600000000, 0).UTC()}
	swapped := t.TempDir()
	publishSigned(t, key, swapped, "old and vulnerable", claim, "vibe")
	// The same place now holds only that image.
	os.RemoveAll(current)
	if err := os.Rename(swapped, current); err != nil {
		t.Fatal(err)
	}
	_, err := Import(context.Background(), fakeDaemon{}, store, current, "", images.ImportOptions{Trust: trust})
	if err == nil || !strings.Contains(err.Error(), "taken from the same tree") {
		t.Fatalf("the tree's only image, signed as %q in 2020, replaced the %q taken from the same tree before: %v", claim.Name, "vibe", err)
	}
}
