package streams

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/lxc/incus/v6/shared/osarch"
	ss "github.com/lxc/incus/v6/shared/simplestreams"

	"github.com/vibesandbox/vibe/internal/regular"
)

// Image is one split image to publish.
type Image struct {
	Fingerprint          string
	MetaPath             string // xz metadata tarball
	RootfsPath           string // rootfs.tar (container) or .qcow2 (vm)
	SigPath              string // optional armored SSH signature file, "" for none
	InstanceType         string // "container" or "vm"
	Architecture         string // e.g. x86_64
	OS, Release, Variant string
	Aliases              []string // at least one
	Created              time.Time
}

// Publish adds img to the tree in dir (created if missing). added is false
// when the tree already had it. Data files come first, images.json next,
// index.json last, each renamed into place, so a reader never sees an index
// pointing at missing files. Publishers to one dir take turns (flock).
func Publish(dir string, img Image) (added bool, err error) {
	if err := img.normalize(); err != nil {
		return false, fmt.Errorf("publish: %w", err)
	}
	for _, d := range []string{"streams/v1", "images"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return false, fmt.Errorf("publish: %w", err)
		}
	}
	// Files are written through these folders: a symlink among them would
	// send them anywhere its maker chose.
	for _, d := range []string{"", "streams", "streams/v1", "images"} {
		if st, err := os.Lstat(filepath.Join(dir, d)); err != nil || !st.IsDir() {
			return false, fmt.Errorf("publish: %s is not a folder (a symlink?); publish writes only into real folders", filepath.Join(dir, d))
		}
	}
	unlock, err := lockTree(dir, lockWait)
	if err != nil {
		return false, err
	}
	defer unlock()
	products, err := loadProducts(dir)
	if err != nil {
		return false, err
	}
	entries, err := listEntries(products)
	if err != nil {
		return false, fmt.Errorf("publish: %s holds a tree vibe cannot read (fix or remove it): %w", dir, err)
	}
	fp := img.Fingerprint
	for _, e := range entries {
		if e.Fingerprint != fp {
			continue
		}
		// Hashing gigabytes for a no-op is too slow; sizes and type catch a
		// fingerprint declared for other files.
		m, errM := os.Stat(img.MetaPath)
		r, errR := os.Stat(img.RootfsPath)
		if errors.Join(errM, errR) != nil || m.Size() != e.Meta.Size || r.Size() != e.Rootfs.Size || img.InstanceType != e.InstanceType {
			return false, fmt.Errorf("publish: the tree has %s with other files (%s %s): the declared fingerprint is wrong", fp, e.Product, e.Version)
		}
		return false, writeJSON(filepath.Join(dir, indexPath), index(products)) // repairs a crash before index.json
	}

	// Copy under temporary names, check the fingerprint, then rename.
	var written []string // removed on failure
	defer func() {
		for _, p := range written {
			if err != nil {
				os.Remove(p)
			}
		}
	}()
	items := map[string]ss.ProductVersionItem{}
	combined := sha256.New()
	renames := map[string]string{}
	add := func(ftype, src, name string, h hash.Hash) error {
		it, tmp, err := copyHashed(src, filepath.Join(dir, "images"), h)
		written = append(written, tmp, filepath.Join(dir, "images", name))
		renames[tmp] = filepath.Join(dir, "images", name)
		items[ftype] = ss.ProductVersionItem{FileType: ftype, Path: "images/" + name, HashSha256: it.SHA256, Size: it.Size}
		return err
	}
	rootType, rootName := ftypeTar, fp+".rootfs.tar"
	if img.InstanceType == "vm" {
		rootType, rootName = ftypeDisk, fp+".qcow2"
	}
	if err := add(ftypeMeta, img.MetaPath, fp+".incus.tar.xz", combined); err != nil {
		return false, err
	}
	if err := add(rootType, img.RootfsPath, rootName, combined); err != nil {
		return false, err
	}
	if got := hex.EncodeToString(combined.Sum(nil)); got != fp {
		return false, fmt.Errorf("publish: %s and %s have fingerprint %s, not the declared %s: refusing to publish", img.MetaPath, img.RootfsPath, got, fp)
	}
	if img.SigPath != "" {
		if err := add(ftypeSig, img.SigPath, fp+".sshsig", nil); err != nil {
			return false, err
		}
	}
	for tmp, p := range renames {
		if err := os.Rename(tmp, p); err != nil {
			return false, fmt.Errorf("publish: %w", err)
		}
	}
	m := items[ftypeMeta]
	if img.InstanceType == "vm" {
		m.CombinedSha256DiskKvmImg = fp
	} else {
		m.CombinedSha256RootXz, m.CombinedSha256 = fp, fp // ToAPI falls back to combined_sha256
	}
	items[ftypeMeta] = m

	name := fmt.Sprintf("vibe:%s:%s:%s", strings.Join(img.Aliases, ","), img.InstanceType, img.Architecture)
	version := img.Created.UTC().Format("200601021504") + "_" + fp[:12]
	prod := products.Products[name]
	if prod.Versions == nil {
		prod.Versions = map[string]ss.ProductVersion{}
	}
	if _, clash := prod.Versions[version]; clash {
		return false, fmt.Errorf("publish: product %s already has a version %s for another image", name, version)
	}
	newest := true
	for v := range prod.Versions {
		newest = newest && v < version
	}
	// Product fields describe all its versions: the newest one's win.
	prod.Aliases, prod.Architecture = strings.Join(img.Aliases, ","), img.Architecture
	if newest {
		prod.OperatingSystem, prod.Release, prod.ReleaseTitle, prod.Variant = img.OS, img.Release, img.Release, img.Variant
	}
	prod.Versions[version] = ss.ProductVersion{Items: items}
	products.Products[name] = prod
	if err := writeJSON(filepath.Join(dir, imagesPath), products); err != nil {
		return false, err
	}
	written = nil // images.json lists the files now: keep them whatever happens
	return true, writeJSON(filepath.Join(dir, indexPath), index(products))
}

