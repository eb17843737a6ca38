package images

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/internal/e2e"
	"github.com/vibesandbox/vibe/signing"
)

// The VM image format up to the API: a split image with a qcow2 data file
// imports as a virtual-machine image under the fingerprint computed here.
// (Booting it needs KVM, which these machines lack.)
func TestE2EImportVMImage(t *testing.T) {
	c := e2e.Daemon(t)
	dir := t.TempDir()
	var meta bytes.Buffer
	err := WriteMetaTarball(&meta, []MetaEntry{
		{Name: "metadata.yaml", Data: []byte("architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  description: vibe VM format test\n")},
		{Name: "vibe/user-data", Data: []byte("#cloud-config\n")},
	})
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, MetaFile), meta.Bytes(), 0o644)
	// A qcow2 header: magic, version 3, no backing file; a 1 MiB virtual size.
	qcow := make([]byte, 512)
	copy(qcow, []byte{'Q', 'F', 'I', 0xfb, 0, 0, 0, 3})
	qcow[24+5] = 0x10 // size = 0x100000
	os.WriteFile(filepath.Join(dir, RootfsFile("vm")), qcow, 0o644)
	fp, err := Fingerprint(filepath.Join(dir, MetaFile), filepath.Join(dir, RootfsFile("vm")))
	if err != nil {
		t.Fatal(err)
	}
	if err := Import(context.Background(), c, dir, fp, "vm", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteImage(c, fp) })
	img, _, err := c.GetImage(fp)
	if err != nil {
		t.Fatal(err)
	}
	if img.Type != "virtual-machine" || img.Fingerprint != fp {
		t.Errorf("imported %s image %s, want virtual-machine %s", img.Type, img.Fingerprint, fp)
	}
	// Importing again is a no-op, not an error.
	if err := Import(context.Background(), c, dir, fp, "vm", nil); err != nil {
		t.Errorf("second import: %v", err)
	}
}

// Cache poisoning: an image with a forged recipe property and a creation
// date in 2100, imported into incus by anyone, is no cache hit; neither is
// one in the store that an untrusted source gave; one baked here is.
func TestE2ECacheHitsOnlyTrustedImages(t *testing.T) {
	c := e2e.Daemon(t)
	store := &Store{Dir: t.TempDir()}
	recipe := strings.Repeat("ab", 32)
	dir := fakeImageWith(t, t.TempDir(), []byte("forged rootfs"), func(md *api.ImageMetadata, _ map[string][]byte) {
		md.CreationDate = 4102444800
	})
	fp := filepath.Base(dir)
	if err := Import(context.Background(), c, dir, fp, "container", nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteImage(c, fp) })
	if img, err := FindByRecipe(c, store, recipe, nil); err != nil || img != nil {
		t.Fatalf("an image only incus holds is a cache hit: %v %v", img, err)
	}
	// In the store, but from an untrusted source.
	os.MkdirAll(store.Dir, 0o755)
	if err := os.Rename(dir, store.Path(fp)); err != nil {
		t.Fatal(err)
	}
	writeOrigin(store.Path(fp), Origin{How: "imported"})
	if img, _ := FindByRecipe(c, store, recipe, nil); img != nil {
		t.Error("an unsigned imported image is a cache hit")
	}
	// Imported with a signature a --trust file accepted then: that trust
	// was for the import. A bake reuses it only with a --trust of its own
	// that accepts the signature now.
	key, line := testKey(t)
	raw, err := os.ReadFile(filepath.Join(store.Path(fp), ManifestFile))
	if err != nil {
		t.Fatal(err)
	}
	claim := signing.Claim{Name: "vibe", SignedAt: time.Now().UTC().Truncate(time.Second)}
	armored, err := signing.SignWith(key, signing.MessageV2(fp, raw, claim))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(store.Path(fp), SigFile), signing.Envelope(claim, armored), 0o644)
	writeOrigin(store.Path(fp), Origin{How: "imported", Signer: "teammate", Trusted: true})
	if img, _ := FindByRecipe(c, store, recipe, nil); img != nil {
		t.Error("an image imported once with --trust is a cache hit for a bake without one")
	}
	_, other := testKey(t)
	for _, tc := range []struct {
		trust string
		hit   bool
	}{{"teammate " + line, true}, {"stranger " + other, false}} {
		trust, err := signing.ParseAllowedSigners([]byte(tc.trust + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		if img, _ := FindByRecipe(c, store, recipe, trust); (img != nil) != tc.hit {
			t.Errorf("with --trust %q the signed import is a cache hit: %v, want %v", strings.Fields(tc.trust)[0], img != nil, tc.hit)
		}
	}
	os.Remove(filepath.Join(store.Path(fp), SigFile))
	writeOrigin(store.Path(fp), Origin{How: "baked"})
	if img, _ := FindByRecipe(c, store, recipe, nil); img == nil || img.Fingerprint != fp {
		t.Errorf("an image baked here is no cache hit: %v", img)
	}
	if img, _ := FindByRecipe(c, store, strings.Repeat("cd", 32), nil); img != nil {
		t.Error("a hit for another recipe")
	}
}
