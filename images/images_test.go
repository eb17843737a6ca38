package images

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lxc/incus/v6/shared/api"
	"github.com/ulikunitz/xz"
)

func sampleEntries() []MetaEntry {
	return []MetaEntry{
		{Name: "vibe/user-data", Data: []byte("#cloud-config\n")},
		{Name: "metadata.yaml", Data: []byte("architecture: x86_64\ncreation_date: 1\n")},
		{Name: "templates/hostname.tpl", Data: []byte("{{ instance.name }}\n")},
		{Name: "vibe/manifest.json", Data: []byte("{}\n")},
	}
}

func TestMetaTarballIsDeterministic(t *testing.T) {
	var a, b bytes.Buffer
	if err := WriteMetaTarball(&a, sampleEntries()); err != nil {
		t.Fatal(err)
	}
	rev := sampleEntries()
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	if err := WriteMetaTarball(&b, rev); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(a.Bytes(), b.Bytes()) {
		t.Fatal("the same entries in another order gave different bytes")
	}
	if !bytes.HasPrefix(a.Bytes(), []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		t.Fatal("not xz")
	}
}

func TestMetaTarballLayout(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteMetaTarball(&buf, sampleEntries()); err != nil {
		t.Fatal(err)
	}
	files, err := ReadMetaTarball(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range sampleEntries() {
		if string(files[e.Name]) != string(e.Data) {
			t.Errorf("%s: got %q", e.Name, files[e.Name])
		}
	}
	// Entries sorted, directories explicit, root-owned, epoch times.
	names := tarNames(t, buf.Bytes())
	want := "metadata.yaml templates/ templates/hostname.tpl vibe/ vibe/manifest.json vibe/user-data"
	if strings.Join(names, " ") != want {
		t.Errorf("entries %v, want %s", names, want)
	}
}

func tarNames(t *testing.T, xzTar []byte) []string {
	t.Helper()
	files, err := ReadMetaTarball(bytes.NewReader(xzTar))
	if err != nil || len(files) == 0 {
		t.Fatal(err)
	}
	// Re-read raw headers through the same decompression path.
	var names []string
	xr, err := xz.NewReader(bytes.NewReader(xzTar))
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(xr)
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		if h.Uid != 0 || h.Gid != 0 || h.ModTime.Unix() != 0 || h.Uname != "" {
			t.Errorf("%s: owner %d:%d %q time %v", h.Name, h.Uid, h.Gid, h.Uname, h.ModTime)
		}
		names = append(names, h.Name)
	}
	return names
}

