// Package source resolves where an image comes from and brings it in
// verified. A source is one of:
//
//   - a folder or file, written as a path (/…, ./…, ../…, ~/… or dir:…):
//     an exported image (meta-FP.tar.xz …), a store folder, or a
//     simplestreams tree (streams/v1/index.json). Nothing else is looked up
//     on disk, so a folder in the current directory never stands in for an
//     alias (aliases may hold '/', like ubuntu/26.04);
//   - an https:// URL of a simplestreams tree;
//   - REMOTE:NAME, a simplestreams remote from the user's incus client
//     configuration (incus remote add team https://… --protocol simplestreams);
//   - an alias or fingerprint in the local store or the daemon.
//
// Images from trees are downloaded into a store staging folder, checked
// against the tree's hashes as they stream, then verified like any folder
// before anything is imported.
package source

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"

	incus "github.com/lxc/incus/v6/client"

	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/signing"
	"github.com/vibesandbox/vibe/streams"
)

// Remote is an image in a simplestreams tree.
type Remote struct {
	Tree  *streams.Tree
	Entry *streams.Entry
	Where string // the tree's location, for messages
	// Asked is the alias the user asked for ("" for a fingerprint, or for
	// the tree's only image): a trusted signature must be made for it.
	Asked string
	only  bool // the tree's only image, asked for by no name
}

// HTTPClient is used for https trees (tests swap it for one that trusts
// their server).
var HTTPClient *http.Client

// IsPath reports whether s is written as a path: it starts with /, ./,
// ../ or ~/, or carries the explicit dir: prefix.
func IsPath(s string) bool {
	for _, p := range []string{"/", "./", "../", "~/", "dir:"} {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return s == "." || s == ".."
}

// Path is the file system path of a source written as a path: dir:
// removed, ~ expanded.
func Path(s string) string {
	s = strings.TrimPrefix(s, "dir:")
	if rest, ok := strings.CutPrefix(s, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, rest)
		}
	}
	return s
}

// IsTree reports whether dir is a simplestreams tree.
func IsTree(dir string) bool {
	_, err := os.Stat(filepath.Join(dir, "streams", "v1", "index.json"))
	return err == nil
}

// remoteURL resolves s to a tree location when it names one: an https URL,
// a tree folder, or REMOTE:NAME for a simplestreams remote. name is the
// image inside the tree (REMOTE:NAME's NAME, or the caller's choice).
func remoteURL(s string) (where, name string, ok bool, err error) {
	switch {
	case strings.Contains(s, "://"):
		if !strings.HasPrefix(s, "https://") {
			return "", "", true, fmt.Errorf("%s: only https:// image sources are accepted (an http download can be changed on the way)", s)
		}
		return s, "", true, nil
	case IsPath(s):
		if IsTree(Path(s)) {
			return Path(s), "", true, nil
		}
		return "", "", false, nil
	}
	remote, rest, found := strings.Cut(s, ":")
	if !found || remote == "" || strings.Contains(remote, "/") {
		return "", "", false, nil
	}
	conf, err := daemon.ClientConfig()
	if err != nil {
		return "", "", false, nil
	}
	r, known := conf.Remotes[remote]
	if !known {
		return "", "", false, nil
	}
	if r.Protocol != "simplestreams" {
		return "", "", true, fmt.Errorf("remote %s uses protocol %q; vibe fetches images only from simplestreams trees (vibe-build publish makes one)", remote, r.Protocol)
	}
	if !strings.HasPrefix(r.Addr, "https://") {
		return "", "", true, fmt.Errorf("remote %s is %s: only https:// image sources are accepted", remote, r.Addr)
	}
	return r.Addr, rest, true, nil
}

// IsRemote reports whether s names an image in a simplestreams tree (an
// https URL, a tree folder, or REMOTE:NAME for a simplestreams remote).
// Malformed remote sources count: opening them reports why.
func IsRemote(s string) bool {
	_, _, ok, _ := remoteURL(s)
	return ok
}

// OpenRemote opens the tree s names and finds image name in it (when name
// is "", the tree must hold one image or one alias). ok is false when s
// does not name a tree.
func OpenRemote(ctx context.Context, s, name string) (r *Remote, ok bool, err error) {
	where, inName, ok, err := remoteURL(s)
	if !ok || err != nil {
		return nil, ok, err
	}
	if name == "" {
		name = inName
	}
	t, err := streams.Open(ctx, where, HTTPClient)
	if err != nil {
		return nil, true, err
	}
	var e *streams.Entry
	if name == "" {
		e, err = only(t)
	} else {
		e, err = t.Find(name)
	}
	if err != nil {
		return nil, true, fmt.Errorf("%s: %w", where, err)
	}
	r = &Remote{Tree: t, Entry: e, Where: where}
	if fp := strings.ToLower(name); fp != "" && !strings.HasPrefix(e.Fingerprint, fp) && slices.Contains(e.Aliases, name) {
		r.Asked = name
	}
	r.only = name == ""
	return r, true, nil
}

