package gateway

// Attacks from a hostile review of the ranges file; each failed on the code
// it attacked.

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// heldListener holds every Accept until open is closed: the kernel takes
// the TCP connection, the TLS handshake waits.
type heldListener struct {
	net.Listener
	open chan struct{}
}

func (l heldListener) Accept() (net.Conn, error) {
	<-l.open
	return l.Listener.Accept()
}

// The credential routes' upstream transport speaks HTTP/2. Its dial goes
// on when the request that started it is cancelled (net/http detaches
// dials from requests), and the connection lands in the HTTP/2 pool
// unused; the first request to take it is told Reused=false. It is judged
// all the same: once the ranges file refuses the address, no request
// (with the real credential) goes there over it.
func TestUnusedHTTP2ConnIsJudged(t *testing.T) {
	var hits atomic.Int64
	seen := make(chan string, 10)
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		seen <- time.Now().Format("15:04:05.000") + " " + r.Method + " " + r.URL.Path + " " + r.Proto + " key=" + r.Header.Get("X-Api-Key")
		fmt.Fprintf(w, "reached %s over %s with key %s", r.URL.Path, r.Proto, r.Header.Get("X-Api-Key"))
	}))
	open := make(chan struct{})
	up.Listener = heldListener{up.Listener, open}
	up.EnableHTTP2 = true
	up.StartTLS()
	defer up.Close()

	state := t.TempDir()
	dir := filepath.Join(state, "sandboxes", "127.0.0.1")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, PolicyFile), []byte(`{"sandbox":"sb"}`), 0o600)
	os.WriteFile(filepath.Join(dir, CredentialsFile), []byte(fmt.Sprintf(
		`{"credentials":[{"name":"K","upstream":%q,"header":"X-Api-Key","value":"sk-real"}]}`, up.URL)), 0o600)
	ranges := filepath.Join(t.TempDir(), "ranges.json")
	os.WriteFile(ranges, []byte(`{"never":[],"private":[]}`), 0o644)
	s := &Server{Store: &Store{Dir: filepath.Join(state, "sandboxes")}, Self: netip.MustParseAddr("192.0.2.1"), RangesFile: ranges}
	// The production transport (upstream()), trusting the test's CA.
	tr := s.upstream().(*http.Transport)
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	gw := httptest.NewServer(s.Handler())
	defer gw.Close()

	// 1. A request the sandbox gives up on while the TLS handshake waits.
	c := &http.Client{Timeout: 300 * time.Millisecond}
	if _, err := c.Get(gw.URL + CredentialPath + "K/first"); err == nil {
		t.Fatal("the first request was to time out")
	}
	time.Sleep(200 * time.Millisecond) // the gateway sees the sandbox hang up
	t.Logf("%s first request given up; handshake released", time.Now().Format("15:04:05.000"))
	close(open) // the handshake completes; the connection is pooled, unused
	time.Sleep(300 * time.Millisecond)

	// 2. vibe writes ranges that refuse the upstream's address.
	os.WriteFile(ranges, []byte(`{"never":["127.0.0.1/32"],"private":[]}`), 0o644)
	time.Sleep(50 * time.Millisecond)

	t.Logf("%s ranges now refuse 127.0.0.1", time.Now().Format("15:04:05.000"))
	// 3. The next request.
	resp, err := http.Get(gw.URL + CredentialPath + "K/second")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	t.Logf("answer: %d %q", resp.StatusCode, b)
	for len(seen) > 0 {
		t.Logf("the upstream (at an address now refused) saw: %s", <-seen)
	}
	if hits.Load() != 0 || strings.Contains(string(b), "reached") {
		t.Errorf("a request reached 127.0.0.1 after the ranges file refused it (upstream hits: %d)", hits.Load())
	}
	// The same request again: now Reused=true, and refused.
	resp, err = http.Get(gw.URL + CredentialPath + "K/third")
	if err == nil {
		b, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("control (connection now marked reused): %d %q", resp.StatusCode, strings.TrimSpace(string(b)))
	}
}
