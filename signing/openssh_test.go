package signing

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/internal/e2e"
)

// Interoperability with the real OpenSSH: a team can sign or verify with
// ssh-keygen instead of vibe, and keep one allowed signers file for both.

func run(t *testing.T, stdin []byte, name string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdin = bytes.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// keygenSign writes testMsg to dir/name and signs it with ssh-keygen -Y
// sign using key (a private key, or a certificate beside its key); it
// returns the message's path and the signature.
func keygenSign(t *testing.T, bin, key, dir, name string) (string, []byte) {
	t.Helper()
	msgPath := writeFile(t, dir, name, testMsg)
	if out, err := run(t, nil, bin, "-Y", "sign", "-f", key, "-n", Namespace, msgPath); err != nil {
		t.Fatalf("ssh-keygen -Y sign -f %s: %v\n%s", filepath.Base(key), err, out)
	}
	sig, err := os.ReadFile(msgPath + ".sig")
	if err != nil {
		t.Fatal(err)
	}
	return msgPath, sig
}

// genKey makes an unencrypted key pair with ssh-keygen and returns the
// private key path and the public key line.
func genKey(t *testing.T, bin, dir, typ string) (string, string) {
	t.Helper()
	path := filepath.Join(dir, "id_"+typ)
	for i := 2; exists(path); i++ {
		path = filepath.Join(dir, fmt.Sprintf("id_%s%d", typ, i))
	}
	if out, err := run(t, nil, bin, "-q", "-t", typ, "-N", "", "-C", "test", "-f", path); err != nil {
		t.Fatalf("ssh-keygen -t %s: %v\n%s", typ, err, out)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return path, strings.TrimSpace(string(pub))
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

func TestOpenSSHSignsWeVerify(t *testing.T) {
	bin := e2e.Tool(t, "ssh-keygen", "")
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			key, pub := genKey(t, bin, dir, typ)
			_, sig := keygenSign(t, bin, key, dir, "msg")
			a, err := ParseAllowedSigners([]byte(`alice@example.com namespaces="vibe-image,git" ` + pub + "\n"))
			if err != nil {
				t.Fatal(err)
			}
			if who, err := a.Verify(sig, testMsg, time.Now()); err != nil || who.Principal != "alice@example.com" {
				t.Fatalf("Verify = %+v, %v", who, err)
			}
			if _, err := a.Verify(sig, Message(testFP, []byte("other")), time.Now()); err == nil {
				t.Fatal("Verify accepted another message")
			}
		})
	}
}

func TestWeSignOpenSSHVerifies(t *testing.T) {
	bin := e2e.Tool(t, "ssh-keygen", "")
	for _, typ := range []string{"ed25519", "ecdsa", "rsa"} {
		t.Run(typ, func(t *testing.T) {
			dir := t.TempDir()
			key, pub := genKey(t, bin, dir, typ)
			sig, err := Sign(key, testMsg)
			if err != nil {
				t.Fatal(err)
			}
			sigPath := writeFile(t, dir, "msg.sig", sig)
			// The allowed signers line is written by Entry.String, so ssh-keygen
			// also accepts our canonical form.
			a, err := ParseAllowedSigners([]byte(`alice@example.com namespaces="vibe-image",valid-after="20200101" ` + pub))
			if err != nil {
				t.Fatal(err)
			}
			allowed := writeFile(t, dir, "allowed", []byte(a.Entries[0].String()+"\n"))
			out, err := run(t, testMsg, bin, "-Y", "verify", "-f", allowed, "-I", "alice@example.com", "-n", Namespace, "-s", sigPath)
			if err != nil || !strings.Contains(out, `Good "vibe-image" signature for alice@example.com`) {
				t.Fatalf("ssh-keygen -Y verify: %v\n%s", err, out)
			}
			if _, err := run(t, []byte("tampered"), bin, "-Y", "verify", "-f", allowed, "-I", "alice@example.com", "-n", Namespace, "-s", sigPath); err == nil {
				t.Fatal("ssh-keygen verified a tampered message")
			}
		})
	}
}

