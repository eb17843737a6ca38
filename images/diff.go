package images

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/aymanbagabas/go-udiff"
)

// Difference is one manifest field whose value differs between two images;
// a side is "" where that image does not have the field.
type Difference struct {
	Field string `json:"field"`
	A     string `json:"a"`
	B     string `json:"b"`
}

// DiffManifests compares two manifest.json documents field by field
// (versions.node, config.packages.extra, config.egress.allow, base.source…).
// Lists of plain values compare as one comma-separated value, which is how
// a reader wants to see a package or allowlist change.
func DiffManifests(a, b []byte) ([]Difference, error) {
	fa, err := flatManifest(a)
	if err != nil {
		return nil, fmt.Errorf("first image: %w", err)
	}
	fb, err := flatManifest(b)
	if err != nil {
		return nil, fmt.Errorf("second image: %w", err)
	}
	keys := map[string]bool{}
	for k := range fa {
		keys[k] = true
	}
	for k := range fb {
		keys[k] = true
	}
	var out []Difference
	for k := range keys {
		if fa[k] != fb[k] {
			out = append(out, Difference{Field: k, A: fa[k], B: fb[k]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Field < out[j].Field })
	return out, nil
}

func flatManifest(b []byte) (map[string]string, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	out := map[string]string{}
	flatten("", v, out)
	return out, nil
}

func flatten(prefix string, v any, out map[string]string) {
	join := func(k string) string {
		if prefix == "" {
			return k
		}
		return prefix + "." + k
	}
	switch t := v.(type) {
	case map[string]any:
		for k, e := range t {
			flatten(join(k), e, out)
		}
	case []any:
		plain := make([]string, 0, len(t))
		for i, e := range t {
			switch e.(type) {
			case map[string]any, []any:
				flatten(fmt.Sprintf("%s[%d]", prefix, i), e, out)
			default:
				plain = append(plain, scalar(e))
			}
		}
		if len(plain) > 0 || len(t) == 0 {
			out[prefix] = strings.Join(plain, ", ")
		}
	default:
		out[prefix] = scalar(t)
	}
}

func scalar(v any) string {
	switch t := v.(type) {
	case nil:
		return "null"
	case string:
		return t
	default:
		b, _ := json.Marshal(t)
		return string(b)
	}
}

// DiffUserData is a unified diff of two user-data documents ("" when equal).
func DiffUserData(aName string, a []byte, bName string, b []byte) string {
	return udiff.Unified(aName, bName, string(a), string(b))
}

// MetadataText renders what metadata.yaml makes incus do, deterministically:
// its properties, and each template with its target, triggers, owner,
// mode, its own properties and the full template file (incus writes it
// into every new instance as root). Unknown targets are marked.
func MetadataText(c *Contents) string {
	var b strings.Builder
	md := c.Metadata
	fmt.Fprintf(&b, "architecture: %s\ncreation_date: %d\n", md.Architecture, md.CreationDate)
	for _, k := range slices.Sorted(maps.Keys(md.Properties)) {
		fmt.Fprintf(&b, "property %s: %q\n", k, md.Properties[k])
	}
	for _, target := range slices.Sorted(maps.Keys(md.Templates)) {
		t := md.Templates[target]
		if t == nil {
			continue
		}
		mark := ""
		if !KnownTemplates[target] {
			mark = "  <-- NOT ONE OF VIBE'S: written into every new instance as root"
		}
		fmt.Fprintf(&b, "template %s%s\n  when: %s\n  file: templates/%s\n", target, mark, strings.Join(t.When, ", "), t.Template)
		if t.CreateOnly || t.UID != "" || t.GID != "" || t.Mode != "" {
			fmt.Fprintf(&b, "  create_only: %v uid: %q gid: %q mode: %q\n", t.CreateOnly, t.UID, t.GID, t.Mode)
		}
		for _, k := range slices.Sorted(maps.Keys(t.Properties)) {
			fmt.Fprintf(&b, "  property %s:\n%s", k, indent(t.Properties[k]))
		}
		fmt.Fprintf(&b, "  content:\n%s", indent(string(c.Templates[t.Template])))
	}
	return b.String()
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "    | " + strings.ReplaceAll(strings.TrimSuffix(s, "\n"), "\n", "\n    | ") + "\n"
}
