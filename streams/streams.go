// Package streams publishes split images into a static simplestreams tree
// (streams/v1/index.json, streams/v1/images.json, images/...) that any HTTPS
// server can serve and incus can use as a remote, and reads such trees back:
// list, resolve an alias or fingerprint, fetch files checked as they stream.
//
// A tree is untrusted input: every path, hash and size in it is checked
// before use, and index reads are bounded.
package streams

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lxc/incus/v6/shared/osarch"
	ss "github.com/lxc/incus/v6/shared/simplestreams"
)

const (
	indexPath  = "streams/v1/index.json"
	imagesPath = "streams/v1/images.json"

	ftypeMeta = "incus.tar.xz"
	ftypeTar  = "root.tar.xz"  // incus's only tarball rootfs type; incusd sniffs compression, so a plain tar works
	ftypeDisk = "disk-kvm.img" // a VM's qcow2 disk
	ftypeSig  = "vibe.sshsig"  // incus ignores unknown types

	maxIndex   = 16 << 20 // a hostile server must not fill memory
	maxItem    = 1 << 40  // 1 TiB: a larger image is a lie
	maxMeta    = 64 << 20 // a metadata tarball vibe-build reads whole
	maxSig     = 64 << 10 // an SSH signature is well under 1 KiB
	maxEntries = 4096     // images one tree may list

)

// Entry is one image listed in a tree.
type Entry struct {
	Fingerprint      string
	InstanceType     string // "container" or "vm"
	Architecture     string
	Aliases          []string
	Created          time.Time // from the version name: minute precision, UTC
	Product, Version string
	Meta, Rootfs     Item
	Sig              *Item // nil when unsigned
}

// Item is a file of the tree: clean relative path, SHA-256, size.
type Item struct {
	Path   string
	SHA256 string
	Size   int64
}

// Tree is a simplestreams tree read from a local folder or an https URL.
type Tree struct {
	base    string       // local folder, or https URL without a trailing slash
	hc      *http.Client // nil for a local folder
	entries []Entry      // newest first
}

