package images

import (
	"archive/tar"
	"fmt"
	"io"
	"path"
	"strings"
)

// Split reads a unified image tarball (what `incus publish` makes: metadata.yaml,
// templates/ and either rootfs/ for a container or rootfs.img for a VM) and
// streams its root filesystem to rootfs: for a container as a rootfs tarball
// with the rootfs/ prefix removed, for a VM as the qcow2 bytes. It returns
// the metadata files (metadata.yaml, templates/…) and the rootfs digest.
func Split(unified io.Reader, rootfs io.Writer) (meta map[string][]byte, digest FileDigest, err error) {
	tr := tar.NewReader(unified)
	hw := newHashingWriter(rootfs)
	var tw *tar.Writer
	meta = map[string][]byte{}
	var total int64
	sawRootfs := false
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, digest, fmt.Errorf("split image: %w", err)
		}
		name := strings.TrimPrefix(hdr.Name, "./")
		switch {
		case name == "rootfs.img":
			if hdr.Typeflag != tar.TypeReg {
				return nil, digest, fmt.Errorf("split image: rootfs.img is not a regular file")
			}
			if _, err := io.Copy(hw, tr); err != nil {
				return nil, digest, fmt.Errorf("split image: rootfs.img: %w", err)
			}
			sawRootfs = true
		case name == "rootfs" || name == "rootfs/" || strings.HasPrefix(name, "rootfs/"):
			if tw == nil {
				tw = tar.NewWriter(hw)
			}
			if err := copyRootfsEntry(tw, tr, hdr, strings.TrimPrefix(strings.TrimPrefix(name, "rootfs"), "/")); err != nil {
				return nil, digest, err
			}
			sawRootfs = true
		case hdr.Typeflag == tar.TypeReg && (name == "metadata.yaml" || strings.HasPrefix(name, "templates/")):
			if hdr.Size > maxMetaEntry || total+hdr.Size > 4*maxMetaEntry {
				return nil, digest, fmt.Errorf("split image: %s is too large", name)
			}
			b, err := io.ReadAll(io.LimitReader(tr, hdr.Size))
			if err != nil {
				return nil, digest, fmt.Errorf("split image %s: %w", name, err)
			}
			total += int64(len(b))
			meta[path.Clean(name)] = b
		}
	}
	if tw != nil {
		if err := tw.Close(); err != nil {
			return nil, digest, fmt.Errorf("split image: %w", err)
		}
	}
	if !sawRootfs {
		return nil, digest, fmt.Errorf("split image: no rootfs/ or rootfs.img in the published image")
	}
	if _, ok := meta["metadata.yaml"]; !ok {
		return nil, digest, fmt.Errorf("split image: no metadata.yaml in the published image")
	}
	return meta, FileDigest{SHA256: hw.sum(), Size: hw.size}, nil
}

// copyRootfsEntry writes one rootfs entry under its new name, keeping owners,
// modes, times, links, devices and extended attributes (PAX records).
func copyRootfsEntry(tw *tar.Writer, tr io.Reader, hdr *tar.Header, rel string) error {
	h := *hdr
	h.Name = "./" + rel
	if rel == "" {
		h.Name = "./"
	}
	if h.Typeflag == tar.TypeLink {
		target := strings.TrimPrefix(strings.TrimPrefix(h.Linkname, "./"), "rootfs/")
		h.Linkname = "./" + target
	}
	if err := tw.WriteHeader(&h); err != nil {
		return fmt.Errorf("split image %s: %w", rel, err)
	}
	if h.Typeflag == tar.TypeReg || h.Typeflag == tar.TypeRegA {
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("split image %s: %w", rel, err)
		}
	}
	return nil
}
