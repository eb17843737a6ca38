package provision

import (
	"bytes"
	"crypto/rand"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/internal/e2e"
)

// relayTo runs the guest half of a relayed port against port on this
// machine's loopback, with stdin as the host's client.
func relayTo(t *testing.T, port int, stdin io.Reader) (string, string, int) {
	t.Helper()
	prog, err := File("port-relay")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("python3", "-I", "-c", prog, strconv.Itoa(port))
	cmd.Stdin = stdin
	return e2e.Run(t, cmd)
}

// Bytes go both ways unchanged, the client's end reaches the server as a
// half-close (the server answers after it), and the relay ends when the
// server closes.
func TestPortRelayCarriesAConnection(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	payload := make([]byte, 3<<20)
	rand.Read(payload)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		got, _ := io.ReadAll(c) // until the client's half-close
		c.Write([]byte(strconv.Itoa(len(got)) + "\n"))
		c.Write(got)
	}()
	out, errOut, code := relayTo(t, ln.Addr().(*net.TCPAddr).Port, bytes.NewReader(payload))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	head, body, _ := strings.Cut(out, "\n")
	if head != strconv.Itoa(len(payload)) || body != string(payload) {
		t.Errorf("the server got %s bytes and %d came back, want %d each way unchanged", head, len(body), len(payload))
	}
}

// Nothing listening: a clear message and a failing exit, so that the host
// says which port refused.
func TestPortRelayNothingListening(t *testing.T) {
	ln, _ := net.Listen("tcp4", "127.0.0.1:0")
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	_, errOut, code := relayTo(t, port, strings.NewReader(""))
	if code != 3 || !strings.Contains(errOut, "nothing answers on 127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("exit %d: %q", code, errOut)
	}
}
