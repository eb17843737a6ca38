// Package signing signs vibe images with the SSH keys a team already has and
// verifies them against a git-style allowed signers file. Signatures are
// OpenSSH SSHSIG ("ssh-keygen -Y sign -n vibe-image"), so either side can be
// done with ssh-keygen instead of vibe.
package signing

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/term"
)

// Namespace is the SSHSIG namespace of vibe image signatures
// (ssh-keygen -Y ... -n vibe-image): a signature made for git or for files
// cannot be replayed as an image signature.
const Namespace = "vibe-image"

// MaxSignatureSize bounds armored input before it is parsed: real signatures
// are a few KiB at most, even with RSA-8192 keys and certificates.
const MaxSignatureSize = 64 << 10

// maxKeyFile bounds key files read by Sign.
const maxKeyFile = 1 << 20

// Errors, to be tested with errors.Is.
var (
	// ErrBadSignature: unreadable armor, wrong namespace, or the signature
	// does not verify over the message.
	ErrBadSignature = errors.New("bad signature")
	// ErrUntrusted: the signature is valid but the allowed signers file does
	// not trust its key (not listed, not for this namespace, or not now).
	ErrUntrusted = errors.New("untrusted signer")
)

// Message is the byte string signed for an image: the image fingerprint (64
// lowercase hex) and the SHA-256 of the manifest.json bytes. The format is a
// compatibility promise. It is unambiguous even for a malformed fingerprint:
// the manifest hash is the fixed-length tail.
func Message(fingerprint string, manifest []byte) []byte {
	return fmt.Appendf(nil, "vibe image signature v1\nfingerprint %s\nmanifest-sha256 %x\n", fingerprint, sha256.Sum256(manifest))
}

// Signer describes who made a valid signature.
type Signer struct {
	// Principal is the allowed signers principal list that matched (for a
	// certificate, its principals that matched); "" when not checked.
	Principal string
	// KeyType is the signing key's type, e.g. ssh-ed25519.
	KeyType string
	// Fingerprint is ssh.FingerprintSHA256 of the public key, "SHA256:...".
	Fingerprint string
}

func describe(pub ssh.PublicKey) *Signer {
	return &Signer{KeyType: pub.Type(), Fingerprint: ssh.FingerprintSHA256(pub)}
}

// SignWith signs msg with s and returns the armored signature (SHA-512,
// Namespace), exactly what ssh-keygen -Y sign writes.
func SignWith(s ssh.Signer, msg []byte) ([]byte, error) {
	sig, err := sshsig.Sign(bytes.NewReader(msg), s, sshsig.HashSHA512, Namespace)
	if err != nil {
		return nil, fmt.Errorf("sign with %s key %s: %w", s.PublicKey().Type(), ssh.FingerprintSHA256(s.PublicKey()), err)
	}
	return sshsig.Armor(sig), nil
}

// Sign signs msg with the key at keyPath: an OpenSSH private key file
// (asking for the passphrase on the terminal if it is encrypted), or a public
// key file (.pub, or a -cert.pub certificate) whose private key is in the
// ssh-agent at $SSH_AUTH_SOCK.
func Sign(keyPath string, msg []byte) ([]byte, error) {
	s, done, err := loadSigner(keyPath)
	if err != nil {
		return nil, err
	}
	defer done()
	return SignWith(s, msg)
}

