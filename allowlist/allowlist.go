// Package allowlist parses egress allowlist entries and compiles them to the
// anchored, case-insensitive POSIX extended regular expressions that the
// guest's forward proxy matches against the requested host.
//
// Three forms are accepted:
//
//	example.com          the domain and every subdomain of it
//	=api.example.com     exactly this host (or =192.0.2.10, exactly this IPv4 address)
//	re:^(a|b)\.example\.com$
//	                     a raw pattern, for the rare case the first two cannot
//	                     express; it must be anchored at both ends and end in a
//	                     fixed registrable domain, so it cannot match lookalikes
//
// Entries that would allow too much are refused: a bare top-level domain, a
// public suffix (co.uk, github.io, s3.amazonaws.com: anyone can own a name
// under those), a wildcard, or a pattern that can match an arbitrary suffix.
package allowlist

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"regexp/syntax"
	"strings"

	"golang.org/x/net/publicsuffix"
)

// maxPattern keeps every filter line well inside the proxy's 512-byte line buffer.
const maxPattern = 400

// Kind says how an entry matches.
type Kind int

const (
	// Suffix matches a domain and its subdomains.
	Suffix Kind = iota
	// Exact matches one host name or IPv4 address.
	Exact
	// Regex is a raw, validated pattern.
	Regex
)

func (k Kind) String() string {
	switch k {
	case Suffix:
		return "suffix"
	case Exact:
		return "exact"
	case Regex:
		return "regex"
	}
	return fmt.Sprintf("Kind(%d)", int(k))
}

// Entry is one parsed allowlist entry.
type Entry struct {
	// Raw is the entry as written, trimmed.
	Raw  string
	Kind Kind
	// Host is the normalised domain or host for Suffix and Exact entries.
	Host string
	// Pattern is the anchored regular expression the proxy uses.
	Pattern string

	re *regexp.Regexp
}

// Forms is a one-line reminder of the accepted syntax, for error messages.
const Forms = `write "example.com" (domain and subdomains), "=host.example.com" (one host) or "re:^…\.example\.com$" (anchored pattern)`

// Parse parses and validates one entry.
func Parse(raw string) (Entry, error) {
	s := strings.TrimSpace(raw)
	e, err := parse(s)
	if err != nil {
		return Entry{}, fmt.Errorf("allowlist entry %q: %w", raw, err)
	}
	e.Raw = s
	// (?i) because the proxy matches case-insensitively (FilterCaseSensitive Off).
	e.re, err = regexp.Compile("(?i)" + e.Pattern)
	if err != nil {
		return Entry{}, fmt.Errorf("allowlist entry %q: %w", raw, err)
	}
	return e, nil
}

func parse(s string) (Entry, error) {
	switch {
	case s == "":
		return Entry{}, errors.New("empty entry")
	case strings.HasPrefix(s, "re:"):
		pat := s[len("re:"):]
		if err := checkPattern(pat); err != nil {
			return Entry{}, err
		}
		return Entry{Kind: Regex, Pattern: pat}, nil
	case strings.HasPrefix(s, "="):
		host := strings.ToLower(s[1:])
		if ip, err := netip.ParseAddr(host); err == nil {
			if !ip.Is4() {
				return Entry{}, errors.New("only IPv4 addresses are allowed (IPv6 is disabled in the guest)")
			}
			return Entry{Kind: Exact, Host: ip.String(), Pattern: "^" + quoteMeta(ip.String()) + "$"}, nil
		}
		if err := checkHost(host); err != nil {
			return Entry{}, err
		}
		return Entry{Kind: Exact, Host: host, Pattern: "^" + quoteMeta(host) + "$"}, nil
	}
	host := strings.ToLower(s)
	if strings.Contains(host, "*") {
		return Entry{}, errors.New("wildcards are not accepted: " + Forms)
	}
	if strings.Contains(host, "://") || strings.ContainsAny(host, "/:") {
		return Entry{}, errors.New("give a host name, not a URL or host:port (ports are fixed to 80 and 443)")
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return Entry{}, fmt.Errorf("an address cannot be a domain suffix; write =%s to allow exactly this address", host)
	}
	if err := checkHost(host); err != nil {
		return Entry{}, err
	}
	if err := checkRegistrable(host); err != nil {
		return Entry{}, err
	}
	return Entry{Kind: Suffix, Host: host, Pattern: "^(.+\\.)?" + quoteMeta(host) + "$"}, nil
}

// Match reports whether the proxy would allow host through this entry.
func (e Entry) Match(host string) bool { return e.re != nil && e.re.MatchString(host) }

// String returns the entry in its canonical written form.
func (e Entry) String() string {
	switch e.Kind {
	case Suffix:
		return e.Host
	case Exact:
		return "=" + e.Host
	}
	return "re:" + e.Pattern
}

// List is an ordered, duplicate-free set of entries.
type List []Entry

// ParseList parses entries in order, dropping exact duplicates of an earlier
// entry's canonical form. The first invalid entry is an error.
func ParseList(raws []string) (List, error) {
	var l List
	seen := map[string]bool{}
	for _, r := range raws {
		e, err := Parse(r)
		if err != nil {
			return nil, err
		}
		if seen[e.String()] {
			continue
		}
		seen[e.String()] = true
		l = append(l, e)
	}
	return l, nil
}

