package main

import "testing"

func TestCount(t *testing.T) {
	for _, c := range []struct {
		n    int
		noun string
		want string
	}{
		{0, "project", "0 projects"},
		{1, "project", "1 project"},
		{2, "project", "2 projects"},
		{1, "allowlist entry", "1 allowlist entry"},
		{12, "allowlist entry", "12 allowlist entries"},
	} {
		if got := count(c.n, c.noun); got != c.want {
			t.Errorf("count(%d, %q) = %q, want %q", c.n, c.noun, got, c.want)
		}
	}
}
