package gateway

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fixture is a gateway in front of one upstream web server. Every test name
// resolves to the upstream; lookups are recorded, so a test can prove that a
// denied name was never looked up. The client is 127.0.0.1, whose policy
// lives in state/sandboxes/127.0.0.1.
type fixture struct {
	t        *testing.T
	state    string
	proxy    *httptest.Server
	upstream *httptest.Server
	upPort   string
	log      string
	srv      *Server

	release chan struct{} // lets /stream send its second event

	mu       sync.Mutex
	uploaded []string
	lookups  []string
	seen     []*http.Request
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, state: t.TempDir()}
	f.release = make(chan struct{})
	f.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/short": // promises more than it sends, then hangs up
			c, bw, _ := w.(http.Hijacker).Hijack()
			bw.WriteString("HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n" + strings.Repeat("x", 500))
			bw.Flush()
			c.Close()
			return
		case "/ws": // a websocket-style upgrade that echoes lines
			c, bw, _ := w.(http.Hijacker).Hijack()
			defer c.Close()
			bw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
			bw.Flush()
			for {
				line, err := bw.ReadString('\n')
				if err != nil {
					return
				}
				bw.WriteString("echo " + line)
				bw.Flush()
			}
		case "/upload": // reads a streamed body, line by line, as it comes
			sc := bufio.NewScanner(r.Body)
			for sc.Scan() {
				f.mu.Lock()
				f.uploaded = append(f.uploaded, sc.Text())
				f.mu.Unlock()
			}
			return
		}
		if r.URL.Path == "/stream" {
			w.Header().Set("Content-Type", "text/event-stream")
			fmt.Fprint(w, "data: first\n\n")
			w.(http.Flusher).Flush()
			<-f.release
			fmt.Fprint(w, "data: second\n\n")
			return
		}
		f.mu.Lock()
		f.seen = append(f.seen, r.Clone(context.Background()))
		f.mu.Unlock()
		fmt.Fprintf(w, "hello from %s%s key=%s", r.Host, r.URL.Path, r.Header.Get("X-Api-Key"))
	}))
	t.Cleanup(f.upstream.Close)
	_, f.upPort, _ = net.SplitHostPort(f.upstream.Listener.Addr().String())
	logDir := t.TempDir()
	f.log = filepath.Join(logDir, LogName("127.0.0.1"))
	s := &Server{
		Store: &Store{Dir: filepath.Join(f.state, "sandboxes")},
		Log:   &Logger{Dir: logDir},
		Self:  netip.MustParseAddr("192.0.2.1"),
		Ports: map[string]bool{f.upPort: true, "443": true},
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			f.mu.Lock()
			f.lookups = append(f.lookups, host)
			f.mu.Unlock()
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		},
	}
	f.srv = s
	f.proxy = httptest.NewServer(s.Handler())
	t.Cleanup(f.proxy.Close)
	return f
}

// write puts a policy file of the sandbox at 127.0.0.1.
func (f *fixture) write(name string, v any) {
	f.t.Helper()
	dir := filepath.Join(f.state, "sandboxes", "127.0.0.1")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		f.t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) client() *http.Client {
	u, _ := url.Parse(f.proxy.URL)
	return &http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}}
}

