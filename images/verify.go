package images

// Verification of an image on disk: the fingerprint, the manifest's rootfs
// and user-data digests, the plain copies beside the tarball, and an SSH
// signature checked against an allowed-signers file.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/vibesandbox/vibe/internal/regular"
	"github.com/vibesandbox/vibe/signing"
)

// Kind says how a verification failed; the CLI maps it to an exit code.
type Kind int

const (
	// Unreadable: files missing, unreadable or not an image at all.
	Unreadable Kind = iota + 1
	// Tampered: the bytes do not match what the image says about itself,
	// or a signature does not verify.
	Tampered
	// Untrusted: the bytes are intact, but a trusted signature was required
	// and there is none, or its key is not trusted.
	Untrusted
)

func (k Kind) String() string {
	switch k {
	case Unreadable:
		return "unreadable"
	case Tampered:
		return "tampered"
	case Untrusted:
		return "untrusted"
	}
	return "unknown"
}

// VerifyError is a failed verification.
type VerifyError struct {
	Kind Kind
	Err  error
}

func (e *VerifyError) Error() string { return e.Err.Error() }
func (e *VerifyError) Unwrap() error { return e.Err }

func failed(k Kind, format string, a ...any) error {
	return &VerifyError{Kind: k, Err: fmt.Errorf(format, a...)}
}

// KindOf returns the kind of a verification error, 0 for other errors.
func KindOf(err error) Kind {
	var ve *VerifyError
	if errors.As(err, &ve) {
		return ve.Kind
	}
	return 0
}

// Exported file names carry the fingerprint, so that many images can share a
// folder and a renamed file is caught.
func exportMeta(fp string) string     { return "meta-" + fp + ".tar.xz" }
func exportManifest(fp string) string { return "manifest-" + fp + ".json" }
func exportUserData(fp string) string { return "user-data-" + fp }
func exportSig(fp string) string      { return "signature-" + fp + ".sshsig" }
func exportRootfs(fp, instanceType string) string {
	return "rootfs-" + fp + filepath.Ext(RootfsFile(instanceType))
}

// exportedFingerprint is the fingerprint in an exported metadata file's
// name (meta-FP.tar.xz), or "".
func exportedFingerprint(path string) string {
	fp := strings.TrimSuffix(strings.TrimPrefix(filepath.Base(path), "meta-"), ".tar.xz")
	if !IsFingerprint(fp) {
		return ""
	}
	return fp
}

// SigFile is a store folder's signature, when the image came signed.
const SigFile = "signature.sshsig"

// Files are the paths of one image on disk. Manifest, UserData and Sig are
// optional plain copies ("" when absent).
type Files struct {
	Fingerprint string // what the names (or the store folder) claim
	Meta        string
	Rootfs      string
	Manifest    string
	UserData    string
	Sig         string
}

// Locate finds an image's files: path is a store folder (named by its
// fingerprint), an exported folder holding one image, or an exported
// metadata file meta-FP.tar.xz naming one image of a folder.
func Locate(path string) (*Files, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, failed(Unreadable, "%w", err)
	}
	dir, fp := path, ""
	if !st.IsDir() {
		dir = filepath.Dir(path)
		if fp = exportedFingerprint(path); fp == "" {
			return nil, failed(Unreadable, "%s: not an exported metadata file (meta-FINGERPRINT.tar.xz)", path)
		}
	}
	if fp == "" {
		if _, err := os.Stat(filepath.Join(dir, MetaFile)); err == nil {
			return locateStored(dir)
		}
		matches, _ := filepath.Glob(filepath.Join(dir, "meta-*.tar.xz"))
		var fps []string
		for _, m := range matches {
			if f := exportedFingerprint(m); f != "" {
				fps = append(fps, f)
			}
		}
		switch len(fps) {
		case 0:
			return nil, failed(Unreadable, "%s holds no image (no %s, no meta-FINGERPRINT.tar.xz)", dir, MetaFile)
		case 1:
			fp = fps[0]
		default:
			return nil, failed(Unreadable, "%s holds %d images; name one by its metadata file, e.g. %s", dir, len(fps), filepath.Join(dir, exportMeta(fps[0])))
		}
	}
	f := &Files{Fingerprint: fp, Meta: filepath.Join(dir, exportMeta(fp))}
	for _, t := range []string{"container", "vm"} {
		if p := filepath.Join(dir, exportRootfs(fp, t)); exists(p) {
			if f.Rootfs != "" {
				return nil, failed(Unreadable, "%s holds both a tar and a qcow2 rootfs for %s", dir, fp[:12])
			}
			f.Rootfs = p
		}
	}
	if f.Rootfs == "" {
		return nil, failed(Unreadable, "%s has no rootfs-%s.tar or .qcow2 (a truncated copy?)", dir, fp)
	}
	f.Manifest = optional(filepath.Join(dir, exportManifest(fp)))
	f.UserData = optional(filepath.Join(dir, exportUserData(fp)))
	f.Sig = optional(filepath.Join(dir, exportSig(fp)))
	return f, nil
}

