package gateway

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// A credential route's name is the sandbox's text (a decoded path
// segment): logged in printable ASCII and cut, so that neither a terminal
// control (U+009B), a bidirectional override nor a line too long to read
// back (which would hide the refusal) reaches the log.
func TestCredentialNameIsLoggedAsASCII(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb"})
	for _, name := range []string{"%C2%9B2J%C2%9B31mALLOW%E2%80%AEtset.dewolla", strings.Repeat("K", 100<<10)} {
		resp, err := http.Get(f.proxy.URL + CredentialPath + name + "/x")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	b, err := os.ReadFile(f.log)
	if err != nil {
		t.Fatal(err)
	}
	var hosts []string
	ReadEntries(bytes.NewReader(b), func(e Entry) error { hosts = append(hosts, e.Host); return nil })
	if len(hosts) != 2 {
		t.Fatalf("%d entries logged, want 2: %q", len(hosts), b)
	}
	for _, h := range hosts {
		if len(h) > 100 || strings.IndexFunc(h, func(r rune) bool { return r < 0x20 || r >= 0x7f }) >= 0 {
			t.Errorf("logged as %.200q", h)
		}
	}
}

// smallBufListener keeps the kernel's socket buffers on the gateway's
// client side small, so that what is measured is the gateway's own
// buffering, not the kernel's.
type smallBufListener struct{ net.Listener }

func (l smallBufListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(8 << 10)
	}
	return c, err
}

// A credential route's upstream speaks HTTP/2, whose client takes up to a
// stream's receive window before anyone reads. A sandbox that asks for
// large answers and never reads them must not make the gateway hold much
// of each: at MaxConnsPerSandbox requests it would pass the gateway's
// memory limit and cut every sandbox off.
func TestUnreadCredentialAnswersAreBounded(t *testing.T) {
	var sent atomic.Int64
	stop := make(chan struct{})
	up := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		chunk := make([]byte, 32<<10)
		for i := 0; i < 8<<20/len(chunk); i++ {
			if _, err := w.Write(chunk); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			sent.Add(int64(len(chunk)))
			select {
			case <-stop:
				return
			default:
			}
		}
	}))
	up.EnableHTTP2 = true
	up.StartTLS()
	defer up.Close()
	defer close(stop)

	state := t.TempDir()
	dir := filepath.Join(state, "sandboxes", "127.0.0.1")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, PolicyFile), []byte(`{"sandbox":"sb"}`), 0o600)
	os.WriteFile(filepath.Join(dir, CredentialsFile), []byte(fmt.Sprintf(
		`{"credentials":[{"name":"K","upstream":%q,"header":"X-Api-Key","value":"sk-real"}]}`, up.URL)), 0o600)
	s := &Server{Store: &Store{Dir: filepath.Join(state, "sandboxes")}, Self: netip.MustParseAddr("192.0.2.1")}
	tr := s.upstream().(*http.Transport)
	pool := x509.NewCertPool()
	pool.AddCert(up.Certificate())
	tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	gw := httptest.NewUnstartedServer(s.Handler())
	gw.Listener = smallBufListener{gw.Listener}
	gw.Start()
	defer gw.Close()

	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	const n = 12
	for i := 0; i < n; i++ {
		c, err := net.Dial("tcp", gw.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).SetReadBuffer(4 << 10)
		defer c.Close()
		fmt.Fprintf(c, "GET %sK/files/big HTTP/1.1\r\nHost: gw\r\n\r\n", CredentialPath)
	}
	// Until flow control stalls the upstream.
	last := int64(-1)
	for i := 0; i < 100; i++ {
		time.Sleep(200 * time.Millisecond)
		if v := sent.Load(); v == last && v > 0 {
			break
		} else {
			last = v
		}
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	per := (int64(after.HeapInuse) - int64(before.HeapInuse)) / n
	t.Logf("upstream sent %d MiB; the gateway holds %d KiB for each unread answer", sent.Load()>>20, per>>10)
	if per > 1<<20 {
		t.Errorf("each unread answer holds %d KiB in the gateway: %d of them (MaxConnsPerSandbox) hold %d MiB", per>>10, MaxConnsPerSandbox, per*MaxConnsPerSandbox>>20)
	}
}