// get fetches http://HOST:UPSTREAMPORT/PATH through the gateway.
func (f *fixture) get(host, path string) (int, string) {
	f.t.Helper()
	resp, err := f.client().Get("http://" + host + ":" + f.upPort + path)
	if err != nil {
		f.t.Fatalf("GET %s: %v", host, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// connect sends CONNECT host:port and returns the status line's code.
func (f *fixture) connect(hostport string) (int, net.Conn) {
	f.t.Helper()
	c, err := net.Dial("tcp", f.proxy.Listener.Addr().String())
	if err != nil {
		f.t.Fatal(err)
	}
	fmt.Fprintf(c, "CONNECT %s HTTP/1.1\r\nHost: %s\r\n\r\n", hostport, hostport)
	resp, err := http.ReadResponse(bufio.NewReader(c), &http.Request{Method: http.MethodConnect})
	if err != nil {
		c.Close()
		f.t.Fatalf("CONNECT %s: %v", hostport, err)
	}
	return resp.StatusCode, c
}

func (f *fixture) lookedUp(host string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, h := range f.lookups {
		if h == host {
			return true
		}
	}
	return false
}

func TestAllowedAndDenied(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test", "=exact.example.com"}})
	for _, host := range []string{"allowed.test", "www.allowed.test", "EXACT.example.com"} {
		if code, body := f.get(host, "/x"); code != 200 || !strings.Contains(body, "hello from") {
			t.Errorf("%s: HTTP %d %q, want 200 from the upstream", host, code, body)
		}
	}
	for _, host := range []string{"denied.test", "allowed.test.evil.test", "evilallowed.test", "www.exact.example.com", "127.0.0.1"} {
		code, body := f.get(host, "/")
		if code != 403 {
			t.Errorf("%s: HTTP %d, want 403", host, code)
		}
		if !strings.Contains(body, host) || !strings.Contains(body, "vibe --name sb allow") {
			t.Errorf("%s: the 403 does not name the host and how to allow it: %q", host, body)
		}
		if f.lookedUp(host) {
			t.Errorf("%s was looked up although it is denied", host)
		}
	}
}

func TestConnect(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test"}})
	// Allowed: the tunnel reaches the upstream.
	code, c := f.connect("api.allowed.test:" + f.upPort)
	if code != 200 {
		t.Fatalf("CONNECT to an allowed host: %d", code)
	}
	fmt.Fprintf(c, "GET /tunnel HTTP/1.1\r\nHost: api.allowed.test\r\nConnection: close\r\n\r\n")
	b, _ := io.ReadAll(c)
	c.Close()
	if !strings.Contains(string(b), "hello from api.allowed.test/tunnel") {
		t.Errorf("through the tunnel: %q", b)
	}
	for _, target := range []string{"evil.test:" + f.upPort, "allowed.test:8443", "allowed.test:22"} {
		code, c := f.connect(target)
		c.Close()
		if code != 403 {
			t.Errorf("CONNECT %s: %d, want 403", target, code)
		}
	}
	if f.lookedUp("evil.test") {
		t.Error("a denied CONNECT target was looked up")
	}
}

func TestUnknownAndBrokenPolicies(t *testing.T) {
	f := newFixture(t)
	if code, _ := f.get("allowed.test", "/"); code != 403 {
		t.Errorf("no policy for the address: HTTP %d, want 403", code)
	}
	// A half-written policy file denies; it never means "fewer entries".
	dir := filepath.Join(f.state, "sandboxes", "127.0.0.1")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, PolicyFile), []byte(`{"sandbox":"sb","allow":["allowed.test"`), 0o600)
	if code, body := f.get("allowed.test", "/"); code != 403 || !strings.Contains(body, "cannot be read") {
		t.Errorf("a truncated policy: HTTP %d %q, want 403", code, body)
	}
	// An entry the allowlist refuses (a bare suffix) denies everything.
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test", "com"}})
	if code, _ := f.get("allowed.test", "/"); code != 403 {
		t.Errorf("a policy with an invalid entry: HTTP %d, want 403", code)
	}
}

func TestPolicyChangesApplyAtOnce(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test"}})
	if code, _ := f.get("later.test", "/"); code != 403 {
		t.Fatalf("before: %d", code)
	}
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test", "later.test"}})
	if code, _ := f.get("later.test", "/"); code != 200 {
		t.Errorf("after the policy changed: %d, want 200", code)
	}
	// Two sessions each add their own entry; one ending keeps the other's.
	f.write(SessionPrefix+"a.json", Session{Allow: []string{"one.test"}})
	f.write(SessionPrefix+"b.json", Session{Allow: []string{"two.test"}})
	for _, h := range []string{"one.test", "two.test"} {
		if code, _ := f.get(h, "/"); code != 200 {
			t.Errorf("session entry %s: %d, want 200", h, code)
		}
	}
	os.Remove(filepath.Join(f.state, "sandboxes", "127.0.0.1", SessionPrefix+"a.json"))
	if code, _ := f.get("one.test", "/"); code != 403 {
		t.Errorf("an ended session's entry: %d, want 403", code)
	}
	if code, _ := f.get("two.test", "/"); code != 200 {
		t.Errorf("the other session's entry after one ended: %d, want 200", code)
	}
	// Firewall off: any host on the web ports; other ports stay closed.
	f.write(PolicyFile, Policy{Sandbox: "sb", Open: true})
	if code, _ := f.get("anything.example.org", "/"); code != 200 {
		t.Errorf("open: %d, want 200", code)
	}
	code, c := f.connect("anything.example.org:22")
	c.Close()
	if code != 403 {
		t.Errorf("open, port 22: %d, want 403", code)
	}
}

func TestNeverDialsInside(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test"}})
	// The fixture's names all resolve to 127.0.0.1, which a real gateway
	// never connects to (its own loopback, where nothing of a sandbox's
	// belongs): with the default ranges, an allowed name is refused.
	s := &Server{Store: &Store{Dir: filepath.Join(f.state, "sandboxes")}, Self: netip.MustParseAddr("192.0.2.1"),
		Never: DefaultNever, Ports: map[string]bool{f.upPort: true},
		Lookup: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}}
	p := httptest.NewServer(s.Handler())
	defer p.Close()
	u, _ := url.Parse(p.URL)
	resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}}).Get("http://allowed.test:" + f.upPort + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode == 200 {
		t.Error("an allowed name resolving to loopback was fetched")
	}
}