// Open reads index.json and images.json. base is a local folder or an
// https:// URL; hc may be nil.
func Open(ctx context.Context, base string, hc *http.Client) (*Tree, error) {
	t := &Tree{base: base}
	if scheme, _, ok := strings.Cut(base, "://"); ok {
		u, err := url.Parse(base)
		if err != nil || !strings.EqualFold(scheme, "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return nil, fmt.Errorf("image tree %s: use https (https://host/path) or a local folder", base)
		}
		t.base, t.hc = strings.TrimSuffix(base, "/"), httpsOnly(hc)
	}
	var stream ss.Stream
	if err := t.readJSON(ctx, indexPath, &stream); err != nil {
		return nil, err
	}
	all := &ss.Products{Products: map[string]ss.Product{}}
	seen := map[string]bool{}
	for _, name := range sortedKeys(stream.Index) {
		ix := stream.Index[name]
		if ix.DataType != "image-downloads" || len(ix.Products) == 0 || seen[ix.Path] {
			continue // as incus does
		}
		seen[ix.Path] = true
		var p ss.Products
		if err := t.readJSON(ctx, ix.Path, &p); err != nil {
			return nil, err
		}
		for k, v := range p.Products {
			if _, dup := all.Products[k]; dup {
				return nil, fmt.Errorf("image tree %s: product %q is listed twice", t.base, k)
			}
			all.Products[k] = v
		}
	}
	var err error
	if t.entries, err = listEntries(all); err != nil {
		return nil, fmt.Errorf("image tree %s: %w", t.base, err)
	}
	return t, nil
}

// Entries lists the tree's images, newest first.
func (t *Tree) Entries() []Entry { return slices.Clone(t.entries) }

// Find resolves an alias (the newest image carrying it), a full fingerprint
// or a unique fingerprint prefix of at least 12 characters. A name of 12 or
// more hex digits is a fingerprint only: an alias the server chose never
// stands in for the image the user pinned.
func (t *Tree) Find(name string) (*Entry, error) {
	var found []Entry
	fp := strings.ToLower(name)
	byFP := len(fp) >= 12 && strings.Trim(fp, "0123456789abcdef") == ""
	for _, e := range t.entries {
		if !byFP && slices.Contains(e.Aliases, name) {
			return &e, nil
		}
		if byFP && strings.HasPrefix(e.Fingerprint, fp) {
			found = append(found, e)
		}
	}
	if len(found) == 1 {
		return &found[0], nil
	} else if len(found) > 1 {
		return nil, fmt.Errorf("image tree %s: %q matches %d images: give more of the fingerprint", t.base, name, len(found))
	}
	var have []string
	for i, e := range t.entries {
		if i == 20 {
			have = append(have, fmt.Sprintf("and %d more", len(t.entries)-i))
			break
		}
		have = append(have, fmt.Sprintf("%s (%s %s %s)", strings.Join(e.Aliases, ","), e.InstanceType, e.Architecture, e.Fingerprint[:12]))
	}
	if len(have) == 0 {
		have = []string{"nothing"}
	}
	return nil, fmt.Errorf("image tree %s: no image %q (give an alias, a fingerprint or 12+ of its characters); it has %s",
		t.base, name, strings.Join(have, "; "))
}

// Fetch streams the item to w, checking size and SHA-256 as it goes. w
// never gets more than it.Size bytes, but on error what it got is partial
// or wrong: the caller must discard it.
func (t *Tree) Fetch(ctx context.Context, it Item, w io.Writer) error {
	if err := checkItem(it); err != nil {
		return fmt.Errorf("fetch %s: %w", it.Path, err)
	}
	r, err := t.open(ctx, it.Path, it.Size)
	if err != nil {
		return err
	}
	defer r.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(w, h), io.LimitReader(r, it.Size))
	extra, _ := io.ReadFull(r, make([]byte, 1))
	got := hex.EncodeToString(h.Sum(nil))
	switch {
	case err != nil:
		return fmt.Errorf("fetch %s from %s: %w", it.Path, t.base, err)
	case n < it.Size || extra > 0:
		return fmt.Errorf("fetch %s from %s: the file is not the %d bytes the index says: it changed after publishing", it.Path, t.base, it.Size)
	case got != it.SHA256:
		return fmt.Errorf("fetch %s from %s: SHA-256 is %s, the index says %s: the file was tampered with or changed after publishing", it.Path, t.base, got, it.SHA256)
	}
	return nil
}

// readJSON decodes a bounded index file.
func (t *Tree) readJSON(ctx context.Context, p string, v any) error {
	r, err := t.open(ctx, p, -1)
	if err != nil {
		return err
	}
	defer r.Close()
	b, err := io.ReadAll(io.LimitReader(r, maxIndex+1))
	if err == nil && len(b) > maxIndex {
		err = fmt.Errorf("larger than %d MiB: not an image tree", maxIndex>>20)
	}
	if err == nil {
		err = json.Unmarshal(b, v)
	}
	if err != nil {
		return fmt.Errorf("image tree %s: %s: %w", t.base, p, err)
	}
	return nil
}

// open opens a checked path of the tree. Local trees are read through
// os.Root, so symlinks cannot lead out. size >= 0 is checked against
// Content-Length before anything is read.
func (t *Tree) open(ctx context.Context, p string, size int64) (io.ReadCloser, error) {
	if err := checkPath(p); err != nil {
		return nil, fmt.Errorf("image tree %s: %w", t.base, err)
	}
	if t.hc == nil {
		root, err := os.OpenRoot(t.base)
		if err != nil {
			return nil, fmt.Errorf("image tree: %w", err)
		}
		defer root.Close()
		// Without waiting: an open of a FIFO waits for a writer, and no
		// context ends it.
		f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("image tree %s: %s is missing: not an image tree, or one that lost files", t.base, p)
		} else if err != nil {
			return nil, fmt.Errorf("image tree %s: %w", t.base, err)
		}
		if st, err := f.Stat(); err != nil || !st.Mode().IsRegular() {
			f.Close()
			return nil, fmt.Errorf("image tree %s: %s is not a regular file", t.base, p)
		}
		return f, nil
	}
	u := t.base + "/" + (&url.URL{Path: p}).EscapedPath()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("image tree: %w", err)
	}
	resp, err := t.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("image tree %s: %s: %w", t.base, p, err)
	}
	if resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("image tree: GET %s: %s", u, resp.Status)
	} else if size >= 0 && resp.ContentLength >= 0 && resp.ContentLength != size {
		err = fmt.Errorf("fetch %s from %s: the server sends %d bytes, the index says %d: the file changed after publishing", p, t.base, resp.ContentLength, size)
	}
	if err != nil {
		resp.Body.Close()
		return nil, err
	}
	return newStallReader(resp.Body, stallTimeout), nil
}

