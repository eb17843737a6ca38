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