// An allowed name that resolves to a private address (this machine's LAN,
// a router, a service on the uplink's network) is not fetched unless the
// user listed that range (egress.gateway.private): whoever runs a name's
// DNS points it where they like. The fixture's upstream, on loopback,
// plays the private network here.
func TestPrivateAddressesNeedConsent(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test", "=127.0.0.1"}})
	saved := PrivateRanges
	PrivateRanges = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	defer func() { PrivateRanges = saved }()
	get := func(private []netip.Prefix, host string) (int, string) {
		s := &Server{Store: &Store{Dir: filepath.Join(f.state, "sandboxes")}, Self: netip.MustParseAddr("192.0.2.1"),
			Ports: map[string]bool{f.upPort: true}, Private: private,
			Lookup: func(context.Context, string) ([]netip.Addr, error) {
				return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
			}}
		p := httptest.NewServer(s.Handler())
		defer p.Close()
		u, _ := url.Parse(p.URL)
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}}).Get("http://" + host + ":" + f.upPort + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(nil, "allowed.test"); code == 200 || !strings.Contains(body, "egress.gateway.private") {
		t.Errorf("an allowed name resolving to a private address, unlisted: %d %q", code, body)
	}
	if code, body := get([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/24")}, "allowed.test"); code != 200 {
		t.Errorf("an allowed name resolving to a listed private range: %d %q", code, body)
	}
	// An address named as such needs the range listed too: with the
	// firewall switched off no entry names it, and the web is what off
	// opens, not this machine's network. (From a review: any literal was
	// let through.)
	if code, body := get(nil, "127.0.0.1"); code == 200 {
		t.Errorf("a private address named in the request, unlisted: %d %q", code, body)
	}
	f.write(PolicyFile, Policy{Sandbox: "sb", Open: true})
	if code, body := get(nil, "127.0.0.1"); code == 200 {
		t.Errorf("firewall off: a private address named in the request, unlisted: %d %q", code, body)
	}
	if code, body := get([]netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}, "127.0.0.1"); code != 200 {
		t.Errorf("firewall off: a listed private address: %d %q", code, body)
	}
	// A credential route's upstream is the user's own choice on the host
	// (their ANTHROPIC_BASE_URL), never the sandbox's: it needs no listing.
	f.write(CredentialsFile, Credentials{Credentials: []Credential{{
		Name: "ANTHROPIC_API_KEY", Upstream: f.upstream.URL + "/base", Header: "X-Api-Key", Value: "sk-real",
	}}})
	req, _ := http.NewRequest("POST", f.proxy.URL+CredentialPath+"ANTHROPIC_API_KEY/v1/messages", strings.NewReader("{}"))
	req.Header.Set("X-Api-Key", "vibe-placeholder")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("a credential route to the user's own upstream on a private address: %d", resp.StatusCode)
	}
}

