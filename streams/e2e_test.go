package streams

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/internal/e2e"
)

const e2eAlias = "vibe-streams-e2e"

// The real daemon copies a published image from an HTTPS tree, downloading
// it itself, and records it under our fingerprint; a container created from
// it unpacks the plain-tar rootfs listed as root.tar.xz. Then the same image
// goes the vibe way: Tree.Fetch and images.Import.
func TestE2ECopyFromTree(t *testing.T) {
	c := e2e.Daemon(t)
	dir := t.TempDir()
	img := testImage(t, "e2e", "container", time.Now().UTC(), e2eAlias)
	mustPublish(t, dir, img, true)
	cleanup := func() {
		e2e.ForceDelete(c, e2eAlias)
		_ = c.DeleteImageAlias(e2eAlias)
		if op, err := c.DeleteImage(img.Fingerprint); err == nil {
			_ = op.Wait()
		}
	}
	// A previous run may have left the alias on another fingerprint.
	if a, _, err := c.GetImageAlias(e2eAlias); err == nil {
		e2e.ForceDelete(c, e2eAlias)
		_ = c.DeleteImageAlias(e2eAlias)
		if op, err := c.DeleteImage(a.Target); err == nil {
			_ = op.Wait()
		}
	}
	cleanup()
	t.Cleanup(cleanup)

	srv := tlsServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	src := connectTree(t, srv)
	remote, _, err := src.GetImage(img.Fingerprint)
	if err != nil {
		t.Fatal(err)
	}
	op, err := c.CopyImage(src, *remote, &incus.ImageCopyArgs{Aliases: []api.ImageAlias{{Name: e2eAlias}}})
	if err == nil {
		err = op.Wait()
	}
	if err != nil {
		t.Fatalf("the daemon could not copy the image from the tree: %v", err)
	}
	got, _, err := c.GetImage(img.Fingerprint)
	if err != nil {
		t.Fatalf("after the copy: %v", err)
	}
	if got.Fingerprint != img.Fingerprint || got.Type != "container" {
		t.Fatalf("the daemon has %s image %s, want container %s", got.Type, got.Fingerprint, img.Fingerprint)
	}
	// incusd takes the properties from the index, not from metadata.yaml.
	t.Logf("properties of the copied image: %v", got.Properties)
	if a, _, err := c.GetImageAlias(e2eAlias); err != nil || a.Target != img.Fingerprint {
		t.Errorf("alias %s = %+v, %v", e2eAlias, a, err)
	}

	// Creating (not starting) a container unpacks the rootfs into the pool.
	iop, err := c.CreateInstance(api.InstancesPost{
		Name: e2eAlias, Type: api.InstanceTypeContainer,
		Source: api.InstanceSource{Type: "image", Fingerprint: img.Fingerprint},
	})
	if err == nil {
		err = iop.Wait()
	}
	if err != nil {
		t.Fatalf("create a container from the copied image: %v", err)
	}
	rc, _, err := c.GetInstanceFile(e2eAlias, "/etc/hostname")
	if err != nil {
		t.Fatalf("read /etc/hostname of the container: %v", err)
	}
	defer rc.Close()
	if b, _ := io.ReadAll(rc); string(b) != "e2e\n" {
		t.Errorf("/etc/hostname of the container is %q, want the rootfs's %q", b, "e2e\n")
	}

	// vibe's own path: fetch the files through Tree and upload them, which
	// keeps metadata.yaml's properties.
	cleanup()
	tr := mustOpen(t, srv.URL, srv.Client())
	e, err := tr.Find(e2eAlias)
	if err != nil {
		t.Fatal(err)
	}
	local := t.TempDir()
	for it, name := range map[Item]string{e.Meta: images.MetaFile, e.Rootfs: images.RootfsFile("container")} {
		f, err := os.Create(filepath.Join(local, name))
		if err == nil {
			err = tr.Fetch(context.Background(), it, f)
			f.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if err := images.Import(context.Background(), c, local, e.Fingerprint, "container", nil); err != nil {
		t.Fatal(err)
	}
	if got, _, err = c.GetImage(img.Fingerprint); err != nil {
		t.Fatalf("after the import: %v", err)
	}
	if got.Properties["vibe.recipe"] != "streams-test" {
		t.Errorf("imported image lacks metadata.yaml's properties: %v", got.Properties)
	}
}
