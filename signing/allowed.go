package signing

import (
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// maxAllowedSigners bounds an allowed signers file (about 10,000 keys).
const maxAllowedSigners = 1 << 20

// stamp is the canonical valid-after/valid-before form that Entry.String writes.
const stamp = "20060102150405Z"

// AllowedSigners is a parsed allowed signers file, the format of ssh-keygen(1)
// "ALLOWED SIGNERS" and git's gpg.ssh.allowedSignersFile:
//
//	principals [options] keytype base64-key [comment]
//
// Principals and namespaces are comma-separated patterns (* and ?, a leading
// ! negates). Options are cert-authority, namespaces="…", valid-after="…" and
// valid-before="…" (YYYYMMDD[HHMM[SS]], then Z for UTC, else local time).
// A cert-authority line trusts signatures made with user certificates that
// key signed, for the certificate principals that match the line's patterns.
//
// Stricter than ssh-keygen in corners no real file needs: backslashes in
// option values, quotes inside principals, empty namespaces="" and
// certificates listed as plain keys are refused with an error naming the line.
type AllowedSigners struct {
	// Name is the file, for messages; "" when parsed from bytes.
	Name    string
	Entries []Entry
}

// Entry is one line of an allowed signers file.
type Entry struct {
	Line          int       // 1-based line number
	Principals    string    // comma-separated principal patterns, as written
	CertAuthority bool      // Key is a CA: trust user certificates it signed
	Namespaces    string    // namespace patterns; "" allows every namespace
	ValidAfter    time.Time // zero: no lower bound
	ValidBefore   time.Time // zero: no upper bound
	Key           ssh.PublicKey
}

// ParseAllowedSigners parses an allowed signers file. Errors name the line.
func ParseAllowedSigners(data []byte) (*AllowedSigners, error) {
	return parseAllowed(data, "allowed signers")
}

// LoadAllowedSigners reads and parses the allowed signers file at path.
func LoadAllowedSigners(path string) (*AllowedSigners, error) {
	data, err := readSmall(path, maxAllowedSigners)
	if err != nil {
		return nil, fmt.Errorf("allowed signers file: %w", err)
	}
	a, err := parseAllowed(data, "allowed signers file "+path)
	if err != nil {
		return nil, err
	}
	a.Name = path
	return a, nil
}

func parseAllowed(data []byte, where string) (*AllowedSigners, error) {
	if len(data) > maxAllowedSigners {
		return nil, fmt.Errorf("%s: larger than %d bytes", where, maxAllowedSigners)
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return nil, fmt.Errorf("%s: contains NUL bytes: not a text file", where)
	}
	a := &AllowedSigners{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(strings.TrimLeft(line, " \t"), " \t\r")
		if line == "" || line[0] == '#' {
			continue
		}
		e, err := parseEntry(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %w", where, i+1, err)
		}
		e.Line = i + 1
		a.Entries = append(a.Entries, e)
	}
	return a, nil
}

const optionForms = `cert-authority, namespaces="…", valid-after="…" and valid-before="…"`

func parseEntry(line string) (Entry, error) {
	var e Entry
	rest, err := e.parsePrincipals(line)
	if err != nil {
		return e, err
	}
	// As in ssh-keygen: if a key does not follow the principals, options do.
	k, err := parseKey(rest)
	if err != nil {
		opts, after := cutOptions(rest)
		if len(opts) == 1 && !strings.Contains(opts[0], "=") && !strings.HasPrefix(strings.ToLower(opts[0]), "cert-authority") {
			if strings.Contains(opts[0], "-") {
				return e, err // a key type, such as ssh-ed25519
			}
			return e, fmt.Errorf("%q is neither an option (%s) nor a key type such as ssh-ed25519", opts[0], optionForms)
		}
		if err := e.parseOptions(opts); err != nil {
			return e, err
		}
		if k, err = parseKey(strings.TrimLeft(after, " \t")); err != nil {
			return e, err
		}
	}
	if _, ok := k.(*ssh.Certificate); ok {
		if e.CertAuthority {
			return e, errors.New("cert-authority needs the CA's plain public key, not a certificate")
		}
		return e, errors.New("a certificate cannot be listed itself; list the plain key, or its CA's key with cert-authority")
	}
	e.Key = k
	return e, nil
}

func (e *Entry) parsePrincipals(line string) (string, error) {
	var rest string
	if q, ok := strings.CutPrefix(line, `"`); ok {
		p, r, found := strings.Cut(q, `"`)
		if !found || r != "" && r[0] != ' ' && r[0] != '\t' {
			return "", errors.New("principals: a quote must enclose the whole field")
		}
		e.Principals, rest = p, r
	} else {
		e.Principals, rest = cutField(line)
	}
	rest = strings.TrimLeft(rest, " \t")
	switch {
	case e.Principals == "":
		return "", errors.New("empty principals")
	case strings.Contains(e.Principals, `"`):
		return "", errors.New("principals: a quote must enclose the whole field")
	case rest == "":
		return "", errors.New("missing key: write principals [options] keytype base64-key")
	}
	return rest, nil
}

// cutOptions splits the options field, which ends at unquoted white space,
// at unquoted commas.
func cutOptions(s string) (opts []string, rest string) {
	quoted, start := false, 0
	for i := 0; i <= len(s); i++ {
		switch {
		case i < len(s) && s[i] == '"':
			quoted = !quoted
		case i == len(s) || !quoted && (s[i] == ' ' || s[i] == '\t'):
			return append(opts, s[start:i]), s[i:]
		case !quoted && s[i] == ',':
			opts, start = append(opts, s[start:i]), i+1
		}
	}
	panic("unreachable")
}

// parseOptions follows ssh-keygen: names are case-insensitive and values
// are double-quoted. Backslashes are refused rather than interpreted: no
// namespace or time needs one.
func (e *Entry) parseOptions(opts []string) error {
	seen := map[string]bool{}
	for _, opt := range opts {
		if opt == "" {
			return errors.New("empty option: remove the stray comma")
		}
		name, v, hasValue := strings.Cut(opt, "=")
		name = strings.ToLower(name)
		if name == "cert-authority" && !hasValue {
			e.CertAuthority = true
			continue
		}
		if !hasValue || name != "namespaces" && name != "valid-after" && name != "valid-before" {
			return fmt.Errorf("unknown option %q: the options are %s", opt, optionForms)
		}
		if seen[name] {
			return fmt.Errorf("%s= is given twice", name)
		}
		seen[name] = true
		if len(v) < 2 || v[0] != '"' || v[len(v)-1] != '"' || strings.ContainsAny(v[1:len(v)-1], `"\`) {
			return fmt.Errorf(`%s= needs a double-quoted value without backslashes, e.g. %s="…"`, name, name)
		}
		v = v[1 : len(v)-1]
		var err error
		switch name {
		case "namespaces":
			if v == "" {
				return errors.New(`namespaces="" allows no namespace; remove the line or name the namespaces`)
			}
			e.Namespaces = v
		case "valid-after":
			e.ValidAfter, err = parseTime(v)
		default:
			e.ValidBefore, err = parseTime(v)
		}
		if err != nil {
			return fmt.Errorf("%s=%q: %w", name, v, err)
		}
	}
	if !e.ValidAfter.IsZero() && !e.ValidBefore.IsZero() && !e.ValidBefore.After(e.ValidAfter) {
		return errors.New("valid-before is not after valid-after")
	}
	return nil
}

// parseTime reads ssh-keygen's YYYYMMDD[HHMM[SS]][Z|UTC] (UTC if so
// marked, else local time).
func parseTime(v string) (time.Time, error) {
	loc := time.Local
	for _, utc := range []string{"UTC", "Z"} {
		if n := len(v) - len(utc); n > 0 && strings.EqualFold(v[n:], utc) {
			v, loc = v[:n], time.UTC
			break
		}
	}
	layout := map[int]string{8: "20060102", 12: "200601021504", 14: "20060102150405"}[len(v)]
	t, err := time.ParseInLocation(layout, v, loc)
	if layout == "" || err != nil || t.Unix() <= 0 {
		return time.Time{}, errors.New("write the time as YYYYMMDD[HHMM[SS]], then Z for UTC (else local time)")
	}
	return t, nil
}

func parseKey(s string) (ssh.PublicKey, error) {
	typ, rest := cutField(s)
	b64, _ := cutField(strings.TrimLeft(rest, " \t"))
	if typ == "" {
		return nil, errors.New("missing key after the options")
	}
	if b64 == "" {
		return nil, fmt.Errorf("key type %q is not followed by a base64 key", typ)
	}
	blob, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, fmt.Errorf("%s key is not valid base64: %v", typ, err)
	}
	k, err := ssh.ParsePublicKey(blob)
	if err != nil {
		return nil, fmt.Errorf("%s key does not parse: %v", typ, err)
	}
	if k.Type() != typ {
		return nil, fmt.Errorf("key type %q does not match the key, which is %s", typ, k.Type())
	}
	return k, nil
}

func cutField(s string) (field, rest string) {
	if i := strings.IndexAny(s, " \t"); i >= 0 {
		return s[:i], s[i:]
	}
	return s, ""
}

// String returns the entry as a canonical allowed signers line.
func (e Entry) String() string {
	p := e.Principals
	if strings.ContainsAny(p, " \t") || strings.HasPrefix(p, "#") {
		p = `"` + p + `"`
	}
	var opts []string
	if e.CertAuthority {
		opts = append(opts, "cert-authority")
	}
	if e.Namespaces != "" {
		opts = append(opts, `namespaces="`+e.Namespaces+`"`)
	}
	if !e.ValidAfter.IsZero() {
		opts = append(opts, `valid-after="`+e.ValidAfter.UTC().Format(stamp)+`"`)
	}
	if !e.ValidBefore.IsZero() {
		opts = append(opts, `valid-before="`+e.ValidBefore.UTC().Format(stamp)+`"`)
	}
	if len(opts) > 0 {
		p += " " + strings.Join(opts, ",")
	}
	return p + " " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.Key)))
}

// Verify checks the armored signature over msg (else ErrBadSignature) and
// that a trusts its key for Namespace at now (else ErrUntrusted). The trust
// decision is by key, as with git's allowed signers: any line listing the
// key counts, and Signer.Principal is that line's principals.
func (a *AllowedSigners) Verify(sig, msg []byte, now time.Time) (*Signer, error) {
	s, err := check(sig, msg)
	if err != nil {
		return nil, err
	}
	who := describe(s.PublicKey)
	var why []string
	for _, e := range a.Entries {
		principal, reason := e.trusts(s.PublicKey, now)
		if reason == "" {
			who.Principal = principal
			return who, nil
		}
		if reason != notListed {
			why = append(why, fmt.Sprintf("line %d %s", e.Line, reason))
		}
	}
	file := "the allowed signers"
	if a.Name != "" {
		file = "allowed signers file " + a.Name
	}
	by := fmt.Sprintf("signature by %s (%s) is valid, but", who.Fingerprint, who.KeyType)
	if len(why) > 0 {
		return nil, fmt.Errorf("%w: %s %s does not trust it for %s now: %s", ErrUntrusted, by, file, Namespace, strings.Join(why, "; "))
	}
	if cert, ok := s.PublicKey.(*ssh.Certificate); ok {
		return nil, fmt.Errorf("%w: %s it is a certificate and its CA %s is not in %s; to trust certificates from that CA, add a line \"*@example.com cert-authority %s\"",
			ErrUntrusted, by, ssh.FingerprintSHA256(cert.SignatureKey), file, authorized(cert.SignatureKey))
	}
	return nil, fmt.Errorf("%w: %s that key is not in %s; to trust it, add a line \"name@example.com %s\"", ErrUntrusted, by, file, authorized(s.PublicKey))
}

func authorized(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

const notListed = "does not list the key"

// trusts returns the principal under which e trusts pub for Namespace at
// now, or why it does not (notListed if e is about another key). The order
// of checks follows ssh-keygen.
func (e Entry) trusts(pub ssh.PublicKey, now time.Time) (principal, why string) {
	cert, _ := pub.(*ssh.Certificate)
	switch {
	case !e.CertAuthority && bytes.Equal(pub.Marshal(), e.Key.Marshal()):
		principal = e.Principals
	case e.CertAuthority && cert != nil && bytes.Equal(cert.SignatureKey.Marshal(), e.Key.Marshal()):
		if principal, why = e.certPrincipals(cert, now); why != "" {
			return "", why
		}
	default:
		return "", notListed
	}
	if e.Namespaces != "" && !matchList(Namespace, e.Namespaces) {
		return "", fmt.Sprintf("lists it only for namespaces=%q; add %s there to trust it for images", e.Namespaces, Namespace)
	}
	if !e.ValidAfter.IsZero() && now.Unix() < e.ValidAfter.Unix() {
		return "", fmt.Sprintf("trusts it only from valid-after %s", e.ValidAfter.UTC().Format(time.RFC3339))
	}
	if !e.ValidBefore.IsZero() && now.Unix() > e.ValidBefore.Unix() {
		return "", fmt.Sprintf("trusted it only until valid-before %s: it has expired", e.ValidBefore.UTC().Format(time.RFC3339))
	}
	return principal, ""
}

// certPrincipals checks a user certificate signed by e's CA key, as
// ssh-keygen -Y find-principals does: it must be valid at now and name a
// principal that e's patterns match. Critical options restrict logins, not
// signatures, so like ssh-keygen they are not enforced here.
func (e Entry) certPrincipals(cert *ssh.Certificate, now time.Time) (string, string) {
	if cert.CertType != ssh.UserCert {
		return "", "lists its CA, but it is a host certificate, not a user certificate"
	}
	var matched []string
	for _, p := range cert.ValidPrincipals {
		if matchList(p, e.Principals) {
			matched = append(matched, p)
		}
	}
	if len(matched) == 0 {
		return "", fmt.Sprintf("lists its CA for %q, which matches none of the certificate's principals %q", e.Principals, cert.ValidPrincipals)
	}
	c := ssh.CertChecker{Clock: func() time.Time { return now }, SupportedCriticalOptions: slices.Collect(maps.Keys(cert.CriticalOptions))}
	if err := c.CheckCert(matched[0], cert); err != nil {
		return "", "lists its CA, but the certificate is not valid: " + strings.TrimPrefix(err.Error(), "ssh: ")
	}
	return strings.Join(matched, ","), ""
}

// matchList is OpenSSH's match_pattern_list: s must match a pattern of the
// comma-separated list and no negated (!) one.
func matchList(s, list string) bool {
	ok := false
	for p := range strings.SplitSeq(list, ",") {
		if neg, found := strings.CutPrefix(p, "!"); found {
			if match(s, neg) {
				return false
			}
		} else if match(s, p) {
			ok = true
		}
	}
	return ok
}

// match is glob matching with * and ?, in O(len(s)·len(p)) even for hostile
// patterns (OpenSSH's recursive matcher is exponential).
func match(s, p string) bool {
	si, pi, star, mark := 0, 0, -1, 0
	for si < len(s) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == s[si]):
			si, pi = si+1, pi+1
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			mark++
			si, pi = mark, star+1
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}