// The host's addresses and the private ranges the user allows change
// while the gateway runs (a VPN comes up, a lease changes, vibe.yaml lists
// a range): vibe rewrites the ranges file, and the next request is judged
// by it, with no restart that would cut every sandbox's connections. While
// the file cannot be read, nothing is dialled.
func TestRangesApplyAtOnce(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test"}})
	ranges := filepath.Join(t.TempDir(), "ranges.json")
	s := &Server{Store: &Store{Dir: filepath.Join(f.state, "sandboxes")}, Self: netip.MustParseAddr("192.0.2.1"),
		Ports: map[string]bool{f.upPort: true}, RangesFile: ranges,
		Lookup: func(context.Context, string) ([]netip.Addr, error) {
			return []netip.Addr{netip.MustParseAddr("127.0.0.1")}, nil
		}}
	p := httptest.NewServer(s.Handler())
	defer p.Close()
	u, _ := url.Parse(p.URL)
	get := func() (int, string) {
		resp, err := (&http.Client{Transport: &http.Transport{Proxy: http.ProxyURL(u)}}).Get("http://allowed.test:" + f.upPort + "/")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	write := func(text string) {
		if err := os.WriteFile(ranges, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	saved := PrivateRanges
	PrivateRanges = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	defer func() { PrivateRanges = saved }()
	for _, step := range []struct {
		file string // "" removes it
		ok   bool
		says string
	}{
		{"", false, "any vibe command on the host writes them again"},
		{`{"never":[],"private":["127.0.0.0/8"]}`, true, ""},
		{`{"never":["127.0.0.1/32"],"private":["127.0.0.0/8"]}`, false, "never connects to"},
		{`{"never":[],"private":[]}`, false, "egress.gateway.private"},
		{`{"never":[],"private":["127.0.0.0/8"]`, false, "any vibe command"}, // half written, and stays so
		{`{"never":[],"private":["127.0.0.0/8"]}`, true, ""},
		{`{"never":["not a prefix"]}`, false, "any vibe command"},
	} {
		if step.file == "" {
			os.Remove(ranges)
		} else {
			write(step.file)
		}
		code, body := get()
		if (code == 200) != step.ok || !strings.Contains(body, step.says) {
			t.Errorf("ranges file %q: %d %q, want ok=%v saying %q", step.file, code, body, step.ok, step.says)
		}
	}
}

// A private or never-dialled IPv4 address inside an IPv6 one (NAT64, 6to4,
// the IPv4-compatible form) is that address: a translator on the uplink
// would carry the connection there. (From a review: each was dialled.)
func TestEmbeddedIPv4IsItself(t *testing.T) {
	lim := limits{nevers: DefaultNever}
	for a, want := range map[string]string{
		"64:ff9b::a00:1":      "private", // NAT64 of 10.0.0.1
		"64:ff9b:1::c0a8:101": "private", // NAT64, local use: the IPv4 address cannot be told
		"2002:c0a8:101::1":    "private", // 6to4 of 192.168.1.1
		"::c0a8:101":          "private", // IPv4-compatible 192.168.1.1
		"2001:0:4136:e378::1": "private", // Teredo: cannot be told either
		"::7f00:1":            "never",   // IPv4-compatible 127.0.0.1
		"64:ff9b::a9fe:a9fe":  "never",   // NAT64 of 169.254.169.254
		"64:ff9b::cb00:7150":  "",        // NAT64 of a public address
		"2002:cb00:7150::1":   "",        // 6to4 of a public address
		"2001:db8::1":         "",
		"::ffff:192.168.1.1":  "private",
	} {
		addr := netip.MustParseAddr(a)
		got := ""
		switch {
		case lim.never(addr):
			got = "never"
		case lim.private(addr):
			got = "private"
		}
		if got != want {
			t.Errorf("%s: %q, want %q", a, got, want)
		}
	}
}

func TestCredentialRoute(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb"})
	f.write(CredentialsFile, Credentials{Credentials: []Credential{{
		Name: "ANTHROPIC_API_KEY", Upstream: f.upstream.URL + "/base", Header: "X-Api-Key", Value: "sk-real",
	}}})
	// Direct (origin form) and through the proxy (absolute form): both
	// reach the upstream with the real key in place of the placeholder.
	direct, err := http.NewRequest("POST", f.proxy.URL+CredentialPath+"ANTHROPIC_API_KEY/v1/messages", strings.NewReader("{}"))
	if err != nil {
		t.Fatal(err)
	}
	direct.Header.Set("X-Api-Key", "vibe-placeholder")
	resp, err := http.DefaultClient.Do(direct)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "/base/v1/messages key=sk-real") {
		t.Errorf("direct: %d %q", resp.StatusCode, b)
	}
	proxied, _ := http.NewRequest("GET", "http://192.0.2.1:3128"+CredentialPath+"ANTHROPIC_API_KEY/v1/models", nil)
	proxied.Header.Set("X-Api-Key", "vibe-placeholder")
	resp, err = f.client().Do(proxied)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "/base/v1/models key=sk-real") {
		t.Errorf("through the proxy: %d %q", resp.StatusCode, b)
	}
	f.mu.Lock()
	for _, r := range f.seen {
		if v := r.Header.Values("X-Api-Key"); len(v) != 1 || v[0] != "sk-real" {
			t.Errorf("the upstream saw key headers %q", v)
		}
	}
	f.mu.Unlock()
	// A credential the sandbox does not hold is refused.
	resp, err = http.Get(f.proxy.URL + CredentialPath + "OTHER_KEY/v1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 403 {
		t.Errorf("an unknown credential: %d, want 403", resp.StatusCode)
	}
}

func TestLog(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test"}})
	f.get("allowed.test", "/")
	f.get("denied.test", "/")
	lf, err := os.Open(f.log)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	var got []string
	ReadEntries(lf, func(e Entry) error {
		got = append(got, fmt.Sprintf("%s %s %s %v", e.Sandbox, e.Client, e.Host, e.Allowed))
		return nil
	})
	want := []string{"sb 127.0.0.1 allowed.test true", "sb 127.0.0.1 denied.test false"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// FuzzRequest sends arbitrary request heads to the gateway: it must never
// panic, never reach a host its policy does not allow, and never look up
// a name the policy denies.
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		"GET http://allowed.test/ HTTP/1.1\r\nHost: allowed.test\r\n\r\n",
		"CONNECT allowed.test:443 HTTP/1.1\r\nHost: allowed.test:443\r\n\r\n",
		"CONNECT evil.test:443 HTTP/1.1\r\n\r\n",
		"GET http://evil.test@allowed.test/ HTTP/1.1\r\nHost: evil.test\r\n\r\n",
		"GET http://allowed.test%2eevil.test/ HTTP/1.1\r\n\r\n",
		"GET /vibe-credential/K/x HTTP/1.1\r\nHost: x\r\n\r\n",
		"GET http://[::1]:80/ HTTP/1.1\r\n\r\n",
		"CONNECT allowed.test.:443 HTTP/1.1\r\n\r\n",
	} {
		f.Add(s)
	}
	state := f.TempDir()
	dir := filepath.Join(state, "sandboxes", "127.0.0.1")
	os.MkdirAll(dir, 0o700)
	b, _ := json.Marshal(Policy{Sandbox: "sb", Allow: []string{"allowed.test"}})
	os.WriteFile(filepath.Join(dir, PolicyFile), b, 0o600)
	var mu sync.Mutex
	var bad []string
	s := &Server{Store: &Store{Dir: filepath.Join(state, "sandboxes")}, Self: netip.MustParseAddr("192.0.2.1"),
		Never: DefaultNever,
		Lookup: func(_ context.Context, host string) ([]netip.Addr, error) {
			if host != "allowed.test" && !strings.HasSuffix(host, ".allowed.test") {
				mu.Lock()
				bad = append(bad, host)
				mu.Unlock()
			}
			return nil, fmt.Errorf("no network in the fuzz test")
		}}
	h := s.Handler()
	f.Fuzz(func(t *testing.T, head string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head)))
		if err != nil {
			return
		}
		req.RemoteAddr = "127.0.0.1:40000"
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		mu.Lock()
		defer mu.Unlock()
		if len(bad) > 0 {
			got := bad
			bad = nil
			t.Fatalf("looked up %q for %q", got, head)
		}
	})
}

