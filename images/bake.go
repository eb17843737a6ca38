package images

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	incus "github.com/lxc/incus/v6/client"

	"github.com/vibesandbox/vibe/cloudinit"
	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/egress"
	"github.com/vibesandbox/vibe/signing"
)

// Image properties vibe sets; the recipe property is the cache key.
const (
	PropRecipe       = "vibe.recipe"
	PropBase         = "vibe.base"
	PropBaseFP       = "vibe.base_fingerprint"
	PropType         = "vibe.instance_type"
	PropUserData     = "vibe.user_data_sha256"
	PropFormat       = "vibe.format"
	PropIntermediate = "vibe.intermediate"
	// PropAlias is set on the server only (not in the metadata tarball, so
	// the fingerprint stays a function of the recipe's output): the alias the
	// image was baked for, which gc groups by.
	PropAlias = "vibe.alias"

	builderPrefix = "vibe-builder-"
	KeyBuilder    = "user.vibe.builder"
	keyBuilderPID = "user.vibe.builder.pid"
	keyBuilderHst = "user.vibe.builder.host"
)

// Progress receives what a bake is doing. Implementations must be safe to
// call from one goroutine at a time.
type Progress interface {
	Phase(name string)
	Log(line string)
	Status(text string)
}

type nopProgress struct{}

func (nopProgress) Phase(string) {}

func (nopProgress) Log(string) {}

func (nopProgress) Status(string) {}

// Options say what to bake.
type Options struct {
	Config        *config.Config
	UserData      []byte
	Alias         string
	Force         bool
	KeepOnFailure bool
	Timeout       time.Duration // for cloud-init to finish
	Store         *Store
	Version       string // vibe-build's version, for the manifest
	Progress      Progress
	// Gateway, when set, is the egress gateway the builder sits behind,
	// as sandboxes do: it applies the recipe's allowlist, outside the guest.
	Gateway *egress.Gateway
	// Trust, when set, lets the cache reuse an image imported with a
	// signature by one of its keys (a teammate's bake of the same recipe).
	Trust *signing.AllowedSigners
}

// Result is what a bake produced.
type Result struct {
	Fingerprint string            `json:"fingerprint"`
	Alias       string            `json:"alias"`
	Recipe      string            `json:"recipe"`
	Cached      bool              `json:"cached"`
	Seconds     float64           `json:"seconds"`
	Phases      []Phase           `json:"phases"`
	Versions    map[string]string `json:"versions,omitempty"`
	Packages    int               `json:"packages,omitempty"` // in the image's SBOM
	Size        int64             `json:"size,omitempty"`
	Builder     string            `json:"builder,omitempty"`
}

// Phase is one timed step of a bake.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// BuildError is a failed bake, with what the builder said.
type BuildError struct {
	Phase   string
	Err     error
	Details string // failing module, log tail, self-test output
	Kept    string // the builder left for inspection, if any
}

func (e *BuildError) Error() string {
	msg := fmt.Sprintf("bake failed during %s: %v", e.Phase, e.Err)
	if e.Details != "" {
		msg += "\n" + strings.TrimRight(e.Details, "\n")
	}
	if e.Kept != "" {
		msg += fmt.Sprintf("\nthe builder %s was kept for inspection: incus exec %s -- bash; delete it with incus delete -f %s", e.Kept, e.Kept, e.Kept)
	}
	return msg
}

func (e *BuildError) Unwrap() error { return e.Err }

type baker struct {
	c     incus.InstanceServer
	o     Options
	p     Progress
	start time.Time
	res   Result

	phase      string
	phaseStart time.Time

	cleanups []func()
}

func (b *baker) enter(name string) {
	b.leave()
	b.phase, b.phaseStart = name, time.Now()
	b.p.Phase(name)
}

func (b *baker) leave() {
	if b.phase != "" {
		b.res.Phases = append(b.res.Phases, Phase{Name: b.phase, Seconds: round(time.Since(b.phaseStart).Seconds())})
	}
	b.phase = ""
}

func round(s float64) float64 { return float64(int64(s*1000+0.5)) / 1000 }

func (b *baker) fail(err error, details string) error {
	return &BuildError{Phase: b.phase, Err: err, Details: details}
}