// only returns the newest image of a tree that publishes one alias.
func only(t *streams.Tree) (*streams.Entry, error) {
	entries := t.Entries()
	if len(entries) == 0 {
		return nil, errors.New("the tree holds no images")
	}
	aliases := map[string]bool{}
	for _, e := range entries {
		aliases[strings.Join(e.Aliases, ",")] = true
	}
	if len(aliases) > 1 {
		var names []string
		for a := range aliases {
			names = append(names, a)
		}
		return nil, fmt.Errorf("the tree publishes several images (%s); say which", strings.Join(names, "; "))
	}
	e := entries[0]
	return &e, nil
}

// Download fetches the image's files into a new stage of store, each
// checked against the tree's size and SHA-256 as it streams. The metadata
// and signature come first and are checked before the rootfs is fetched:
// the rootfs must have the size the manifest says, and with trust the
// signature must be a trusted one, so an untrusted server cannot fill the
// disk. The caller verifies and commits (images.ImportFiles with Staged)
// or discards it.
func (r *Remote) Download(ctx context.Context, store *images.Store, trust *signing.AllowedSigners) (*images.Stage, *images.Files, error) {
	if err := store.CleanAbandoned(); err != nil {
		return nil, nil, err
	}
	st, err := store.Begin()
	if err != nil {
		return nil, nil, err
	}
	e := r.Entry
	f := &images.Files{
		Fingerprint: e.Fingerprint,
		Meta:        filepath.Join(st.Dir, images.MetaFile),
		Rootfs:      filepath.Join(st.Dir, images.RootfsFile(e.InstanceType)),
	}
	fetch := func(it streams.Item, path string) error {
		if err := fetchTo(ctx, r.Tree, it, path); err != nil {
			return fmt.Errorf("download %s from %s: %w", filepath.Base(it.Path), r.Where, err)
		}
		return nil
	}
	fail := func(err error) (*images.Stage, *images.Files, error) {
		st.Discard()
		return nil, nil, err
	}
	if err := fetch(e.Meta, f.Meta); err != nil {
		return fail(err)
	}
	if e.Sig != nil {
		f.Sig = filepath.Join(st.Dir, images.SigFile)
		if err := fetch(*e.Sig, f.Sig); err != nil {
			return fail(err)
		}
	}
	c, err := images.ReadContentsFile(f.Meta)
	if err != nil {
		return fail(err)
	}
	if c.Manifest.Rootfs.Size != e.Rootfs.Size {
		return fail(fmt.Errorf("%s: the tree says the rootfs is %d bytes, the image's manifest says %d: not fetched", r.Where, e.Rootfs.Size, c.Manifest.Rootfs.Size))
	}
	st2, err := images.CheckSignature(e.Fingerprint, c, f.Sig, trust)
	if err == nil && trust != nil {
		err = images.CheckClaim(st2.Claim, r.names())
	}
	if err != nil {
		return fail(fmt.Errorf("%s: %w (the rootfs was not fetched)", r.Where, err))
	}
	if err := fetch(e.Rootfs, f.Rootfs); err != nil {
		return fail(err)
	}
	return st, f, nil
}

