package signing

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestParseAllowedSigners(t *testing.T) {
	k := authorized(newSigner(t).PublicKey())
	utc := func(y int, m time.Month, d, h, min, s int) time.Time {
		return time.Date(y, m, d, h, min, s, 0, time.UTC)
	}
	tests := []struct {
		line string
		want Entry // Key and Line are not compared
	}{
		{"alice@example.com " + k, Entry{Principals: "alice@example.com"}},
		{"alice@example.com " + k + " a comment, with spaces", Entry{Principals: "alice@example.com"}},
		{"  \talice,bob@example.com\t" + k + "\r", Entry{Principals: "alice,bob@example.com"}},
		{`"Alice Example" ` + k, Entry{Principals: "Alice Example"}},
		{"*@example.com,!mallory@example.com cert-authority " + k, Entry{Principals: "*@example.com,!mallory@example.com", CertAuthority: true}},
		{`alice namespaces="vibe-image,git" ` + k, Entry{Principals: "alice", Namespaces: "vibe-image,git"}},
		{`alice NameSpaces="a b" ` + k, Entry{Principals: "alice", Namespaces: "a b"}},
		{`alice cert-authority,namespaces="git",valid-after="20240101Z",valid-before="20250102030405Z" ` + k,
			Entry{Principals: "alice", CertAuthority: true, Namespaces: "git", ValidAfter: utc(2024, 1, 1, 0, 0, 0), ValidBefore: utc(2025, 1, 2, 3, 4, 5)}},
		{`alice valid-after="202401011230UTC" ` + k, Entry{Principals: "alice", ValidAfter: utc(2024, 1, 1, 12, 30, 0)}},
		{`alice valid-before="20240101" ` + k, Entry{Principals: "alice", ValidBefore: time.Date(2024, 1, 1, 0, 0, 0, 0, time.Local)}},
		{"cert-authority " + k, Entry{Principals: "cert-authority"}},
	}
	for _, tt := range tests {
		a, err := ParseAllowedSigners([]byte("# team keys\n\n" + tt.line + "\n"))
		if err != nil {
			t.Errorf("%q: %v", tt.line, err)
			continue
		}
		if len(a.Entries) != 1 {
			t.Fatalf("%q: %d entries", tt.line, len(a.Entries))
		}
		e := a.Entries[0]
		if e.Line != 3 || authorized(e.Key) != k {
			t.Errorf("%q: line %d key %s", tt.line, e.Line, authorized(e.Key))
		}
		e.Line, e.Key = 0, nil
		if !e.ValidAfter.Equal(tt.want.ValidAfter) || !e.ValidBefore.Equal(tt.want.ValidBefore) {
			t.Errorf("%q: valid %v..%v, want %v..%v", tt.line, e.ValidAfter, e.ValidBefore, tt.want.ValidAfter, tt.want.ValidBefore)
		}
		e.ValidAfter, e.ValidBefore, tt.want.ValidAfter, tt.want.ValidBefore = time.Time{}, time.Time{}, time.Time{}, time.Time{}
		if e != tt.want {
			t.Errorf("%q:\n got %+v\nwant %+v", tt.line, e, tt.want)
		}
	}
}