// TestAllowedSignersAgreeWithOpenSSH feeds the same files to ssh-keygen and
// to Verify: both must parse them and reach the same trust decision.
func TestAllowedSignersAgreeWithOpenSSH(t *testing.T) {
	bin := e2e.Tool(t, "ssh-keygen", "")
	dir := t.TempDir()
	key, pub := genKey(t, bin, dir, "ed25519")
	_, other := genKey(t, bin, dir, "ecdsa")
	msgPath, sig := keygenSign(t, bin, key, dir, "msg")
	// A user certificate for the key, and ssh-keygen's signature with it.
	ca, caPub := genKey(t, bin, dir, "ed25519")
	if out, err := run(t, nil, bin, "-q", "-s", ca, "-I", "alice", "-n", "alice@example.com", "-V", "-1d:+1d", key+".pub"); err != nil {
		t.Fatalf("ssh-keygen -s: %v\n%s", err, out)
	}
	certMsg, certSig := keygenSign(t, bin, key+"-cert.pub", dir, "certmsg")

	past, future := time.Now().AddDate(-1, 0, 0).Format("20060102"), time.Now().AddDate(1, 0, 0).Format("20060102")
	tests := []struct {
		name, file string
		cert       bool
		trusted    bool
	}{
		{"plain line", "alice@example.com " + pub, false, true},
		{"comments, blank lines, tabs", "# team\n\n   # indented comment\n\talice@example.com\t" + pub + " laptop key\n", false, true},
		{"CRLF line ends", "# team\r\nbob@example.com " + other + "\r\nalice@example.com " + pub + "\r\n", false, true},
		{"namespaces", `alice@example.com namespaces="vibe-image,git" ` + pub, false, true},
		{"namespace pattern", `alice@example.com namespaces="vibe-*" ` + pub, false, true},
		{"other namespace only", `alice@example.com namespaces="git" ` + pub, false, false},
		{"negated namespace", `alice@example.com namespaces="*,!vibe-image" ` + pub, false, false},
		{"uppercase option name", `alice@example.com NAMESPACES="vibe-image" ` + pub, false, true},
		{"quoted principals", `"alice@example.com" ` + pub, false, true},
		{"principal patterns", "*@example.com,!mallory@example.com " + pub, false, true},
		{"valid window", fmt.Sprintf(`alice@example.com valid-after="%s",valid-before="%sZ" `, past, future) + pub, false, true},
		{"valid-after with time", `alice@example.com valid-after="200001011200" ` + pub, false, true},
		{"expired", fmt.Sprintf(`alice@example.com valid-before="%s" `, past) + pub, false, false},
		{"not yet valid", fmt.Sprintf(`alice@example.com valid-after="%s" `, future) + pub, false, false},
		{"other key only", "alice@example.com " + other, false, false},
		{"key listed as a CA", "alice@example.com cert-authority " + pub, false, false},
		{"CA for a certificate", "*@example.com cert-authority " + caPub, true, true},
		{"CA with namespaces", `*@example.com cert-authority,namespaces="vibe-image" ` + caPub, true, true},
		{"CA for other principals", "*@example.org cert-authority " + caPub, true, false},
		{"CA without cert-authority", "alice@example.com " + caPub, true, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sig, sigPath := sig, msgPath+".sig"
			if tt.cert {
				sig, sigPath = certSig, certMsg+".sig"
			}
			allowed := writeFile(t, t.TempDir(), "allowed", []byte(tt.file+"\n"))
			out, err := run(t, testMsg, bin, "-Y", "verify", "-f", allowed, "-I", "alice@example.com", "-n", Namespace, "-s", sigPath)
			if (err == nil) != tt.trusted {
				t.Fatalf("ssh-keygen -Y verify trusted=%v, want %v:\n%s", err == nil, tt.trusted, out)
			}
			a, err := LoadAllowedSigners(allowed)
			if err != nil {
				t.Fatalf("ssh-keygen accepts the file, we do not: %v", err)
			}
			who, err := a.Verify(sig, testMsg, time.Now())
			if (err == nil) != tt.trusted {
				t.Fatalf("Verify = %+v, %v; want trusted=%v", who, err, tt.trusted)
			}
			if err != nil {
				t.Log(err)
			}
		})
	}
}
