package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/distro"
)

type baseCmd struct {
	Release  string        `arg:"" optional:"" help:"Distribution codename: bookworm, trixie (Debian), noble (Ubuntu, with --mirror). Default: the host's own, else bookworm."`
	Alias    string        `help:"Local alias of the image (default: vibe-base-RELEASE); set image.base to it." placeholder:"NAME"`
	Mirror   string        `help:"Archive URI (default: the host's apt source for the distribution)." placeholder:"URI"`
	Security string        `help:"Security archive URI (default: the host's)." placeholder:"URI"`
	Keyring  string        `help:"Keyring the archive's signatures are checked against (default: the host source's Signed-By)." placeholder:"FILE"`
	Include  []string      `help:"More packages to put in the base." placeholder:"PKG"`
	Cache    string        `help:"Where built trees are kept (default: /var/cache/vibe/base as root, else ~/.cache/vibe/base)." type:"path" placeholder:"DIR"`
	Force    bool          `help:"Build the tree again even when it is cached."`
	MaxAge   time.Duration `help:"Build a cached tree again when it is older than this, for the archive's security updates (0: keep it)." default:"168h"`
	DryRun   bool          `help:"Print the plan (sources, packages, the mmdebstrap command) and do nothing."`
	JSON     bool          `help:"Print the result (or with --dry-run the plan) as JSON."`
}

func (b *baseCmd) Run() error {
	host, err := distro.HostSources("/")
	if err != nil {
		return fmt.Errorf("read the host's apt sources: %w", err)
	}
	release := b.Release
	if release == "" {
		release = distro.ReadOSRelease("/").BuildRelease()
	}
	spec, err := distro.Plan(distro.Request{
		Release: release, Mirror: b.Mirror, Security: b.Security, Keyring: b.Keyring, Include: b.Include,
	}, host)
	if err != nil {
		return err
	}
	alias := b.Alias
	if alias == "" {
		alias = "vibe-base-" + spec.Release
	}
	cache := b.Cache
	if cache == "" {
		if cache, err = baseCache(); err != nil {
			return err
		}
	}
	if b.DryRun {
		if b.JSON {
			return printJSON(map[string]any{"alias": alias, "spec": spec, "sources": spec.Sources(), "cache": cache})
		}
		fmt.Printf("base image %s: %s %s (%s)\n", alias, spec.Distribution, spec.Release, spec.Architecture)
		for _, s := range spec.Sources() {
			fmt.Printf("  apt      %s\n", s)
		}
		if spec.Keyring != "" {
			fmt.Printf("  keyring  %s\n", spec.Keyring)
		}
		fmt.Printf("  packages %s\n", strings.Join(spec.Packages, " "))
		fmt.Printf("  tree     %s\n", filepath.Join(cache, spec.Key()[:16]))
		fmt.Printf("  command  mmdebstrap %s\n", strings.Join(spec.Args("TREE.tar", "HOOK"), " "))
		return nil
	}
	c, err := daemon.Connect("")
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := newProgress(os.Stderr)
	res, err := distro.Build(ctx, c, distro.Options{Spec: spec, Alias: alias, CacheDir: cache, Force: b.Force, MaxAge: b.MaxAge, Progress: p})
	p.Done()
	if err != nil {
		return err
	}
	if b.JSON {
		return printJSON(res)
	}
	how := "built"
	if res.Cached {
		how = "cached tree"
	}
	fmt.Printf("%s: %s -> %s (%s %s) in %.1fs\n", how, res.Alias, res.Fingerprint[:12], res.Distribution, res.Release, res.Seconds)
	fmt.Printf("use it: image.base: %s (and instance.type: container)\n", res.Alias)
	return nil
}

func baseCache() (string, error) {
	if os.Geteuid() == 0 {
		return "/var/cache/vibe/base", nil
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no cache folder: %w (pass --cache)", err)
	}
	return filepath.Join(d, "vibe", "base"), nil
}
