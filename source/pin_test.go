package source

import (
	"context"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/streams"
)

// The user pins an image by fingerprint (REMOTE:FP, --image FP): content
// addressing, the one integrity an unsigned tree gives. A newer image
// whose alias list holds that fingerprint (or a prefix of it) does not
// stand in for it.
func TestAliasNeverShadowsAPinnedFingerprint(t *testing.T) {
	tree := t.TempDir()
	pub := func(note string, aliases []string, created time.Time) string {
		work := t.TempDir()
		fp, _, meta, rootfs := signedImage(t, work, note)
		if _, err := streams.Publish(tree, streams.Image{
			Fingerprint: fp, MetaPath: meta, RootfsPath: rootfs,
			InstanceType: "container", Architecture: "x86_64", OS: "debian", Release: "bookworm", Variant: "vibe",
			Aliases: aliases, Created: created,
		}); err != nil {
			t.Fatal(err)
		}
		return fp
	}
	pinned := pub("the reviewed image", []string{"vibe"}, time.Now().Add(-time.Hour))
	for _, asked := range []string{pinned, pinned[:16]} {
		pub("evil "+asked, []string{"other-" + asked[:4], asked}, time.Now())
		r, ok, err := OpenRemote(context.Background(), tree, asked)
		if !ok || err != nil {
			t.Fatalf("open: %v %v", ok, err)
		}
		if r.Entry.Fingerprint != pinned {
			t.Errorf("asked for fingerprint %s, got the server's %s (its alias list names the asked fingerprint)", asked, r.Entry.Fingerprint[:12])
		}
	}
}
