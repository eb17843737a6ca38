package cloudinit

import (
	"bytes"
	"fmt"
	"strings"

	"gopkg.in/yaml.v3"
)

// merge folds src into dst: sequences concatenate, mappings merge key by
// key, and a scalar may only be set once (or again to the same value), so
// two concerns can never silently override each other.
func merge(dst, src *yaml.Node, path string) error {
	if dst.Kind != src.Kind {
		return fmt.Errorf("%s: cannot merge %s into %s", where(path), kind(src), kind(dst))
	}
	switch dst.Kind {
	case yaml.SequenceNode:
		dst.Content = append(dst.Content, src.Content...)
		return nil
	case yaml.ScalarNode:
		if dst.Value != src.Value || dst.Tag != src.Tag {
			return fmt.Errorf("%s: set to %q and to %q by different fragments", where(path), dst.Value, src.Value)
		}
		return nil
	case yaml.MappingNode:
		for i := 0; i+1 < len(src.Content); i += 2 {
			k, v := src.Content[i], src.Content[i+1]
			p := k.Value
			if path != "" {
				p = path + "." + k.Value
			}
			if existing := lookup(dst, k.Value); existing != nil {
				if err := merge(existing, v, p); err != nil {
					return err
				}
				continue
			}
			dst.Content = append(dst.Content, k, v)
		}
		return nil
	}
	return fmt.Errorf("%s: unsupported YAML node (aliases and anchors are not used in fragments)", where(path))
}

func lookup(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func where(path string) string {
	if path == "" {
		return "top level"
	}
	return path
}

func kind(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		return "a scalar"
	}
	return "an unsupported node"
}

// emit writes the document: the #cloud-config header, then YAML with
// two-space indentation, multi-line strings as literal blocks, and no
// comments (fragment comments document templates, not output).
func emit(doc *yaml.Node) ([]byte, error) {
	if doc == nil {
		return nil, fmt.Errorf("no fragments rendered")
	}
	normalise(doc)
	var buf bytes.Buffer
	buf.WriteString(Header)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, err
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func normalise(n *yaml.Node) {
	n.HeadComment, n.LineComment, n.FootComment = "", "", ""
	n.Line, n.Column = 0, 0
	if n.Kind == yaml.ScalarNode && n.Tag == "!!str" {
		n.Style = 0
		if strings.Contains(n.Value, "\n") && literalSafe(n.Value) {
			n.Style = yaml.LiteralStyle
		} else if needsQuotes(n.Value) {
			n.Style = yaml.DoubleQuotedStyle
		}
	}
	for _, c := range n.Content {
		normalise(c)
	}
}

// literalSafe reports whether a literal block reproduces s exactly: no
// trailing spaces on lines, no tabs or carriage returns that emitters treat
// specially, and not starting with a space (which would need an indent hint).
func literalSafe(s string) bool {
	if strings.HasPrefix(s, " ") || strings.ContainsAny(s, "\r\x00") {
		return false
	}
	for _, line := range strings.Split(s, "\n") {
		if strings.HasSuffix(line, " ") || strings.HasSuffix(line, "\t") {
			return false
		}
	}
	return true
}

// needsQuotes is true for strings that plain style would turn into another
// type or that read ambiguously (0755 as an octal number, "on" as a bool).
func needsQuotes(s string) bool {
	var v any
	if err := yaml.Unmarshal([]byte(s), &v); err != nil {
		return true
	}
	str, ok := v.(string)
	return !ok || str != s
}
