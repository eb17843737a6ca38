package gateway

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"sort"

	"testing"
	"time"
)

// The gateway's own cost, on loopback: a 256 MiB download and a small
// request, straight from the server and through the gateway. The figures
// that matter (throughput ratio, added median latency) are reported as
// metrics; make bench prints them. On a bridge the network adds the same
// to both sides.

const bigSize = 256 << 20

func benchServer(b *testing.B) (*httptest.Server, string) {
	chunk := make([]byte, 1<<20)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/big" {
			w.Header().Set("Content-Length", fmt.Sprint(bigSize))
			for i := 0; i < bigSize/len(chunk); i++ {
				w.Write(chunk)
			}
			return
		}
		io.WriteString(w, "ok")
	}))
	b.Cleanup(srv.Close)
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	return srv, port
}

func benchProxy(b *testing.B, port string) *http.Client {
	state := b.TempDir()
	dir := filepath.Join(state, "127.0.0.1")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, PolicyFile), []byte(`{"sandbox":"bench","allow":["bench.test"]}`), 0o600)
	s := &Server{Store: &Store{Dir: state}, Self: netip.MustParseAddr("192.0.2.1"), Ports: map[string]bool{port: true},
		Log: &Logger{Dir: b.TempDir()},
		Lookup: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}}
	p := httptest.NewServer(s.Handler())
	b.Cleanup(p.Close)
	u, _ := url.Parse(p.URL)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u), MaxIdleConnsPerHost: 4}}
}

func download(b *testing.B, c *http.Client, u string) time.Duration {
	start := time.Now()
	resp, err := c.Get(u)
	if err != nil {
		b.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if n != bigSize {
		b.Fatalf("got %d bytes", n)
	}
	return time.Since(start)
}

// BenchmarkDownload256MiB reports MB/s direct and through the gateway, and
// their ratio (the target is at least 0.9).
func BenchmarkDownload256MiB(b *testing.B) {
	srv, port := benchServer(b)
	direct := &http.Client{Transport: &http.Transport{}}
	proxied := benchProxy(b, port)
	var d, p time.Duration
	for i := 0; i < b.N; i++ {
		d += download(b, direct, srv.URL+"/big")
		p += download(b, proxied, "http://bench.test:"+port+"/big")
	}
	mb := float64(bigSize) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/d.Seconds(), "direct-MiB/s")
	b.ReportMetric(mb/p.Seconds(), "gateway-MiB/s")
	b.ReportMetric(d.Seconds()/p.Seconds(), "ratio")
}

// BenchmarkSmallRequest reports the median added latency of one small
// request through the gateway (the target is at most 2 ms).
func BenchmarkSmallRequest(b *testing.B) {
	srv, port := benchServer(b)
	direct := &http.Client{Transport: &http.Transport{}}
	proxied := benchProxy(b, port)
	get := func(c *http.Client, u string) time.Duration {
		start := time.Now()
		resp, err := c.Get(u)
		if err != nil {
			b.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return time.Since(start)
	}
	n := max(b.N, 200)
	var ds, ps []time.Duration
	for i := 0; i < n; i++ {
		ds = append(ds, get(direct, srv.URL+"/small"))
		ps = append(ps, get(proxied, "http://bench.test:"+port+"/small"))
	}
	med := func(x []time.Duration) time.Duration {
		sort.Slice(x, func(i, j int) bool { return x[i] < x[j] })
		return x[len(x)/2]
	}
	b.ReportMetric(float64(med(ds).Microseconds())/1000, "direct-ms")
	b.ReportMetric(float64(med(ps).Microseconds())/1000, "gateway-ms")
	b.ReportMetric(float64((med(ps)-med(ds)).Microseconds())/1000, "added-ms")
}

// BenchmarkTunnel256MiB: the same download through a CONNECT tunnel (how
// HTTPS passes the gateway), against the direct one.
func BenchmarkTunnel256MiB(b *testing.B) {
	srv, port := benchServer(b)
	direct := &http.Client{Transport: &http.Transport{}}
	proxied := benchProxy(b, port)
	proxyAddr := proxied.Transport.(*http.Transport)
	pu, _ := proxyAddr.Proxy(&http.Request{URL: &url.URL{Scheme: "http", Host: "x"}})
	var d, p time.Duration
	for i := 0; i < b.N; i++ {
		d += download(b, direct, srv.URL+"/big")
		start := time.Now()
		c, err := net.Dial("tcp", pu.Host)
		if err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(c, "CONNECT bench.test:%s HTTP/1.1\r\nHost: bench.test:%s\r\n\r\n", port, port)
		br := bufio.NewReaderSize(c, 64<<10)
		resp, err := http.ReadResponse(br, &http.Request{Method: http.MethodConnect})
		if err != nil || resp.StatusCode != 200 {
			b.Fatalf("CONNECT: %v %v", resp, err)
		}
		fmt.Fprintf(c, "GET /big HTTP/1.1\r\nHost: bench.test\r\nConnection: close\r\n\r\n")
		resp, err = http.ReadResponse(br, nil)
		if err != nil {
			b.Fatal(err)
		}
		n, _ := io.Copy(io.Discard, resp.Body)
		c.Close()
		if n != bigSize {
			b.Fatalf("got %d bytes", n)
		}
		p += time.Since(start)
	}
	mb := float64(bigSize) / (1 << 20) * float64(b.N)
	b.ReportMetric(mb/d.Seconds(), "direct-MiB/s")
	b.ReportMetric(mb/p.Seconds(), "gateway-MiB/s")
	b.ReportMetric(d.Seconds()/p.Seconds(), "ratio")
}