func loadSigner(keyPath string) (ssh.Signer, func(), error) {
	data, err := readSmall(keyPath, maxKeyFile)
	if err != nil {
		return nil, nil, fmt.Errorf("signing key: %w", err)
	}
	if pub, _, _, _, err := ssh.ParseAuthorizedKey(data); err == nil {
		return agentSigner(keyPath, pub)
	}
	s, err := ssh.ParsePrivateKey(data)
	if _, ok := errors.AsType[*ssh.PassphraseMissingError](err); ok {
		pw, perr := askPassphrase(keyPath)
		if perr != nil {
			return nil, nil, perr
		}
		s, err = ssh.ParsePrivateKeyWithPassphrase(data, pw)
		clear(pw)
		if errors.Is(err, x509.IncorrectPasswordError) {
			return nil, nil, fmt.Errorf("wrong passphrase for signing key %s", keyPath)
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("signing key %s is neither an OpenSSH private key nor a public key (.pub) whose private key is in ssh-agent: %w", keyPath, err)
	}
	return s, func() {}, nil
}

// ttyPath and askPassphrase are variables so tests can run without a
// terminal and without hanging on one.
var (
	ttyPath       = "/dev/tty"
	askPassphrase = ttyPassphrase
)

// ttyPassphrase reads a passphrase from the controlling terminal, not stdin:
// stdin may carry data, and the passphrase must not echo.
func ttyPassphrase(keyPath string) ([]byte, error) {
	tty, err := os.OpenFile(ttyPath, os.O_RDWR, 0)
	if err == nil && !term.IsTerminal(int(tty.Fd())) {
		tty.Close()
		err = errors.New("not a terminal")
	}
	if err != nil {
		return nil, fmt.Errorf("signing key %s is encrypted and there is no terminal to ask for its passphrase (%v); load it into ssh-agent with \"ssh-add %s\" and sign with %s.pub instead", keyPath, err, keyPath, keyPath)
	}
	defer tty.Close()
	fmt.Fprintf(tty, "Enter passphrase for %s: ", keyPath)
	pw, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(tty)
	if err != nil {
		return nil, fmt.Errorf("read passphrase for %s: %w", keyPath, err)
	}
	return pw, nil
}

// agentSigner finds the agent key for pub. (ssh-add loads a key's
// certificate with it, so a -cert.pub is found the same way.)
func agentSigner(keyPath string, pub ssh.PublicKey) (ssh.Signer, func(), error) {
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, nil, fmt.Errorf("%s is a public key, so its private key must be in ssh-agent, but SSH_AUTH_SOCK is not set; start an agent and run ssh-add, or pass the private key file", keyPath)
	}
	conn, err := net.DialTimeout("unix", sock, 5*time.Second)
	if err != nil {
		return nil, nil, fmt.Errorf("%s is a public key, so its private key must be in ssh-agent, but the agent at SSH_AUTH_SOCK=%s cannot be reached: %w", keyPath, sock, err)
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		conn.Close()
		return nil, nil, fmt.Errorf("list ssh-agent keys at %s: %w", sock, err)
	}
	for _, s := range signers {
		if bytes.Equal(s.PublicKey().Marshal(), pub.Marshal()) {
			return s, func() { conn.Close() }, nil
		}
	}
	conn.Close()
	return nil, nil, fmt.Errorf("ssh-agent at %s does not hold the private key of %s (%s %s); add it with ssh-add", sock, keyPath, pub.Type(), ssh.FingerprintSHA256(pub))
}

// Check parses and verifies an armored signature over msg, with the key
// embedded in it and Namespace. It makes no trust decision: anyone can make
// a valid signature with a key of their own; AllowedSigners.Verify decides.
func Check(sig, msg []byte) (*Signer, error) {
	s, err := check(sig, msg)
	if err != nil {
		return nil, err
	}
	return describe(s.PublicKey), nil
}

func check(armored, msg []byte) (*sshsig.Signature, error) {
	if len(armored) > MaxSignatureSize {
		return nil, fmt.Errorf("%w: %d bytes is over the %d-byte limit for a signature", ErrBadSignature, len(armored), MaxSignatureSize)
	}
	s, err := sshsig.Unarmor(armored)
	if err != nil {
		return nil, fmt.Errorf("%w: not an armored SSH signature (-----BEGIN SSH SIGNATURE-----): %v", ErrBadSignature, err)
	}
	if s.Namespace != Namespace {
		return nil, fmt.Errorf("%w: made for namespace %q, not %q, so it does not sign a vibe image", ErrBadSignature, s.Namespace, Namespace)
	}
	if err := sshsig.Verify(bytes.NewReader(msg), s, s.PublicKey, s.HashAlgorithm, Namespace); err != nil {
		return nil, fmt.Errorf("%w: the signature by %s (%s) does not match: the image or its manifest changed after signing, or the signature is for another image (%v)", ErrBadSignature, ssh.FingerprintSHA256(s.PublicKey), s.PublicKey.Type(), err)
	}
	return s, nil
}

func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, limit)
	}
	return b, nil
}
