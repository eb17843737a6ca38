package distro

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/internal/atomicfile"
	"github.com/vibesandbox/vibe/provision"
)

//go:embed templates/*.tpl
var templates embed.FS

// Progress is what a build reports: images.Progress.
type Progress = images.Progress

// Options are a build's spec and where it goes.
type Options struct {
	Spec     Spec
	Alias    string // the local alias the image gets
	CacheDir string // where built trees are kept by key
	Force    bool   // build the tree again even when cached
	// MaxAge: a cached tree older than this is built again, so that the
	// base carries the archive's security updates (0: no limit).
	MaxAge   time.Duration
	Progress Progress
}

// Result is what a build made.
type Result struct {
	Alias        string   `json:"alias"`
	Fingerprint  string   `json:"fingerprint"`
	Distribution string   `json:"distribution"`
	Release      string   `json:"release"`
	Mirror       string   `json:"mirror"`
	Packages     []string `json:"packages"`
	Key          string   `json:"key"`
	Cached       bool     `json:"cached"` // the tree was built before
	Seconds      float64  `json:"seconds"`
}

// Build makes the spec's tree (or takes it from the cache), wraps it with
// the NoCloud seed templates into a split image, imports it and points the
// alias at it.
func Build(ctx context.Context, c incus.InstanceServer, o Options) (*Result, error) {
	start := time.Now()
	p := o.Progress
	if p == nil {
		p = quiet{}
	}
	key := o.Spec.Key()
	res := &Result{
		Alias: o.Alias, Distribution: o.Spec.Distribution, Release: o.Spec.Release,
		Mirror: o.Spec.Mirror, Packages: o.Spec.Packages, Key: key[:16],
	}
	dir := filepath.Join(o.CacheDir, key[:16])
	rootfs := filepath.Join(dir, images.RootfsFile("container"))
	fresh, age := cached(rootfs, o.MaxAge, time.Now())
	if age > 0 && !fresh && !o.Force {
		p.Phase(fmt.Sprintf("the cached tree is %d days old: building it again for the archive's updates", int(age.Hours()/24)))
	}
	if fresh && !o.Force {
		res.Cached = true
	} else {
		p.Phase("mmdebstrap " + o.Spec.Release + " from " + o.Spec.Mirror)
		if err := buildTree(ctx, o.Spec, dir, rootfs, p); err != nil {
			return nil, err
		}
	}
	p.Phase("import")
	st, err := os.Stat(rootfs)
	if err != nil {
		return nil, err
	}
	meta, err := Metadata(o.Spec, st.ModTime())
	if err != nil {
		return nil, err
	}
	if err := atomicfile.Write(filepath.Join(dir, images.MetaFile), meta, 0o644); err != nil {
		return nil, err
	}
	fp, err := images.Fingerprint(filepath.Join(dir, images.MetaFile), rootfs)
	if err != nil {
		return nil, err
	}
	if err := images.Import(ctx, c, dir, fp, "container", p); err != nil {
		return nil, err
	}
	desc := fmt.Sprintf("%s %s base built by vibe-build from %s", o.Spec.Distribution, o.Spec.Release, o.Spec.Mirror)
	if err := images.SetAlias(c, o.Alias, fp, desc); err != nil {
		return nil, err
	}
	res.Fingerprint = fp
	res.Seconds = time.Since(start).Seconds()
	return res, nil
}

// cached reports whether a usable tree is at rootfs, no older than maxAge
// (0: any age), and how old a tree found there is.
func cached(rootfs string, maxAge time.Duration, now time.Time) (bool, time.Duration) {
	st, err := os.Stat(rootfs)
	if err != nil || st.Size() == 0 {
		return false, 0
	}
	age := now.Sub(st.ModTime())
	return maxAge == 0 || age < maxAge, age
}

