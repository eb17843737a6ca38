// Package safetext makes text that came from outside (a guest, an image, a
// repository) safe to print on the operator's terminal: control
// characters (escape sequences could hide or rewrite a warning, or drive
// the terminal) and bidirectional overrides become '?'.
package safetext

import (
	"fmt"
	"io"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Line is s on one line: every control character, newlines included, and
// every bidirectional override or invalid byte becomes '?'.
func Line(s string) string { return clean(s, false) }

// Text is s with its newlines and tabs kept and everything else Line
// replaces replaced.
func Text(s string) string { return clean(s, true) }

func clean(s string, multiline bool) string {
	return strings.Map(func(r rune) rune {
		switch {
		case multiline && (r == '\n' || r == '\t'):
			return r
		case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0, r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == utf8.RuneError:
			return '?'
		}
		return r
	}, s)
}

// JSON wraps w, to which JSON text is written, so that every character
// outside printable ASCII in it goes out as a \u escape: the same JSON
// value, but nothing a terminal acts on (json escapes only those below
// 0x20; C1 controls, DEL and bidirectional overrides pass raw).
func JSON(w io.Writer) io.Writer { return jsonWriter{w} }

type jsonWriter struct{ w io.Writer }

func (j jsonWriter) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, r := range string(p) {
		if r < 0x7f {
			b.WriteRune(r)
			continue
		}
		for _, u := range utf16.Encode([]rune{r}) {
			fmt.Fprintf(&b, `\u%04x`, u)
		}
	}
	if _, err := io.WriteString(j.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