func locateStored(dir string) (*Files, error) {
	fp := filepath.Base(filepath.Clean(dir))
	if !IsFingerprint(fp) {
		fp = "" // a copied store folder: only the contents can say
	}
	f := &Files{Fingerprint: fp, Meta: filepath.Join(dir, MetaFile)}
	for _, t := range []string{"container", "vm"} {
		if p := filepath.Join(dir, RootfsFile(t)); exists(p) {
			f.Rootfs = p
		}
	}
	if f.Rootfs == "" {
		return nil, failed(Unreadable, "%s has no rootfs.tar or rootfs.qcow2", dir)
	}
	f.Manifest = optional(filepath.Join(dir, ManifestFile))
	f.UserData = optional(filepath.Join(dir, UserDataFile))
	f.Sig = optional(filepath.Join(dir, SigFile))
	return f, nil
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func optional(p string) string {
	if exists(p) {
		return p
	}
	return ""
}

// Verified is what a successful verification established.
type Verified struct {
	Fingerprint string
	Contents    *Contents
	Signer      *signing.Signer // nil when unsigned
	Trusted     bool            // the signer is in the allowed-signers file
	Claim       *signing.Claim  // the name and signing time it was signed for (v2)
	Signature   []byte          // the signature's bytes as checked (nil when unsigned)
	Size        int64           // metadata plus rootfs bytes
}

// Verify checks the image in f: SHA-256(meta || rootfs) must be the
// fingerprint its names claim; the rootfs must have the manifest's size and
// digest; the user-data must have the manifest's digest; plain copies of the
// manifest and user-data must equal those inside the tarball. A signature,
// when present, must verify; with trust, one by a trusted key is required.
// The rootfs is read once, hashing both digests in parallel.
func Verify(f *Files, trust *signing.AllowedSigners) (*Verified, error) {
	return VerifyContext(context.Background(), f, trust)
}

// VerifyContext is Verify that stops, promptly, when ctx is done (Ctrl-C).
func VerifyContext(ctx context.Context, f *Files, trust *signing.AllowedSigners) (*Verified, error) {
	meta, err := readBounded(f.Meta, maxMetaFile)
	if err != nil {
		return nil, err
	}
	contents, err := ReadContents(bytes.NewReader(meta))
	if err != nil {
		if errors.Is(err, ErrNotVibe) {
			return nil, failed(Unreadable, "%s: %w", f.Meta, err)
		}
		// A tarball that does not parse was damaged: its bytes changed.
		return nil, failed(Tampered, "%s does not read as a metadata tarball (%v): the file was changed or truncated", f.Meta, err)
	}
	m := contents.Manifest
	rootfs, err := openRegular(f.Rootfs)
	if err != nil {
		return nil, err
	}
	defer rootfs.Close()
	st, err := rootfs.Stat()
	if err != nil {
		return nil, failed(Unreadable, "%w", err)
	}
	if st.Size() != m.Rootfs.Size {
		return nil, failed(Tampered, "%s is %d bytes, the manifest says %d: the file was truncated or changed", f.Rootfs, st.Size(), m.Rootfs.Size)
	}
	combined := sha256.New()
	combined.Write(meta)
	rootOnly := sha256.New()
	// Never more than the size just checked, however the file grows.
	if err := hashBoth(ctxReader{ctx, io.LimitReader(rootfs, st.Size())}, combined, rootOnly); err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, failed(Unreadable, "read %s: %w", f.Rootfs, err)
	}
	fp := hex.EncodeToString(combined.Sum(nil))
	if got := hex.EncodeToString(rootOnly.Sum(nil)); got != m.Rootfs.SHA256 {
		return nil, failed(Tampered, "%s has SHA-256 %s, the manifest says %s: the rootfs was changed", f.Rootfs, got, m.Rootfs.SHA256)
	}
	if f.Fingerprint != "" && fp != f.Fingerprint {
		return nil, failed(Tampered, "the image files hash to %s, not to the fingerprint %s in their names: the metadata tarball was changed or swapped", fp, f.Fingerprint)
	}
	if sum := sha256.Sum256(contents.UserData); hex.EncodeToString(sum[:]) != m.UserDataSHA256 {
		return nil, failed(Tampered, "%s: the user-data inside does not have the manifest's SHA-256 %s", f.Meta, m.UserDataSHA256)
	}
	if err := checkMetadata(contents); err != nil {
		return nil, failed(Tampered, "%s: %v", f.Meta, err)
	}
	for _, c := range []struct {
		path, what string
		want       []byte
	}{{f.Manifest, "manifest", contents.ManifestRaw}, {f.UserData, "user-data", contents.UserData}} {
		if c.path == "" {
			continue
		}
		got, err := readBounded(c.path, maxMetaEntry)
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(got, c.want) {
			return nil, failed(Tampered, "%s differs from the %s inside the metadata tarball: the copy was changed or swapped", c.path, c.what)
		}
	}
	v := &Verified{Fingerprint: fp, Contents: contents, Size: int64(len(meta)) + st.Size()}
	if err := v.checkSignature(f.Sig, trust); err != nil {
		return nil, err
	}
	return v, nil
}

