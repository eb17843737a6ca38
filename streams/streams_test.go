package streams

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	ss "github.com/lxc/incus/v6/shared/simplestreams"
	"github.com/vibesandbox/vibe/images"
)

var t0 = time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)

// testImage writes a tiny but valid split image (xz metadata tarball plus a
// rootfs tar, or a fake qcow2 for a VM) and describes it for Publish. seed
// makes the fingerprint differ.
func testImage(t testing.TB, seed, instanceType string, created time.Time, aliases ...string) Image {
	t.Helper()
	dir := t.TempDir()
	md := fmt.Sprintf("architecture: x86_64\ncreation_date: %d\nproperties:\n  os: debian\n  release: bookworm\n  variant: vibe\n  architecture: x86_64\n  description: vibe streams test %s\n  vibe.recipe: streams-test\n", created.Unix(), seed)
	var meta bytes.Buffer
	if err := images.WriteMetaTarball(&meta, []images.MetaEntry{{Name: "metadata.yaml", Data: []byte(md)}}); err != nil {
		t.Fatal(err)
	}
	var root bytes.Buffer
	if instanceType == "vm" {
		root.Write(append([]byte("QFI\xfb\x00\x00\x00\x03"), make([]byte, 504)...))
		root.WriteString(seed)
	} else {
		tw := tar.NewWriter(&root)
		for _, d := range []string{"./", "./etc/", "./root/", "./tmp/"} {
			tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, ModTime: created})
		}
		for name, body := range map[string]string{"./etc/hostname": seed + "\n", "./etc/os-release": "ID=debian\n"} {
			tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body)), ModTime: created})
			tw.Write([]byte(body))
		}
		if err := tw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	img := Image{
		MetaPath: filepath.Join(dir, images.MetaFile), RootfsPath: filepath.Join(dir, images.RootfsFile(instanceType)),
		InstanceType: instanceType, Architecture: "x86_64", OS: "debian", Release: "bookworm", Variant: "vibe",
		Aliases: aliases, Created: created,
	}
	os.WriteFile(img.MetaPath, meta.Bytes(), 0o644)
	os.WriteFile(img.RootfsPath, root.Bytes(), 0o644)
	fp, err := images.Fingerprint(img.MetaPath, img.RootfsPath)
	if err != nil {
		t.Fatal(err)
	}
	img.Fingerprint = fp
	return img
}

func mustPublish(t testing.TB, dir string, img Image, wantAdded bool) {
	t.Helper()
	added, err := Publish(dir, img)
	if err != nil {
		t.Fatal(err)
	}
	if added != wantAdded {
		t.Fatalf("publish %s: added=%v, want %v", img.Fingerprint[:12], added, wantAdded)
	}
}

func mustOpen(t testing.TB, base string, hc *http.Client) *Tree {
	t.Helper()
	tr, err := Open(context.Background(), base, hc)
	if err != nil {
		t.Fatal(err)
	}
	return tr
}

