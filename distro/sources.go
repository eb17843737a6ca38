// Package distro builds base images from a distribution's signed packages
// with mmdebstrap: no image server, only the mirror and keyring the host's
// apt already trusts. It plans the build from the host's apt sources, runs
// mmdebstrap, and hands incus a split image carrying the NoCloud seed
// templates through which cloud-init receives its user-data.
package distro

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Source is one apt source: an archive and the suites and components it
// serves, with the keyring its signatures are checked against.
type Source struct {
	URI        string
	Suites     []string
	Components []string
	SignedBy   string
	// InlineKey: Signed-By holds a key (or anything but a keyring path),
	// as third-party sources (Ubuntu PPAs) write it.
	InlineKey bool
}

// maxSources bounds what is read of one sources file.
const maxSources = 1 << 20

// ParseDeb822 reads apt's deb822 sources format (sources.list.d/*.sources):
// paragraphs of "Field: value" lines, continuation lines indented, '#'
// comments. Stanzas that are disabled or not of type deb are skipped; a
// stanza with several URIs gives one Source per URI.
func ParseDeb822(r io.Reader) ([]Source, error) {
	var out []Source
	fields := map[string]string{}
	last := ""
	flush := func() {
		defer clear(fields)
		if !slices.Contains(strings.Fields(fields["types"]), "deb") || strings.EqualFold(fields["enabled"], "no") {
			return
		}
		for _, uri := range strings.Fields(fields["uris"]) {
			sb := fields["signed-by"]
			out = append(out, Source{
				URI: uri, Suites: strings.Fields(fields["suites"]),
				Components: strings.Fields(fields["components"]), SignedBy: signedByPath(sb),
				InlineKey: sb != "" && signedByPath(sb) == "",
			})
		}
	}
	sc := bufio.NewScanner(io.LimitReader(r, maxSources))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
			last = ""
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("line %d: continuation line outside a field", n)
			}
			fields[last] += "\n" + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, fmt.Errorf("line %d: want \"Field: value\", got %q", n, line)
			}
			last = strings.ToLower(strings.TrimSpace(k))
			fields[last] = strings.TrimSpace(v)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	flush()
	return out, nil
}

// signedByPath keeps Signed-By when it names a keyring file; an inline key
// (a multi-line value) is not a path mmdebstrap could use.
func signedByPath(v string) string {
	if strings.Contains(v, "\n") || !strings.HasPrefix(v, "/") {
		return ""
	}
	return v
}

// ParseOneLine reads apt's one-line format (sources.list): "deb [options]
// URI suite component...". deb-src lines and comments are skipped.
func ParseOneLine(r io.Reader) ([]Source, error) {
	var out []Source
	sc := bufio.NewScanner(io.LimitReader(r, maxSources))
	for n := 1; sc.Scan(); n++ {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		var opts []string
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			end := slices.IndexFunc(f, func(s string) bool { return strings.HasSuffix(s, "]") })
			if end < 0 {
				return nil, fmt.Errorf("line %d: options not closed with ]", n)
			}
			opts = strings.Fields(strings.Trim(strings.Join(f[:end+1], " "), "[]"))
			f = f[end+1:]
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("line %d: want \"deb URI suite [component...]\", got %q", n, sc.Text())
		}
		s := Source{URI: f[0], Suites: []string{f[1]}, Components: f[2:]}
		for _, o := range opts {
			if k, v, ok := strings.Cut(o, "="); ok && k == "signed-by" {
				s.SignedBy = signedByPath(v)
				s.InlineKey = signedByPath(v) == ""
			}
		}
		out = append(out, s)
	}
	return out, sc.Err()
}

// HostSources reads the apt sources under root ("/" for the host's own):
// sources.list, then sources.list.d's *.list and *.sources in name order.
func HostSources(root string) ([]Source, error) {
	var out []Source
	read := func(p string, parse func(io.Reader) ([]Source, error)) error {
		b, err := os.ReadFile(p)
		if os.IsNotExist(err) {
			return nil
		} else if err != nil {
			return err
		}
		s, err := parse(bytes.NewReader(b))
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, s...)
		return nil
	}
	etc := filepath.Join(root, "etc/apt")
	if err := read(filepath.Join(etc, "sources.list"), ParseOneLine); err != nil {
		return nil, err
	}
	names, _ := filepath.Glob(filepath.Join(etc, "sources.list.d", "*"))
	slices.Sort(names)
	for _, p := range names {
		var err error
		switch filepath.Ext(p) {
		case ".list":
			err = read(p, ParseOneLine)
		case ".sources":
			err = read(p, ParseDeb822)
		}
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}
