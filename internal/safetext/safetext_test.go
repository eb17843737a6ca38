package safetext

import "testing"

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