func TestPublishAndFind(t *testing.T) {
	dir := t.TempDir()
	old := testImage(t, "old", "container", t0, "dev")
	mustPublish(t, dir, old, true)
	first := readTree(t, dir)
	mustPublish(t, dir, old, false)
	if again := readTree(t, dir); again != first {
		t.Error("publishing the same image again changed the tree")
	}
	tr := mustOpen(t, dir, nil)
	for _, name := range []string{"dev", old.Fingerprint, old.Fingerprint[:12], strings.ToUpper(old.Fingerprint)} {
		if e, err := tr.Find(name); err != nil || e.Fingerprint != old.Fingerprint {
			t.Errorf("Find(%q) = %v, %v; want %s", name, e, err, old.Fingerprint)
		}
	}

	// A newer image under the same alias takes it over; the old one stays
	// reachable by fingerprint.
	newer := testImage(t, "new", "container", t0.Add(time.Minute), "dev")
	newer.SigPath = filepath.Join(t.TempDir(), "sig")
	os.WriteFile(newer.SigPath, []byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"), 0o644)
	mustPublish(t, dir, newer, true)
	tr = mustOpen(t, dir, nil)
	if e, err := tr.Find("dev"); err != nil || e.Fingerprint != newer.Fingerprint || e.Sig == nil {
		t.Fatalf("Find(dev) = %+v, %v; want the newer, signed %s", e, err, newer.Fingerprint)
	}
	es := tr.Entries()
	if len(es) != 2 || es[0].Fingerprint != newer.Fingerprint || es[1].Fingerprint != old.Fingerprint {
		t.Fatalf("entries %+v, want newer then old", es)
	}
	e := es[1]
	if e.InstanceType != "container" || e.Architecture != "x86_64" || !e.Created.Equal(t0.Truncate(time.Minute)) ||
		e.Product != "vibe:dev:container:x86_64" || e.Version != "202503141509_"+old.Fingerprint[:12] || e.Sig != nil {
		t.Errorf("entry %+v", e)
	}
	for _, c := range []struct {
		it  Item
		src string
	}{{e.Meta, old.MetaPath}, {e.Rootfs, old.RootfsPath}, {*es[0].Sig, newer.SigPath}} {
		var buf bytes.Buffer
		want, _ := os.ReadFile(c.src)
		if err := tr.Fetch(context.Background(), c.it, &buf); err != nil || !bytes.Equal(buf.Bytes(), want) {
			t.Errorf("Fetch %s: %v (got %d bytes, want %d)", c.it.Path, err, buf.Len(), len(want))
		}
	}

	for name, want := range map[string]string{
		"nope":                     `no image "nope"`,
		old.Fingerprint[:11]:       "no image",
		old.Fingerprint[:12] + "x": "no image",
	} {
		if _, err := tr.Find(name); err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "dev (container x86_64") {
			t.Errorf("Find(%q) = %v, want an error with %q listing the tree", name, err, want)
		}
	}
}

func TestFetchRefusesTamperedFiles(t *testing.T) {
	for name, tamper := range map[string]func([]byte) []byte{
		"flipped":   func(b []byte) []byte { b[len(b)-1] ^= 1; return b },
		"appended":  func(b []byte) []byte { return append(b, 'x') },
		"truncated": func(b []byte) []byte { return b[:len(b)-1] },
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			img := testImage(t, "a", "container", t0, "dev")
			mustPublish(t, dir, img, true)
			e, _ := mustOpen(t, dir, nil).Find("dev")
			p := filepath.Join(dir, e.Rootfs.Path)
			b, _ := os.ReadFile(p)
			os.WriteFile(p, tamper(b), 0o644)
			var buf bytes.Buffer
			err := mustOpen(t, dir, nil).Fetch(context.Background(), e.Rootfs, &buf)
			if err == nil || !strings.Contains(err.Error(), e.Rootfs.Path) {
				t.Fatalf("Fetch of a %s file: %v, want an error naming %s", name, err, e.Rootfs.Path)
			}
			if int64(buf.Len()) > e.Rootfs.Size {
				t.Errorf("Fetch wrote %d bytes, more than the %d listed", buf.Len(), e.Rootfs.Size)
			}
		})
	}
}

