package images

// Base images: resolving a reference to a local fingerprint, and finding an
// existing image by recipe.

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/daemon"
)

// Base is a resolved base image.
type Base struct {
	Source       string
	Fingerprint  string
	Architecture string
	Properties   map[string]string
}

// Bakeable refuses a base that is itself a vibe image: it keeps no NoCloud
// seed, so the builder's cloud-init would never see the recipe.
func (b *Base) Bakeable() error {
	if b.Properties[PropRecipe] != "" {
		return fmt.Errorf("base image %q is a vibe sandbox image (recipe %s), which runs no cloud-init and cannot be baked again; set image.base to a distribution image", b.Source, short(b.Properties[PropRecipe]))
	}
	return nil
}

// resolveBase finds the base image, copying it in from a remote when needed.
func (b *baker) resolveBase(ctx context.Context, ref, instanceType string) (*Base, error) {
	remote, name, found := strings.Cut(ref, ":")
	if !found {
		remote, name = "", ref
	}
	imgType := daemon.ImageType(instanceType)
	if remote == "" || remote == "local" {
		img, err := localImage(b.c, name)
		if err != nil {
			return nil, fmt.Errorf("base image %q: %w", ref, err)
		}
		if img.Type != imgType {
			return nil, fmt.Errorf("base image %q is a %s image; a %s bake needs a %s image (pick another base or --instance-type)", ref, img.Type, instanceType, imgType)
		}
		return &Base{Source: ref, Fingerprint: img.Fingerprint, Architecture: img.Architecture, Properties: img.Properties}, nil
	}
	conf, err := daemon.ClientConfig()
	if err != nil {
		return nil, err
	}
	src, err := conf.GetImageServer(remote)
	if err != nil {
		return nil, fmt.Errorf("base image %q: remote %q: %w", ref, remote, err)
	}
	var img *api.Image
	if alias, _, err := src.GetImageAliasType(imgType, name); err == nil {
		img, _, err = src.GetImage(alias.Target)
		if err != nil {
			return nil, fmt.Errorf("base image %q: %w", ref, err)
		}
	} else if img, _, err = src.GetImage(name); err != nil {
		return nil, fmt.Errorf("base image %q does not exist on %s (as a %s image): %w", ref, remote, imgType, err)
	}
	if local, _, err := b.c.GetImage(img.Fingerprint); err == nil {
		return &Base{Source: ref, Fingerprint: local.Fingerprint, Architecture: local.Architecture, Properties: local.Properties}, nil
	}
	b.p.Status("copying " + ref + " from " + remote)
	op, err := b.c.CopyImage(src, *img, &incus.ImageCopyArgs{})
	if err != nil {
		return nil, fmt.Errorf("copy base image %q: %w", ref, err)
	}
	_, _ = op.AddHandler(func(o api.Operation) {
		if s, ok := o.Metadata["download_progress"].(string); ok {
			b.p.Status("copying " + ref + ": " + s)
		}
	})
	if err := op.Wait(); err != nil {
		return nil, fmt.Errorf("copy base image %q: %w", ref, err)
	}
	return &Base{Source: ref, Fingerprint: img.Fingerprint, Architecture: img.Architecture, Properties: img.Properties}, nil
}

// localImage finds an image on the server by alias, full fingerprint or
// fingerprint prefix.
func localImage(c incus.InstanceServer, name string) (*api.Image, error) {
	if alias, _, err := c.GetImageAlias(name); err == nil {
		img, _, err := c.GetImage(alias.Target)
		return img, err
	}
	img, _, err := c.GetImage(name)
	if err != nil {
		return nil, fmt.Errorf("no image with that alias or fingerprint on this server (`incus image list` shows what there is)")
	}
	return img, nil
}

// FindByRecipe returns the newest image baked from recipe that the cache
// may reuse, or nil. An image's recipe property and creation date are
// written by whoever made it, so neither is believed alone: the image must
// be in the store, baked on this machine or signed by a trusted key
// (Origin.Cacheable), and its stored manifest must name the recipe; the
// newest is the one whose manifest says so.
func FindByRecipe(c incus.InstanceServer, store *Store, recipe string) (*api.Image, error) {
	imgs, err := c.GetImages()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var found *api.Image
	var newest time.Time
	for i := range imgs {
		fp := imgs[i].Fingerprint
		if imgs[i].Properties[PropRecipe] != recipe || !IsFingerprint(fp) || !store.Has(fp) || !store.Origin(fp).Cacheable() {
			continue
		}
		b, err := readBounded(filepath.Join(store.Path(fp), ManifestFile), maxMetaFile)
		if err != nil {
			continue
		}
		m, err := ParseManifest(b)
		if err != nil || m.Recipe != recipe {
			continue
		}
		if found == nil || m.Created.After(newest) {
			found, newest = &imgs[i], m.Created
		}
	}
	return found, nil
}