// SigStatus is what a signature check found.
type SigStatus struct {
	Signer  *signing.Signer // nil when unsigned
	Claim   *signing.Claim  // the name and signing time a v2 signature binds; nil for v1
	Trusted bool            // the signer is in the allowed-signers file
}

// checkSignature verifies the signature file, if any, over the fingerprint
// and manifest; with trust it must be by a listed key. It keeps the bytes
// it checked: what is copied on is those bytes, never the file read again
// (which could have been swapped since).
func (v *Verified) checkSignature(path string, trust *signing.AllowedSigners) error {
	sig, err := readSignature(path)
	if err != nil {
		return err
	}
	st, err := checkSignatureBytes(v.Fingerprint, v.Contents, path, sig, trust)
	v.Signer, v.Claim, v.Trusted, v.Signature = st.Signer, st.Claim, st.Trusted, sig
	return err
}

// CheckSignature checks the signature at path ("" for none) over
// fingerprint fp and the manifest in c, without reading the image's files:
// Verify calls it after hashing them; inspect calls it alone. Without trust
// a signature need only be valid; with trust it must exist, be by a listed
// key and bind a name and a signing time (v2).
func CheckSignature(fp string, c *Contents, path string, trust *signing.AllowedSigners) (SigStatus, error) {
	sig, err := readSignature(path)
	if err != nil {
		return SigStatus{}, err
	}
	return checkSignatureBytes(fp, c, path, sig, trust)
}

// readSignature reads a signature file, bounded; "" is no signature.
func readSignature(path string) ([]byte, error) {
	if path == "" {
		return nil, nil
	}
	return readBounded(path, maxSigFile)
}

// checkSignatureBytes checks sig, read from path ("" for none).
func checkSignatureBytes(fp string, c *Contents, path string, sig []byte, trust *signing.AllowedSigners) (SigStatus, error) {
	if path == "" {
		if trust != nil {
			return SigStatus{}, failed(Untrusted, "image %s is unsigned, and a trusted signature is required (--trust): ask its baker to export or publish it with --sign", short(fp))
		}
		return SigStatus{}, nil
	}
	claim, armor, err := signing.ParseEnvelope(sig)
	if err != nil {
		return SigStatus{}, failed(Tampered, "%s: %w", path, err)
	}
	msg := signing.Message(fp, c.ManifestRaw)
	if claim != nil {
		msg = signing.MessageV2(fp, c.ManifestRaw, *claim)
	}
	if trust == nil {
		s, err := signing.Check(armor, msg)
		if err != nil {
			return SigStatus{}, failed(Tampered, "%s: %w", path, err)
		}
		return SigStatus{Signer: s, Claim: claim}, nil
	}
	s, err := trust.Verify(armor, msg, time.Now())
	switch {
	case errors.Is(err, signing.ErrUntrusted):
		return SigStatus{}, failed(Untrusted, "%s: %w", path, err)
	case err != nil:
		return SigStatus{}, failed(Tampered, "%s: %w", path, err)
	case claim == nil:
		return SigStatus{}, failed(Untrusted, "%s: a signature by %s, but an old one (v1) that binds neither the name the image is published as nor when it was signed, so it could be an old image served as a new one; ask its baker to sign it again", path, s.Principal)
	}
	return SigStatus{Signer: s, Claim: claim, Trusted: true}, nil
}