func TestPublishRefuses(t *testing.T) {
	good := testImage(t, "a", "container", t0, "dev")
	other := testImage(t, "b", "container", t0, "dev")
	for name, c := range map[string]struct {
		edit func(*Image)
		want string
	}{
		"wrong fingerprint": {func(i *Image) { i.Fingerprint = other.Fingerprint }, "not the declared"},
		"not hex":           {func(i *Image) { i.Fingerprint = strings.Repeat("g", 64) }, "not a SHA-256"},
		"instance type":     {func(i *Image) { i.InstanceType = "virtual-machine" }, "want container or vm"},
		"vm with a tar":     {func(i *Image) { i.InstanceType = "vm" }, "is not a vm rootfs"},
		"architecture":      {func(i *Image) { i.Architecture = "pdp11" }, "unknown to incus"},
		"no alias":          {func(i *Image) { i.Aliases = nil }, "at least one alias"},
		"comma in alias":    {func(i *Image) { i.Aliases = []string{"a,b"} }, "without commas"},
		"no creation time":  {func(i *Image) { i.Created = time.Time{} }, "no creation time"},
		"swapped files":     {func(i *Image) { i.MetaPath, i.RootfsPath = i.RootfsPath, i.MetaPath }, "not a container rootfs"},
		"missing rootfs":    {func(i *Image) { i.RootfsPath = "/nonexistent" }, "no such file"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			img := good
			c.edit(&img)
			if _, err := Publish(dir, img); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Publish: %v, want an error with %q", err, c.want)
			}
			var left []string
			filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				// The lock file is the publisher's own, kept between runs.
				if err == nil && !d.IsDir() && d.Name() != ".vibe-publish.lock" {
					left = append(left, p)
				}
				return nil
			})
			if len(left) > 0 {
				t.Errorf("a refused publish left %v", left)
			}
		})
	}

	// A fingerprint the tree has, declared for other files, is refused too.
	dir := t.TempDir()
	mustPublish(t, dir, good, true)
	vm := testImage(t, "vm", "vm", t0, "dev")
	vm.Fingerprint = good.Fingerprint
	if _, err := Publish(dir, vm); err == nil || !strings.Contains(err.Error(), "declared fingerprint is wrong") {
		t.Errorf("Publish of other files under a known fingerprint: %v", err)
	}
}

func TestPublishIsDeterministic(t *testing.T) {
	imgs := []Image{
		testImage(t, "a", "container", t0, "dev", "base"),
		testImage(t, "b", "container", t0.Add(time.Hour), "dev"),
		testImage(t, "c", "vm", t0, "dev"),
	}
	var trees []string
	for range 2 {
		dir := t.TempDir()
		for _, img := range imgs {
			mustPublish(t, dir, img, true)
		}
		trees = append(trees, readTree(t, dir))
	}
	if trees[0] != trees[1] {
		t.Fatalf("two publishes of the same images differ:\n%s\n---\n%s", trees[0], trees[1])
	}
	if !strings.HasSuffix(trees[0], "}\n") || !strings.Contains(trees[0], "\n  \"format\": \"index:1.0\"") {
		t.Errorf("want indented JSON with a final newline:\n%s", trees[0])
	}
}

// readTree returns index.json and images.json.
func readTree(t testing.TB, dir string) string {
	t.Helper()
	var s string
	for _, p := range []string{indexPath, imagesPath} {
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		s += string(b)
	}
	return s
}