func TestMetaTarballRefusesBadNames(t *testing.T) {
	for _, name := range []string{"../x", "/etc/passwd", ".", ""} {
		if err := WriteMetaTarball(&bytes.Buffer{}, []MetaEntry{{Name: name}}); err == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if err := WriteMetaTarball(&bytes.Buffer{}, []MetaEntry{{Name: "a"}, {Name: "a/b"}}); err == nil {
		t.Error("a file that is also a directory was accepted")
	}
}

func TestReadMetaTarballRefusesHostileEntries(t *testing.T) {
	for _, h := range []tar.Header{
		{Name: "../evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		{Name: "/etc/evil", Typeflag: tar.TypeReg, Size: 1, Mode: 0o644},
		{Name: "link", Typeflag: tar.TypeSymlink, Linkname: "/etc/shadow"},
		{Name: "hard", Typeflag: tar.TypeLink, Linkname: "../../x"},
		{Name: "dev", Typeflag: tar.TypeChar, Devmajor: 1, Devminor: 3},
		{Name: "huge", Typeflag: tar.TypeReg, Size: maxMetaEntry + 1, Mode: 0o644},
	} {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		hdr := h
		tw.WriteHeader(&hdr)
		if h.Typeflag == tar.TypeReg && h.Size < 10 {
			tw.Write(bytes.Repeat([]byte("x"), int(h.Size)))
		}
		tw.Flush()
		if _, err := ReadMetaTarball(bytes.NewReader(buf.Bytes())); err == nil {
			t.Errorf("%s (%c) accepted", h.Name, h.Typeflag)
		}
	}
}

// The fingerprint follows incus's rule for split images: SHA-256 of the
// metadata bytes followed by the rootfs bytes.
func TestFingerprintIsSHA256OfMetaThenRootfs(t *testing.T) {
	dir := t.TempDir()
	meta, rootfs := filepath.Join(dir, "m"), filepath.Join(dir, "r")
	os.WriteFile(meta, []byte("metadata-bytes"), 0o644)
	os.WriteFile(rootfs, []byte("rootfs-bytes"), 0o644)
	sum := sha256.Sum256([]byte("metadata-bytesrootfs-bytes"))
	got, err := Fingerprint(meta, rootfs)
	if err != nil || got != hex.EncodeToString(sum[:]) {
		t.Errorf("Fingerprint = %s, %v; want %x", got, err, sum)
	}
	swapped, _ := Fingerprint(rootfs, meta)
	if swapped == got {
		t.Error("order must matter")
	}
}

func unifiedTar(t *testing.T, vm bool) []byte {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(h tar.Header, data string) {
		h.Size = int64(len(data))
		if h.Mode == 0 {
			h.Mode = 0o644
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(data))
	}
	add(tar.Header{Name: "metadata.yaml", Typeflag: tar.TypeReg}, "architecture: x86_64\n")
	add(tar.Header{Name: "templates/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
	add(tar.Header{Name: "templates/hostname.tpl", Typeflag: tar.TypeReg}, "{{ instance.name }}\n")
	if vm {
		add(tar.Header{Name: "rootfs.img", Typeflag: tar.TypeReg}, "QFI\xfbqcow2-bytes")
	} else {
		add(tar.Header{Name: "rootfs/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
		add(tar.Header{Name: "rootfs/etc/", Typeflag: tar.TypeDir, Mode: 0o755}, "")
		add(tar.Header{Name: "rootfs/etc/hostname", Typeflag: tar.TypeReg, Uid: 0}, "builder\n")
		add(tar.Header{Name: "rootfs/usr/bin/ping", Typeflag: tar.TypeReg, Mode: 0o755, PAXRecords: map[string]string{"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"}}, "ELF")
		add(tar.Header{Name: "rootfs/usr/bin/ping4", Typeflag: tar.TypeLink, Linkname: "rootfs/usr/bin/ping"}, "")
		add(tar.Header{Name: "rootfs/home/vibe/", Typeflag: tar.TypeDir, Mode: 0o755, Uid: 1000, Gid: 1000}, "")
	}
	tw.Close()
	return buf.Bytes()
}

func TestSplitContainer(t *testing.T) {
	var rootfs bytes.Buffer
	meta, digest, err := Split(bytes.NewReader(unifiedTar(t, false)), &rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if string(meta["metadata.yaml"]) != "architecture: x86_64\n" || meta["templates/hostname.tpl"] == nil {
		t.Errorf("metadata files: %v", meta)
	}
	sum := sha256.Sum256(rootfs.Bytes())
	if digest.SHA256 != hex.EncodeToString(sum[:]) || digest.Size != int64(rootfs.Len()) {
		t.Errorf("digest %+v does not describe the written rootfs", digest)
	}
	tr := tar.NewReader(&rootfs)
	got := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err != nil {
			break
		}
		got[h.Name] = h
	}
	for _, name := range []string{"./", "./etc/", "./etc/hostname", "./usr/bin/ping", "./home/vibe/"} {
		if got[name] == nil {
			t.Errorf("missing %s in %v", name, keys(got))
		}
	}
	if h := got["./usr/bin/ping4"]; h == nil || h.Linkname != "./usr/bin/ping" {
		t.Errorf("hard link not rewritten: %+v", h)
	}
	if h := got["./usr/bin/ping"]; h == nil || h.PAXRecords["SCHILY.xattr.security.capability"] == "" {
		t.Error("extended attributes lost")
	}
	if h := got["./home/vibe/"]; h == nil || h.Uid != 1000 {
		t.Error("ownership lost")
	}
}

func TestSplitVM(t *testing.T) {
	var rootfs bytes.Buffer
	_, digest, err := Split(bytes.NewReader(unifiedTar(t, true)), &rootfs)
	if err != nil {
		t.Fatal(err)
	}
	if rootfs.String() != "QFI\xfbqcow2-bytes" || digest.Size != int64(rootfs.Len()) {
		t.Errorf("rootfs.img not copied verbatim: %q", rootfs.String())
	}
}

func TestSplitRefusesImagesWithoutRootfs(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "metadata.yaml", Typeflag: tar.TypeReg, Size: 0, Mode: 0o644})
	tw.Close()
	if _, _, err := Split(&buf, &bytes.Buffer{}); err == nil || !strings.Contains(err.Error(), "no rootfs") {
		t.Errorf("Split: %v", err)
	}
}

func keys(m map[string]*tar.Header) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestStoreStagesAndCommits(t *testing.T) {
	s := &Store{Dir: t.TempDir()}
	st, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(st.Dir, MetaFile), []byte("m"), 0o644)
	fp := strings.Repeat("ab", 32)
	if fps, _ := s.List(); len(fps) != 0 {
		t.Error("a staged folder is listed before commit")
	}
	if err := st.Commit(fp); err != nil {
		t.Fatal(err)
	}
	if !s.Has(fp) {
		t.Error("committed image missing")
	}
	if err := st.Commit("not-a-fingerprint"); err == nil {
		t.Error("a bad fingerprint was accepted")
	}
	// An abandoned staging folder of a dead process is removed.
	dead := filepath.Join(s.Dir, ".tmp-999999999-x")
	os.Mkdir(dead, 0o755)
	if err := s.CleanAbandoned(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dead); !os.IsNotExist(err) {
		t.Error("abandoned staging folder kept")
	}
}

// A sandbox image keeps the base's hostname and hosts templates and drops
// the NoCloud seed: on a VM, incus-agent rewrites a changed seed at first
// boot and reboots the guest (every launch would boot twice), and a
// sandbox runs no cloud-init.
func TestSandboxTemplatesDropTheSeed(t *testing.T) {
	md := api.ImageMetadata{Templates: map[string]*api.ImageMetadataTemplate{
		"/etc/hostname": {Template: "hostname.tpl", When: []string{"create", "copy"}},
		"/etc/hosts":    {Template: "hosts.tpl", When: []string{"create", "copy"}},
		"/var/lib/cloud/seed/nocloud-net/meta-data":      {Template: "cloud-init-meta.tpl", When: []string{"create", "copy"}},
		"/var/lib/cloud/seed/nocloud-net/user-data":      {Template: "cloud-init-user.tpl", When: []string{"create", "copy"}},
		"/var/lib/cloud/seed/nocloud-net/vendor-data":    {Template: "cloud-init-vendor.tpl", When: []string{"create", "copy"}},
		"/var/lib/cloud/seed/nocloud-net/network-config": {Template: "cloud-init-network.tpl", When: []string{"create", "copy"}},
	}}
	files := map[string][]byte{"metadata.yaml": nil, "templates/hostname.tpl": []byte("h"), "templates/hosts.tpl": []byte("x"),
		"templates/cloud-init-meta.tpl": nil, "templates/cloud-init-user.tpl": nil, "templates/cloud-init-vendor.tpl": nil, "templates/cloud-init-network.tpl": nil}
	kept := sandboxTemplates(&md, files)
	if len(md.Templates) != 2 || md.Templates["/etc/hostname"] == nil || md.Templates["/etc/hosts"] == nil {
		t.Errorf("templates left: %v", slices.Sorted(maps.Keys(md.Templates)))
	}
	var names []string
	for _, e := range kept {
		names = append(names, e.Name)
	}
	slices.Sort(names)
	if strings.Join(names, " ") != "templates/hostname.tpl templates/hosts.tpl" {
		t.Errorf("template files kept: %v", names)
	}
}

// What the base requires of a VM (secure boot off, the agent from a
// CD-ROM) is what the baked image requires: without it incus boots it in a
// way the base cannot run.
func TestImagePropertiesCarryRequirements(t *testing.T) {
	m := &Manifest{InstanceType: "vm", Recipe: strings.Repeat("a", 64), Architecture: "x86_64"}
	props := ImageProperties(m, &Base{Properties: map[string]string{"os": "ubuntu",
		"requirements.secureboot": "false", "requirements.cdrom_agent": "true", "requirements.other": "x", "user.note": "n"}})
	if props["requirements.secureboot"] != "false" || props["requirements.cdrom_agent"] != "true" || props["requirements.other"] != "x" {
		t.Errorf("requirements not carried: %v", props)
	}
	if _, ok := props["user.note"]; ok {
		t.Error("a base property that is no requirement was carried")
	}
}

// A vibe image is no base: it has no NoCloud seed for the recipe to arrive
// through.
func TestVibeImagesAreNoBase(t *testing.T) {
	if err := (&Base{Source: "vibe-offline", Properties: map[string]string{PropRecipe: strings.Repeat("a", 64)}}).Bakeable(); err == nil || !strings.Contains(err.Error(), "image.base") {
		t.Errorf("a vibe image was accepted as a base: %v", err)
	}
	if err := (&Base{Source: "images:debian/12/cloud", Properties: map[string]string{"os": "debian"}}).Bakeable(); err != nil {
		t.Error(err)
	}
}
