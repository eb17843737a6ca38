package images

// From a stopped builder to the project's own split image: publish, export,
// package, import.

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
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
	"github.com/vibesandbox/vibe/sbom"
)

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
		return nil, FileDigest{}, diskHint(err, b.o.Store.Dir)
	}
	defer os.Remove(unifiedPath)
	defer metaOut.Close()
	rootOut, err := os.Create(rootfsPath)
	if err != nil {
		return nil, FileDigest{}, diskHint(err, b.o.Store.Dir)
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
		return nil, FileDigest{}, diskHint(fmt.Errorf("export %s: %w", short(fp), err), b.o.Store.Dir)
	}
	if ctx.Err() != nil {
		return nil, FileDigest{}, ctx.Err()
	}
	out, err := os.Create(filepath.Join(dir, RootfsFile(instanceType)))
	if err != nil {
		return nil, FileDigest{}, diskHint(err, b.o.Store.Dir)
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
		return nil, FileDigest{}, diskHint(err, b.o.Store.Dir)
	}
	if err := out.Close(); err != nil {
		return nil, FileDigest{}, diskHint(err, b.o.Store.Dir)
	}
	digest.Name = RootfsFile(instanceType)
	return meta, digest, nil
}

// pack writes meta.tar.xz, manifest.json and user-data into dir and returns
// the fingerprint and the image's total size.
func (b *baker) pack(dir string, published map[string][]byte, rootfs FileDigest, recipe cloudinit.Recipe, base *Base, versions map[string]string, pkgs []sbom.Package) (string, int64, error) {
	cfg := b.o.Config
	var md api.ImageMetadata
	if err := yaml.Unmarshal(published["metadata.yaml"], &md); err != nil {
		return "", 0, fmt.Errorf("published metadata.yaml: %w", err)
	}
	now := time.Now().UTC().Truncate(time.Second)
	arch := cmp.Or(md.Architecture, base.Architecture)
	udSum := sha256.Sum256(b.o.UserData)
	m := &Manifest{
		Format:         ManifestFormat,
		VibeBuild:      b.o.Version,
		Recipe:         recipe.Hash(),
		UserDataSHA256: hex.EncodeToString(udSum[:]),
		Base:           BaseImage{Source: base.Source, Fingerprint: base.Fingerprint},
		InstanceType:   cfg.Instance.Type,
		Architecture:   arch,
		Config:         forImage(cfg),
		Versions:       versions,
		Rootfs:         rootfs,
		Created:        now,
	}
	manifest, err := m.Marshal()
	if err != nil {
		return "", 0, err
	}
	// The SBOM sits in the metadata tarball, so the fingerprint, and
	// any signature over it, cover it.
	bom, err := sbom.Document(pkgs, sbom.Subject{
		Recipe: m.Recipe, InstanceType: m.InstanceType, Base: m.Base.Source,
		OS: base.Properties["os"], Release: base.Properties["release"],
		Created: now, Tool: "vibe-build " + b.o.Version,
	})
	if err != nil {
		return "", 0, err
	}
	md.Architecture = arch
	md.CreationDate = now.Unix()
	md.ExpiryDate = 0
	md.Properties = ImageProperties(m, base)
	templates := sandboxTemplates(&md, published)
	metaYAML, err := yaml.Marshal(&md)
	if err != nil {
		return "", 0, fmt.Errorf("metadata.yaml: %w", err)
	}
	entries := []MetaEntry{
		{Name: "metadata.yaml", Data: metaYAML},
		{Name: "vibe/manifest.json", Data: manifest},
		{Name: "vibe/user-data", Data: b.o.UserData},
		{Name: SBOMEntry, Data: bom},
	}
	entries = append(entries, templates...)
	metaPath := filepath.Join(dir, MetaFile)
	f, err := os.Create(metaPath)
	if err != nil {
		return "", 0, diskHint(err, b.o.Store.Dir)
	}
	if err := WriteMetaTarball(f, entries); err != nil {
		f.Close()
		return "", 0, diskHint(err, b.o.Store.Dir)
	}
	if err := f.Close(); err != nil {
		return "", 0, diskHint(err, b.o.Store.Dir)
	}
	for file, data := range map[string][]byte{ManifestFile: manifest, UserDataFile: b.o.UserData} {
		if err := os.WriteFile(filepath.Join(dir, file), data, 0o644); err != nil {
			return "", 0, diskHint(err, b.o.Store.Dir)
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
		"os":           cmp.Or(base.Properties["os"], "linux"),
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
	// What the base requires of an instance (secure boot off, the agent
	// from a CD-ROM) holds for the image made from it.
	for k, v := range base.Properties {
		if strings.HasPrefix(k, "requirements.") {
			props[k] = v
		}
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

// seedDir is where incus writes cloud-init's NoCloud seed.
const seedDir = "/var/lib/cloud/seed/"

// sandboxTemplates drops the NoCloud seed from md's templates and returns
// the template files of those left (the base's hostname and hosts). A
// sandbox runs no cloud-init, and on a VM incus-agent writes a changed
// seed at first boot and reboots the guest: every launch would boot twice.
func sandboxTemplates(md *api.ImageMetadata, files map[string][]byte) []MetaEntry {
	used := map[string]bool{}
	for target, t := range md.Templates {
		if strings.HasPrefix(target, seedDir) {
			delete(md.Templates, target)
			continue
		}
		used["templates/"+t.Template] = true
	}
	var out []MetaEntry
	for _, n := range slices.Sorted(maps.Keys(files)) {
		if used[n] {
			out = append(out, MetaEntry{Name: n, Data: files[n]})
		}
	}
	return out
}

// forImage is the configuration as the image's manifest records it: what
// the image is made of, nothing of the host it was baked on (a manifest
// travels with the image, exported, published and signed). The launcher's
// folders (the host's home and its projects), the gateway and credentials
// of the host, and where each extra authority was read from (its
// certificate stays, by digest) are left out.
func forImage(c *config.Config) *config.Config {
	out := *c
	out.Sandbox = config.Sandbox{}
	out.Egress.Gateway = config.Gateway{}
	out.Egress.Credentials = nil
	out.TLS.CA, out.TLS.Certs = nil, nil
	for _, p := range c.TLS.CA {
		out.TLS.CA = append(out.TLS.CA, filepath.Base(p))
	}
	for _, cert := range c.TLS.Certs {
		cert.File = filepath.Base(cert.File)
		out.TLS.Certs = append(out.TLS.Certs, cert)
	}
	return &out
}
