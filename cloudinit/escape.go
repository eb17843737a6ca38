package cloudinit

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"strings"
)

// yamlQuote renders a value as one YAML flow scalar. Strings become JSON
// strings (a subset of YAML's double-quoted style), so quotes, newlines, $(),
// backticks and YAML indicators are all inert text; numbers and booleans stay
// typed.
func yamlQuote(v any) (string, error) {
	switch x := v.(type) {
	case string, int, bool:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(x); err != nil {
			return "", err
		}
		return strings.TrimSuffix(buf.String(), "\n"), nil
	}
	return "", fmt.Errorf("yaml: cannot quote a %T", v)
}

// xmlEscape escapes text for an XML element's content.
func xmlEscape(s string) (string, error) {
	var b strings.Builder
	if err := xml.EscapeText(&b, []byte(s)); err != nil {
		return "", err
	}
	return b.String(), nil
}

// iniValue passes a value into an INI-style file (npmrc, pip.conf, Go's
// env file) where no quoting exists: it refuses anything that could end
// the value or start another line, a comment or a section.
func iniValue(s string) (string, error) {
	if s == "" || strings.ContainsAny(s, "\r\n;#[]\"'\\") || strings.TrimSpace(s) != s {
		return "", fmt.Errorf("ini: %q cannot be written as a plain value", s)
	}
	return s, nil
}

// tomlQuote writes a TOML basic string: JSON's escapes are TOML's.
func tomlQuote(s string) (string, error) { return yamlQuote(s) }
