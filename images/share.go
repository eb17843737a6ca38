package images

// Sharing images between machines: export to a folder, import from one,
// and fetch a daemon's copy into the store.

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	incus "github.com/lxc/incus/v6/client"

	"github.com/vibesandbox/vibe/internal/atomicfile"
	"github.com/vibesandbox/vibe/signing"
)

// Export copies the verified image in src to dir under fingerprint names:
// meta-FP.tar.xz, rootfs-FP.tar|qcow2, manifest-FP.json, user-data-FP and,
// when sig is not nil (or src carries one), signature-FP.sshsig. Every file is
// written under a temporary name and renamed, so that dir never holds a
// partial file under a final name. It returns the paths written.
func Export(src *Files, v *Verified, dir string, sig []byte) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("export: %w", err)
	}
	fp, typ := v.Fingerprint, v.Contents.Manifest.InstanceType
	var written []string
	put := func(name string, write func(io.Writer) error) error {
		dst := filepath.Join(dir, name)
		tmp, err := os.CreateTemp(dir, ".export-*")
		if err != nil {
			return fmt.Errorf("export: %w", err)
		}
		defer os.Remove(tmp.Name())
		if err := write(tmp); err != nil {
			tmp.Close()
			return fmt.Errorf("export %s: %w", name, diskHint(err, dir))
		}
		if err := tmp.Chmod(0o644); err != nil {
			tmp.Close()
			return fmt.Errorf("export %s: %w", name, err)
		}
		if err := tmp.Close(); err != nil {
			return fmt.Errorf("export %s: %w", name, diskHint(err, dir))
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			return fmt.Errorf("export %s: %w", name, err)
		}
		written = append(written, dst)
		return nil
	}
	copyFrom := func(path string) func(io.Writer) error {
		return func(w io.Writer) error {
			f, err := os.Open(path)
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = io.Copy(w, f)
			return err
		}
	}
	bytesOf := func(b []byte) func(io.Writer) error {
		return func(w io.Writer) error { _, err := w.Write(b); return err }
	}
	type file struct {
		name  string
		write func(io.Writer) error
	}
	steps := []file{
		{exportMeta(fp), copyFrom(src.Meta)},
		{exportRootfs(fp, typ), copyFrom(src.Rootfs)},
		{exportManifest(fp), bytesOf(v.Contents.ManifestRaw)},
		{exportUserData(fp), bytesOf(v.Contents.UserData)},
	}
	switch {
	case sig != nil:
		steps = append(steps, file{exportSig(fp), bytesOf(sig)})
	case src.Sig != "":
		steps = append(steps, file{exportSig(fp), copyFrom(src.Sig)})
	}
	for _, s := range steps {
		if err := put(s.name, s.write); err != nil {
			return written, err
		}
	}
	return written, nil
}

// Sign signs the verified image with the SSH key at keyPath.
func Sign(v *Verified, keyPath, name string) ([]byte, error) {
	if err := signing.ValidName(name); err != nil {
		return nil, err
	}
	c := signing.Claim{Name: name, SignedAt: time.Now().UTC().Truncate(time.Second)}
	sig, err := signing.Sign(keyPath, signing.MessageV2(v.Fingerprint, v.Contents.ManifestRaw, c))
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", short(v.Fingerprint), err)
	}
	return signing.Envelope(c, sig), nil
}

// ImportOptions steer an import.
type ImportOptions struct {
	Alias    string                  // point this alias at the image ("" for none)
	Trust    *signing.AllowedSigners // require a signature by one of these keys
	Progress Progress
	// With Trust: Names, if set, are the names the image is offered as (a
	// tree's aliases), and the signature must be for one of them;
	// NotBefore refuses a signature older than it; and an image signed
	// before the one last accepted under its name is refused unless
	// AllowOlder (no silent rollback).
	Names      []string
	NotBefore  time.Time
	AllowOlder bool
	// Source, when set, keeps a rollback record of its own beside the
	// signed name's (a tree whose only image is taken, whatever its
	// signed name): an image signed before the last one from it is
	// refused too.
	Source string
	// Staged says f lies in this store stage already, under the store's
	// names (a download): it is committed instead of copied.
	Staged *Stage
}

// Imported is what an import did.
type Imported struct {
	*Verified
	Added bool // false when the daemon and the store had the image already
}