// readBounded reads a whole file that must not exceed max bytes.
func readBounded(path string, max int64) ([]byte, error) {
	f, err := openRegular(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, failed(Unreadable, "read %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, failed(Tampered, "%s is larger than any such file vibe-build writes (%d bytes)", path, max)
	}
	return b, nil
}

// hashBoth streams r into two hashes, each in its own goroutine, so that
// verifying costs one pass over the rootfs at the speed of one hash. The
// reader runs ahead by a few buffers.
func hashBoth(r io.Reader, a, b hash.Hash) error {
	type chunk struct {
		buf  []byte
		n    int
		refs atomic.Int32
	}
	const bufs, size = 4, 1 << 20
	free := make(chan *chunk, bufs)
	for range bufs {
		free <- &chunk{buf: make([]byte, size)}
	}
	ca, cb := make(chan *chunk, bufs), make(chan *chunk, bufs)
	var wg sync.WaitGroup
	for _, w := range []struct {
		h  hash.Hash
		ch chan *chunk
	}{{a, ca}, {b, cb}} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for c := range w.ch {
				w.h.Write(c.buf[:c.n])
				if c.refs.Add(-1) == 0 {
					free <- c
				}
			}
		}()
	}
	var err error
	for {
		c := <-free
		n, rerr := io.ReadFull(r, c.buf)
		if n > 0 {
			c.n = n
			c.refs.Store(2)
			ca <- c
			cb <- c
		} else {
			free <- c
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			err = rerr
			break
		}
	}
	close(ca)
	close(cb)
	wg.Wait()
	return err
}

// checkMetadata holds metadata.yaml to the manifest: incus and the build
// cache read the vibe.* properties, the type, architecture and creation
// date from metadata.yaml, which is not signed on its own, so each must be
// what the manifest says, and no vibe.* property may be one vibe does not
// write.
func checkMetadata(c *Contents) error {
	m, md := c.Manifest, c.Metadata
	want := map[string]string{
		PropRecipe: m.Recipe, PropBase: m.Base.Source, PropBaseFP: m.Base.Fingerprint,
		PropType: m.InstanceType, PropUserData: m.UserDataSHA256, PropFormat: strconv.Itoa(m.Format),
	}
	for k, v := range md.Properties {
		if !strings.HasPrefix(k, "vibe.") {
			continue
		}
		w, known := want[k]
		switch {
		case !known:
			return fmt.Errorf("metadata.yaml sets property %s, which vibe-build never writes", k)
		case v != w:
			return fmt.Errorf("metadata.yaml's %s is %q, the manifest says %q", k, v, w)
		}
	}
	for _, k := range []string{PropRecipe, PropType} {
		if md.Properties[k] != want[k] {
			return fmt.Errorf("metadata.yaml's %s is %q, the manifest says %q", k, md.Properties[k], want[k])
		}
	}
	if md.Architecture != m.Architecture {
		return fmt.Errorf("metadata.yaml's architecture is %q, the manifest says %q", md.Architecture, m.Architecture)
	}
	if md.CreationDate != m.Created.Unix() {
		return fmt.Errorf("metadata.yaml's creation date is %s, the manifest says %s", time.Unix(md.CreationDate, 0).UTC().Format(time.RFC3339), m.Created.UTC().Format(time.RFC3339))
	}
	return nil
}

// openRegular opens path for reading only if it is a regular file, as the
// open file says (a name can be swapped between a check and an open). The
// open never blocks: a FIFO is refused instead of waited on, and a symlink
// to a device such as /dev/zero is refused instead of read forever.
func openRegular(path string) (*os.File, error) {
	f, err := regular.Open(path, 0)
	if err != nil {
		return nil, failed(Unreadable, "%w", err)
	}
	return f, nil
}

// maxSigFile bounds a signature file: an SSHSIG is well under 1 KiB.
const maxSigFile = 64 << 10

// ctxReader ends a read loop promptly once its context is done.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
