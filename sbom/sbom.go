// Package sbom is an image's record of every installed package: the
// inventory a bake lists inside the builder (Debian packages, global npm
// packages, Python distributions and the toolchains provisioning
// recorded), written as a CycloneDX JSON document that travels inside the
// image's metadata tarball, so its fingerprint and signature cover it; and
// the comparison of two such records.
//
// Both inputs come from outside: the inventory from a guest that ran
// downloaded installers, the document from an image a teammate or a server
// sent. Both are read with bounded sizes and counts, and fuzzed.
package sbom

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	cdx "github.com/CycloneDX/cyclonedx-go"
	"github.com/package-url/packageurl-go"
)

// Package is one installed package.
type Package struct {
	Type    string `json:"type"` // deb, npm, pypi or tool
	Name    string `json:"name"`
	Version string `json:"version"`
	Arch    string `json:"arch,omitempty"` // deb only
}

// Types of package, as the inventory names them.
const (
	Deb  = "deb"
	NPM  = "npm"
	PyPI = "pypi"
	Tool = "tool" // a toolchain vibe's provisioning installed and recorded
)

var knownTypes = map[string]bool{Deb: true, NPM: true, PyPI: true, Tool: true}

// Bounds on outside input. A full image lists a few thousand packages.
const (
	MaxPackages  = 50000
	MaxInventory = 16 << 20 // bytes of inventory output
	MaxDocument  = 16 << 20 // bytes of CycloneDX JSON: the metadata tarball's entry limit
	maxField     = 512
)

func cmpPackage(a, b Package) int {
	return cmp.Or(cmp.Compare(a.Type, b.Type), cmp.Compare(a.Name, b.Name), cmp.Compare(a.Arch, b.Arch), cmp.Compare(a.Version, b.Version))
}

// ParseInventory reads the inventory script's output: one package per
// line, TYPE, NAME, VERSION and (for deb) ARCH separated by tabs. Every
// field must be printable and free of spaces; anything else is an error
// naming the line, never a package quietly dropped. Duplicates collapse;
// the result is sorted.
func ParseInventory(r io.Reader) ([]Package, error) {
	sc := bufio.NewScanner(io.LimitReader(r, MaxInventory+1))
	sc.Buffer(make([]byte, 0, 4096), 4*maxField)
	var out []Package
	read := 0
	for n := 1; sc.Scan(); n++ {
		read += len(sc.Bytes()) + 1
		line := sc.Text()
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		if len(f) < 3 || len(f) > 4 {
			return nil, fmt.Errorf("inventory line %d: want TYPE, NAME, VERSION[, ARCH] separated by tabs, got %d fields", n, len(f))
		}
		p := Package{Type: f[0], Name: f[1], Version: f[2]}
		if len(f) == 4 {
			p.Arch = f[3]
		}
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("inventory line %d: %w", n, err)
		}
		if len(out) == MaxPackages {
			return nil, fmt.Errorf("inventory: more than %d packages", MaxPackages)
		}
		out = append(out, p)
	}
	if err := sc.Err(); err != nil {
		if errors.Is(err, bufio.ErrTooLong) {
			return nil, fmt.Errorf("inventory: a line longer than %d bytes", 4*maxField)
		}
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if read > MaxInventory {
		return nil, fmt.Errorf("inventory: more than %d MiB", MaxInventory>>20)
	}
	slices.SortFunc(out, cmpPackage)
	return slices.Compact(out), nil
}

func (p Package) check() error {
	if !knownTypes[p.Type] {
		return fmt.Errorf("unknown package type %q (want deb, npm, pypi or tool)", p.Type)
	}
	if p.Arch != "" && p.Type != Deb {
		return fmt.Errorf("%s package %q has an architecture; only deb packages do", p.Type, p.Name)
	}
	for what, v := range map[string]string{"name": p.Name, "version": p.Version, "architecture": p.Arch} {
		if v == "" && what != "architecture" {
			return fmt.Errorf("empty %s", what)
		}
		if len(v) > maxField {
			return fmt.Errorf("%s longer than %d bytes", what, maxField)
		}
		for _, r := range v {
			if r == unicode.ReplacementChar || !unicode.IsPrint(r) || unicode.IsSpace(r) {
				return fmt.Errorf("%s %q holds a space or a character that is not printable", what, v)
			}
		}
	}
	if p.Type == NPM && !npmName.MatchString(p.Name) {
		return fmt.Errorf("npm package name %q: want NAME or @SCOPE/NAME", p.Name)
	}
	return nil
}

// Subject says what image a document describes.
type Subject struct {
	Recipe       string // the recipe hash: the image's version
	InstanceType string // container or vm
	OS, Release  string // the base's distribution ("debian", "bookworm")
	Base         string // the base image's source
	Created      time.Time
	Tool         string // "vibe-build VERSION"
}

