package config

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// TLS is what the guest trusts beyond the distribution's certificate
// authorities: a company's TLS-inspecting proxy or its package mirrors.
type TLS struct {
	// CA lists PEM files (absolute, or ~/ for the user's home) of extra
	// certificate authorities.
	CA []string `yaml:"ca" json:"ca"`
	// Certs are the certificates read from CA by ReadCAs: what the image
	// trusts, recorded by digest in its manifest.
	Certs []CACert `yaml:"-" json:"certs,omitempty"`
}

// CACert is one extra certificate authority.
type CACert struct {
	File    string `json:"file"`
	Subject string `json:"subject"`
	SHA256  string `json:"sha256"` // of the certificate (DER)
	PEM     string `json:"-"`      // re-encoded: nothing but the certificate
}

const (
	// MaxCAFiles bounds tls.ca.
	MaxCAFiles = 16
	maxCAFile  = 1 << 20
)

func (c *Config) checkTLS(Host) error {
	if len(c.TLS.CA) > MaxCAFiles {
		return c.errAt("tls.ca", "%d files: give at most %d", len(c.TLS.CA), MaxCAFiles)
	}
	for i, p := range c.TLS.CA {
		if !filepath.IsAbs(p) && !strings.HasPrefix(p, "~/") || strings.ContainsRune(p, 0) {
			return c.errAt(fmt.Sprintf("tls.ca[%d]", i), "%q: give an absolute path or one under ~/", p)
		}
	}
	return nil
}

// ReadCAs reads the tls.ca files into TLS.Certs. Each file may hold only
// certificates: anything else (a private key above all) would be baked
// into the image, so it is refused.
func (c *Config) ReadCAs(home string) error {
	c.TLS.Certs = nil
	for i, p := range c.TLS.CA {
		path := p
		if rest, ok := strings.CutPrefix(p, "~/"); ok {
			path = filepath.Join(home, rest)
		}
		certs, err := readCAFile(path)
		if err != nil {
			return c.errAt(fmt.Sprintf("tls.ca[%d]", i), "%v", err)
		}
		c.TLS.Certs = append(c.TLS.Certs, certs...)
	}
	return nil
}

func readCAFile(path string) ([]CACert, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if len(data) > maxCAFile {
		return nil, fmt.Errorf("%s: larger than %d bytes; a CA file holds a few certificates", path, maxCAFile)
	}
	return ParseCAs(path, data)
}

// ParseCAs reads the certificates of a PEM file.
func ParseCAs(name string, data []byte) ([]CACert, error) {
	var out []CACert
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			return nil, fmt.Errorf("%s holds a %s block: only certificates belong in tls.ca (the image would carry anything else)", name, b.Type)
		}
		cert, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: a certificate that does not parse: %w", name, err)
		}
		sum := sha256.Sum256(cert.Raw)
		out = append(out, CACert{
			File: name, Subject: cert.Subject.String(), SHA256: hex.EncodeToString(sum[:]),
			PEM: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})),
		})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", name)
	}
	return out, nil
}

// CheckMirror checks a mirror URL as vibe.yaml does (http only where
// allowHTTP: apt).
func CheckMirror(u string, allowHTTP bool) error {
	_, err := checkMirrorURL(u, allowHTTP)
	return err
}
