package signing

import (
	"bytes"
	"encoding/pem"
	"errors"
	"strings"
	"testing"
	"time"
)

// FuzzParseAllowedSigners: hostile files never panic, and every accepted
// entry's canonical line parses back to the same entry.
func FuzzParseAllowedSigners(f *testing.F) {
	k := authorized(newSigner(f).PublicKey())
	for _, s := range []string{
		"alice@example.com " + k,
		"# comment\n\n\t*@example.com,!bob cert-authority " + k + " ca\r\n",
		`"Alice Example" namespaces="vibe-image,git",valid-after="20240101",valid-before="20300101120000Z" ` + k,
		`alice NAMESPACES="a b" ` + k,
		`alice valid-after="202401011230UTC" ` + k,
		`alice namespaces="x",, ` + k,
		`alice "unterminated ` + k,
		"alice bogus " + k,
		"alice ssh-ed25519 AAAA",
		"alice",
		"",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAllowedSigners([]byte(s))
		if err != nil {
			if !strings.HasPrefix(err.Error(), "allowed signers") {
				t.Fatalf("error does not say where: %v", err)
			}
			return
		}
		for _, e := range a.Entries {
			line := e.String()
			b, err := ParseAllowedSigners([]byte(line))
			if err != nil || len(b.Entries) != 1 {
				t.Fatalf("%q: canonical line %q does not parse: %v", s, line, err)
			}
			g := b.Entries[0]
			if g.Principals != e.Principals || g.CertAuthority != e.CertAuthority || g.Namespaces != e.Namespaces ||
				!g.ValidAfter.Equal(e.ValidAfter) || !g.ValidBefore.Equal(e.ValidBefore) || !bytes.Equal(g.Key.Marshal(), e.Key.Marshal()) {
				t.Fatalf("%q: canonical line %q parses to %+v, want %+v", s, line, g, e)
			}
			if g.String() != line {
				t.Fatalf("canonical line %q is not stable: %q", line, g.String())
			}
		}
	})
}

// FuzzCheck: hostile signature bytes never panic, and are only ever a
// bad signature, never accepted over a message they were not made for.
func FuzzCheck(f *testing.F) {
	s := newSigner(f)
	sig, err := SignWith(s, testMsg)
	if err != nil {
		f.Fatal(err)
	}
	a, err := ParseAllowedSigners([]byte("* " + authorized(s.PublicKey())))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(sig)
	f.Add(sig[:len(sig)/2])
	f.Add(bytes.ReplaceAll(sig, []byte("SSH SIGNATURE"), []byte("SSH SIGNATURX")))
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n"))
	f.Add([]byte{})
	if p, _ := pem.Decode(sig); p != nil {
		f.Add(p.Bytes) // the raw blob, armored in the test to reach the parser
	}
	other := Message(testFP, []byte("another manifest"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		b := raw
		if !bytes.HasPrefix(raw, []byte("-----BEGIN")) {
			b = pem.EncodeToMemory(&pem.Block{Type: "SSH SIGNATURE", Bytes: raw})
		}
		for _, err := range []error{
			func() error { _, err := Check(b, testMsg); return err }(),
			func() error { _, err := a.Verify(b, testMsg, time.Now()); return err }(),
		} {
			if err != nil && !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrUntrusted) {
				t.Fatalf("error is neither ErrBadSignature nor ErrUntrusted: %v", err)
			}
		}
		if who, err := Check(b, other); err == nil {
			t.Fatalf("signature by %s verified over a message nobody signed", who.Fingerprint)
		}
	})
}

func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte("vibe-image-signature v2\nname: vibe\nsigned-at: 1764590400\n-----BEGIN SSH SIGNATURE-----\n"))
	f.Add([]byte("-----BEGIN SSH SIGNATURE-----\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, armor, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		if c != nil {
			if ValidName(c.Name) != nil || c.SignedAt.Unix() <= 0 {
				t.Fatalf("accepted a bad claim %+v", c)
			}
			if !bytes.Equal(Envelope(*c, armor), b) {
				t.Fatalf("the envelope does not round-trip: %q", b)
			}
		}
	})
}