// SpecVersion is the CycloneDX version documents are written in: the
// newest that common scanners read.
const SpecVersion = cdx.SpecVersion1_6

// Document writes pkgs as a CycloneDX JSON document. The output depends
// only on its inputs (no serial number, the image's own creation time), so
// a document can be checked by rebuilding it.
func Document(pkgs []Package, s Subject) ([]byte, error) {
	pkgs = slices.Clone(pkgs)
	slices.SortFunc(pkgs, cmpPackage)
	pkgs = slices.Compact(pkgs)
	comps := make([]cdx.Component, 0, len(pkgs))
	for _, p := range pkgs {
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("sbom: %s %s: %w", p.Type, p.Name, err)
		}
		purl := p.purl(s)
		c := cdx.Component{BOMRef: purl, Type: cdx.ComponentTypeLibrary, Name: p.Name, Version: p.Version, PackageURL: purl}
		if p.Type == Tool {
			c.Type = cdx.ComponentTypeApplication
		}
		comps = append(comps, c)
	}
	imageType := cdx.ComponentTypeContainer
	if s.InstanceType == "vm" {
		imageType = cdx.ComponentTypeOS
	}
	props := []cdx.Property{{Name: "vibe:instance-type", Value: s.InstanceType}, {Name: "vibe:base", Value: s.Base}}
	toolName, toolVersion, _ := strings.Cut(s.Tool, " ")
	bom := cdx.NewBOM()
	bom.Metadata = &cdx.Metadata{
		Timestamp: s.Created.UTC().Format(time.RFC3339),
		Tools:     &cdx.ToolsChoice{Components: &[]cdx.Component{{Type: cdx.ComponentTypeApplication, Name: toolName, Version: toolVersion}}},
		Component: &cdx.Component{BOMRef: "vibe-image", Type: imageType, Name: "vibe sandbox image", Version: s.Recipe, Properties: &props},
	}
	bom.Components = &comps
	var buf bytes.Buffer
	enc := cdx.NewBOMEncoder(&buf, cdx.BOMFileFormatJSON).SetPretty(true).SetEscapeHTML(false)
	if err := enc.EncodeVersion(bom, SpecVersion); err != nil {
		return nil, fmt.Errorf("sbom: %w", err)
	}
	// What could not be read back must not be written: an image whose
	// SBOM is over the limit would read as damaged.
	if buf.Len() > MaxDocument {
		return nil, fmt.Errorf("sbom: the document would be %d MiB, over the %d MiB an image may carry", buf.Len()>>20, MaxDocument>>20)
	}
	return buf.Bytes(), nil
}

// purl is the package's Package URL (pkg:deb/debian/curl@7.88?arch=amd64…).
func (p Package) purl(s Subject) string {
	var u *packageurl.PackageURL
	switch p.Type {
	case Deb:
		q := map[string]string{"arch": p.Arch}
		if s.OS != "" && s.Release != "" {
			q["distro"] = strings.ToLower(s.OS) + "-" + s.Release
		}
		u = packageurl.NewPackageURL(packageurl.TypeDebian, strings.ToLower(cmp.Or(s.OS, "debian")), p.Name, p.Version, packageurl.QualifiersFromMap(q), "")
	case NPM:
		ns, name, ok := strings.Cut(p.Name, "/")
		if !ok {
			ns, name = "", p.Name
		}
		u = packageurl.NewPackageURL(packageurl.TypeNPM, ns, name, p.Version, nil, "")
	case PyPI:
		// PEP 503's normal form, which the purl specification asks for.
		name := strings.ToLower(pep503.ReplaceAllString(p.Name, "-"))
		u = packageurl.NewPackageURL(packageurl.TypePyPi, "", name, p.Version, nil, "")
	default:
		u = packageurl.NewPackageURL(packageurl.TypeGeneric, "", p.Name, p.Version, nil, "")
	}
	return u.ToString()
}

var (
	pep503 = regexp.MustCompile(`[-_.]+`)
	// npmName is NAME or @SCOPE/NAME, neither part empty (the purl's
	// namespace and name).
	npmName = regexp.MustCompile(`^(@[^/@]+/)?[^/@][^/]*$`)
)