// FuzzReadEntries: the host reads the log a gateway wrote, and a gateway
// may be compromised; no line may make the reader fail or panic.
func FuzzReadEntries(f *testing.F) {
	f.Add(`{"time":"2026-12-01T00:00:00Z","sandbox":"sb","client":"10.0.0.9","method":"GET","host":"a.test","allowed":true}` + "\n{bad\n")
	f.Add(strings.Repeat("x", MaxLine+10) + "\n" + `{"host":"after.test"}` + "\n")
	f.Fuzz(func(t *testing.T, in string) {
		n := 0
		err := ReadEntries(strings.NewReader(in), func(Entry) error { n++; return nil })
		if err != nil {
			t.Fatalf("ReadEntries: %v", err)
		}
	})
}

// Each client has a log of its own: one that floods the gateway rotates
// away only its own entries.
func TestLogPerClient(t *testing.T) {
	l := &Logger{Dir: t.TempDir()}
	l.Write(Entry{Client: "10.0.0.10", Host: "victim.test"})
	big := strings.Repeat("x", 200)
	for i := 0; i < 2*MaxLog/250; i++ {
		l.Write(Entry{Client: "10.0.0.11", Host: big})
	}
	f, err := os.Open(filepath.Join(l.Dir, LogName("10.0.0.10")))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	n := 0
	ReadEntries(f, func(e Entry) error { n++; return nil })
	if n != 1 {
		t.Errorf("the quiet client's log has %d entries, want 1", n)
	}
	if st, err := os.Stat(filepath.Join(l.Dir, LogName("10.0.0.11"))); err != nil || st.Size() > MaxLog {
		t.Errorf("the flooding client's log: %v %v", st, err)
	}
}

func TestReadEntriesSkipsLongLines(t *testing.T) {
	in := `{"host":"a.test"}` + "\n" + strings.Repeat("x", 3*MaxLine) + "\n" + `{"host":"b.test"}`
	var hosts []string
	if err := ReadEntries(strings.NewReader(in), func(e Entry) error { hosts = append(hosts, e.Host); return nil }); err != nil {
		t.Fatal(err)
	}
	if strings.Join(hosts, " ") != "a.test b.test" {
		t.Errorf("entries around an overlong line: %q", hosts)
	}
}