// Bake makes (or finds) the image for o and points o.Alias at it.
func Bake(ctx context.Context, c incus.InstanceServer, o Options) (res *Result, err error) {
	b := &baker{c: c, o: o, p: o.Progress, start: time.Now()}
	if b.p == nil {
		b.p = nopProgress{}
	}
	b.res.Alias = o.Alias
	defer func() {
		failedIn := b.phase
		b.leave()
		b.res.Seconds = round(time.Since(b.start).Seconds())
		// Undo in reverse order, with a fresh context: an interrupt must
		// still clean up.
		for i := len(b.cleanups) - 1; i >= 0; i-- {
			b.cleanups[i]()
		}
		if err != nil {
			var be *BuildError
			if !errors.As(err, &be) {
				err = &BuildError{Phase: cmp.Or(failedIn, "setup"), Err: err}
			}
			if errors.As(err, &be) && o.KeepOnFailure && b.res.Builder != "" {
				be.Kept = b.res.Builder
			}
		}
	}()
	b.enter("resolve")
	cfg := o.Config
	if err := daemon.NeedVMs(c, cfg.Instance.Type); err != nil {
		return nil, err
	}
	base, err := b.resolveBase(ctx, cfg.Image.Base, cfg.Instance.Type)
	if err != nil {
		return nil, err
	}
	if err := base.Bakeable(); err != nil {
		return nil, err
	}
	recipe := cloudinit.NewRecipe(cfg.Image.Base+"@"+base.Fingerprint, cfg.Instance.Type, cfg.Instance.Disk, o.UserData)
	b.res.Recipe = recipe.Hash()

	if !o.Force {
		if img, err := FindByRecipe(c, o.Store, b.res.Recipe, o.Trust); err != nil {
			return nil, err
		} else if img != nil {
			if err := SetAlias(c, o.Alias, img.Fingerprint, "vibe sandbox image"); err != nil {
				return nil, err
			}
			b.res.Fingerprint, b.res.Cached, b.res.Size = img.Fingerprint, true, img.Size
			return &b.res, nil
		}
	}
	b.removeLeftovers()
	if err := o.Store.CleanAbandoned(); err != nil {
		return nil, fmt.Errorf("image store: %w", err)
	}

	name, err := b.launch(ctx, base)
	if err != nil {
		return nil, err
	}
	if err := b.provision(ctx, name); err != nil {
		return nil, err
	}
	versions, pkgs, err := b.inventory(ctx, name)
	if err != nil {
		return nil, err
	}
	b.res.Versions, b.res.Packages = versions, len(pkgs)

	b.enter("seal")
	if r, err := run(ctx, c, name, "/usr/local/lib/vibe/seal"); err != nil {
		return nil, err
	} else if r.Code != 0 {
		return nil, b.fail(fmt.Errorf("seal exited %d", r.Code), r.Stdout+r.Stderr)
	}
	b.enter("stop")
	if err := b.stop(ctx, name); err != nil {
		return nil, err
	}
	stage, err := o.Store.Begin()
	if err != nil {
		return nil, diskHint(err, o.Store.Dir)
	}
	b.cleanups = append(b.cleanups, func() { stage.Discard() })

	b.enter("publish")
	published, err := b.publish(ctx, name)
	if err != nil {
		return nil, err
	}
	b.enter("export")
	meta, rootfs, err := b.export(ctx, published, stage.Dir, cfg.Instance.Type)
	if err != nil {
		return nil, err
	}
	b.enter("package")
	fp, size, err := b.pack(stage.Dir, meta, rootfs, recipe, base, versions, pkgs)
	if err != nil {
		return nil, err
	}
	b.enter("import")
	if err := Import(ctx, c, stage.Dir, fp, cfg.Instance.Type, b.p); err != nil {
		return nil, err
	}
	if err := writeOrigin(stage.Dir, Origin{How: "baked"}); err != nil {
		return nil, diskHint(err, o.Store.Dir)
	}
	if err := stage.Commit(fp); err != nil {
		return nil, err
	}
	if err := tagAlias(c, fp, o.Alias); err != nil {
		return nil, err
	}
	if err := SetAlias(c, o.Alias, fp, "vibe sandbox image"); err != nil {
		return nil, err
	}
	b.res.Fingerprint, b.res.Size = fp, size
	return &b.res, nil
}