// Parse reads the packages of a CycloneDX JSON document that Document
// wrote: each top-level component with a Package URL of a known type. A
// document that is not CycloneDX, or is too large, is an error.
//
// It streams the document and keeps only what it reads (a component's
// name, version and purl), so that a hostile one (millions of empty
// components, huge fields it does not use) is refused with memory bounded
// by the document's size, never by what decoding it would build.
func Parse(doc []byte) ([]Package, error) {
	if len(doc) > MaxDocument {
		return nil, fmt.Errorf("sbom: larger than %d MiB", MaxDocument>>20)
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, errors.New("sbom: not CycloneDX JSON: not a JSON object")
	}
	var format string
	var out []Package
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, fmt.Errorf("sbom: not CycloneDX JSON: %w", err)
		}
		key, _ := t.(string)
		switch key {
		case "bomFormat":
			if err := dec.Decode(&format); err != nil {
				return nil, fmt.Errorf("sbom: bomFormat: %w", err)
			}
		case "components":
			if out, err = components(dec); err != nil {
				return nil, err
			}
		default:
			var skip json.RawMessage
			if err := dec.Decode(&skip); err != nil {
				return nil, fmt.Errorf("sbom: not CycloneDX JSON: %w", err)
			}
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("sbom: not CycloneDX JSON: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("sbom: not CycloneDX JSON: data after the document")
	}
	if format != cdx.BOMFormat {
		return nil, fmt.Errorf("sbom: bomFormat is %q, not %q", format, cdx.BOMFormat)
	}
	slices.SortFunc(out, cmpPackage)
	return slices.Compact(out), nil
}

// components reads the components array, one element at a time.
func components(dec *json.Decoder) ([]Package, error) {
	if t, err := dec.Token(); err != nil || t != json.Delim('[') {
		if err == nil && t == nil {
			return nil, nil // null
		}
		return nil, errors.New("sbom: components is not a list")
	}
	var out []Package
	for i := 0; dec.More(); i++ {
		if i == MaxPackages {
			return nil, fmt.Errorf("sbom: more than %d components", MaxPackages)
		}
		var c struct {
			Name    string `json:"name"`
			Version string `json:"version"`
			PURL    string `json:"purl"`
		}
		if err := dec.Decode(&c); err != nil {
			return nil, fmt.Errorf("sbom: component %d: %w", i, err)
		}
		u, err := packageurl.FromString(c.PURL)
		if err != nil {
			// The library's error quotes the purl raw: say it escaped.
			return nil, fmt.Errorf("sbom: component %d: %q is not a Package URL", i, c.PURL)
		}
		p := Package{Name: c.Name, Version: c.Version}
		switch u.Type {
		case packageurl.TypeDebian:
			p.Type, p.Arch = Deb, u.Qualifiers.Map()["arch"]
		case packageurl.TypeNPM:
			p.Type = NPM
		case packageurl.TypePyPi:
			p.Type = PyPI
		case packageurl.TypeGeneric:
			p.Type = Tool
		default:
			return nil, fmt.Errorf("sbom: component %d (%q): purl type %q is not one vibe-build writes", i, c.Name, u.Type)
		}
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("sbom: component %d: %w", i, err)
		}
		out = append(out, p)
	}
	if _, err := dec.Token(); err != nil {
		return nil, fmt.Errorf("sbom: components: %w", err)
	}
	return out, nil
}

// Change is one package that differs between two images: added (A is
// ""), removed (B is "") or changed. Where an image holds several
// versions of one package (two Node installations each with npm), they
// read as one comma-separated value.
type Change struct {
	Type string `json:"type"`
	Name string `json:"name"` // deb packages: NAME:ARCH
	A    string `json:"a"`
	B    string `json:"b"`
}

// Kind is "added", "removed" or "changed".
func (c Change) Kind() string {
	switch {
	case c.A == "":
		return "added"
	case c.B == "":
		return "removed"
	}
	return "changed"
}

// Diff lists the packages that differ between a and b, sorted by type and
// name.
func Diff(a, b []Package) []Change {
	va, vb := versionsByKey(a), versionsByKey(b)
	keys := map[[2]string]bool{}
	for k := range va {
		keys[k] = true
	}
	for k := range vb {
		keys[k] = true
	}
	var out []Change
	for k := range keys {
		if va[k] != vb[k] {
			out = append(out, Change{Type: k[0], Name: k[1], A: va[k], B: vb[k]})
		}
	}
	slices.SortFunc(out, func(x, y Change) int { return cmp.Or(cmp.Compare(x.Type, y.Type), cmp.Compare(x.Name, y.Name)) })
	return out
}

func versionsByKey(pkgs []Package) map[[2]string]string {
	all := map[[2]string][]string{}
	for _, p := range pkgs {
		name := p.Name
		if p.Arch != "" {
			name += ":" + p.Arch
		}
		k := [2]string{p.Type, name}
		all[k] = append(all[k], p.Version)
	}
	out := make(map[[2]string]string, len(all))
	for k, v := range all {
		slices.Sort(v)
		out[k] = strings.Join(slices.Compact(v), ", ")
	}
	return out
}