// A hostile images.json is refused as a whole.
func TestOpenRefusesHostileIndex(t *testing.T) {
	dir := t.TempDir()
	mustPublish(t, dir, testImage(t, "a", "container", t0, "dev"), true)
	good, _ := os.ReadFile(filepath.Join(dir, imagesPath))
	e := mustOpen(t, dir, nil).Entries()[0]
	fp := e.Fingerprint
	item := func(i *ss.Products, ftype string, edit func(*ss.ProductVersionItem)) {
		v := i.Products[e.Product].Versions[e.Version]
		it := v.Items[ftype]
		edit(&it)
		v.Items[ftype] = it
	}
	root := func(edit func(*ss.ProductVersionItem)) func(*ss.Products) {
		return func(i *ss.Products) { item(i, ftypeTar, edit) }
	}
	for name, c := range map[string]struct {
		edit func(*ss.Products)
		want string
	}{
		"parent path":   {root(func(it *ss.ProductVersionItem) { it.Path = "images/../../etc/passwd" }), "not a clean relative path"},
		"absolute path": {root(func(it *ss.ProductVersionItem) { it.Path = "/etc/passwd" }), "not a clean relative path"},
		"url path":      {root(func(it *ss.ProductVersionItem) { it.Path = "https://evil.example/x" }), "not a clean relative path"},
		"query path":    {root(func(it *ss.ProductVersionItem) { it.Path = "images/x?y=1" }), "not a clean relative path"},
		"empty path":    {root(func(it *ss.ProductVersionItem) { it.Path = "" }), "not a clean relative path"},
		"negative size": {root(func(it *ss.ProductVersionItem) { it.Size = -1 }), "out of range"},
		"absurd size":   {root(func(it *ss.ProductVersionItem) { it.Size = 1 << 62 }), "out of range"},
		"no hash":       {root(func(it *ss.ProductVersionItem) { it.HashSha256 = "" }), "not a lowercase SHA-256"},
		"bad fp": {func(i *ss.Products) {
			item(i, ftypeMeta, func(it *ss.ProductVersionItem) { it.CombinedSha256RootXz = fp + "00" })
		}, "fingerprint"},
		"two metas": {func(i *ss.Products) {
			i.Products[e.Product].Versions[e.Version].Items["x"] = ss.ProductVersionItem{FileType: ftypeMeta, Path: "a", HashSha256: fp, Size: 1}
		}, "more than one"},
		"same fp, other files": {func(i *ss.Products) {
			v := i.Products[e.Product].Versions[e.Version]
			w := ss.ProductVersion{Items: map[string]ss.ProductVersionItem{}}
			for k, it := range v.Items {
				it.Size++
				w.Items[k] = it
			}
			i.Products[e.Product].Versions["202001010000"] = w
		}, "listed twice with different files"},
	} {
		t.Run(name, func(t *testing.T) {
			var p ss.Products
			if err := json.Unmarshal(good, &p); err != nil {
				t.Fatal(err)
			}
			c.edit(&p)
			bad, _ := json.Marshal(&p)
			os.WriteFile(filepath.Join(dir, imagesPath), bad, 0o644)
			if _, err := Open(context.Background(), dir, nil); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("Open: %v, want an error with %q", err, c.want)
			}
		})
	}
	os.WriteFile(filepath.Join(dir, imagesPath), good, 0o644)

	// Symlinks cannot lead a local tree's reads outside it.
	tr := mustOpen(t, dir, nil)
	p := filepath.Join(dir, e.Rootfs.Path)
	os.Remove(p)
	os.Symlink("/etc/passwd", p)
	if err := tr.Fetch(context.Background(), e.Rootfs, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "escapes") {
		t.Errorf("Fetch through a symlink out of the tree: %v", err)
	}
	// Nor can an Item the caller made up.
	if err := tr.Fetch(context.Background(), Item{Path: "../x", SHA256: fp, Size: 1}, &bytes.Buffer{}); err == nil {
		t.Error("Fetch of ../x succeeded")
	}
}