// Hosts the allowlist could be fooled by: an IPv6 zone that looks like an
// allowed name (Go's URL parser takes "%25..." in brackets as a zone), a
// zone on loopback, names that are no DNS names. All are refused, and none
// reaches the upstream.
func TestOddHostsRefused(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test"}})
	for _, target := range []string{
		"[::ffff:127.0.0.1%25x.allowed.test]:" + f.upPort,
		"[::1%25x.allowed.test]:" + f.upPort,
		"[fe80::1%252.allowed.test]:" + f.upPort,
		"x_y.allowed.test:" + f.upPort,
		strings.Repeat("a", 250) + ".allowed.test:" + f.upPort,
	} {
		code, c := f.connect(target)
		c.Close()
		if code == 200 {
			t.Errorf("CONNECT %s: 200, want a refusal", target)
		}
		resp, err := f.client().Get("http://" + target + "/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				t.Errorf("GET %s: 200, want a refusal", target)
			}
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.seen) > 0 {
		t.Errorf("the upstream was reached %d times", len(f.seen))
	}
}

// A credential route stays under its upstream's base path.
func TestCredentialRouteStaysUnderBase(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb"})
	f.write(CredentialsFile, Credentials{Credentials: []Credential{{Name: "K", Upstream: f.upstream.URL + "/v1", Header: "X-Api-Key", Value: "sk-real"}}})
	for _, p := range []string{"/vibe-credential/K/../../admin/x", "/vibe-credential/K/%2e%2e/admin"} {
		req, _ := http.NewRequest("GET", f.proxy.URL+p, nil)
		req.URL.Opaque = p // sent as written
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, r := range f.seen {
		if !strings.HasPrefix(path.Clean(r.URL.Path), "/v1/") {
			t.Errorf("the key went to %s, outside /v1/", r.URL.Path)
		}
	}
}

func TestConnectionLimitPerAddress(t *testing.T) {
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := &limitListener{Listener: inner, max: 2, n: map[netip.Addr]int{}}
	defer l.Close()
	accepted := make(chan net.Conn, 8)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", inner.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	first, second := <-accepted, <-accepted
	// The third was closed by the limit: its read ends at once.
	clients[2].SetReadDeadline(time.Now().Add(2 * time.Second))
	if _, err := clients[2].Read(make([]byte, 1)); err == nil || strings.Contains(err.Error(), "timeout") {
		t.Errorf("a third connection from one address was kept: %v", err)
	}
	// Closing one makes room again.
	first.Close()
	c, err := net.Dial("tcp", inner.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	select {
	case <-accepted:
	case <-time.After(2 * time.Second):
		t.Error("no room after a connection closed")
	}
	second.Close()
}

// A refused host is logged and echoed as ASCII: the agent's bytes (a C1
// control such as CSI, a bidi override) never reach the host's terminal
// through `vibe log --json` or a 403 body.
func TestRefusedHostIsLoggedAsASCII(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"allowed.test"}})
	code, c := f.connect("%C2%9B31mx%E2%80%AE.test:443")
	c.Close()
	if code != 403 {
		t.Fatalf("CONNECT of an odd host: %d", code)
	}
	b, err := os.ReadFile(f.log)
	if err != nil {
		t.Fatal(err)
	}
	var e Entry
	ReadEntries(strings.NewReader(string(b)), func(x Entry) error { e = x; return nil })
	for _, r := range e.Host {
		if r < 0x20 || r > 0x7e {
			t.Fatalf("the logged host holds %U: %q", r, e.Host)
		}
	}
}

// A stream (the model API's server-sent events) reaches the client as it
// comes: an event is not held back until the copy's block fills.
func TestStreamIsNotHeldBack(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "s", Allow: []string{"stream.test"}})
	resp, err := f.client().Get("http://stream.test:" + f.upPort + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(resp.Body).ReadString('\n')
		first <- line
	}()
	select {
	case line := <-first:
		if line != "data: first\n" {
			t.Errorf("first event: %q", line)
		}
	case <-time.After(5 * time.Second):
		t.Error("the first event was held back while the stream stayed open")
	}
	close(f.release)
}

