package images

import (
	"archive/tar"
	"bytes"
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// xzOf compresses b with the given dictionary size.
func xzOf(t testing.TB, b []byte, dict int) []byte {
	t.Helper()
	var out bytes.Buffer
	w, err := xz.WriterConfig{DictCap: dict}.NewWriter(&out)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	w.Close()
	return out.Bytes()
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

func TestReadMetaTarballBoundsHostileArchives(t *testing.T) {
	// A tar of many directory entries: each header is 512 bytes.
	var dirs bytes.Buffer
	tw := tar.NewWriter(&dirs)
	for i := range maxMetaEntries + 1 {
		tw.WriteHeader(&tar.Header{Name: strings.Repeat("d", 20) + string(rune('a'+i%26)) + "/", Typeflag: tar.TypeDir, Mode: 0o755})
	}
	tw.Close()

	// An xz bomb: 320 MiB of zero-filled entries in a few KiB.
	var bomb bytes.Buffer
	xw, _ := xz.NewWriter(&bomb)
	btw := tar.NewWriter(xw)
	for i := range 20 {
		btw.WriteHeader(&tar.Header{Name: "f" + string(rune('a'+i)), Typeflag: tar.TypeReg, Size: maxMetaEntry, Mode: 0o644})
		io.CopyN(btw, zeros{}, maxMetaEntry)
	}
	btw.Close()
	xw.Close()

	// A block header asking for a 1.5 GiB dictionary, set by hand (the
	// header's CRC goes stale, but the check runs before the decoder).
	bigDict := xzOf(t, []byte("x"), 8<<20)
	patchDict(t, bigDict, 38)

	for _, tc := range []struct {
		name string
		data []byte
		says string
	}{
		{"too many entries", dirs.Bytes(), "entries"},
		{"xz bomb", bomb.Bytes(), "too large"},
		{"huge dictionary", bigDict, "dictionary"},
		{"two xz streams", append(xzOf(t, []byte("a"), 1<<20), xzOf(t, []byte("b"), 1<<20)...), ""},
		{"truncated xz", bomb.Bytes()[:bomb.Len()/2], ""},
		{"too large a file", make([]byte, maxMetaFile+1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			_, err := ReadMetaTarball(bytes.NewReader(tc.data))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.says) {
				t.Errorf("error %q does not say %q", err, tc.says)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if grown := int64(after.TotalAlloc - before.TotalAlloc); grown > 1<<30 {
				t.Errorf("allocated %d MiB reading it", grown>>20)
			}
		})
	}
}

func TestReadMetaTarballRefusesDuplicates(t *testing.T) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, n := range []string{"vibe/manifest.json", "./vibe/manifest.json"} {
		tw.WriteHeader(&tar.Header{Name: n, Typeflag: tar.TypeReg, Size: 2, Mode: 0o644})
		tw.Write([]byte("{}"))
	}
	tw.Close()
	if _, err := ReadMetaTarball(&buf); err == nil || !strings.Contains(err.Error(), "twice") {
		t.Fatalf("duplicate entry: %v", err)
	}
}

// patchDict sets the LZMA2 dictionary byte of the first block header.
func patchDict(t testing.TB, b []byte, d byte) {
	t.Helper()
	// Stream header (12 bytes), then the block header: size, flags, then
	// filter id 0x21, property size 1, the dictionary byte.
	h := b[12:]
	i := bytes.Index(h[:int(h[0]+1)*4], []byte{0x21, 0x01})
	if i < 0 {
		t.Fatal("no LZMA2 filter flags in the first block header")
	}
	h[i+2] = d
}

func FuzzReadMetaTarball(f *testing.F) {
	var good bytes.Buffer
	WriteMetaTarball(&good, sampleEntries())
	f.Add(good.Bytes())
	var plain bytes.Buffer
	tw := tar.NewWriter(&plain)
	tw.WriteHeader(&tar.Header{Name: "../x", Typeflag: tar.TypeReg, Size: 1})
	tw.Write([]byte("x"))
	tw.WriteHeader(&tar.Header{Name: "l", Typeflag: tar.TypeSymlink, Linkname: "/etc"})
	tw.Close()
	f.Add(plain.Bytes())
	f.Add(xzOf(f, plain.Bytes(), 1<<20))
	f.Fuzz(func(t *testing.T, data []byte) {
		files, err := ReadMetaTarball(bytes.NewReader(data))
		if err != nil {
			return
		}
		total := 0
		for name, b := range files {
			if strings.HasPrefix(name, "/") || name == ".." || strings.HasPrefix(name, "../") {
				t.Fatalf("accepted entry %q that leaves the archive", name)
			}
			total += len(b)
		}
		if total > 4*maxMetaEntry {
			t.Fatalf("returned %d bytes", total)
		}
	})
}