// normalize checks img and canonicalizes fingerprint, architecture and
// aliases (sorted and unique: they name the product).
func (img *Image) normalize() error {
	img.Fingerprint = strings.ToLower(img.Fingerprint)
	id, archErr := osarch.ArchitectureID(img.Architecture)
	img.Architecture, _ = osarch.ArchitectureName(id)
	aliases := map[string]bool{}
	for _, a := range img.Aliases {
		if a == "" || strings.ContainsFunc(a, func(r rune) bool { return r == ',' || unicode.IsSpace(r) || !unicode.IsPrint(r) }) {
			return fmt.Errorf("alias %q: aliases are non-empty, without commas or spaces", a)
		}
		aliases[a] = true
	}
	img.Aliases = sortedKeys(aliases)
	magic := map[string]string{"container": "\x00ustar", "vm": "QFI\xfb"}[img.InstanceType]
	switch y := img.Created.UTC().Year(); {
	case len(img.Fingerprint) != 64 || !isHex(img.Fingerprint):
		return fmt.Errorf("fingerprint %q is not a SHA-256 in hex", img.Fingerprint)
	case magic == "":
		return fmt.Errorf("instance type %q: want container or vm", img.InstanceType)
	case archErr != nil:
		return fmt.Errorf("architecture is unknown to incus: %w", archErr)
	case y < 1970 || y > 9999:
		return errors.New("the image has no creation time")
	case img.MetaPath == "" || img.RootfsPath == "":
		return errors.New("the image needs a metadata tarball and a rootfs file")
	case len(img.Aliases) == 0:
		return errors.New("the image needs at least one alias")
	}
	// A wrong instance type would publish a tree incus cannot use.
	f, err := os.Open(img.RootfsPath)
	if err != nil {
		return err
	}
	defer f.Close()
	off := int64(0)
	if magic[0] == 0 { // a tar's magic is at offset 257
		off, magic = 257, magic[1:]
	}
	b := make([]byte, len(magic))
	if _, err := f.ReadAt(b, off); err != nil || string(b) != magic {
		return fmt.Errorf("%s is not a %s rootfs", img.RootfsPath, img.InstanceType)
	}
	return nil
}

