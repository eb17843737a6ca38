package signing

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

var (
	testFP  = strings.Repeat("0123456789abcdef", 4)
	testMsg = Message(testFP, []byte(`{"recipe":"x"}`))
	testNow = time.Date(2026, 6, 1, 12, 0, 0, 0, time.UTC)
)

func newEd25519(t testing.TB) (ssh.Signer, ed25519.PrivateKey) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s, priv
}

func newSigner(t testing.TB) ssh.Signer {
	s, _ := newEd25519(t)
	return s
}

func mustSign(t testing.TB, s ssh.Signer, msg []byte) []byte {
	t.Helper()
	sig, err := SignWith(s, msg)
	if err != nil {
		t.Fatal(err)
	}
	return sig
}

// line is an allowed signers line for k: "<prefix> <keytype> <base64>".
func line(prefix string, k ssh.PublicKey) string { return prefix + " " + authorized(k) + "\n" }

func TestMessageFormatIsPinned(t *testing.T) {
	got := string(Message(testFP, []byte("{}")))
	want := "vibe image signature v1\nfingerprint " + testFP + "\nmanifest-sha256 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\n"
	if got != want {
		t.Errorf("Message:\n%q\nwant\n%q", got, want)
	}
	if bytes.Equal(Message(testFP, []byte("{}")), Message(testFP, []byte("{ }"))) {
		t.Error("Message does not depend on the manifest")
	}
}

func TestSignatureFormat(t *testing.T) {
	sig := mustSign(t, newSigner(t), testMsg)
	if !bytes.HasPrefix(sig, []byte("-----BEGIN SSH SIGNATURE-----\n")) {
		t.Fatalf("not armored:\n%s", sig)
	}
	s, err := sshsig.Unarmor(sig)
	if err != nil {
		t.Fatal(err)
	}
	if s.Namespace != Namespace || s.HashAlgorithm != sshsig.HashSHA512 {
		t.Errorf("namespace %q hash %q, want %q sha512", s.Namespace, s.HashAlgorithm, Namespace)
	}
}