func TestParseAllowedSignersRefuses(t *testing.T) {
	k := authorized(newSigner(t).PublicKey())
	typ, b64, _ := strings.Cut(k, " ")
	ca := newSigner(t)
	cert := authorized(certFor(t, ca, newSigner(t).PublicKey(), ssh.UserCert, []string{"a"}, time.Unix(1, 0), time.Now()))
	tests := []struct{ line, says string }{
		{"alice", "missing key"},
		{k, `"AAAA`},
		{`"alice ` + k, "quote must enclose the whole field"},
		{`"alice"x ` + k, "quote must enclose the whole field"},
		{`al"ice ` + k, "quote must enclose the whole field"},
		{`"" ` + k, "empty principals"},
		{"alice " + typ, "not followed by a base64 key"},
		{"alice " + typ + " !!!!", "not valid base64"},
		{"alice " + typ + " AAAA", "does not parse"},
		{"alice ssh-rsa " + b64, `key type "ssh-rsa" does not match the key, which is ssh-ed25519`},
		{"alice bogus " + k, `"bogus" is neither an option`},
		{"alice nope=1 " + k, `unknown option "nope=1"`},
		{"alice cert-authority,,namespaces=\"x\" " + k, "stray comma"},
		{"alice cert-authorityx " + k, `unknown option "cert-authorityx"`},
		{"alice namespaces=vibe-image " + k, `namespaces= needs a double-quoted value`},
		{`alice namespaces="a\"b" ` + k, "without backslashes"},
		{`alice namespaces="vibe-image ` + k, "double-quoted"},
		{`alice namespaces="" ` + k, "allows no namespace"},
		{`alice namespaces="a",namespaces="b" ` + k, "namespaces= is given twice"},
		{`alice valid-after="2024" ` + k, "YYYYMMDD"},
		{`alice valid-after="20241301" ` + k, "YYYYMMDD"},
		{`alice valid-after="19691231Z" ` + k, "YYYYMMDD"},
		{`alice valid-after="20250101Z",valid-before="20240101Z" ` + k, "valid-before is not after valid-after"},
		{`alice namespaces="x", ` + k, "stray comma"},
		{`alice namespaces="x"`, "missing key"},
		{"alice " + cert, "certificate cannot be listed"},
		{"alice cert-authority " + cert, "needs the CA's plain public key"},
	}
	for _, tt := range tests {
		_, err := ParseAllowedSigners([]byte("# c\n" + tt.line + "\n"))
		if err == nil {
			t.Errorf("%q accepted, want refusal saying %q", tt.line, tt.says)
			continue
		}
		if !strings.HasPrefix(err.Error(), "allowed signers line 2: ") || !strings.Contains(err.Error(), tt.says) {
			t.Errorf("%q: error %q does not say %q on line 2", tt.line, err, tt.says)
		}
	}
	if _, err := ParseAllowedSigners([]byte("a\x00b")); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Errorf("NUL bytes: %v", err)
	}
}

func TestLoadAllowedSignersNamesTheFile(t *testing.T) {
	s := newSigner(t)
	dir := t.TempDir()
	path := writeFile(t, dir, "team.signers", []byte(line("alice@example.com", s.PublicKey())))
	a, err := LoadAllowedSigners(path)
	if err != nil {
		t.Fatal(err)
	}
	_, err = a.Verify(mustSign(t, newSigner(t), testMsg), testMsg, testNow)
	if err == nil || !strings.Contains(err.Error(), "not in allowed signers file "+path+"; to trust it, add a line") {
		t.Errorf("untrusted: %v", err)
	}
	bad := writeFile(t, dir, "bad.signers", []byte("\nalice\n"))
	if _, err := LoadAllowedSigners(bad); err == nil || !strings.HasPrefix(err.Error(), "allowed signers file "+bad+" line 2: ") {
		t.Errorf("bad file: %v", err)
	}
	if _, err := LoadAllowedSigners(filepath.Join(dir, "missing")); err == nil || !os.IsNotExist(err) && !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing file: %v", err)
	}
}

func TestEntryStringRoundTrips(t *testing.T) {
	k := authorized(newSigner(t).PublicKey())
	for _, l := range []string{
		"alice " + k,
		`"#not a comment" ` + k,
		`"a b,c" cert-authority,namespaces="vibe-image",valid-after="20240101000000Z",valid-before="20250101120000Z" ` + k,
	} {
		a, err := ParseAllowedSigners([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if got := a.Entries[0].String(); got != l {
			t.Errorf("String:\n%s\nwant\n%s", got, l)
		}
	}
}

func TestMatchList(t *testing.T) {
	tests := []struct {
		s, list string
		want    bool
	}{
		{"alice@example.com", "alice@example.com", true},
		{"alice@example.com", "*@example.com", true},
		{"alice@example.com", "*@example.org", false},
		{"alice@example.com", "bob,*", true},
		{"alice@example.com", "*,!alice@example.com", false},
		{"alice@example.com", "!bob@example.com", false}, // a negation alone allows nothing
		{"vibe-image", "vibe-?????", true},
		{"vibe-image", "vibe-????", false},
		{"vibe-image", "*-*-*", false},
		{"", "*", true},
		{"", "", true},
		{"a", "", false},
		{"Alice", "alice", false}, // case-sensitive, as in OpenSSH
		{strings.Repeat("a", 100), strings.Repeat("*a", 50) + "*b", false},
	}
	for _, tt := range tests {
		if got := matchList(tt.s, tt.list); got != tt.want {
			t.Errorf("matchList(%q, %q) = %v, want %v", tt.s, tt.list, got, tt.want)
		}
	}
}
