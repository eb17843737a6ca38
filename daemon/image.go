package daemon

import (
	"context"
	"fmt"
	"strings"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
)

// Image finds the image ref names ("alias", "fingerprint" or
// "remote:alias") of the given type ("container" or "virtual-machine") on
// c, copying it in from the remote when it is not there yet; status hears
// the copy's progress. A local image of the other type is an error.
func Image(ctx context.Context, c incus.InstanceServer, ref, imgType string, status func(string)) (*api.Image, error) {
	remote, name, found := strings.Cut(ref, ":")
	if !found {
		remote, name = "", ref
	}
	if remote == "" || remote == "local" {
		img, err := LocalImage(c, name)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", ref, err)
		}
		if img.Type != imgType {
			return nil, fmt.Errorf("image %q is a %s image, and a %s one is needed", ref, img.Type, imgType)
		}
		return img, nil
	}
	conf, err := ClientConfig()
	if err != nil {
		return nil, err
	}
	src, err := conf.GetImageServer(remote)
	if err != nil {
		return nil, fmt.Errorf("image %q: remote %q: %w", ref, remote, err)
	}
	var img *api.Image
	if alias, _, err := src.GetImageAliasType(imgType, name); err == nil {
		img, _, err = src.GetImage(alias.Target)
		if err != nil {
			return nil, fmt.Errorf("image %q: %w", ref, err)
		}
	} else if img, _, err = src.GetImage(name); err != nil {
		return nil, fmt.Errorf("image %q does not exist on %s (as a %s image): %w", ref, remote, imgType, err)
	}
	if img.Type != imgType {
		return nil, fmt.Errorf("image %q is a %s image, and a %s one is needed", ref, img.Type, imgType)
	}
	if local, _, err := c.GetImage(img.Fingerprint); err == nil {
		return local, nil
	}
	status("copying " + ref + " from " + remote)
	op, err := c.CopyImage(src, *img, &incus.ImageCopyArgs{})
	if err != nil {
		return nil, fmt.Errorf("copy image %q: %w", ref, err)
	}
	_, _ = op.AddHandler(func(o api.Operation) {
		if s, ok := o.Metadata["download_progress"].(string); ok {
			status("copying " + ref + ": " + s)
		}
	})
	done := make(chan error, 1)
	go func() { done <- op.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("copy image %q: %w", ref, err)
		}
	case <-ctx.Done():
		_ = op.CancelTarget()
		return nil, fmt.Errorf("copy image %q: %w", ref, ctx.Err())
	}
	return img, nil
}

// LocalImage finds an image on the server by alias, full fingerprint or
// fingerprint prefix.
func LocalImage(c incus.InstanceServer, name string) (*api.Image, error) {
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
