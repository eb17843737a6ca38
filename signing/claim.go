package signing

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// A v2 signature binds, besides the image, what it is for and when: the
// name the image is published as and the signing time. So an image a
// trusted key once signed under another name, or an old one, cannot be
// served as the team's current image without the verifier seeing it.
// The signature file is a small envelope: a header with the claim, then
// the armored SSHSIG over MessageV2. A file that is only the armor is a v1
// signature (no claim), which trust no longer accepts.

// Claim is what a v2 signature says besides the image.
type Claim struct {
	Name     string    // the name (alias) the image is published as
	SignedAt time.Time // when it was signed, to the second
}

const envelopeHeader = "vibe-image-signature v2\n"

var claimName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/+-]{0,199}$`)

// ValidName says why name cannot be signed, or nil.
func ValidName(name string) error {
	if !claimName.MatchString(name) {
		return fmt.Errorf("%q cannot be signed as an image name: letters, digits and . _ / + -, at most 200", name)
	}
	return nil
}

// MessageV2 is the byte string a v2 signature signs.
func MessageV2(fingerprint string, manifest []byte, c Claim) []byte {
	return fmt.Appendf(nil, "vibe image signature v2\nfingerprint %s\nmanifest-sha256 %x\nname %s\nsigned-at %d\n",
		fingerprint, sha256.Sum256(manifest), c.Name, c.SignedAt.Unix())
}

// Envelope wraps an armored signature with its claim.
func Envelope(c Claim, armored []byte) []byte {
	return fmt.Appendf(nil, "%sname: %s\nsigned-at: %d\n%s", envelopeHeader, c.Name, c.SignedAt.Unix(), armored)
}

// ParseEnvelope splits a signature file into its claim (nil for a v1 file,
// which is only the armor) and the armored signature.
func ParseEnvelope(b []byte) (*Claim, []byte, error) {
	if len(b) > MaxSignatureSize {
		return nil, nil, fmt.Errorf("%w: larger than %d bytes", ErrBadSignature, MaxSignatureSize)
	}
	rest, ok := bytes.CutPrefix(b, []byte(envelopeHeader))
	if !ok {
		return nil, b, nil
	}
	var c Claim
	for _, key := range []string{"name: ", "signed-at: "} {
		line, after, found := bytes.Cut(rest, []byte("\n"))
		v, ok := strings.CutPrefix(string(line), key)
		if !found || !ok {
			return nil, nil, fmt.Errorf("%w: the envelope lacks its %q line", ErrBadSignature, strings.TrimSuffix(key, ": "))
		}
		switch key {
		case "name: ":
			if err := ValidName(v); err != nil {
				return nil, nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
			}
			c.Name = v
		default:
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n <= 0 || n > 1<<40 || strconv.FormatInt(n, 10) != v {
				return nil, nil, fmt.Errorf("%w: signed-at %q is not a time", ErrBadSignature, v)
			}
			c.SignedAt = time.Unix(n, 0).UTC()
		}
		rest = after
	}
	return &c, rest, nil
}