// TestVerify is the trust specification.
func TestVerify(t *testing.T) {
	alice, bob := newSigner(t), newSigner(t)
	sig := mustSign(t, alice, testMsg)
	a := func(prefix string) string { return line(prefix, alice.PublicKey()) }

	flipped := bytes.Clone(testMsg)
	flipped[len(flipped)-2] ^= 1
	otherNS, err := sshsig.Sign(bytes.NewReader(testMsg), alice, sshsig.HashSHA512, "git")
	if err != nil {
		t.Fatal(err)
	}
	sha256Sig, err := sshsig.Sign(bytes.NewReader(testMsg), alice, sshsig.HashSHA256, Namespace)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(sig) // a base64 character of the signature proper changed
	i := bytes.Index(corrupt, []byte("\n-----END")) - 5
	corrupt[i] = map[bool]byte{true: 'B', false: 'A'}[corrupt[i] == 'A']

	tests := []struct {
		name      string
		allowed   string
		sig, msg  []byte
		want      error
		principal string // on success
		says      string // in the error
	}{
		{"listed key", a("alice@example.com"), sig, testMsg, nil, "alice@example.com", ""},
		{"listed with several principals", a("alice@example.com,al@example.org"), sig, testMsg, nil, "alice@example.com,al@example.org", ""},
		{"listed for this and other namespaces", a(`alice@example.com namespaces="git,vibe-image"`), sig, testMsg, nil, "alice@example.com", ""},
		{"namespace pattern", a(`alice namespaces="vibe-*"`), sig, testMsg, nil, "alice", ""},
		{"within its validity window", a(`alice valid-after="20260101Z",valid-before="20270101000000Z"`), sig, testMsg, nil, "alice", ""},
		{"first matching line wins", line("bob", bob.PublicKey()) + "# a comment\n\n" + a("first") + a("second"), sig, testMsg, nil, "first", ""},
		{"a later line trusts what an earlier refuses", a(`old namespaces="git"`) + a("new"), sig, testMsg, nil, "new", ""},
		{"SHA-256 signature", a("alice"), sshsig.Armor(sha256Sig), testMsg, nil, "alice", ""},

		{"key not listed", line("bob@example.com", bob.PublicKey()), sig, testMsg, ErrUntrusted, "", `that key is not in the allowed signers; to trust it, add a line "name@example.com ` + authorized(alice.PublicKey()) + `"`},
		{"empty file", "", sig, testMsg, ErrUntrusted, "", "not in the allowed signers"},
		{"listed for another namespace only", a(`alice namespaces="git"`), sig, testMsg, ErrUntrusted, "", `line 1 lists it only for namespaces="git"; add vibe-image there`},
		{"namespace negated", a(`alice namespaces="*,!vibe-image"`), sig, testMsg, ErrUntrusted, "", "lists it only for namespaces"},
		{"expired", a(`alice valid-before="20260101Z"`), sig, testMsg, ErrUntrusted, "", "valid-before 2026-01-01T00:00:00Z: it has expired"},
		{"not yet valid", a(`alice valid-after="20300101Z"`), sig, testMsg, ErrUntrusted, "", "only from valid-after 2030-01-01T00:00:00Z"},
		{"listed as a CA, not a key", a(`alice cert-authority`), sig, testMsg, ErrUntrusted, "", "not in the allowed signers"},

		{"flipped byte in the message", a("alice"), sig, flipped, ErrBadSignature, "", "does not match"},
		{"flipped byte in the signature", a("alice"), corrupt, testMsg, ErrBadSignature, "", ""},
		{"signature for the git namespace", a("alice"), sshsig.Armor(otherNS), testMsg, ErrBadSignature, "", `made for namespace "git", not "vibe-image"`},
		{"garbage", a("alice"), []byte("not a signature"), testMsg, ErrBadSignature, "", "not an armored SSH signature"},
		{"empty", a("alice"), nil, testMsg, ErrBadSignature, "", "not an armored SSH signature"},
		{"truncated armor", a("alice"), sig[:len(sig)/2], testMsg, ErrBadSignature, "", "not an armored SSH signature"},
		{"armor of another type", a("alice"), bytes.ReplaceAll(sig, []byte("SSH SIGNATURE"), []byte("PGP SIGNATURE")), testMsg, ErrBadSignature, "", ""},
		{"oversized", a("alice"), append(bytes.Repeat([]byte(" "), MaxSignatureSize), sig...), testMsg, ErrBadSignature, "", "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := ParseAllowedSigners([]byte(tt.allowed))
			if err != nil {
				t.Fatal(err)
			}
			who, err := as.Verify(tt.sig, tt.msg, testNow)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("Verify: %v, want %v", err, tt.want)
			}
			if err != nil {
				t.Log(err)
				if who != nil || !strings.Contains(err.Error(), tt.says) {
					t.Errorf("error %q does not say %q", err, tt.says)
				}
				if errors.Is(err, ErrBadSignature) && errors.Is(err, ErrUntrusted) {
					t.Error("both errors")
				}
				return
			}
			want := Signer{Principal: tt.principal, KeyType: ssh.KeyAlgoED25519, Fingerprint: ssh.FingerprintSHA256(alice.PublicKey())}
			if *who != want {
				t.Errorf("signer %+v, want %+v", *who, want)
			}
		})
	}
}

func TestCheckNeedsNoTrust(t *testing.T) {
	s := newSigner(t)
	who, err := Check(mustSign(t, s, testMsg), testMsg)
	if err != nil {
		t.Fatal(err)
	}
	if want := (Signer{KeyType: "ssh-ed25519", Fingerprint: ssh.FingerprintSHA256(s.PublicKey())}); *who != want {
		t.Errorf("Check = %+v, want %+v", *who, want)
	}
	if _, err := Check(mustSign(t, s, testMsg), Message(testFP, nil)); !errors.Is(err, ErrBadSignature) {
		t.Errorf("Check over another message: %v", err)
	}
}

func TestKeyTypes(t *testing.T) {
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	ecKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []any{rsaKey, ecKey} {
		s, err := ssh.NewSignerFromKey(k)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(s.PublicKey().Type(), func(t *testing.T) {
			as, err := ParseAllowedSigners([]byte(line("team", s.PublicKey())))
			if err != nil {
				t.Fatal(err)
			}
			who, err := as.Verify(mustSign(t, s, testMsg), testMsg, testNow)
			if err != nil {
				t.Fatal(err)
			}
			if who.KeyType != s.PublicKey().Type() || who.Principal != "team" {
				t.Errorf("signer %+v", who)
			}
		})
	}
}