// copyHashed copies src into a new temporary file in dir, hashing it (and
// feeding extra, when not nil) as it goes.
func copyHashed(src, dir string, extra hash.Hash) (Item, string, error) {
	in, err := os.Open(src)
	if err != nil {
		return Item{}, "", fmt.Errorf("publish: %w", err)
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".publish-*")
	if err != nil {
		return Item{}, "", fmt.Errorf("publish: %w", err)
	}
	defer out.Close()
	h := sha256.New()
	w := io.MultiWriter(out, h)
	if extra != nil {
		w = io.MultiWriter(out, h, extra)
	}
	n, err := io.Copy(w, in)
	if err == nil && n == 0 {
		err = errors.New("the file is empty")
	}
	if err == nil {
		err = errors.Join(out.Chmod(0o644), out.Sync(), out.Close()) // 0644: web servers serve it as is
	}
	if err != nil {
		return Item{}, out.Name(), fmt.Errorf("publish: copy %s: %w", src, err)
	}
	return Item{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}, out.Name(), nil
}

// loadProducts reads dir's images.json, or starts an empty one.
func loadProducts(dir string) (*ss.Products, error) {
	p := &ss.Products{ContentID: "images", DataType: "image-downloads", Format: "products:1.0"}
	file := filepath.Join(dir, imagesPath)
	body, err := readIndex(file)
	if err == nil {
		err = json.Unmarshal(body, p)
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("publish: %s: %w (fix or remove it)", file, err)
	}
	if p.Products == nil {
		p.Products = map[string]ss.Product{}
	}
	return p, nil
}

// readIndex reads a regular file of at most maxIndex bytes, without
// waiting on a FIFO or following a link to a device.
func readIndex(file string) ([]byte, error) { return regular.Read(file, 0, maxIndex) }

// index is the index.json listing the products, as incus-simplestreams
// writes it.
func index(p *ss.Products) *ss.Stream {
	return &ss.Stream{Format: "index:1.0", Index: map[string]ss.StreamIndex{
		"images": {DataType: "image-downloads", Path: imagesPath, Format: "products:1.0", Products: sortedKeys(p.Products)},
	}}
}

// writeJSON writes v as indented JSON (map keys sorted: deterministic) with
// a final newline, through a temporary file and a rename. An unchanged file
// is left alone.
func writeJSON(p string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	b = append(b, '\n')
	if old, _ := readIndex(p); err == nil && bytes.Equal(old, b) {
		return nil
	}
	var f *os.File
	if err == nil {
		f, err = os.CreateTemp(filepath.Dir(p), ".publish-*")
	}
	if err == nil {
		defer os.Remove(f.Name())
		_, err = f.Write(b)
		if err = errors.Join(err, f.Chmod(0o644), f.Sync(), f.Close()); err == nil {
			err = os.Rename(f.Name(), p)
		}
	}
	if err != nil {
		return fmt.Errorf("publish: write %s: %w", p, err)
	}
	return nil
}

// lockWait bounds how long publish waits for another publisher.
var lockWait = 2 * time.Minute

// lockTree takes an exclusive flock on the tree's own lock file, so that
// concurrent publishers do not lose each other's images.json update. The
// file is the publisher's, mode 0600: a user who can only read the tree
// cannot open it, so cannot hold the lock. It waits at most wait.
func lockTree(dir string, wait time.Duration) (func(), error) {
	p := filepath.Join(dir, ".vibe-publish.lock")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("publish: lock %s: %w", p, err)
	}
	deadline := time.Now().Add(wait)
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			if errors.Is(err, syscall.EWOULDBLOCK) {
				return nil, fmt.Errorf("publish: another publish holds %s and did not finish within %s; try again when it has", p, wait)
			}
			return nil, fmt.Errorf("publish: lock %s: %w", p, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
