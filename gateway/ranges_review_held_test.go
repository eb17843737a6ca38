package gateway

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

// The same abandoned-dial trick on the plain-HTTP transport (HTTP/1):
// the connection goes to the idle pool marked reused, and is judged again.
func TestUnusedHTTP1ConnIsJudged(t *testing.T) {
	var hits atomic.Int64
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1); io.WriteString(w, "reached") }))
	defer up.Close()
	u, _ := url.Parse(up.URL)
	state := t.TempDir()
	dir := filepath.Join(state, "sandboxes", "127.0.0.1")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, PolicyFile), []byte(`{"sandbox":"sb","allow":["slow.test"]}`), 0o600)
	ranges := filepath.Join(t.TempDir(), "ranges.json")
	os.WriteFile(ranges, []byte(`{"never":[],"private":["127.0.0.0/8"]}`), 0o644)
	var n atomic.Int64
	s := &Server{Store: &Store{Dir: filepath.Join(state, "sandboxes")}, Self: netip.MustParseAddr("192.0.2.1"), RangesFile: ranges,
		Ports: map[string]bool{u.Port(): true},
		Lookup: func(context.Context, string) ([]netip.Addr, error) {
			if n.Add(1) == 1 {
				time.Sleep(600 * time.Millisecond)
			}
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}}
	gw := httptest.NewServer(s.Handler())
	defer gw.Close()
	pu, _ := url.Parse(gw.URL)
	c := &http.Client{Timeout: 300 * time.Millisecond, Transport: &http.Transport{Proxy: http.ProxyURL(pu)}}
	c.Get("http://slow.test:" + u.Port() + "/first")
	time.Sleep(600 * time.Millisecond) // the dial ends, unused
	os.WriteFile(ranges, []byte(`{"never":["127.0.0.1/32"],"private":["127.0.0.0/8"]}`), 0o644)
	c.Timeout = 5 * time.Second
	resp, err := c.Get("http://slow.test:" + u.Port() + "/second")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		t.Logf("%d %q", resp.StatusCode, b)
	}
	if hits.Load() != 0 {
		t.Errorf("reached the refused address %d times", hits.Load())
	}
}
