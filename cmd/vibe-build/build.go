package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/vibesandbox/vibe/cloudinit"
	"github.com/vibesandbox/vibe/egress"
	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/internal/version"
)

type buildCmd struct {
	target
	Alias         string        `help:"Alias to point at the baked image (default: image.alias from the configuration)." placeholder:"NAME"`
	JSON          bool          `help:"Print the result as one JSON object (progress goes to standard error)."`
	Force         bool          `help:"Bake even if an image with the same recipe exists."`
	KeepOnFailure bool          `help:"Keep the builder instance when the bake fails, for inspection."`
	Timeout       time.Duration `help:"How long cloud-init may take to provision the builder." default:"30m"`
	Trust         string        `help:"Allowed-signers file: an image of the same recipe imported with a signature by a key it lists is a cache hit too (without it, only images baked here are)." placeholder:"FILE" type:"existingfile"`
}

func (b *buildCmd) Run(root *cli) error {
	c, err := b.load(root)
	if err != nil {
		return err
	}
	alias := b.Alias
	if alias == "" {
		alias = c.Image.Alias
	}
	for _, w := range c.Warnings() {
		fmt.Fprintf(os.Stderr, "vibe-build: warning: %s\n", w)
	}
	doc, err := cloudinit.Render(c)
	if err != nil {
		return err
	}
	trust, err := loadTrust(b.Trust)
	if err != nil {
		return err
	}
	store, srv, err := storeAndDaemon()
	if err != nil {
		return err
	}
	var gw *egress.Gateway
	if g := c.Egress.Gateway; g.Enabled {
		// The gateway runs vibe (its proxy), installed beside vibe-build.
		self, err := os.Executable()
		if err != nil {
			return err
		}
		bin := filepath.Join(filepath.Dir(self), "vibe")
		if _, err := os.Stat(bin); err != nil {
			return fmt.Errorf("egress.gateway is on and the gateway runs vibe's proxy, but there is no vibe beside vibe-build (%s): install both (make install)", bin)
		}
		img := g.Image
		if img == "" {
			img = c.Image.Base
		}
		gw = &egress.Gateway{C: srv, Network: g.Network, Instance: g.Instance, Uplink: g.Uplink, Image: img, Binary: bin, Private: g.PrivatePrefixes()}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := newProgress(os.Stderr)
	res, err := images.Bake(ctx, srv, images.Options{
		Config: c, UserData: doc, Alias: alias, Force: b.Force, KeepOnFailure: b.KeepOnFailure,
		Timeout: b.Timeout, Store: store, Version: version.String(), Progress: p, Gateway: gw, Trust: trust,
	})
	p.Done()
	if err != nil {
		if ctx.Err() != nil {
			return fmt.Errorf("interrupted; the builder and partial files were removed: %w", err)
		}
		return err
	}
	if b.JSON {
		return printJSON(res)
	}
	state := "baked"
	if res.Cached {
		state = "cache hit"
	}
	fmt.Printf("%s: %s -> %s (recipe %s) in %.1fs\n", state, res.Alias, res.Fingerprint, res.Recipe[:12], res.Seconds)
	if !res.Cached {
		for _, ph := range res.Phases {
			fmt.Printf("  %-10s %7.1fs\n", ph.Name, ph.Seconds)
		}
		fmt.Printf("  store      %s\n", store.Path(res.Fingerprint))
	}
	return nil
}
