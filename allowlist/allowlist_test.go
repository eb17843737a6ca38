package allowlist

import (
	"regexp"
	"strings"
	"testing"
)

func TestSuffixMatchesDomainAndSubdomainsOnly(t *testing.T) {
	e, err := Parse("github.com")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"github.com":          true,
		"api.github.com":      true,
		"a.b.github.com":      true,
		"GitHub.COM":          true,
		"github.com.evil.net": false,
		"evilgithub.com":      false,
		"github.computer":     false,
		"github.co":           false,
		"github-com":          false,
		"githubXcom":          false,
		"":                    false,
	} {
		if got := e.Match(host); got != want {
			t.Errorf("github.com matches %q = %v, want %v", host, got, want)
		}
	}
}

func TestExactMatchesOneHost(t *testing.T) {
	e, err := Parse("=repo1.maven.org")
	if err != nil {
		t.Fatal(err)
	}
	for host, want := range map[string]bool{
		"repo1.maven.org":      true,
		"x.repo1.maven.org":    false,
		"repo1.maven.org.evil": false,
		"repo1Xmaven.org":      false,
	} {
		if got := e.Match(host); got != want {
			t.Errorf("=repo1.maven.org matches %q = %v, want %v", host, got, want)
		}
	}
	ip, err := Parse("=192.0.2.10")
	if err != nil {
		t.Fatal(err)
	}
	if !ip.Match("192.0.2.10") || ip.Match("192.0.2.100") || ip.Match("192x0.2.10") {
		t.Errorf("=192.0.2.10 pattern %q matches wrongly", ip.Pattern)
	}
}

func TestParseForms(t *testing.T) {
	tests := []struct {
		in      string
		kind    Kind
		pattern string
	}{
		{"github.com", Suffix, `^(.+\.)?github\.com$`},
		{"  Example.ORG ", Suffix, `^(.+\.)?example\.org$`},
		{"=repo1.maven.org", Exact, `^repo1\.maven\.org$`},
		{"=raw.githubusercontent.com", Exact, `^raw\.githubusercontent\.com$`},
		{"=192.0.2.7", Exact, `^192\.0\.2\.7$`},
		{`re:^(api|www)\.example\.com$`, Regex, `^(api|www)\.example\.com$`},
		{`re:^[a-z0-9-]+\.pkg\.example\.net$`, Regex, `^[a-z0-9-]+\.pkg\.example\.net$`},
		{`re:^one\.example\.com$`, Regex, `^one\.example\.com$`},
	}
	for _, tt := range tests {
		e, err := Parse(tt.in)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if e.Kind != tt.kind || e.Pattern != tt.pattern {
			t.Errorf("Parse(%q) = %v %q, want %v %q", tt.in, e.Kind, e.Pattern, tt.kind, tt.pattern)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	tests := []struct {
		in, why string
	}{
		{"", "empty"},
		{"com", "single label"},
		{"localhost", "single label"},
		{"*", "wildcard"},
		{"*.github.com", "wildcard"},
		{"co.uk", "public suffix"},
		{"github.io", "public suffix"},
		{"githubusercontent.com", "public suffix"},
		{"s3.amazonaws.com", "public suffix"},
		{"https://github.com", "URL"},
		{"github.com:443", "host:port"},
		{"github.com/path", "URL"},
		{"192.0.2.1", "address cannot be a domain suffix"},
		{"=::1", "only IPv4"},
		{"=2001:db8::1", "only IPv4"},
		{"github..com", "empty label"},
		{".github.com", "empty label"},
		{"-a.com", "hyphen"},
		{"a b.com", "not allowed"},
		{"a$(id).com", "not allowed"},
		{"a'b.com", "not allowed"},
		{"a\nb.com", "not allowed"},
		{"1.2.3.456", "numeric top-level"},
		{strings.Repeat("a", 64) + ".com", "longer than 63"},
		{"re:", "empty pattern"},
		{"re:.*", "anchored"},
		{"re:^.*$", "fixed domain"},
		{`re:github\.com`, "anchored"},
		{`re:^github\.com`, "anchored"},
		{`re:github\.com$`, "anchored"},
		{`re:^github\.com.*$`, "fixed domain"},
		{`re:^github\.com$|evil`, "alternation"},
		{`re:^a$|^b\.com$`, "alternation"},
		{`re:^.*github\.com$`, "label boundary"},
		{`re:^[a-z]+\.s3\.amazonaws\.com$`, "public suffix"},
		{`re:^[a-z]+\.com$`, "single label"},
		{`re:^\d+\.example\.com$`, "POSIX"},
		{"re:^(a\\.example\\.com$", "POSIX"},
		{"re:^a\n\\.example\\.com$", "line break"},
		{`re:^a$b\.example\.com$`, "anchors"},
		{`re:^a#b\.example\.com$`, "'#'"},
		{`re:^a b\.example\.com$`, "white space"},
		{"re:^(" + strings.Repeat("a|", 200) + "b)\\.example\\.com$", "longer than"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.in)
		if err == nil {
			t.Errorf("Parse(%q) accepted, want refusal (%s)", tt.in, tt.why)
			continue
		}
		if !strings.Contains(err.Error(), tt.why) {
			t.Errorf("Parse(%q) error %q does not say %q", tt.in, err, tt.why)
		}
	}
}

func TestParseListDeduplicatesAndKeepsOrder(t *testing.T) {
	l, err := ParseList([]string{"github.com", "=a.example.com", "GitHub.com", "npmjs.org"})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range l {
		got = append(got, e.String())
	}
	if strings.Join(got, " ") != "github.com =a.example.com npmjs.org" {
		t.Errorf("got %v", got)
	}
	if !l.Allows("api.github.com") || l.Allows("b.example.com") || !l.Allows("a.example.com") {
		t.Error("Allows disagrees with the entries")
	}
	if _, err := ParseList([]string{"github.com", "co.uk"}); err == nil || !strings.Contains(err.Error(), `"co.uk"`) {
		t.Errorf("ParseList with a bad entry: %v", err)
	}
}

// FuzzParse holds the invariants the proxy relies on for any accepted entry:
// the pattern is anchored, POSIX-compilable, free of line breaks, and never
// matches a lookalike made by appending a foreign domain.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"github.com", "=repo1.maven.org", `re:^(a|b)\.example\.com$`, "=10.0.0.1", "re:^.*$", "a\nb", "*.x.com"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := Parse(s)
		if err != nil {
			return
		}
		p := e.Pattern
		if !strings.HasPrefix(p, "^") || !strings.HasSuffix(p, "$") {
			t.Fatalf("%q: pattern %q not anchored", s, p)
		}
		if strings.ContainsAny(p, "\n\r\x00# \t") || len(p) > 511 {
			t.Fatalf("%q: pattern has a line break", s)
		}
		if _, err := regexp.CompilePOSIX(p); err != nil {
			t.Fatalf("%q: pattern %q does not compile as POSIX: %v", s, p, err)
		}
		for _, probe := range []string{"", "evil.invalid", "attacker.example.net"} {
			if e.Match(probe) {
				t.Fatalf("%q: pattern %q matches unrelated host %q", s, p, probe)
			}
		}
		if e.Kind != Regex && e.Match(e.Host+".evil.invalid") {
			t.Fatalf("%q: pattern %q matches a lookalike", s, p)
		}
		if e2, err := Parse(e.String()); err != nil || e2.Pattern != p {
			t.Fatalf("%q: canonical form %q does not round-trip: %v", s, e.String(), err)
		}
	})
}
