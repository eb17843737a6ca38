package capped

import (
	"fmt"
	"testing"
)

// Every write is accepted whole; the first Limit bytes are kept, and Over
// says more came.
func TestBuffer(t *testing.T) {
	b := &Buffer{Limit: 5}
	for _, s := range []string{"abc", "def", "gh"} {
		if n, err := fmt.Fprint(b, s); n != len(s) || err != nil {
			t.Fatalf("write %q: %d %v", s, n, err)
		}
	}
	if b.String() != "abcde" || !b.Over {
		t.Errorf("kept %q, over %v", b.String(), b.Over)
	}
	exact := &Buffer{Limit: 3}
	fmt.Fprint(exact, "abc")
	if exact.String() != "abc" || exact.Over {
		t.Errorf("exactly the limit: kept %q, over %v", exact.String(), exact.Over)
	}
}
