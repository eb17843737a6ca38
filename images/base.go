package images

// Base images: resolving a reference to a local fingerprint, and finding an
// existing image by recipe.

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/signing"
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
	img, err := daemon.Image(ctx, b.c, ref, daemon.ImageType(instanceType), b.p.Status)
	if err != nil {
		return nil, fmt.Errorf("base %w (pick another image.base, or --instance-type for the other kind)", err)
	}
	return &Base{Source: ref, Fingerprint: img.Fingerprint, Architecture: img.Architecture, Properties: img.Properties}, nil
}

// FindByRecipe returns the newest image baked from recipe that the cache
// may reuse, or nil. An image's recipe property and creation date are
// written by whoever made it, so neither is believed alone: the image must
// be in the store, and its stored manifest must name the recipe; the
// newest is the one whose manifest says so. It must have been baked on
// this machine, or imported with a signature that trust (this bake's
// --trust; nil for none) accepts now: the keys an import once trusted
// were trusted for that import, not for every later bake.
func FindByRecipe(c incus.InstanceServer, store *Store, recipe string, trust *signing.AllowedSigners) (*api.Image, error) {
	imgs, err := c.GetImages()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var found *api.Image
	var newest time.Time
	for i := range imgs {
		fp := imgs[i].Fingerprint
		if imgs[i].Properties[PropRecipe] != recipe || !IsFingerprint(fp) || !store.Has(fp) {
			continue
		}
		how := store.Origin(fp).How
		if how != "baked" && (how != "imported" || trust == nil) {
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
		if how == "imported" {
			if _, err := CheckSignature(fp, &Contents{Manifest: m, ManifestRaw: b}, filepath.Join(store.Path(fp), SigFile), trust); err != nil {
				continue
			}
		}
		if found == nil || m.Created.After(newest) {
			found, newest = &imgs[i], m.Created
		}
	}
	return found, nil
}