// stallTimeout ends a download whose server stops sending (a variable for
// the tests).
var stallTimeout = time.Minute

// stallReader closes a response body that has sent nothing for a while, so
// a server that stalls mid-file ends the download instead of holding it
// forever (the client has no overall timeout: images take long).
type stallReader struct {
	rc    io.ReadCloser
	timer *time.Timer
	after time.Duration
	fired atomic.Bool
}

func newStallReader(rc io.ReadCloser, after time.Duration) *stallReader {
	s := &stallReader{rc: rc, after: after}
	s.timer = time.AfterFunc(after, func() { s.fired.Store(true); rc.Close() })
	return s
}

func (s *stallReader) Read(p []byte) (int, error) {
	n, err := s.rc.Read(p)
	if s.fired.Load() {
		return n, fmt.Errorf("the server sent nothing for %s", s.after)
	}
	s.timer.Reset(s.after)
	return n, err
}

func (s *stallReader) Close() error {
	s.timer.Stop()
	return s.rc.Close()
}

// httpsOnly copies hc, or makes a client with connect and header timeouts
// but no overall one (images take long), and refuses redirects off https.
func httpsOnly(hc *http.Client) *http.Client {
	c := http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	c.Transport.(*http.Transport).ResponseHeaderTimeout = time.Minute
	if hc != nil {
		c = *hc
	}
	next := c.CheckRedirect
	c.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		switch {
		case req.URL.Scheme != "https":
			return fmt.Errorf("redirect to %s refused: use https", req.URL.Redacted())
		case next != nil:
			return next(req, via)
		case len(via) >= 10:
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &c
}

// listEntries turns products into checked entries, newest first. Like
// incus, it skips unknown architectures, undated versions and versions
// without a split image; what it keeps is sound or the tree is refused.
func listEntries(p *ss.Products) ([]Entry, error) {
	var out []Entry
	byFP := map[string]Entry{}
	for _, pname := range sortedKeys(p.Products) {
		prod := p.Products[pname]
		id, err := osarch.ArchitectureID(prod.Architecture)
		if err != nil {
			continue
		}
		arch, _ := osarch.ArchitectureName(id)
		var aliases []string
		for a := range strings.SplitSeq(prod.Aliases, ",") {
			if a = strings.TrimSpace(a); a != "" {
				aliases = append(aliases, a)
			}
		}
		for _, vname := range sortedKeys(prod.Versions) {
			created, ok := versionTime(vname)
			if !ok {
				continue
			}
			byType := map[string][]ss.ProductVersionItem{}
			for _, key := range sortedKeys(prod.Versions[vname].Items) {
				it := prod.Versions[vname].Items[key]
				byType[it.FileType] = append(byType[it.FileType], it)
			}
			where := fmt.Sprintf("product %q version %q", pname, vname)
			metas, sigs := byType[ftypeMeta], byType[ftypeSig]
			if len(metas) > 1 || len(sigs) > 1 {
				return nil, fmt.Errorf("%s: more than one %s or %s item", where, ftypeMeta, ftypeSig)
			} else if len(metas) == 0 {
				continue
			}
			e := Entry{Architecture: arch, Aliases: aliases, Created: created, Product: pname, Version: vname}
			var sig Item
			if e.Meta, err = toItem(metas[0]); err == nil && len(sigs) == 1 {
				sig, err = toItem(sigs[0])
				e.Sig = &sig
			}
			switch {
			case err != nil:
			case e.Meta.Size > maxMeta:
				err = fmt.Errorf("metadata item %s is %d bytes, more than any vibe image's (%d)", e.Meta.Path, e.Meta.Size, maxMeta)
			case e.Sig != nil && e.Sig.Size > maxSig:
				err = fmt.Errorf("signature item %s is %d bytes, more than any signature's (%d)", e.Sig.Path, e.Sig.Size, maxSig)
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", where, err)
			}
			for _, r := range append(byType[ftypeTar], byType[ftypeDisk]...) {
				if e.Rootfs, err = toItem(r); err != nil {
					return nil, fmt.Errorf("%s: %w", where, err)
				}
				m := metas[0]
				e.InstanceType, e.Fingerprint = "container", firstSet(m.CombinedSha256RootXz, m.CombinedSha256)
				if r.FileType == ftypeDisk {
					e.InstanceType, e.Fingerprint = "vm", m.CombinedSha256DiskKvmImg
				}
				if len(e.Fingerprint) != 64 || !isHex(e.Fingerprint) {
					return nil, fmt.Errorf("%s: fingerprint %q of %s is not a lowercase SHA-256", where, e.Fingerprint, r.Path)
				}
				if o, dup := byFP[e.Fingerprint]; dup && (o.Meta != e.Meta || o.Rootfs != e.Rootfs) {
					return nil, fmt.Errorf("fingerprint %s is listed twice with different files (%s %s and %s %s)",
						e.Fingerprint, o.Product, o.Version, pname, vname)
				} else if !dup {
					if len(out) >= maxEntries {
						return nil, fmt.Errorf("the tree lists more than %d images: not one vibe-build publishes", maxEntries)
					}
					byFP[e.Fingerprint] = e
					out = append(out, e)
				}
			}
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].Version > out[j].Version
	})
	return out, nil
}