// A tunnel opened while the policy allowed its host is closed when the
// policy stops allowing it (vibe allow narrowed, vibe firewall on after
// off): an agent cannot keep a channel the operator has since shut.
func TestTunnelsCloseWhenThePolicyNarrows(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "sb", Open: true})
	alive := func(c net.Conn) bool {
		fmt.Fprintf(c, "GET /alive HTTP/1.1\r\nHost: x\r\n\r\n")
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			return false
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode == 200
	}
	code, kept := f.connect("kept.test:" + f.upPort)
	if code != 200 {
		t.Fatalf("CONNECT with the firewall off: %d", code)
	}
	defer kept.Close()
	code, shut := f.connect("anything.test:" + f.upPort)
	if code != 200 {
		t.Fatalf("CONNECT with the firewall off: %d", code)
	}
	defer shut.Close()
	// The operator turns the firewall on; kept.test is on the list.
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"kept.test"}})
	time.Sleep(3 * TunnelCheck)
	if !alive(kept) {
		t.Error("a tunnel the policy still allows was closed")
	}
	shut.SetReadDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(shut, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	if b, err := io.ReadAll(shut); err != nil || len(b) != 0 {
		t.Errorf("a tunnel the policy no longer allows stayed open: %q %v", b, err)
	}
	// The closing is in the sandbox's log, as a denial.
	b, _ := os.ReadFile(f.log)
	if !strings.Contains(string(b), `"host":"anything.test"`) || !strings.Contains(string(b), ReasonClosed) {
		t.Errorf("the log does not say the tunnel was closed:\n%s", b)
	}
}

// A tunnel or a request in flight to an address the host then takes (a
// VPN's, a new network's) is cut once vibe writes the new ranges: the host's services
// are never reachable through a channel opened before.
func TestTunnelsCloseWhenTheHostTakesTheirAddress(t *testing.T) {
	f := newFixture(t)
	ranges := filepath.Join(t.TempDir(), "ranges.json")
	os.WriteFile(ranges, []byte(`{"never":[]}`), 0o644)
	f.srv.RangesFile = ranges
	f.write(PolicyFile, Policy{Sandbox: "sb", Allow: []string{"kept.test"}})
	code, c := f.connect("kept.test:" + f.upPort)
	if code != 200 {
		t.Fatalf("CONNECT: %d", code)
	}
	defer c.Close()
	// A plain request in flight, a stream that waits for more.
	resp, err := f.client().Get("http://kept.test:" + f.upPort + "/stream")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	defer close(f.release)
	stream := bufio.NewReader(resp.Body)
	if line, _ := stream.ReadString('\n'); line != "data: first\n" {
		t.Fatalf("first event: %q", line)
	}
	os.WriteFile(ranges, []byte(`{"never":["127.0.0.1/32"]}`), 0o644)
	time.Sleep(3 * TunnelCheck)
	ended := make(chan error, 1)
	go func() { _, err := io.ReadAll(stream); ended <- err }()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Error("a request in flight to an address the gateway no longer dials went on")
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET /after HTTP/1.1\r\nHost: x\r\n\r\n")
	if b, err := io.ReadAll(c); err != nil || len(b) != 0 {
		t.Errorf("a tunnel to an address the gateway no longer dials stayed open: %q %v", b, err)
	}
	if b, _ := os.ReadFile(f.log); !strings.Contains(string(b), ReasonAddress) {
		t.Errorf("the log does not say why the tunnel was closed:\n%s", b)
	}
}

// The gateway passes on what the upstream said about the body: a body cut
// short is an error for the client (never a complete-looking half of a
// script), and HEAD keeps its Content-Length.
func TestBodiesKeepTheirLength(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "s", Allow: []string{"len.test"}})
	resp, err := f.client().Get("http://len.test:" + f.upPort + "/short")
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err == nil {
		t.Errorf("a body cut short reached the client as complete (%d bytes, Content-Length %q)", len(b), resp.Header.Get("Content-Length"))
	}
	resp, err = f.client().Head("http://len.test:" + f.upPort + "/x")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.ContentLength <= 0 {
		t.Errorf("HEAD lost its Content-Length: %v", resp.Header)
	}
}

// An upgraded connection (a websocket over http://) works through the
// gateway, both ways.
func TestUpgradeWorks(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "s", Allow: []string{"ws.test"}})
	c, err := net.Dial("tcp", f.proxy.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(c, "GET http://ws.test:%s/ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", f.upPort)
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("upgrade: %v %v", resp, err)
	}
	fmt.Fprintf(c, "hi\n")
	if line, err := br.ReadString('\n'); err != nil || line != "echo hi\n" {
		t.Errorf("through the upgraded connection: %q %v", line, err)
	}
	// It ends, as a tunnel does, when the policy stops allowing its host.
	f.write(PolicyFile, Policy{Sandbox: "s", Allow: []string{"other.test"}})
	time.Sleep(3 * TunnelCheck)
	c.SetDeadline(time.Now().Add(2 * time.Second))
	fmt.Fprintf(c, "again\n")
	if line, err := br.ReadString('\n'); err == nil {
		t.Errorf("the upgraded connection outlived the policy: %q", line)
	} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Error("the upgraded connection stayed open after the policy narrowed")
	}
}