func fetchTo(ctx context.Context, t *streams.Tree, it streams.Item, path string) error {
	out, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := t.Fetch(ctx, it, out); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// Local resolves a folder or file written as a path, else an image in the
// store (a fingerprint or a prefix of at least 12 characters), then an
// alias or fingerprint on the daemon c (fetched into the store). c may be
// nil.
func Local(s string, store *images.Store, c incus.InstanceServer) (*images.Files, error) {
	if IsPath(s) {
		return images.Locate(Path(s))
	}
	if fp := StoreMatch(store, s); fp != "" {
		return images.Locate(store.Path(fp))
	}
	if c == nil {
		var err error
		if c, err = daemon.Connect(""); err != nil {
			return nil, fmt.Errorf("%q is not a folder or a stored fingerprint, and: %w", s, err)
		}
	}
	fp := s
	if a, _, err := c.GetImageAlias(s); err == nil {
		fp = a.Target
	}
	img, _, err := c.GetImage(fp)
	if err != nil {
		hint := ""
		if _, err := os.Stat(filepath.Join(s, ".")); err == nil {
			hint = fmt.Sprintf(" (a folder %s exists here: write ./%s to use it)", s, s)
		}
		return nil, fmt.Errorf("image %q: no such stored fingerprint, alias or image on the daemon%s", s, hint)
	}
	return images.FetchFromDaemon(c, store, img.Fingerprint)
}

// StoreMatch returns the stored fingerprint s names (in full or as a
// prefix of at least 12 characters), or "".
func StoreMatch(store *images.Store, s string) string {
	if len(s) < 12 {
		return ""
	}
	fps, _ := store.List()
	var match string
	for _, fp := range fps {
		if strings.HasPrefix(fp, s) {
			if match != "" {
				return ""
			}
			match = fp
		}
	}
	return match
}

// Import brings the image s names into the daemon c and the store,
// verified first (see images.ImportFiles). For trees, name picks the image
// (an alias or fingerprint; "" when the tree holds one). An image the
// daemon and store have already is not downloaded again; with a trust file,
// the tree's signature is still checked against the stored manifest.
func Import(ctx context.Context, c incus.InstanceServer, store *images.Store, s, name string, o images.ImportOptions) (*images.Imported, error) {
	r, isRemote, err := OpenRemote(ctx, s, name)
	if err != nil {
		return nil, err
	}
	if !isRemote {
		if name != "" {
			return nil, fmt.Errorf("--image picks an image inside a simplestreams tree; %s is not one", s)
		}
		f, err := Local(s, store, c)
		if err != nil {
			return nil, err
		}
		return images.ImportFiles(ctx, c, store, f, o)
	}
	o.Names = r.names()
	if r.only {
		// Any signed name passes, so the tree itself keeps the rollback
		// record: an image signed before the one last taken from it (under
		// whatever name) is not taken silently.
		o.Source = "tree " + r.Where
	}
	if store.Has(r.Entry.Fingerprint) {
		if _, _, err := c.GetImage(r.Entry.Fingerprint); err == nil {
			return r.present(ctx, c, store, o)
		}
	}
	if o.Progress != nil {
		o.Progress.Phase("download")
	}
	st, f, err := r.Download(ctx, store, o.Trust)
	if err != nil {
		return nil, err
	}
	defer st.Discard()
	o.Staged = st
	return images.ImportFiles(ctx, c, store, f, o)
}

// names are what a trusted signature must be made for: the alias the user
// asked for. The tree's own alias list is the server's word, so a name it
// adds never stands in (nor escapes the rollback record of the name asked
// for). Asked by fingerprint, or for the tree's only image, the signed
// name is the image's own.
func (r *Remote) names() []string {
	if r.Asked == "" {
		return nil
	}
	return []string{r.Asked}
}

// present checks an image the store and daemon hold already against the
// tree's signature (if any), without downloading the image again.

func (r *Remote) present(ctx context.Context, c incus.InstanceServer, store *images.Store, o images.ImportOptions) (*images.Imported, error) {
	f, err := images.Locate(store.Path(r.Entry.Fingerprint))
	if err != nil {
		return nil, err
	}
	tmp, err := os.MkdirTemp("", "vibe-sig-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(tmp)
	if f.Sig, err = r.Signature(ctx, tmp); err != nil {
		return nil, err
	}
	return images.ImportFiles(ctx, c, store, f, o)
}

// Contents downloads only the image's metadata tarball (checked against
// the tree's hash) and reads the manifest and user-data from it.
func (r *Remote) Contents(ctx context.Context) (*images.Contents, error) {
	if r.Entry.Meta.Size > 64<<20 {
		return nil, fmt.Errorf("%s: the metadata tarball is %d bytes, far more than any vibe image's", r.Where, r.Entry.Meta.Size)
	}
	var buf bytes.Buffer
	if err := r.Tree.Fetch(ctx, r.Entry.Meta, &buf); err != nil {
		return nil, fmt.Errorf("download %s from %s: %w", r.Entry.Meta.Path, r.Where, err)
	}
	return images.ReadContents(&buf)
}

// Signature downloads the image's signature into dir and returns its path
// ("" when the tree has none).
func (r *Remote) Signature(ctx context.Context, dir string) (string, error) {
	if r.Entry.Sig == nil {
		return "", nil
	}
	p := filepath.Join(dir, images.SigFile)
	if err := fetchTo(ctx, r.Tree, *r.Entry.Sig, p); err != nil {
		return "", fmt.Errorf("download the signature from %s: %w", r.Where, err)
	}
	return p, nil
}
