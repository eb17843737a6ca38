package safetext

import (
	"bytes"
	"encoding/json"
	"maps"
	"testing"
)

func TestLineAndText(t *testing.T) {
	for in, want := range map[string][2]string{
		"x\x1b[8mhidden":     {"x?[8mhidden", "x?[8mhidden"},
		"a\u202eb":           {"a?b", "a?b"},
		"line\nbreak\r":      {"line?break?", "line\nbreak?"},
		"tab\there":          {"tab?here", "tab\there"},
		"plain/path-ä.json":  {"plain/path-ä.json", "plain/path-ä.json"},
		"bad\xffutf8":        {"bad?utf8", "bad?utf8"},
		"bell\x07 and \x9b1": {"bell? and ?1", "bell? and ?1"},
	} {
		if got := Line(in); got != want[0] {
			t.Errorf("Line(%q) = %q, want %q", in, got, want[0])
		}
		if got := Text(in); got != want[1] {
			t.Errorf("Text(%q) = %q, want %q", in, got, want[1])
		}
	}
}

// JSON through JSON's writer is the same value in printable ASCII.
func TestJSON(t *testing.T) {
	in := map[string]string{"host\u202e": "\u009b2J\x7f\x1b[8m é 😀 \xff"}
	var buf bytes.Buffer
	if err := json.NewEncoder(JSON(&buf)).Encode(in); err != nil {
		t.Fatal(err)
	}
	for _, c := range buf.Bytes() {
		if (c < 0x20 && c != '\n') || c >= 0x7f {
			t.Fatalf("byte %#x printed: %q", c, buf.String())
		}
	}
	var out map[string]string
	if err := json.Unmarshal(buf.Bytes(), &out); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"host\u202e": "\u009b2J\x7f\x1b[8m é 😀 \ufffd"}
	if !maps.Equal(out, want) {
		t.Errorf("%q came back as %q", want, out)
	}
}