// Strings returns the entries in their canonical written form, in order.
func (l List) Strings() []string {
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.String()
	}
	return out
}

// Patterns returns the proxy patterns, one per entry, in order.
func (l List) Patterns() []string {
	out := make([]string, len(l))
	for i, e := range l {
		out[i] = e.Pattern
	}
	return out
}

// FilterFile is the proxy's filter file for l: one anchored pattern per
// line, each under a comment naming its entry. Patterns never contain a
// newline or '#', so every line is read as written.
func (l List) FilterFile() string {
	var b strings.Builder
	b.WriteString("# vibe egress allowlist: anchored POSIX extended patterns matched\n")
	b.WriteString("# case-insensitively against the requested host. Generated by vibe.\n")
	for _, e := range l {
		fmt.Fprintf(&b, "# %s\n%s\n", e.String(), e.Pattern)
	}
	return b.String()
}

// Allows reports whether any entry matches host.
func (l List) Allows(host string) bool {
	for _, e := range l {
		if e.Match(host) {
			return true
		}
	}
	return false
}

// checkHost validates a DNS host name (letters, digits, hyphens; at least two labels).
func checkHost(h string) error {
	if h == "" {
		return errors.New("empty host name")
	}
	if len(h) > 253 {
		return errors.New("host name longer than 253 characters")
	}
	labels := strings.Split(h, ".")
	if len(labels) < 2 {
		return fmt.Errorf("%q is a single label: it would allow a whole top-level domain or a local name; %s", h, Forms)
	}
	for _, l := range labels {
		if l == "" {
			return errors.New("empty label (leading, trailing or double dot)")
		}
		if len(l) > 63 {
			return fmt.Errorf("label %q is longer than 63 characters", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("label %q starts or ends with a hyphen", l)
		}
		for _, c := range l {
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("character %q is not allowed in a host name (letters, digits, '-' and '.' only; write internationalised names in their xn-- form)", c)
			}
		}
	}
	if tld := labels[len(labels)-1]; strings.Trim(tld, "0123456789") == "" {
		return fmt.Errorf("%q is not a host name (numeric top-level label)", h)
	}
	return nil
}

// checkRegistrable refuses public suffixes: under co.uk or github.io anyone
// can register a name, so allowing the suffix allows the whole world.
func checkRegistrable(h string) error {
	if _, err := publicsuffix.EffectiveTLDPlusOne(h); err != nil {
		return fmt.Errorf("%q is a public suffix: anyone can own a name under it, so it would allow attacker-controlled hosts; allow the exact hosts you need with =host", h)
	}
	return nil
}

// checkPattern validates a raw pattern: POSIX extended syntax, anchored at
// both ends of the whole expression, ending in a fixed registrable domain.
func checkPattern(p string) error {
	if p == "" {
		return errors.New("empty pattern")
	}
	if strings.ContainsAny(p, "\n\r\x00") {
		return errors.New("pattern contains a line break or NUL")
	}
	// The proxy's filter file treats # as a comment and trims white space,
	// and reads lines of at most 511 bytes.
	if strings.ContainsAny(p, "# \t\v\f") {
		return errors.New("pattern contains '#' or white space, which the proxy's filter file cannot carry")
	}
	if len(p) > maxPattern {
		return fmt.Errorf("pattern longer than %d characters", maxPattern)
	}
	re, err := syntax.Parse(p, syntax.POSIX)
	if err != nil {
		return fmt.Errorf("not a POSIX extended regular expression: %w", err)
	}
	re = re.Simplify()
	if re.Op != syntax.OpConcat || len(re.Sub) < 3 {
		return errors.New("pattern must be a single anchored expression ^…$ ending in a fixed domain (top-level alternation like ^a$|b is unanchored)")
	}
	first, last := re.Sub[0], re.Sub[len(re.Sub)-1]
	if first.Op != syntax.OpBeginLine && first.Op != syntax.OpBeginText {
		return errors.New("pattern must start with ^")
	}
	if last.Op != syntax.OpEndLine && last.Op != syntax.OpEndText {
		return errors.New("pattern must end with $")
	}
	for _, s := range re.Sub[1 : len(re.Sub)-1] {
		if s.Op == syntax.OpBeginLine || s.Op == syntax.OpBeginText || s.Op == syntax.OpEndLine || s.Op == syntax.OpEndText {
			return errors.New("anchors may only appear at the start and the end")
		}
	}
	tail := re.Sub[len(re.Sub)-2]
	if tail.Op != syntax.OpLiteral {
		return errors.New(`pattern must end in a fixed domain such as \.example\.com$, so that it cannot match lookalikes`)
	}
	lit := strings.ToLower(string(tail.Rune))
	if len(re.Sub) == 3 {
		// ^literal$ is one exact host.
		return checkHost(lit)
	}
	if !strings.HasPrefix(lit, ".") {
		return fmt.Errorf(`the fixed end %q must start at a label boundary (\.), or "x%s" would match too`, lit, lit)
	}
	dom := lit[1:]
	if err := checkHost(dom); err != nil {
		return err
	}
	return checkRegistrable(dom)
}

// quoteMeta escapes for POSIX ERE; the characters in a validated host name
// need only the dot escaped, which regexp.QuoteMeta does compatibly.
func quoteMeta(s string) string { return regexp.QuoteMeta(s) }