func TestOpenHTTPS(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, "a", "container", t0, "dev")
	mustPublish(t, dir, img, true)
	var mode atomic.Value // what the server does to rootfs requests
	mode.Store("")
	srv := tlsServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		m := mode.Load().(string)
		if m == "" || !strings.HasSuffix(r.URL.Path, ".rootfs.tar") {
			http.FileServer(http.Dir(dir)).ServeHTTP(w, r)
			return
		}
		if m == "redirect" {
			http.Redirect(w, r, "http://127.0.0.1:1/x", http.StatusFound) // refused before any connection
			return
		}
		b, _ := os.ReadFile(filepath.Join(dir, r.URL.Path))
		switch m {
		case "flip":
			b[600] ^= 1
		case "longer with Content-Length":
			b = append(b, 0)
			w.Header().Set("Content-Length", fmt.Sprint(len(b)))
		case "longer, chunked":
			b = append(b, 0)
		}
		w.Write(b)
	}))
	defer srv.Close()

	tr := mustOpen(t, srv.URL+"/", srv.Client())
	e, err := tr.Find("dev")
	if err != nil || e.Fingerprint != img.Fingerprint {
		t.Fatalf("Find(dev) over https = %v, %v", e, err)
	}
	var buf bytes.Buffer
	if err := tr.Fetch(context.Background(), e.Rootfs, &buf); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ mode, want string }{
		{"flip", "SHA-256"}, {"longer with Content-Length", "the server sends"}, {"longer, chunked", "not the 5120 bytes"}, {"redirect", "use https"},
	} {
		mode.Store(c.mode)
		if err := tr.Fetch(context.Background(), e.Rootfs, &buf); err == nil || !strings.Contains(err.Error(), e.Rootfs.Path) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("Fetch from a server that does %s: %v, want an error naming the file and %q", c.mode, err, c.want)
		}
	}

	for _, base := range []string{"http" + strings.TrimPrefix(srv.URL, "https"), "ftp://127.0.0.1/x", "https:///x", srv.URL + "/?q=1"} {
		if _, err := Open(context.Background(), base, srv.Client()); err == nil || !strings.Contains(err.Error(), "use https") {
			t.Errorf("Open(%s): %v, want use https", base, err)
		}
	}
	// Without the test server's certificate, the default client refuses it.
	if _, err := Open(context.Background(), srv.URL, nil); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Errorf("Open with an untrusted certificate: %v", err)
	}
	// index.json is bounded.
	big := tlsServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(bytes.Repeat([]byte(" "), maxIndex+10))
	}))
	defer big.Close()
	if _, err := Open(context.Background(), big.URL, big.Client()); err == nil || !strings.Contains(err.Error(), "larger than") {
		t.Errorf("Open of a huge index: %v", err)
	}
}

func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	mustPublish(f, dir, testImage(f, "a", "container", t0, "dev"), true)
	mustPublish(f, dir, testImage(f, "b", "vm", t0, "dev"), true)
	good, _ := os.ReadFile(filepath.Join(dir, imagesPath))
	index, _ := os.ReadFile(filepath.Join(dir, indexPath))
	var compact bytes.Buffer // small seeds: the fuzzer's minimizer is quadratic in input size
	json.Compact(&compact, good)
	f.Add(compact.Bytes())
	f.Add([]byte(`{"products": {"p": {"arch": "amd64", "aliases": "a,,b", "versions": {"20240101": {"items": {"m": {"ftype": "incus.tar.xz", "path": "../x"}}}}}}}`))
	f.Add([]byte(`{}`))
	dir = f.TempDir() // execs in one process are sequential: reuse one tree
	os.MkdirAll(filepath.Join(dir, "streams/v1"), 0o755)
	os.WriteFile(filepath.Join(dir, indexPath), index, 0o644)
	f.Fuzz(func(t *testing.T, images []byte) {
		// A new file each time: rewriting one in place waits for its writeback.
		os.Remove(filepath.Join(dir, imagesPath))
		if err := os.WriteFile(filepath.Join(dir, imagesPath), images, 0o644); err != nil {
			t.Fatal(err)
		}
		tr, err := Open(context.Background(), dir, nil)
		if err != nil {
			return
		}
		for _, e := range tr.Entries() {
			items := []Item{e.Meta, e.Rootfs}
			if e.Sig != nil {
				items = append(items, *e.Sig)
			}
			for _, it := range items {
				if err := checkItem(it); err != nil || strings.Contains(it.Path, "..") || filepath.IsAbs(it.Path) || strings.Contains(it.Path, "://") {
					t.Fatalf("Open kept item %+v: %v", it, err)
				}
			}
			if len(e.Fingerprint) != 64 || (e.InstanceType != "container" && e.InstanceType != "vm") {
				t.Fatalf("Open kept entry %+v", e)
			}
			for _, a := range e.Aliases {
				tr.Find(a)
			}
			tr.Find(e.Fingerprint[:12])
		}
		tr.Find("dev")
	})
}

// TestMain shortens the fuzzer's minimization of new inputs unless
// -fuzzminimizetime is given: it is quadratic in the input's size and gets a
// minute by default, which on KB-sized JSON leaves a short run no time to fuzz.
func TestMain(m *testing.M) {
	flag.Parse()
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.fuzzminimizetime" })
	if !set {
		flag.Set("test.fuzzminimizetime", "1s")
	}
	os.Exit(m.Run())
}

