package images

import (
	"archive/tar"
	"bytes"
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

// ReadMetaTarball returns the regular files of a metadata tarball (xz, or
// plain tar) by cleaned relative name. Links, devices and paths that leave
// the archive are refused; sizes are bounded.
func ReadMetaTarball(r io.Reader) (map[string][]byte, error) {
	br := &peekReader{r: r}
	var src io.Reader = br
	if magic, _ := br.peek(6); bytes.Equal(magic, []byte{0xfd, '7', 'z', 'X', 'Z', 0}) {
		xr, err := xzReader(br)
		if err != nil {
			return nil, fmt.Errorf("metadata tarball: %w", err)
		}
		src = xr
	}
	tr := tar.NewReader(src)
	out := map[string][]byte{}
	total := int64(0)
	for {
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
		data, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
		if err != nil {
			return nil, fmt.Errorf("metadata tarball %s: %w", name, err)
		}
		total += int64(len(data))
		out[name] = data
	}
}

// peekReader lets the reader look at the first bytes without losing them.
type peekReader struct {
	r   io.Reader
	buf []byte
}

func (p *peekReader) peek(n int) ([]byte, error) {
	for len(p.buf) < n {
		b := make([]byte, n-len(p.buf))
		m, err := p.r.Read(b)
		p.buf = append(p.buf, b[:m]...)
		if err != nil {
			return p.buf, err
		}
	}
	return p.buf[:n], nil
}

func (p *peekReader) Read(b []byte) (int, error) {
	if len(p.buf) > 0 {
		n := copy(b, p.buf)
		p.buf = p.buf[n:]
		return n, nil
	}
	return p.r.Read(b)
}

// xzReader decompresses an xz stream.
func xzReader(r io.Reader) (io.Reader, error) { return xz.NewReader(r) }