// A plain-HTTP exchange in flight (a streamed upload here) is cut when the
// policy stops allowing its host, as a tunnel is.
func TestRequestsInFlightEndWhenThePolicyNarrows(t *testing.T) {
	f := newFixture(t)
	f.write(PolicyFile, Policy{Sandbox: "s", Allow: []string{"up.test"}})
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		req, _ := http.NewRequest("POST", "http://up.test:"+f.upPort+"/upload", pr)
		resp, err := f.client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		done <- err
	}()
	got := func() []string {
		f.mu.Lock()
		defer f.mu.Unlock()
		return append([]string(nil), f.uploaded...)
	}
	fmt.Fprintln(pw, "before")
	for i := 0; i < 50 && len(got()) == 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
	if len(got()) != 1 {
		t.Fatalf("control: the upload did not start: %v", got())
	}
	f.write(PolicyFile, Policy{Sandbox: "s", Allow: []string{"other.test"}})
	time.Sleep(3 * TunnelCheck)
	fmt.Fprintln(pw, "after narrowing")
	time.Sleep(500 * time.Millisecond)
	pw.Close()
	if g := got(); len(g) != 1 {
		t.Errorf("the upload went on after the policy stopped allowing its host: %v", g)
	}
	<-done
}

// stream asks credential route K for /stream, directly (no_proxy names
// the gateway) or through the gateway as a proxy.
func (f *fixture) stream(mode string) *http.Response {
	f.t.Helper()
	var resp *http.Response
	var err error
	if mode == "direct" {
		resp, err = http.Get(f.proxy.URL + CredentialPath + "K/stream")
	} else {
		resp, err = f.client().Get("http://192.0.2.1:3128" + CredentialPath + "K/stream")
	}
	if err != nil {
		f.t.Fatal(err)
	}
	return resp
}

// A credential route reached directly (the guest's no_proxy names the
// gateway) streams as long as the upstream does, like one reached through
// the proxy: it is not a connection to a host the policy must allow.
func TestCredentialRouteStreamsDirectAndProxied(t *testing.T) {
	for _, mode := range []string{"direct", "proxied"} {
		f := newFixture(t)
		f.write(PolicyFile, Policy{Sandbox: "sb"})
		f.write(CredentialsFile, Credentials{Credentials: []Credential{{
			Name: "K", Upstream: f.upstream.URL, Header: "X-Api-Key", Value: "sk-real",
		}}})
		resp := f.stream(mode)
		// The policy is looked at every second: the stream outlives two.
		go func() { time.Sleep(2500 * time.Millisecond); close(f.release) }()
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), "second") {
			t.Errorf("%s: the stream was cut: %q", mode, b)
		}
	}
}

// A streamed answer on a credential route ends once the sandbox no longer
// holds that credential (removed from secrets.env, or the sandbox's policy
// gone with it), or holds it for another upstream: the key the gateway
// added must not go on serving a sandbox it no longer belongs to.
func TestCredentialStreamsEndWhenTheCredentialGoes(t *testing.T) {
	for _, change := range []string{"removed", "moved", "policy gone"} {
		for _, mode := range []string{"direct", "proxied"} {
			f := newFixture(t)
			f.write(PolicyFile, Policy{Sandbox: "sb"})
			cred := Credential{Name: "K", Upstream: f.upstream.URL, Header: "X-Api-Key", Value: "sk-real"}
			f.write(CredentialsFile, Credentials{Credentials: []Credential{cred}})
			resp := f.stream(mode)
			first := make([]byte, len("data: first"))
			if _, err := io.ReadFull(resp.Body, first); err != nil {
				t.Fatalf("%s, %s: control: no first event: %v", change, mode, err)
			}
			switch change {
			case "removed":
				f.write(CredentialsFile, Credentials{})
			case "moved":
				cred.Upstream = "https://elsewhere.test"
				f.write(CredentialsFile, Credentials{Credentials: []Credential{cred}})
			case "policy gone":
				os.RemoveAll(filepath.Join(f.state, "sandboxes", "127.0.0.1"))
			}
			time.Sleep(3 * TunnelCheck)
			close(f.release)
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if strings.Contains(string(b), "second") {
				t.Errorf("%s, %s: the stream went on after the credential changed: %q", change, mode, b)
			}
			if logged, _ := os.ReadFile(f.log); !strings.Contains(string(logged), ReasonCredentialGone) {
				t.Errorf("%s, %s: the cut is not logged as the credential's: %s", change, mode, logged)
			}
		}
	}
}