// buildTree runs mmdebstrap into a temporary file beside rootfs and renames
// it into place, so an interrupted build leaves nothing that looks done.
func buildTree(ctx context.Context, s Spec, dir, rootfs string, p Progress) error {
	bin, err := exec.LookPath("mmdebstrap")
	if err != nil {
		return errors.New("mmdebstrap is not installed: apt install mmdebstrap (it builds the base from the distribution's signed packages)")
	}
	if s.Keyring != "" {
		if _, err := os.Stat(s.Keyring); err != nil {
			return fmt.Errorf("keyring %s: %w (install the distribution's keyring package, or pass --keyring)", s.Keyring, err)
		}
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, "building-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// The hook is exec'd by path: a name without shell metacharacters.
	hook := filepath.Join(tmp, HookFile)
	script, _ := provision.File(HookFile)
	if err := os.WriteFile(hook, []byte(script), 0o700); err != nil {
		return err
	}
	out := filepath.Join(tmp, "rootfs.tar")
	cmd := exec.CommandContext(ctx, bin, s.Args(out, hook)...)
	// mmdebstrap cleans up its temporary tree on TERM; KILL only if it hangs.
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	var tail bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			line := sc.Text()
			p.Log(line)
			tail.WriteString(line + "\n")
			if tail.Len() > 8<<10 {
				tail.Next(tail.Len() - 4<<10)
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	err = cmd.Run()
	pw.Close()
	<-done
	if ctx.Err() != nil {
		return fmt.Errorf("mmdebstrap interrupted: %w", ctx.Err())
	}
	if err != nil {
		return fmt.Errorf("mmdebstrap %s from %s: %w\n%s", s.Release, s.Mirror, err, strings.TrimSpace(tail.String()))
	}
	return os.Rename(out, rootfs)
}

// Metadata is the image's meta tarball: the architecture, properties that
// say what the base is and where it came from, and the NoCloud seed
// templates (incus writes cloud-init's user-data, vendor-data, meta-data and
// network config from the instance's config on create and copy).
func Metadata(s Spec, created time.Time) ([]byte, error) {
	def := map[string]string{"default": "#cloud-config\n{}\n"}
	md := api.ImageMetadata{
		Architecture: incusArch(s.Architecture),
		CreationDate: created.Unix(),
		Properties: map[string]string{
			"os": s.Distribution, "release": s.Release, "architecture": s.Architecture, "variant": "cloud",
			"description":   fmt.Sprintf("%s %s with cloud-init (vibe base)", titled(s.Distribution), s.Release),
			"vibe.base.key": s.Key(), "vibe.base.mirror": s.Mirror,
		},
		Templates: map[string]*api.ImageMetadataTemplate{
			"/var/lib/cloud/seed/nocloud-net/meta-data":      {When: []string{"create", "copy"}, Template: "cloud-init-meta.tpl"},
			"/var/lib/cloud/seed/nocloud-net/user-data":      {When: []string{"create", "copy"}, Template: "cloud-init-user.tpl", Properties: def},
			"/var/lib/cloud/seed/nocloud-net/vendor-data":    {When: []string{"create", "copy"}, Template: "cloud-init-vendor.tpl", Properties: def},
			"/var/lib/cloud/seed/nocloud-net/network-config": {When: []string{"create", "copy"}, Template: "cloud-init-network.tpl"},
			"/etc/hostname": {When: []string{"create", "copy"}, Template: "hostname.tpl"},
		},
	}
	y, err := yaml.Marshal(md)
	if err != nil {
		return nil, err
	}
	entries := []images.MetaEntry{{Name: "metadata.yaml", Data: y, Mode: 0o644}}
	tpls, _ := templates.ReadDir("templates")
	for _, e := range tpls {
		b, _ := templates.ReadFile("templates/" + e.Name())
		entries = append(entries, images.MetaEntry{Name: "templates/" + e.Name(), Data: b, Mode: 0o644})
	}
	var buf bytes.Buffer
	if err := images.WriteMetaTarball(&buf, entries); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

type quiet struct{}

func (quiet) Phase(string)  {}
func (quiet) Log(string)    {}
func (quiet) Status(string) {}

func titled(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}