func firstSet(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// versionTime reads the time a version name starts with: ours have
// 200601021504, incus needs 20060102.
func versionTime(name string) (time.Time, bool) {
	for _, layout := range []string{"200601021504", "20060102"} {
		if len(name) >= len(layout) {
			if t, err := time.Parse(layout, name[:len(layout)]); err == nil {
				return t, true
			}
		}
	}
	return time.Time{}, false
}

func toItem(it ss.ProductVersionItem) (Item, error) {
	i := Item{Path: it.Path, SHA256: it.HashSha256, Size: it.Size}
	if err := checkItem(i); err != nil {
		return Item{}, fmt.Errorf("item %q: %w", it.Path, err)
	}
	return i, nil
}

func checkItem(it Item) error {
	if err := checkPath(it.Path); err != nil {
		return err
	} else if len(it.SHA256) != 64 || !isHex(it.SHA256) {
		return fmt.Errorf("sha256 %q is not a lowercase SHA-256", it.SHA256)
	} else if it.Size <= 0 || it.Size > maxItem {
		return fmt.Errorf("size %d is out of range", it.Size)
	}
	return nil
}

// checkPath accepts clean relative paths of plain names only: a hostile
// index must not point outside the tree, at another host or at a query.
func checkPath(p string) error {
	bad := p == "" || len(p) > 1024 || path.Clean(p) != p || path.IsAbs(p)
	for i, el := range strings.Split(p, "/") {
		bad = bad || el == "." || el == ".." || (i == 0 && strings.Contains(el, ":")) || strings.ContainsFunc(el, func(c rune) bool {
			return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._+~:-", c))
		})
	}
	if bad {
		return fmt.Errorf("path %q is not a clean relative path inside the tree", p)
	}
	return nil
}

func isHex(s string) bool {
	return s != "" && !strings.ContainsFunc(s, func(c rune) bool { return !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') })
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
