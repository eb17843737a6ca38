package images

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/ulikunitz/xz"
)

// MetaEntry is one file of a metadata tarball.
type MetaEntry struct {
	Name string // relative path, such as metadata.yaml or templates/hostname.tpl
	Data []byte
	Mode int64
}

// epoch is the fixed modification time of every tarball entry, so that the
// same entries always give the same bytes.
var epoch = time.Unix(0, 0).UTC()

// WriteMetaTarball writes entries as an xz-compressed tar: entries sorted by
// name, parent directories made explicit, owner 0:0, fixed times, no user
// or host names. The same entries give the same bytes.
func WriteMetaTarball(w io.Writer, entries []MetaEntry) error {
	files := map[string]MetaEntry{}
	dirs := map[string]bool{}
	for _, e := range entries {
		name := path.Clean(e.Name)
		if name == "." || strings.HasPrefix(name, "../") || path.IsAbs(name) {
			return fmt.Errorf("metadata tarball: bad entry name %q", e.Name)
		}
		if _, dup := files[name]; dup {
			return fmt.Errorf("metadata tarball: duplicate entry %q", name)
		}
		e.Name = name
		files[name] = e
		for d := path.Dir(name); d != "."; d = path.Dir(d) {
			dirs[d] = true
		}
	}
	var names []string
	for n := range files {
		names = append(names, n)
	}
	for d := range dirs {
		if _, clash := files[d]; clash {
			return fmt.Errorf("metadata tarball: %q is both a file and a directory", d)
		}
		names = append(names, d+"/")
	}
	sort.Strings(names)

	xw, err := xz.WriterConfig{CheckSum: xz.CRC64}.NewWriter(w)
	if err != nil {
		return fmt.Errorf("metadata tarball: %w", err)
	}
	tw := tar.NewWriter(xw)
	for _, n := range names {
		hdr := &tar.Header{Name: n, ModTime: epoch, Uid: 0, Gid: 0, Format: tar.FormatUSTAR}
		if strings.HasSuffix(n, "/") {
			hdr.Typeflag, hdr.Mode = tar.TypeDir, 0o755
			if err := tw.WriteHeader(hdr); err != nil {
				return fmt.Errorf("metadata tarball: %w", err)
			}
			continue
		}
		e := files[n]
		hdr.Typeflag, hdr.Mode, hdr.Size = tar.TypeReg, e.Mode, int64(len(e.Data))
		if hdr.Mode == 0 {
			hdr.Mode = 0o644
		}
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("metadata tarball %s: %w", n, err)
		}
		if _, err := tw.Write(e.Data); err != nil {
			return fmt.Errorf("metadata tarball %s: %w", n, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("metadata tarball: %w", err)
	}
	if err := xw.Close(); err != nil {
		return fmt.Errorf("metadata tarball: %w", err)
	}
	return nil
}

// maxMetaEntry bounds any one file read from a metadata tarball: they are
// small YAML, JSON and template files.
const maxMetaEntry = 16 << 20

// Bounds on what a metadata tarball may make us read, so that a hostile one
// (an xz bomb, a million empty entries, a huge dictionary) fails fast with
// memory bounded. Real ones are a few KiB.
const (
	maxMetaFile     = 64 << 20  // compressed bytes, read whole
	maxMetaExpanded = 256 << 20 // decompressed bytes, headers included
	maxMetaEntries  = 10000
	maxXZDict       = 64 << 20
)

// ReadMetaTarball returns the regular files of a metadata tarball (xz, or
// plain tar) by cleaned relative name. Links, devices and paths that leave
// the archive are refused; sizes, counts and the xz dictionary are bounded.
func ReadMetaTarball(r io.Reader) (map[string][]byte, error) {
	raw, err := io.ReadAll(io.LimitReader(r, maxMetaFile+1))
	if err != nil {
		return nil, fmt.Errorf("metadata tarball: %w", err)
	}
	if len(raw) > maxMetaFile {
		return nil, fmt.Errorf("metadata tarball: larger than %d MiB", maxMetaFile>>20)
	}
	var src io.Reader = bytes.NewReader(raw)
	if bytes.HasPrefix(raw, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		if err := checkXZ(raw); err != nil {
			return nil, fmt.Errorf("metadata tarball: %w", err)
		}
		xr, err := xz.ReaderConfig{SingleStream: true}.NewReader(src)
		if err != nil {
			return nil, fmt.Errorf("metadata tarball: %w", err)
		}
		src = xr
	}
	limited := &limitedReader{r: src, left: maxMetaExpanded}
	tr := tar.NewReader(limited)
	out := map[string][]byte{}
	total := int64(0)
	for n := 0; ; n++ {
		if n >= maxMetaEntries {
			return nil, fmt.Errorf("metadata tarball: more than %d entries", maxMetaEntries)
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("metadata tarball: %w", err)
		}
		name := path.Clean(strings.TrimPrefix(hdr.Name, "./"))
		if path.IsAbs(hdr.Name) || name == ".." || strings.HasPrefix(name, "../") {
			return nil, fmt.Errorf("metadata tarball: entry %q leaves the archive", hdr.Name)
		}
		switch hdr.Typeflag {
		case tar.TypeDir:
			continue
		case tar.TypeReg:
		default:
			return nil, fmt.Errorf("metadata tarball: entry %q is not a regular file or directory", hdr.Name)
		}
		if hdr.Size > maxMetaEntry || total+hdr.Size > 4*maxMetaEntry {
			return nil, fmt.Errorf("metadata tarball: entry %q is too large (%d bytes)", hdr.Name, hdr.Size)
		}
		if _, dup := out[name]; dup {
			return nil, fmt.Errorf("metadata tarball: entry %q appears twice", name)
		}
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
		if err != nil {
			return nil, fmt.Errorf("metadata tarball %s: %w", name, err)
		}
		total += int64(len(data))
		out[name] = data
	}
}

// limitedReader fails, rather than ending quietly, past its limit: a
// decompression bomb must be an error, not a truncated archive.
type limitedReader struct {
	r    io.Reader
	left int64
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, fmt.Errorf("decompresses to more than %d MiB", maxMetaExpanded>>20)
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// checkXZ walks a single-stream xz file's blocks through its index and
// refuses any LZMA2 dictionary above maxXZDict: the decoder allocates the
// dictionary a block header asks for before decoding a byte.
func checkXZ(b []byte) error {
	const hdr, foot = 12, 12
	if len(b) < hdr+foot+8 {
		return errors.New("xz: truncated")
	}
	f := b[len(b)-foot:]
	if f[10] != 'Y' || f[11] != 'Z' {
		return errors.New("xz: no stream footer at the end (truncated, padded or several streams)")
	}
	idxLen := (int64(binary.LittleEndian.Uint32(f[4:8])) + 1) * 4
	idxStart := int64(len(b)-foot) - idxLen
	if idxStart < hdr {
		return errors.New("xz: bad index size")
	}
	idx := b[idxStart : len(b)-foot]
	if idx[0] != 0 {
		return errors.New("xz: bad index")
	}
	p := 1
	uv := func() (uint64, error) { return uvarint(idx, &p, "index") }
	count, err := uv()
	if err != nil {
		return err
	}
	off := int64(hdr)
	for range count {
		unpadded, err := uv()
		if err != nil {
			return err
		}
		if _, err := uv(); err != nil {
			return err
		}
		if unpadded > uint64(idxStart) || off+int64(unpadded) > idxStart {
			return errors.New("xz: a block runs past the index")
		}
		if err := checkXZBlock(b[off:idxStart]); err != nil {
			return err
		}
		off += (int64(unpadded) + 3) &^ 3
	}
	if off != idxStart {
		return errors.New("xz: the blocks do not line up with the index")
	}
	return nil
}

// checkXZBlock reads the filter flags of the block header at the start of b.
func checkXZBlock(b []byte) error {
	if len(b) < 1 || b[0] == 0 {
		return errors.New("xz: bad block header")
	}
	size := (int(b[0]) + 1) * 4
	if size > len(b) {
		return errors.New("xz: bad block header")
	}
	h := b[:size]
	q := 2
	uv := func() (uint64, error) { return uvarint(h, &q, "block header") }
	flags := h[1]
	for _, bit := range []byte{0x40, 0x80} { // compressed, uncompressed size
		if flags&bit != 0 {
			if _, err := uv(); err != nil {
				return err
			}
		}
	}
	for range int(flags&3) + 1 {
		id, err := uv()
		if err != nil {
			return err
		}
		n, err := uv()
		if err != nil {
			return err
		}
		if n > uint64(len(h)-q) {
			return errors.New("xz: bad block header")
		}
		props := h[q : q+int(n)]
		q += int(n)
		if id == 0x21 { // LZMA2
			if len(props) != 1 || props[0] > 40 {
				return errors.New("xz: bad LZMA2 properties")
			}
			d := props[0]
			dict := uint64(2|d&1) << (d/2 + 11)
			if d == 40 || dict > maxXZDict {
				return fmt.Errorf("xz: a block asks for a %d MiB dictionary; metadata tarballs use at most %d MiB", dict>>20, maxXZDict>>20)
			}
		}
	}
	return nil
}

// uvarint reads an xz multibyte integer (the same encoding as Go's uvarint)
// at b[*p] and advances *p.
func uvarint(b []byte, p *int, what string) (uint64, error) {
	v, k := binary.Uvarint(b[*p:])
	if k <= 0 {
		return 0, fmt.Errorf("xz: bad %s", what)
	}
	*p += k
	return v, nil
}
