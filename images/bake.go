package images

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
	"github.com/lxc/incus/v6/shared/ioprogress"
	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/cloudinit"
	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/daemon"
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
	keyBuilder    = "user.vibe.builder"
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

func (nopProgress) Phase(string)  {}
func (nopProgress) Log(string)    {}
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
				err = &BuildError{Phase: firstNonEmpty(b.phase, "setup"), Err: err}
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
	recipe := cloudinit.NewRecipe(cfg.Image.Base+"@"+base.Fingerprint, cfg.Instance.Type, o.UserData)
	b.res.Recipe = recipe.Hash()

	if !o.Force {
		if img, err := FindByRecipe(c, b.res.Recipe); err != nil {
			return nil, err
		} else if img != nil {
			if err := setAlias(c, o.Alias, img.Fingerprint, "vibe sandbox image"); err != nil {
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
	versions, err := b.provision(ctx, name)
	if err != nil {
		return nil, err
	}
	b.res.Versions = versions

	b.enter("seal")
	if r, err := run(ctx, c, name, []string{"/usr/local/lib/vibe/seal"}, nil); err != nil {
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
	fp, size, err := b.pack(stage.Dir, meta, rootfs, recipe, base, versions)
	if err != nil {
		return nil, err
	}
	b.enter("import")
	if err := Import(ctx, c, stage.Dir, fp, cfg.Instance.Type, b.p); err != nil {
		return nil, err
	}
	if err := stage.Commit(fp); err != nil {
		return nil, err
	}
	if err := tagAlias(c, fp, o.Alias); err != nil {
		return nil, err
	}
	if err := setAlias(c, o.Alias, fp, "vibe sandbox image"); err != nil {
		return nil, err
	}
	b.res.Fingerprint, b.res.Size = fp, size
	return &b.res, nil
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// Base is a resolved base image.
type Base struct {
	Source       string
	Fingerprint  string
	Architecture string
	Properties   map[string]string
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

// FindByRecipe returns the newest image baked from recipe, or nil.
func FindByRecipe(c incus.InstanceServer, recipe string) (*api.Image, error) {
	imgs, err := c.GetImages()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var found *api.Image
	for i := range imgs {
		if imgs[i].Properties[PropRecipe] == recipe && (found == nil || imgs[i].CreatedAt.After(found.CreatedAt)) {
			found = &imgs[i]
		}
	}
	return found, nil
}

// removeLeftovers deletes builders and intermediate images of bakes whose
// process is gone (a killed run), on this host.
func (b *baker) removeLeftovers() {
	host, _ := os.Hostname()
	insts, err := b.c.GetInstances(api.InstanceTypeAny)
	if err == nil {
		for _, in := range insts {
			if in.Config[keyBuilder] != "true" || in.Config[keyBuilderHst] != host {
				continue
			}
			if pid, err := strconv.Atoi(in.Config[keyBuilderPID]); err == nil && processAlive(pid) {
				continue
			}
			b.p.Log("removing builder " + in.Name + " left by an interrupted bake")
			_ = forceDelete(b.c, in.Name)
		}
	}
	imgs, err := b.c.GetImages()
	if err == nil {
		for _, img := range imgs {
			owner := img.Properties[PropIntermediate]
			if owner == "" {
				continue
			}
			if _, _, err := b.c.GetInstance(owner); err != nil && api.StatusErrorCheck(err, 404) {
				_ = deleteImage(b.c, img.Fingerprint)
			}
		}
	}
}

func randomSuffix() string {
	var x [3]byte
	_, _ = rand.Read(x[:])
	return hex.EncodeToString(x[:])
}

// launch creates and starts the builder with the user-data.
func (b *baker) launch(ctx context.Context, base *Base) (string, error) {
	b.enter("launch")
	cfg := b.o.Config
	name := builderPrefix + b.res.Recipe[:12] + "-" + randomSuffix()
	host, _ := os.Hostname()
	post := api.InstancesPost{
		Name:   name,
		Type:   daemon.APIType(cfg.Instance.Type),
		Source: api.InstanceSource{Type: "image", Fingerprint: base.Fingerprint},
		InstancePut: api.InstancePut{
			Config: map[string]string{
				"cloud-init.user-data": string(b.o.UserData),
				keyBuilder:             "true",
				keyBuilderPID:          strconv.Itoa(os.Getpid()),
				keyBuilderHst:          host,
				"limits.cpu":           strconv.Itoa(cfg.Instance.CPU),
				"limits.memory":        cfg.Instance.Memory,
			},
		},
		Start: true,
	}
	op, err := b.c.CreateInstance(post)
	if err != nil {
		return "", fmt.Errorf("create builder: %w", err)
	}
	b.res.Builder = name
	b.cleanups = append(b.cleanups, func() {
		if b.o.KeepOnFailure && b.res.Fingerprint == "" {
			return
		}
		// A create interrupted here still runs on the server: let it finish,
		// or the delete would find nothing and the builder would appear later.
		_ = op.Wait()
		_ = forceDelete(b.c, name)
	})
	if err := waitOp(ctx, op, "create builder "+name); err != nil {
		return "", err
	}
	if cfg.Instance.Type == config.VM {
		b.p.Status("waiting for the VM agent")
		if err := b.waitAgent(ctx, name, 5*time.Minute); err != nil {
			return "", err
		}
	}
	return name, nil
}

func (b *baker) waitAgent(ctx context.Context, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		st, _, err := b.c.GetInstanceState(name)
		if err == nil && st.Processes > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the VM agent of %s did not start within %s", name, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// provision waits for cloud-init, streaming its output log, then runs the
// self-test and records installed versions.
func (b *baker) provision(ctx context.Context, name string) (map[string]string, error) {
	b.enter("provision")
	deadline := time.Now().Add(b.o.Timeout)
	offset := 1
	var partial string
	var tail []string
	for {
		r, err := run(ctx, b.c, name, []string{"tail", "-c", "+" + strconv.Itoa(offset), "/var/log/cloud-init-output.log"}, nil)
		if err != nil {
			return nil, err
		}
		if r.Code == 0 && r.Stdout != "" {
			offset += len(r.Stdout)
			text := partial + r.Stdout
			lines := strings.Split(text, "\n")
			partial = lines[len(lines)-1]
			for _, l := range lines[:len(lines)-1] {
				b.p.Log(l)
				tail = append(tail, l)
				if len(tail) > 25 {
					tail = tail[1:]
				}
			}
		}
		res, err := run(ctx, b.c, name, []string{"cat", "/run/cloud-init/result.json"}, nil)
		if err != nil {
			return nil, err
		}
		if res.Code == 0 {
			var result struct {
				V1 struct {
					Errors []string `json:"errors"`
				} `json:"v1"`
			}
			if err := json.Unmarshal([]byte(res.Stdout), &result); err != nil {
				return nil, b.fail(fmt.Errorf("cloud-init result.json: %w", err), "")
			}
			if len(result.V1.Errors) > 0 {
				return nil, b.fail(errors.New("cloud-init reported errors"), b.cloudInitDetails(ctx, name, result.V1.Errors, tail))
			}
			break
		}
		if time.Now().After(deadline) {
			return nil, b.fail(fmt.Errorf("cloud-init did not finish within %s (raise it with --timeout)", b.o.Timeout), "last lines of /var/log/cloud-init-output.log:\n"+strings.Join(tail, "\n"))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}

	b.enter("selftest")
	r, err := run(ctx, b.c, name, []string{"/usr/local/sbin/vibe-selftest"}, nil)
	if err != nil {
		return nil, err
	}
	for _, l := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		b.p.Log(l)
	}
	if r.Code != 0 {
		return nil, b.fail(fmt.Errorf("the guest self-test failed (exit %d)", r.Code), r.Stdout+r.Stderr)
	}
	return b.versions(ctx, name)
}

// cloudInitDetails names the failing modules and shows the log's tail.
func (b *baker) cloudInitDetails(ctx context.Context, name string, errs []string, tail []string) string {
	var d strings.Builder
	// The provisioning driver names the step that failed; its own error
	// line ("vibe: error: …") says why.
	for i, l := range tail {
		if step, ok := strings.CutPrefix(strings.TrimSpace(l), "vibe: step "); ok && strings.HasSuffix(step, "FAILED; provisioning stopped") {
			fmt.Fprintf(&d, "failing step: %s\n", strings.TrimSuffix(step, ": FAILED; provisioning stopped"))
			for j := i - 1; j >= 0 && j >= i-5; j-- {
				if strings.HasPrefix(strings.TrimSpace(tail[j]), "vibe: error:") {
					fmt.Fprintf(&d, "  %s\n", strings.TrimSpace(tail[j]))
					break
				}
			}
		}
	}
	d.WriteString("cloud-init errors:\n")
	for _, e := range errs {
		fmt.Fprintf(&d, "  %s\n", e)
	}
	if st, err := run(ctx, b.c, name, []string{"cat", "/run/cloud-init/status.json"}, nil); err == nil && st.Code == 0 {
		var status struct {
			V1 map[string]json.RawMessage `json:"v1"`
		}
		if json.Unmarshal([]byte(st.Stdout), &status) == nil {
			var stages []string
			for k := range status.V1 {
				stages = append(stages, k)
			}
			sort.Strings(stages)
			for _, stage := range stages {
				var s struct {
					Errors []string `json:"errors"`
				}
				if json.Unmarshal(status.V1[stage], &s) == nil && len(s.Errors) > 0 {
					fmt.Fprintf(&d, "failing stage %s: %s\n", stage, strings.Join(s.Errors, "; "))
				}
			}
		}
	}
	d.WriteString("last lines of /var/log/cloud-init-output.log:\n")
	for _, l := range tail {
		fmt.Fprintf(&d, "  %s\n", l)
	}
	return d.String()
}

// versions reads what the provisioning steps recorded, plus key packages.
func (b *baker) versions(ctx context.Context, name string) (map[string]string, error) {
	v := map[string]string{}
	r, err := run(ctx, b.c, name, []string{"sh", "-c", `for f in /etc/vibe/versions/*; do [ -f "$f" ] && printf '%s\t%s\n' "$(basename "$f")" "$(head -n 1 "$f")"; done; dpkg-query -W -f '${Package}\t${Version}\n' cloud-init nftables tinyproxy curl git 2>/dev/null; true`}, nil)
	if err != nil {
		return nil, err
	}
	for _, line := range strings.Split(r.Stdout, "\n") {
		if k, val, ok := strings.Cut(line, "\t"); ok && k != "" {
			if _, seen := v[k]; !seen {
				v[k] = val
			}
		}
	}
	return v, nil
}

func (b *baker) stop(ctx context.Context, name string) error {
	op, err := b.c.UpdateInstanceState(name, api.InstanceStatePut{Action: "stop", Timeout: 120}, "")
	if err == nil {
		err = waitOp(ctx, op, "stop builder")
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		op, ferr := b.c.UpdateInstanceState(name, api.InstanceStatePut{Action: "stop", Force: true, Timeout: -1}, "")
		if ferr != nil {
			return fmt.Errorf("stop builder: %w", err)
		}
		return waitOp(ctx, op, "force-stop builder")
	}
	return nil
}

// publish turns the stopped builder into an intermediate image (no
// compression: gzip would take minutes and is undone right away).
func (b *baker) publish(ctx context.Context, name string) (string, error) {
	op, err := b.c.CreateImage(api.ImagesPost{
		ImagePut:             api.ImagePut{Properties: map[string]string{PropIntermediate: name}},
		Source:               &api.ImagesPostSource{Type: "instance", Name: name},
		CompressionAlgorithm: "none",
	}, nil)
	if err != nil {
		return "", fmt.Errorf("publish builder: %w", err)
	}
	_, _ = op.AddHandler(func(o api.Operation) {
		if s, ok := o.Metadata["create_image_from_container_pack_progress"].(string); ok {
			b.p.Status("publishing: " + s)
		}
	})
	if err := waitOp(ctx, op, "publish builder"); err != nil {
		// The operation may still finish on the server: remove what it made.
		b.cleanups = append(b.cleanups, func() {
			_ = op.Wait()
			if fp, ok := op.Get().Metadata["fingerprint"].(string); ok {
				_ = deleteImage(b.c, fp)
			}
		})
		return "", err
	}
	fp, ok := op.Get().Metadata["fingerprint"].(string)
	if !ok {
		return "", errors.New("publish builder: the server returned no fingerprint")
	}
	b.cleanups = append(b.cleanups, func() { _ = deleteImage(b.c, fp) })
	return fp, nil
}

// export downloads the intermediate image into dir and splits it into its
// metadata files and a rootfs file, streaming and hashing as it goes.
func (b *baker) export(ctx context.Context, fp, dir, instanceType string) (map[string][]byte, FileDigest, error) {
	unifiedPath := filepath.Join(dir, "published.tar")
	rootfsPath := filepath.Join(dir, "published-rootfs")
	metaOut, err := os.Create(unifiedPath)
	if err != nil {
		return nil, FileDigest{}, diskHint(err, dir)
	}
	defer os.Remove(unifiedPath)
	defer metaOut.Close()
	rootOut, err := os.Create(rootfsPath)
	if err != nil {
		return nil, FileDigest{}, diskHint(err, dir)
	}
	defer os.Remove(rootfsPath)
	defer rootOut.Close()
	resp, err := b.c.GetImageFile(fp, incus.ImageFileRequest{
		MetaFile:   metaOut,
		RootfsFile: rootOut,
		ProgressHandler: func(p ioprogress.ProgressData) {
			b.p.Status("exporting: " + p.Text)
		},
	})
	if err != nil {
		return nil, FileDigest{}, diskHint(fmt.Errorf("export %s: %w", short(fp), err), dir)
	}
	if ctx.Err() != nil {
		return nil, FileDigest{}, ctx.Err()
	}
	out, err := os.Create(filepath.Join(dir, RootfsFile(instanceType)))
	if err != nil {
		return nil, FileDigest{}, diskHint(err, dir)
	}
	defer out.Close()
	var meta map[string][]byte
	var digest FileDigest
	if resp.RootfsSize == 0 {
		if _, err := metaOut.Seek(0, io.SeekStart); err != nil {
			return nil, FileDigest{}, err
		}
		meta, digest, err = Split(metaOut, out)
	} else {
		// The server made a split image already: keep its rootfs as is.
		if _, err := metaOut.Seek(0, io.SeekStart); err != nil {
			return nil, FileDigest{}, err
		}
		meta, err = ReadMetaTarball(metaOut)
		if err == nil {
			_, _ = rootOut.Seek(0, io.SeekStart)
			hw := newHashingWriter(out)
			_, err = io.Copy(hw, rootOut)
			digest = FileDigest{SHA256: hw.sum(), Size: hw.size}
		}
	}
	if err != nil {
		return nil, FileDigest{}, diskHint(err, dir)
	}
	if err := out.Close(); err != nil {
		return nil, FileDigest{}, diskHint(err, dir)
	}
	digest.Name = RootfsFile(instanceType)
	return meta, digest, nil
}

// pack writes meta.tar.xz, manifest.json and user-data into dir and returns
// the fingerprint and the image's total size.
func (b *baker) pack(dir string, published map[string][]byte, rootfs FileDigest, recipe cloudinit.Recipe, base *Base, versions map[string]string) (string, int64, error) {
	cfg := b.o.Config
	var md api.ImageMetadata
	if err := yaml.Unmarshal(published["metadata.yaml"], &md); err != nil {
		return "", 0, fmt.Errorf("published metadata.yaml: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	arch := firstNonEmpty(md.Architecture, base.Architecture)
	udSum := sha256.Sum256(b.o.UserData)
	m := &Manifest{
		Format:         ManifestFormat,
		VibeBuild:      b.o.Version,
		Recipe:         recipe.Hash(),
		UserDataSHA256: hex.EncodeToString(udSum[:]),
		Base:           BaseImage{Source: base.Source, Fingerprint: base.Fingerprint},
		InstanceType:   cfg.Instance.Type,
		Architecture:   arch,
		Config:         cfg,
		Versions:       versions,
		Rootfs:         rootfs,
		Created:        now,
	}
	manifest, err := m.Marshal()
	if err != nil {
		return "", 0, err
	}
	md.Architecture = arch
	md.CreationDate = now.Unix()
	md.ExpiryDate = 0
	md.Properties = ImageProperties(m, base)
	metaYAML, err := yaml.Marshal(&md)
	if err != nil {
		return "", 0, fmt.Errorf("metadata.yaml: %w", err)
	}
	entries := []MetaEntry{
		{Name: "metadata.yaml", Data: metaYAML},
		{Name: "vibe/manifest.json", Data: manifest},
		{Name: "vibe/user-data", Data: b.o.UserData},
	}
	for n, data := range published {
		if strings.HasPrefix(n, "templates/") {
			entries = append(entries, MetaEntry{Name: n, Data: data})
		}
	}
	metaPath := filepath.Join(dir, MetaFile)
	f, err := os.Create(metaPath)
	if err != nil {
		return "", 0, diskHint(err, dir)
	}
	if err := WriteMetaTarball(f, entries); err != nil {
		f.Close()
		return "", 0, diskHint(err, dir)
	}
	if err := f.Close(); err != nil {
		return "", 0, diskHint(err, dir)
	}
	for file, data := range map[string][]byte{ManifestFile: manifest, UserDataFile: b.o.UserData} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			return "", 0, diskHint(err, dir)
		}
	}
	fp, err := Fingerprint(metaPath, filepath.Join(dir, rootfs.Name))
	if err != nil {
		return "", 0, err
	}
	st, err := os.Stat(metaPath)
	if err != nil {
		return "", 0, err
	}
	return fp, st.Size() + rootfs.Size, nil
}

// ImageProperties are the metadata.yaml properties of a baked image.
func ImageProperties(m *Manifest, base *Base) map[string]string {
	desc := fmt.Sprintf("vibe sandbox (%s, recipe %s)", m.InstanceType, short(m.Recipe))
	props := map[string]string{
		"description":  desc,
		"os":           firstNonEmpty(base.Properties["os"], "linux"),
		"release":      base.Properties["release"],
		"variant":      "vibe",
		"architecture": m.Architecture,
		PropRecipe:     m.Recipe,
		PropBase:       m.Base.Source,
		PropBaseFP:     m.Base.Fingerprint,
		PropType:       m.InstanceType,
		PropUserData:   m.UserDataSHA256,
		PropFormat:     strconv.Itoa(ManifestFormat),
	}
	for k, v := range props {
		if v == "" {
			delete(props, k)
		}
	}
	return props
}

// Import uploads the split image in dir (meta.tar.xz and the rootfs) and
// checks that incus computed fingerprint fp. An image already present under
// that fingerprint is not an error.
func Import(ctx context.Context, c incus.InstanceServer, dir, fp, instanceType string, p Progress) error {
	if p == nil {
		p = nopProgress{}
	}
	if _, _, err := c.GetImage(fp); err == nil {
		return nil
	}
	meta, err := os.Open(filepath.Join(dir, MetaFile))
	if err != nil {
		return err
	}
	defer meta.Close()
	rootfs, err := os.Open(filepath.Join(dir, RootfsFile(instanceType)))
	if err != nil {
		return err
	}
	defer rootfs.Close()
	op, err := c.CreateImage(api.ImagesPost{}, &incus.ImageCreateArgs{
		MetaFile: meta, MetaName: "meta-" + fp + ".tar.xz",
		RootfsFile: rootfs, RootfsName: fp + filepath.Ext(RootfsFile(instanceType)),
		Type: daemon.ImageType(instanceType),
		ProgressHandler: func(pd ioprogress.ProgressData) {
			p.Status("importing: " + pd.Text)
		},
	})
	if err != nil {
		return fmt.Errorf("import image: %w", err)
	}
	if err := waitOp(ctx, op, "import image"); err != nil {
		if isExists(err) {
			return nil
		}
		return err
	}
	got, _ := op.Get().Metadata["fingerprint"].(string)
	if got != fp {
		_ = deleteImage(c, got)
		return fmt.Errorf("import image: incus computed fingerprint %s, vibe-build computed %s", got, fp)
	}
	return nil
}

// tagAlias records on the server which alias an image was baked for.
func tagAlias(c incus.InstanceServer, fp, alias string) error {
	img, etag, err := c.GetImage(fp)
	if err != nil {
		return fmt.Errorf("image %s: %w", short(fp), err)
	}
	put := img.Writable()
	if put.Properties == nil {
		put.Properties = map[string]string{}
	}
	put.Properties[PropAlias] = alias
	if err := c.UpdateImage(fp, put, etag); err != nil {
		return fmt.Errorf("image %s: set %s: %w", short(fp), PropAlias, err)
	}
	return nil
}

// diskHint adds what to do when the disk is full.
func diskHint(err error, dir string) error {
	if errors.Is(err, syscall.ENOSPC) {
		return fmt.Errorf("%w: the disk holding %s is full; free space (vibe-build gc removes old images) and bake again", err, dir)
	}
	return err
}