// certFor makes a user certificate for key, signed by ca.
func certFor(t testing.TB, ca ssh.Signer, key ssh.PublicKey, typ uint32, principals []string, after, before time.Time) *ssh.Certificate {
	t.Helper()
	c := &ssh.Certificate{Key: key, CertType: typ, KeyId: "test", ValidPrincipals: principals,
		ValidAfter: uint64(after.Unix()), ValidBefore: uint64(before.Unix()),
		Permissions: ssh.Permissions{CriticalOptions: map[string]string{"force-command": "true"}}}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

func TestVerifyCertificates(t *testing.T) {
	ca, otherCA, user := newSigner(t), newSigner(t), newSigner(t)
	year := func(y int) time.Time { return time.Date(y, 1, 1, 0, 0, 0, 0, time.UTC) }
	signWith := func(c *ssh.Certificate) []byte {
		cs, err := ssh.NewCertSigner(c, user)
		if err != nil {
			t.Fatal(err)
		}
		return mustSign(t, cs, testMsg)
	}
	good := certFor(t, ca, user.PublicKey(), ssh.UserCert, []string{"alice@example.com", "root"}, year(2025), year(2027))
	tests := []struct {
		name, allowed string
		cert          *ssh.Certificate
		principal     string // "" if untrusted
		says          string
	}{
		{"CA trusted for the domain", line("*@example.com cert-authority", ca.PublicKey()), good, "alice@example.com", ""},
		{"CA with namespace option", line(`alice@example.com,root cert-authority,namespaces="vibe-image"`, ca.PublicKey()), good, "alice@example.com,root", ""},
		{"CA trusted for another domain", line("*@example.org cert-authority", ca.PublicKey()), good, "", "matches none of the certificate's principals"},
		{"another CA", line("*@example.com cert-authority", otherCA.PublicKey()), good, "", "its CA " + ssh.FingerprintSHA256(ca.PublicKey()) + " is not in the allowed signers"},
		{"CA key without cert-authority", line("*@example.com", ca.PublicKey()), good, "", "is not in"},
		{"the plain user key is listed", line("alice@example.com", user.PublicKey()), good, "", "is not in"},
		{"expired certificate", line("*@example.com cert-authority", ca.PublicKey()),
			certFor(t, ca, user.PublicKey(), ssh.UserCert, []string{"alice@example.com"}, year(2024), year(2025)), "", "cert has expired"},
		{"host certificate", line("* cert-authority", ca.PublicKey()),
			certFor(t, ca, user.PublicKey(), ssh.HostCert, []string{"alice@example.com"}, year(2024), year(2030)), "", "host certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			as, err := ParseAllowedSigners([]byte(tt.allowed))
			if err != nil {
				t.Fatal(err)
			}
			who, err := as.Verify(signWith(tt.cert), testMsg, testNow)
			t.Log(err)
			if tt.principal == "" {
				if !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), tt.says) {
					t.Fatalf("Verify: %v, want ErrUntrusted saying %q", err, tt.says)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if who.Principal != tt.principal || who.KeyType != ssh.CertAlgoED25519v01 {
				t.Errorf("signer %+v, want principal %q", who, tt.principal)
			}
		})
	}
}

func writeFile(t testing.TB, dir, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSignWithKeyFile(t *testing.T) {
	s, priv := newEd25519(t)
	block, err := ssh.MarshalPrivateKey(priv, "test")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := writeFile(t, dir, "id_ed25519", pem.EncodeToMemory(block))
	sig, err := Sign(path, testMsg)
	if err != nil {
		t.Fatal(err)
	}
	who, err := Check(sig, testMsg)
	if err != nil || who.Fingerprint != ssh.FingerprintSHA256(s.PublicKey()) {
		t.Fatalf("Check = %+v, %v", who, err)
	}

	if _, err := Sign(filepath.Join(dir, "missing"), testMsg); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("missing key file: %v", err)
	}
	junk := writeFile(t, dir, "junk", []byte("hello"))
	if _, err := Sign(junk, testMsg); err == nil || !strings.Contains(err.Error(), "neither an OpenSSH private key nor a public key") {
		t.Errorf("junk key file: %v", err)
	}
}

func TestSignWithEncryptedKey(t *testing.T) {
	s, priv := newEd25519(t)
	block, err := ssh.MarshalPrivateKeyWithPassphrase(priv, "test", []byte("correct horse"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	path := writeFile(t, dir, "id_ed25519", pem.EncodeToMemory(block))

	// No terminal at all, and a "terminal" that is a plain file: both must
	// fail at once with advice, never block.
	for _, tty := range []string{filepath.Join(dir, "no-tty"), writeFile(t, dir, "not-a-tty", nil)} {
		old := ttyPath
		ttyPath = tty
		_, err := Sign(path, testMsg)
		ttyPath = old
		if err == nil || !strings.Contains(err.Error(), "is encrypted and there is no terminal") || !strings.Contains(err.Error(), "ssh-add "+path) {
			t.Errorf("encrypted key without terminal (%s): %v", tty, err)
		}
	}

	old := askPassphrase
	t.Cleanup(func() { askPassphrase = old })
	var asked string
	askPassphrase = func(p string) ([]byte, error) { asked = p; return []byte("correct horse"), nil }
	sig, err := Sign(path, testMsg)
	if err != nil {
		t.Fatal(err)
	}
	if who, err := Check(sig, testMsg); err != nil || who.Fingerprint != ssh.FingerprintSHA256(s.PublicKey()) || asked != path {
		t.Fatalf("Check = %+v, %v (asked for %q)", who, err, asked)
	}
	askPassphrase = func(string) ([]byte, error) { return []byte("wrong"), nil }
	if _, err := Sign(path, testMsg); err == nil || !strings.Contains(err.Error(), "wrong passphrase for signing key "+path) {
		t.Errorf("wrong passphrase: %v", err)
	}
}

// startAgent serves an in-process ssh-agent holding keys on a socket in a
// temporary directory, and points SSH_AUTH_SOCK at it.
func startAgent(t *testing.T, keys ...agent.AddedKey) {
	t.Helper()
	kr := agent.NewKeyring()
	for _, k := range keys {
		if err := kr.Add(k); err != nil {
			t.Fatal(err)
		}
	}
	sock := filepath.Join(t.TempDir(), "agent.sock")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); agent.ServeAgent(kr, c) }()
		}
	}()
	t.Setenv("SSH_AUTH_SOCK", sock)
}