// Anyone who can read a tree must not be able to block publish: the lock
// is a 0600 file of the publisher's, and a held lock times out with a clear
// error. Symlinked folders in a tree are refused.
func TestPublishLockAndSymlinks(t *testing.T) {
	dir := t.TempDir()
	unlock, err := lockTree(dir, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if st, _ := os.Stat(filepath.Join(dir, ".vibe-publish.lock")); st.Mode().Perm() != 0o600 {
		t.Errorf("lock file mode %v", st.Mode())
	}
	start := time.Now()
	if _, err := lockTree(dir, 300*time.Millisecond); err == nil || !strings.Contains(err.Error(), "did not finish within") || time.Since(start) > 2*time.Second {
		t.Errorf("a held lock: %v after %s", err, time.Since(start))
	}
	unlock()
	// The old way, a lock on the folder itself, blocks this one no more.
	f, _ := os.Open(dir)
	syscall.Flock(int(f.Fd()), syscall.LOCK_EX)
	defer f.Close()
	if u, err := lockTree(dir, time.Second); err != nil {
		t.Errorf("a reader's flock on the folder blocks publish: %v", err)
	} else {
		u()
	}

	tree, elsewhere := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(tree, "streams"), 0o755)
	os.Symlink(elsewhere, filepath.Join(tree, "images"))
	if _, err := Publish(tree, testImage(t, "a", "container", time.Now(), "dev")); err == nil || !strings.Contains(err.Error(), "not a folder") {
		t.Errorf("publish through a symlinked folder: %v", err)
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Errorf("publish wrote through the symlink: %v", entries)
	}
}

// A server that stops sending mid-file ends the download, promptly.
func TestFetchStalledBody(t *testing.T) {
	dir := t.TempDir()
	img := testImage(t, "s", "container", time.Unix(1700000000, 0), "dev")
	mustPublish(t, dir, img, true)
	files := http.FileServer(http.Dir(dir))
	srv := tlsServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/images/") || !strings.HasSuffix(r.URL.Path, ".tar") {
			files.ServeHTTP(w, r)
			return
		}
		st, _ := os.Stat(filepath.Join(dir, r.URL.Path))
		w.Header().Set("Content-Length", fmt.Sprint(st.Size()))
		w.Write([]byte("partial"))
		w.(http.Flusher).Flush()
		<-r.Context().Done() // stalls until the client gives up
	}))
	defer srv.Close()
	old := stallTimeout
	stallTimeout = 300 * time.Millisecond
	defer func() { stallTimeout = old }()
	tree := mustOpen(t, srv.URL, srv.Client())
	e, err := tree.Find("dev")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = tree.Fetch(context.Background(), e.Rootfs, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "sent nothing for") || time.Since(start) > 3*time.Second {
		t.Errorf("a stalled body: %v after %s", err, time.Since(start))
	}
}

// Item sizes and the number of images are bounded before anything is
// fetched.
func TestOpenBoundsItems(t *testing.T) {
	dir := t.TempDir()
	mustPublish(t, dir, testImage(t, "b", "container", time.Unix(1700000000, 0), "dev"), true)
	p := filepath.Join(dir, "streams", "v1", "images.json")
	var prods ss.Products
	b, _ := os.ReadFile(p)
	json.Unmarshal(b, &prods)
	for _, prod := range prods.Products {
		for _, v := range prod.Versions {
			for k, it := range v.Items {
				if it.FileType == "incus.tar.xz" {
					it.Size = 1 << 30
					v.Items[k] = it
				}
			}
		}
	}
	b, _ = json.Marshal(prods)
	os.WriteFile(p, b, 0o644)
	if _, err := Open(context.Background(), dir, nil); err == nil || !strings.Contains(err.Error(), "more than any vibe image's") {
		t.Errorf("a 1 GiB metadata item: %v", err)
	}
}