// ImportFiles verifies the image in f and only then imports it into the
// daemon and the store (an image already present is not an error). The
// copy into the store is hashed again as it is made, so a file changed
// after verification is caught too.
func ImportFiles(ctx context.Context, c incus.InstanceServer, store *Store, f *Files, o ImportOptions) (*Imported, error) {
	if o.Progress == nil {
		o.Progress = nopProgress{}
	}
	o.Progress.Phase("verify")
	v, err := VerifyContext(ctx, f, o.Trust)
	if err != nil {
		return nil, err
	}
	if o.Trust != nil {
		if err := CheckClaim(v.Claim, o.Names); err != nil {
			return nil, err
		}
		if err := store.checkRollback(v, o.Source, o.NotBefore, o.AllowOlder); err != nil {
			return nil, err
		}
	}
	fp := v.Fingerprint
	typ := v.Contents.Manifest.InstanceType
	_, _, getErr := c.GetImage(fp)
	inDaemon := getErr == nil
	res := &Imported{Verified: v}
	if !inDaemon || !store.Has(fp) {
		res.Added = true
		st := o.Staged
		if st == nil {
			if st, err = store.Begin(); err != nil {
				return nil, err
			}
			o.Progress.Phase("copy")
			if err := copyVerified(ctx, st.Dir, f, v); err != nil {
				st.Discard()
				return nil, err
			}
		} else if err := writeCopies(st.Dir, v); err != nil {
			return nil, err
		}
		defer st.Discard()
		if !inDaemon {
			o.Progress.Phase("import")
			if err := Import(ctx, c, st.Dir, fp, typ, o.Progress); err != nil {
				return nil, err
			}
		}
		origin := Origin{How: "imported", Trusted: v.Trusted}
		if v.Signer != nil {
			origin.Signer = v.Signer.Principal + " " + v.Signer.Fingerprint
		}
		if err := writeOrigin(st.Dir, origin); err != nil {
			return nil, diskHint(err, st.Dir)
		}
		if err := st.Commit(fp); err != nil {
			return nil, err
		}
	}
	if o.Trust != nil {
		if err := store.accept(v, o.Source); err != nil {
			return nil, err
		}
	}
	if o.Alias != "" {
		if err := tagAlias(c, fp, o.Alias); err != nil {
			return nil, err
		}
		if err := SetAlias(c, o.Alias, fp, "vibe sandbox image"); err != nil {
			return nil, err
		}
	}
	return res, nil
}

// copyVerified copies f into a store folder under the store's names and
// checks that the copy still hashes to the verified fingerprint.
func copyVerified(ctx context.Context, dir string, f *Files, v *Verified) error {
	h := sha256.New()
	m := v.Contents.Manifest
	for _, c := range []struct {
		src, dst string
		size     int64
	}{{f.Meta, MetaFile, v.Size - m.Rootfs.Size}, {f.Rootfs, RootfsFile(m.InstanceType), m.Rootfs.Size}} {
		if err := copyHashing(ctx, c.src, filepath.Join(dir, c.dst), h, c.size); err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return diskHint(fmt.Errorf("copy into the store: %w", err), dir)
		}
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != v.Fingerprint {
		return failed(Tampered, "the image files changed while being imported (now %s, verified %s)", short(got), short(v.Fingerprint))
	}
	if v.Signature != nil && v.Signer != nil {
		if err := os.WriteFile(filepath.Join(dir, SigFile), v.Signature, 0o644); err != nil {
			return diskHint(err, dir)
		}
	}
	return writeCopies(dir, v)
}

// writeCopies writes the plain manifest and user-data of a store folder.
func writeCopies(dir string, v *Verified) error {
	for name, data := range map[string][]byte{ManifestFile: v.Contents.ManifestRaw, UserDataFile: v.Contents.UserData} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			return diskHint(err, dir)
		}
	}
	return nil
}