func TestSignWithAgent(t *testing.T) {
	s, priv := newEd25519(t)
	rsaKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	rs, err := ssh.NewSignerFromKey(rsaKey)
	if err != nil {
		t.Fatal(err)
	}
	cert := certFor(t, newSigner(t), s.PublicKey(), ssh.UserCert, []string{"alice@example.com"}, time.Unix(0, 0), time.Now().Add(time.Hour))
	// As ssh-add loads id_ed25519 with id_ed25519-cert.pub.
	startAgent(t, agent.AddedKey{PrivateKey: priv}, agent.AddedKey{PrivateKey: priv, Certificate: cert}, agent.AddedKey{PrivateKey: rsaKey})
	dir := t.TempDir()

	for _, k := range []ssh.PublicKey{s.PublicKey(), rs.PublicKey(), cert} {
		t.Run(k.Type(), func(t *testing.T) {
			pub := writeFile(t, dir, "key.pub", ssh.MarshalAuthorizedKey(k))
			sig, err := Sign(pub, testMsg)
			if err != nil {
				t.Fatal(err)
			}
			who, err := Check(sig, testMsg)
			if err != nil || who.Fingerprint != ssh.FingerprintSHA256(k) {
				t.Fatalf("Check = %+v, %v", who, err)
			}
		})
	}

	other := writeFile(t, dir, "other.pub", ssh.MarshalAuthorizedKey(newSigner(t).PublicKey()))
	if _, err := Sign(other, testMsg); err == nil || !strings.Contains(err.Error(), "does not hold the private key of "+other) {
		t.Errorf("key not in agent: %v", err)
	}
	t.Setenv("SSH_AUTH_SOCK", filepath.Join(dir, "gone.sock"))
	if _, err := Sign(other, testMsg); err == nil || !strings.Contains(err.Error(), "cannot be reached") {
		t.Errorf("agent gone: %v", err)
	}
	t.Setenv("SSH_AUTH_SOCK", "")
	if _, err := Sign(other, testMsg); err == nil || !strings.Contains(err.Error(), "SSH_AUTH_SOCK is not set") {
		t.Errorf("no agent: %v", err)
	}
}

func TestEnvelope(t *testing.T) {
	c := Claim{Name: "team/vibe", SignedAt: time.Unix(1764590400, 0).UTC()}
	b := Envelope(c, []byte("-----BEGIN SSH SIGNATURE-----\nx\n-----END SSH SIGNATURE-----\n"))
	got, armor, err := ParseEnvelope(b)
	if err != nil || *got != c || !bytes.HasPrefix(armor, []byte("-----BEGIN SSH SIGNATURE-----")) {
		t.Fatalf("round trip: %+v %q %v", got, armor, err)
	}
	if got, armor, err := ParseEnvelope([]byte("-----BEGIN SSH SIGNATURE-----\n")); got != nil || err != nil || len(armor) == 0 {
		t.Errorf("a v1 file: %v %v", got, err)
	}
	for _, bad := range []string{
		"vibe-image-signature v2\nname: a\nb\nsigned-at: 1\n",
		"vibe-image-signature v2\nname: ../x\nsigned-at: 1\n",
		"vibe-image-signature v2\nname: x\nsigned-at: -5\n",
		"vibe-image-signature v2\nname: x\n",
	} {
		if _, _, err := ParseEnvelope([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if string(MessageV2("ab", nil, c)) == string(MessageV2("ab", nil, Claim{Name: "other", SignedAt: c.SignedAt})) {
		t.Error("the name is not in the signed message")
	}
}