// copyHashing copies the regular file src to dst through h, at most size
// bytes (the size verified: a file that grew since is cut, and the
// fingerprint check after the copy catches it), stopping when ctx is done.
func copyHashing(ctx context.Context, src, dst string, h io.Writer, size int64) error {
	in, err := openRegular(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(io.MultiWriter(out, h), ctxReader{ctx, io.LimitReader(in, size)}); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// FetchFromDaemon copies the daemon's image fp into the store (for images
// the store lost or never had) and verifies it there.
func FetchFromDaemon(c incus.InstanceServer, store *Store, fp string) (*Files, error) {
	if store.Has(fp) {
		return locateStored(store.Path(fp))
	}
	img, _, err := c.GetImage(fp)
	if err != nil {
		return nil, fmt.Errorf("image %s: %w", short(fp), err)
	}
	if img.Properties[PropRecipe] == "" {
		return nil, fmt.Errorf("image %s: %w (no %s property)", short(fp), ErrNotVibe, PropRecipe)
	}
	st, err := store.Begin()
	if err != nil {
		return nil, err
	}
	defer st.Discard()
	meta, err := os.Create(filepath.Join(st.Dir, MetaFile))
	if err != nil {
		return nil, diskHint(err, store.Dir)
	}
	defer meta.Close()
	typ := img.Properties[PropType]
	rootfs, err := os.Create(filepath.Join(st.Dir, RootfsFile(typ)))
	if err != nil {
		return nil, diskHint(err, store.Dir)
	}
	defer rootfs.Close()
	resp, err := c.GetImageFile(fp, incus.ImageFileRequest{MetaFile: meta, RootfsFile: rootfs})
	if err != nil {
		return nil, diskHint(fmt.Errorf("export %s from incus: %w", short(fp), err), store.Dir)
	}
	if resp.RootfsSize == 0 {
		return nil, fmt.Errorf("image %s is a unified image, not one vibe-build made", short(fp))
	}
	for _, f := range []*os.File{meta, rootfs} {
		if err := f.Close(); err != nil {
			return nil, diskHint(err, store.Dir)
		}
	}
	f := &Files{Fingerprint: fp, Meta: meta.Name(), Rootfs: rootfs.Name()}
	v, err := Verify(f, nil)
	if err != nil {
		return nil, fmt.Errorf("the daemon's copy of %s: %w", short(fp), err)
	}
	if err := writeCopies(st.Dir, v); err != nil {
		return nil, err
	}
	if err := writeOrigin(st.Dir, Origin{How: "daemon"}); err != nil {
		return nil, diskHint(err, st.Dir)
	}
	if err := st.Commit(fp); err != nil {
		return nil, err
	}
	return locateStored(store.Path(fp))
}

// CheckClaim checks that a trusted signature was made for one of names
// (any name when names is empty): an image its signer published under
// another name must not stand in for this one.
func CheckClaim(c *signing.Claim, names []string) error {
	if c == nil || len(names) == 0 || slices.Contains(names, c.Name) {
		return nil
	}
	return failed(Untrusted, "the image was signed as %q, but is offered as %s: an image signed for another name cannot stand in for this one", c.Name, strings.Join(names, ", "))
}

// Accepted is the newest trusted signature imported under each name, so
// an older one is not taken silently (rollback).
type Accepted struct {
	SignedAt    time.Time `json:"signed_at"`
	Fingerprint string    `json:"fingerprint"`
	Signer      string    `json:"signer"`
}

// AcceptedFile records Accepted by name, beside the store.
func (s *Store) AcceptedFile() string {
	return filepath.Join(filepath.Dir(s.Dir), "accepted-signatures.json")
}

func (s *Store) accepted() (map[string]Accepted, error) {
	m := map[string]Accepted{}
	b, err := os.ReadFile(s.AcceptedFile())
	if errors.Is(err, fs.ErrNotExist) {
		return m, nil
	}
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w (it records the newest signed image accepted under each name)", s.AcceptedFile(), err)
	}
	return m, nil
}

func (s *Store) checkRollback(v *Verified, source string, notBefore time.Time, allowOlder bool) error {
	c := v.Claim
	if c == nil {
		return nil
	}
	// A time ahead of the clock would stay the newest under its name, and
	// every real update after it would be refused as a rollback.
	if now := time.Now(); c.SignedAt.After(now.Add(maxClockSkew)) {
		return failed(Untrusted, "the image was signed at %s, ahead of this machine's clock (%s): refusing it, since it would stay the newest under %q and every later image would look older (the signer's clock is wrong, or this machine's is: check both, and sign it again)",
			c.SignedAt.Format(time.RFC3339), now.UTC().Format(time.RFC3339), c.Name)
	}
	if c.SignedAt.Before(notBefore) {
		return failed(Untrusted, "the image was signed at %s, before %s (--not-before)", c.SignedAt.Format(time.RFC3339), notBefore.Format(time.RFC3339))
	}
	m, err := s.accepted()
	if err != nil {
		return err
	}
	if prev, ok := m[c.Name]; ok && c.SignedAt.Before(prev.SignedAt) && prev.Fingerprint != v.Fingerprint && !allowOlder {
		return failed(Untrusted, "the image %s signed as %q at %s is older than %s, accepted under that name before (signed at %s): refusing a rollback (--allow-older takes it)",
			short(v.Fingerprint), c.Name, c.SignedAt.Format(time.RFC3339), short(prev.Fingerprint), prev.SignedAt.Format(time.RFC3339))
	}
	if prev, ok := m[source]; source != "" && ok && c.SignedAt.Before(prev.SignedAt) && prev.Fingerprint != v.Fingerprint && !allowOlder {
		return failed(Untrusted, "the image %s (signed as %q at %s) is older than %s, taken from the same %s before (signed at %s): refusing a rollback (--allow-older takes it)",
			short(v.Fingerprint), c.Name, c.SignedAt.Format(time.RFC3339), short(prev.Fingerprint), source, prev.SignedAt.Format(time.RFC3339))
	}
	return nil
}

// maxClockSkew is how far ahead of this machine's clock a signature's time
// may be.
const maxClockSkew = 10 * time.Minute

// accept records a trusted signature as the newest for its name, and for
// source when set.
func (s *Store) accept(v *Verified, source string) error {
	c := v.Claim
	if c == nil || v.Signer == nil {
		return nil
	}
	m, err := s.accepted()
	if err != nil {
		return err
	}
	rec := Accepted{SignedAt: c.SignedAt, Fingerprint: v.Fingerprint, Signer: v.Signer.Principal + " " + v.Signer.Fingerprint}
	changed := false
	for _, k := range []string{c.Name, source} {
		if prev, ok := m[k]; k != "" && (!ok || c.SignedAt.After(prev.SignedAt)) {
			m[k], changed = rec, true
		}
	}
	if !changed {
		return nil
	}
	b, _ := json.MarshalIndent(m, "", "  ")
	return atomicfile.Write(s.AcceptedFile(), append(b, '\n'), 0o600)
}
