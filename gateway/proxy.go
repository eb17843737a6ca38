package gateway

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/elazarl/goproxy"
)

// ReasonNotAllowed is the reason of a denial that `vibe allow` can lift.
const ReasonNotAllowed = "not in the sandbox's allowlist"

// ReasonClosed is the reason logged when an open tunnel or a request in
// flight is ended because the sandbox's policy no longer allows its host.
const ReasonClosed = "ended: the sandbox's policy no longer allows this host"

// ReasonAddress is logged when a tunnel is cut because the address it
// reaches is one the gateway no longer dials (the host took it).
const ReasonAddress = "ended: the gateway no longer connects to this address"

// ReasonCredentialGone is logged when a credential route's answer is cut:
// the sandbox no longer holds the credential it was served with.
const ReasonCredentialGone = "ended: the sandbox no longer holds this credential"

// Server is the gateway's proxy.
type Server struct {
	Store *Store
	Log   *Logger
	// Self is the gateway's address on the sandbox bridge: a proxy request
	// for it is a credential route, never a connection.
	Self netip.Addr
	// Never are destinations the gateway never dials, whatever a name
	// resolves to: loopback, link-local and the sandbox bridge itself.
	Never []netip.Prefix
	// Private are the private ranges (PrivateRanges) the user lets an
	// allowed host reach (egress.gateway.private).
	Private []netip.Prefix
	// RangesFile, when set, holds more of both that change while the
	// gateway runs (Ranges): it is read again whenever it changes, and
	// while it cannot be read nothing is dialled.
	RangesFile string
	// Lookup resolves a name, only after the allowlist admitted it (nil:
	// the system's resolver).
	Lookup func(ctx context.Context, host string) ([]netip.Addr, error)
	// Ports are the destination ports requests may go to (nil: 80 and 443).
	Ports map[string]bool
	// Upstream is the transport of credential routes (TLS verified).
	Upstream http.RoundTripper
	once     sync.Once

	mu       sync.Mutex
	channels map[*channel]bool // open tunnels and requests in flight, judged again every TunnelCheck
	watching bool
}

// DefaultNever are the ranges no request is ever sent to.
var DefaultNever = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/4"),
	netip.MustParsePrefix("255.255.255.255/32"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("::/128"),
	netip.MustParsePrefix("fe80::/10"),
	netip.MustParsePrefix("ff00::/8"),
	netip.MustParsePrefix("fd00:ec2::254/128"), // a cloud's metadata service, as 169.254.169.254
}

// PrivateRanges are the ranges of private networks (RFC 1918, shared
// address space, unique local) and of translations whose IPv4 address
// cannot be told (NAT64 local use, Teredo): an allowed host reaches them
// only when Server.Private lists them. A name's owner chooses what it
// resolves to, and a firewall switched off opens the web, not this
// machine's network. (A private IPv4 address inside NAT64, 6to4 or an
// IPv4-compatible address counts as itself: embedded.)
var PrivateRanges = []netip.Prefix{
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001::/32"),
}

// embedded is the IPv4 address an IPv6 address carries for a translator:
// NAT64's well-known prefix, 6to4, or the old IPv4-compatible form.
func embedded(a netip.Addr) (netip.Addr, bool) {
	if !a.Is6() || a.Is4In6() {
		return netip.Addr{}, false
	}
	b := a.As16()
	switch {
	case netip.MustParsePrefix("64:ff9b::/96").Contains(a), netip.MustParsePrefix("::/96").Contains(a):
		return netip.AddrFrom4([4]byte(b[12:16])), true
	case netip.MustParsePrefix("2002::/16").Contains(a):
		return netip.AddrFrom4([4]byte(b[2:6])), true
	}
	return netip.Addr{}, false
}

// Handler returns the proxy's HTTP handler.
func (s *Server) Handler() http.Handler {
	p := goproxy.NewProxyHttpServer()
	p.Logger = log.New(io.Discard, "", 0)
	p.Tr = &http.Transport{
		Proxy:                 nil, // never another proxy
		DialContext:           s.dial,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 10 * time.Minute,
	}
	p.ConnectDialWithReq = func(req *http.Request, network, addr string) (net.Conn, error) {
		c, err := s.dial(req.Context(), network, addr)
		if err != nil {
			return nil, err
		}
		return s.tunnel(req, addr, c), nil
	}
	p.NonproxyHandler = http.HandlerFunc(s.credential)
	p.OnRequest().HandleConnectFunc(s.connect)
	p.OnRequest().DoFunc(s.request)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// A credential route, reached through a proxy (the guest's
		// HTTP_PROXY) or directly (no_proxy names the gateway), is served
		// here, streamed, never forwarded: it is no connection to a host
		// the policy must go on allowing.
		if r.Method != http.MethodConnect {
			if !r.URL.IsAbs() {
				s.credential(w, r)
				return
			}
			if a, err := netip.ParseAddr(r.URL.Hostname()); err == nil && a.Unmap() == s.Self {
				s.credential(w, r)
				return
			}
		}
		if r.Method == http.MethodConnect {
			p.ServeHTTP(w, r)
			return
		}
		// A request in flight is a channel too (a streamed upload, a long
		// download, an upgraded connection): it ends when the policy stops
		// allowing its host.
		ctx, cancel := context.WithCancel(r.Context())
		defer cancel()
		bw := &bulkWriter{ResponseWriter: w}
		if host, port := splitTarget(r.URL.Host, "80"); host != "" {
			ch := &channel{req: r, host: host, port: port, end: func() { cancel(); bw.closeHijacked() }}
			s.open(ch)
			defer s.forget(ch)
			ctx = s.follow(ctx, ch, false)
		}
		p.ServeHTTP(bw, r.WithContext(ctx))
		// goproxy leaves an upgraded client connection open when the
		// upstream ends it.
		bw.closeHijacked()
	})
}

// client is the sandbox address a request came from.
func client(r *http.Request) netip.Addr {
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// splitTarget returns the host and the port of host[:port], the host in
// canonical form (see canonical) or, when it has none, a shortened, quoted
// ASCII form for messages and the log (the agent's bytes never reach a
// terminal on the host) and "" as the port.
func splitTarget(hostport, defPort string) (string, string) {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		host, port = hostport, defPort
	}
	if c, ok := canonical(host); ok {
		return c, port
	}
	if len(host) > 64 {
		host = host[:64] + "..."
	}
	return strconv.QuoteToASCII(host), ""
}

// canonical returns host as the gateway checks and dials it: an IPv4
// address in dotted form, or a lower-case DNS name without its trailing
// dot. Anything else is refused: an IPv6 literal (the allowlist names IPv4
// addresses only), an address with a zone ("[::1%25x.allowed.test]" parses
// as an IPv6 address whose zone looks like an allowed name), a name with
// other characters or longer than DNS allows.
func canonical(host string) (string, bool) {
	host = strings.TrimSuffix(strings.ToLower(host), ".")
	if a, err := netip.ParseAddr(host); err == nil {
		a = a.Unmap()
		if a.Zone() != "" || !a.Is4() {
			return "", false
		}
		return a.String(), true
	}
	if host == "" || len(host) > 253 {
		return "", false
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return "", false
		}
		for i := 0; i < len(label); i++ {
			if c := label[i]; !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return "", false
			}
		}
	}
	return host, true
}

// decide looks up the sandbox and applies its policy to host:port. It
// never resolves a name: a denied name is never looked up.
func (s *Server) decide(r *http.Request, host, port string) (*View, string) {
	v, err := s.Store.Lookup(client(r))
	switch {
	case errors.Is(err, ErrUnknown):
		return nil, "this address is not a vibe sandbox known to the gateway"
	case err != nil:
		return nil, "the sandbox's policy cannot be read (" + err.Error() + "); denying everything until it can"
	case port == "":
		return v, "not a host name or an IPv4 address"
	case !s.port(port):
		return v, "only ports 80 and 443 leave the sandbox"
	case !v.Allows(host):
		return v, ReasonNotAllowed
	}
	return v, ""
}

func (s *Server) connect(hostport string, ctx *goproxy.ProxyCtx) (*goproxy.ConnectAction, string) {
	host, port := splitTarget(hostport, "443")
	v, reason := s.decide(ctx.Req, host, port)
	s.record(ctx.Req, v, "CONNECT", host, port, reason)
	if reason != "" {
		ctx.Resp = denial(ctx.Req, v, host, port, reason)
		return goproxy.RejectConnect, hostport
	}
	return goproxy.OkConnect, net.JoinHostPort(host, port)
}

func (s *Server) request(r *http.Request, ctx *goproxy.ProxyCtx) (*http.Request, *http.Response) {
	if r.URL.Scheme != "http" {
		return r, textResponse(r, http.StatusBadRequest, "vibe gateway: only http:// URLs are proxied as requests; https goes through CONNECT\n")
	}
	host, port := splitTarget(r.URL.Host, "80")
	v, reason := s.decide(r, host, port)
	s.record(r, v, r.Method, host, port, reason)
	if reason != "" {
		return r, denial(r, v, host, port, reason)
	}
	r.Header.Del("Proxy-Authorization")
	// What is dialled and named is exactly what was checked: a Host
	// header naming another site (fronting through an allowed server)
	// is replaced by the checked name.
	r.URL.Host = net.JoinHostPort(host, port)
	r.Host = ""
	return r, nil
}

// dial connects to an allowed host:port: it resolves the name (the only
// place the gateway does) and never connects to a Never address.
func (s *Server) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.dialOut(ctx, network, addr, false)
}

// dialUpstream connects to a credential route's upstream: the user's own
// choice on the host (secrets.env, egress.credentials), never the
// sandbox's, so a private address needs no listing there.
func (s *Server) dialUpstream(ctx context.Context, network, addr string) (net.Conn, error) {
	return s.dialOut(ctx, network, addr, true)
}

// follow gives ch the connection its request goes out on, once the
// transport has it. It is judged again first, as the ranges may have
// changed since it was dialled (the host took its address): one kept from
// an earlier request, or dialled for a request given up before it was
// used (HTTP/2 then counts it new). One refused now is closed before a
// byte of this request is written (the transport then dials anew, and is
// refused). The channel knows the address from then on, so that judge
// ends it if the ranges come to refuse it.
func (s *Server) follow(ctx context.Context, ch *channel, upstream bool) context.Context {
	return httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{GotConn: func(info httptrace.GotConnInfo) {
		to := info.Conn.RemoteAddr()
		if s.refuses(to, upstream) != nil {
			info.Conn.Close()
			return
		}
		s.mu.Lock()
		ch.to = to
		s.mu.Unlock()
	}})
}

// refuses says why the gateway would not dial addr now (nil: it would).
func (s *Server) refuses(addr net.Addr, upstream bool) error {
	lim, err := s.limits()
	if err != nil {
		return err
	}
	return lim.refusesConn(addr, upstream)
}

func (s *Server) dialOut(ctx context.Context, network, addr string, upstream bool) (net.Conn, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	lim, err := s.limits()
	if err != nil {
		return nil, err
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil {
		addrs = []netip.Addr{a}
	} else {
		lookup := s.Lookup
		if lookup == nil {
			lookup = func(ctx context.Context, host string) ([]netip.Addr, error) {
				return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
			}
		}
		lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		addrs, err = lookup(lctx, host)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("resolve %s: %w", host, err)
		}
	}
	d := net.Dialer{Timeout: 15 * time.Second}
	var last error = fmt.Errorf("%s resolves only to addresses the gateway never connects to", host)
	for _, a := range addrs {
		if err := lim.refuses(a, host, upstream); err != nil {
			last = err
			continue
		}
		c, err := d.DialContext(ctx, network, net.JoinHostPort(a.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		last = err
	}
	return nil, last
}

// limits are what the gateway may not dial at one moment: the Server's
// own ranges and those of its RangesFile now.
type limits struct {
	self             netip.Addr
	nevers, privates []netip.Prefix
}

// refuses says why a (host's address) is not dialled now, nil if it is.
func (l limits) refuses(a netip.Addr, host string, upstream bool) error {
	if host == "" {
		host = a.Unmap().String()
	}
	if l.never(a) {
		if host == a.Unmap().String() {
			return fmt.Errorf("%s is an address the gateway never connects to (this machine's own, loopback, link-local, the sandbox bridge)", host)
		}
		return fmt.Errorf("%s is at %s, an address the gateway never connects to (this machine's own, loopback, link-local, the sandbox bridge)", host, a.Unmap())
	}
	if !upstream && l.private(a) {
		return fmt.Errorf("%s is at %s, a private address, which the gateway reaches only when egress.gateway.private (vibe.yaml) lists it: whoever runs a name's DNS chooses where it points, this machine's network included. If %s is yours, add it there", host, a.Unmap(), a.Unmap())
	}
	return nil
}

// refusesConn is refuses for the far end of a connection.
func (l limits) refusesConn(addr net.Addr, upstream bool) error {
	ap, err := netip.ParseAddrPort(addr.String())
	if err != nil {
		return err
	}
	return l.refuses(ap.Addr(), "", upstream)
}

func (s *Server) limits() (limits, error) {
	lim := limits{self: s.Self, nevers: s.Never, privates: s.Private}
	if s.RangesFile == "" {
		return lim, nil
	}
	var r Ranges
	if err := s.Store.read(s.RangesFile, &r); err != nil {
		return limits{}, fmt.Errorf("the gateway dials nothing while it does not know this host's addresses (%w): any vibe command on the host writes them again", err)
	}
	lim.nevers = append(slices.Clip(lim.nevers), r.Never...)
	lim.privates = append(slices.Clip(lim.privates), r.Private...)
	return lim, nil
}

func (s *Server) port(p string) bool {
	if s.Ports == nil {
		return p == "80" || p == "443"
	}
	return s.Ports[p]
}

// private reports whether a, or the IPv4 address it carries, is in a
// private range the user did not list.
func (l limits) private(a netip.Addr) bool {
	in := func(a netip.Addr) bool {
		for _, p := range l.privates {
			if p.Contains(a) {
				return false
			}
		}
		for _, p := range PrivateRanges {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	a = a.Unmap()
	if v4, ok := embedded(a); ok && in(v4) {
		return true
	}
	return in(a)
}

func (l limits) never(a netip.Addr) bool {
	if a.Zone() != "" {
		return true
	}
	a = a.Unmap()
	if v4, ok := embedded(a); ok && l.never(v4) {
		return true
	}
	if a == l.self {
		return true
	}
	for _, p := range l.nevers {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// credentialName is the form of a credential's name (an environment
// variable's, as secrets.env names it).
var credentialName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// credential serves /vibe-credential/NAME/REST for the sandbox the request
// came from: REST goes to NAME's upstream with the real credential in its
// header, replacing whatever placeholder the client sent.
func (s *Server) credential(w http.ResponseWriter, r *http.Request) {
	name, rest, ok := strings.Cut(strings.TrimPrefix(r.URL.Path, CredentialPath), "/")
	if !strings.HasPrefix(r.URL.Path, CredentialPath) || !ok || name == "" {
		http.Error(w, "vibe gateway: not a credential route (/vibe-credential/NAME/...)", http.StatusNotFound)
		return
	}
	// The name is the sandbox's text, logged and echoed: quoted in ASCII
	// and cut unless it has a credential name's form.
	if !credentialName.MatchString(name) {
		if len(name) > 64 {
			name = name[:64] + "..."
		}
		name = strconv.QuoteToASCII(name)
	}
	v, err := s.Store.Lookup(client(r))
	if err != nil {
		s.record(r, nil, r.Method, "credential:"+name, "", "unknown sandbox")
		http.Error(w, "vibe gateway: this address is not a vibe sandbox known to the gateway", http.StatusForbidden)
		return
	}
	// Only the methods an API call uses: TRACE (and the like) asks the
	// upstream to echo the request, with the real key the gateway adds.
	switch r.Method {
	case http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions:
	default:
		s.record(r, v, r.Method, "credential:"+name, "", "method not allowed on a credential route")
		w.Header().Set("Allow", "GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS")
		http.Error(w, "vibe gateway: a credential route takes GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS", http.StatusMethodNotAllowed)
		return
	}
	c, ok := v.Credentials[name]
	if !ok {
		s.record(r, v, r.Method, "credential:"+name, "", "no such credential")
		http.Error(w, fmt.Sprintf("vibe gateway: sandbox %s holds no credential %s (add it to secrets.env)", v.Sandbox, name), http.StatusForbidden)
		return
	}
	target, err := url.Parse(c.Upstream)
	if err != nil || (target.Scheme != "https" && target.Scheme != "http") || target.Host == "" {
		http.Error(w, "vibe gateway: credential "+name+" has no valid upstream", http.StatusBadGateway)
		return
	}
	host, port := splitTarget(target.Host, map[string]string{"https": "443", "http": "80"}[target.Scheme])
	s.record(r, v, r.Method, host, port, "")
	// A streamed answer ends when the sandbox stops holding this
	// credential (removed, bound elsewhere, the sandbox forgotten).
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	ch := &channel{req: r, host: host, port: port, end: cancel, cred: &c}
	s.open(ch)
	defer s.forget(ch)
	r = r.WithContext(s.follow(ctx, ch, true))
	rp := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.Out.URL.Scheme, pr.Out.URL.Host = target.Scheme, target.Host
			// Cleaned as an absolute path first, so that ".." cannot
			// climb out of the upstream's base path with the key.
			pr.Out.URL.Path = strings.TrimSuffix(target.Path, "/") + path.Clean("/"+rest)
			pr.Out.URL.RawPath = ""
			pr.Out.Host = target.Host
			pr.Out.Header.Del("Proxy-Authorization")
			pr.Out.Header.Del(c.Header)
			pr.Out.Header.Set(c.Header, c.Prefix+c.Value)
		},
		Transport:     s.upstream(),
		FlushInterval: -1, // streamed answers (server-sent events) pass at once
		ErrorHandler: func(w http.ResponseWriter, _ *http.Request, err error) {
			http.Error(w, "vibe gateway: upstream "+target.Host+": "+err.Error(), http.StatusBadGateway)
		},
	}
	rp.ServeHTTP(w, r)
}

// upstream is the one transport of credential routes: connections to the
// API are reused, not made anew for every request. An HTTP/2 stream takes
// up to its receive window before the sandbox reads it, in the gateway's
// memory: 4 MiB by default, so MaxConnsPerSandbox answers left unread
// would pass the gateway's limit. The connection's window stays large,
// so that one sandbox's unread answers never stall another's.
func (s *Server) upstream() http.RoundTripper {
	s.once.Do(func() {
		if s.Upstream == nil {
			s.Upstream = &http.Transport{Proxy: nil, DialContext: s.dialUpstream, ForceAttemptHTTP2: true,
				HTTP2:               &http.HTTP2Config{MaxReceiveBufferPerStream: 256 << 10},
				TLSHandshakeTimeout: 15 * time.Second, IdleConnTimeout: 90 * time.Second, MaxIdleConnsPerHost: 16}
		}
	})
	return s.Upstream
}

func (s *Server) record(r *http.Request, v *View, method, host, port, reason string) {
	if s.Log == nil {
		return
	}
	if len(method) > 16 {
		method = method[:16] // a request line's method is the client's text
	}
	e := Entry{Time: time.Now().UTC(), Client: client(r).String(), Method: method, Host: host, Port: port, Allowed: reason == "", Reason: reason}
	if v != nil {
		e.Sandbox = v.Sandbox
	}
	s.Log.Write(e)
}

// denial is the 403 a denied request gets: it names the host and says how
// to allow it.
func denial(r *http.Request, v *View, host, port, reason string) *http.Response {
	body := fmt.Sprintf("vibe gateway: %s:%s refused: %s.\n", host, port, reason)
	if v != nil && reason == ReasonNotAllowed {
		body += fmt.Sprintf("To allow it, on the host: vibe --name %s allow %s   (or vibe log --denied to review)\n", v.Sandbox, host)
	}
	return textResponse(r, http.StatusForbidden, body)
}

func textResponse(r *http.Request, code int, body string) *http.Response {
	resp := goproxy.NewResponse(r, goproxy.ContentTypeText, code, body)
	resp.Header.Set("X-Vibe-Gateway", "denied")
	return resp
}

// bulkWriter copies response bodies to the client in large blocks: the
// standard copy moves 32 KiB at a time, waking the proxy for each. A read
// returns as soon as any data is there, so streams are not held back; the
// body and its headers are the upstream's, untouched (a body cut short
// stays an error for the client). At most bulkSlots copies hold a large
// block at once, so that stalled readers cannot make the gateway's memory
// grow; the others copy as usual.
type bulkWriter struct {
	http.ResponseWriter
	mu       sync.Mutex
	hijacked net.Conn
}

const bulkBlock = 256 << 10

var (
	bulkSlots   = make(chan struct{}, 32)
	bulkBuffers = sync.Pool{New: func() any { b := make([]byte, bulkBlock); return &b }}
)

func (b *bulkWriter) ReadFrom(r io.Reader) (int64, error) {
	select {
	case bulkSlots <- struct{}{}:
		defer func() { <-bulkSlots }()
	default:
		if rf, ok := b.ResponseWriter.(io.ReaderFrom); ok {
			return rf.ReadFrom(r)
		}
		return io.Copy(writerOnly{b.ResponseWriter}, r)
	}
	buf := bulkBuffers.Get().(*[]byte)
	defer bulkBuffers.Put(buf)
	return io.CopyBuffer(writerOnly{b.ResponseWriter}, r, *buf)
}

func (b *bulkWriter) Flush() { _ = http.NewResponseController(b.ResponseWriter).Flush() }

// Hijack hands over the client's connection (an upgrade), and remembers it
// so that it can be closed.
func (b *bulkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, rw, err := http.NewResponseController(b.ResponseWriter).Hijack()
	if err == nil {
		b.mu.Lock()
		b.hijacked = c
		b.mu.Unlock()
	}
	return c, rw, err
}

func (b *bulkWriter) closeHijacked() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.hijacked != nil {
		b.hijacked.Close()
	}
}

func (b *bulkWriter) Unwrap() http.ResponseWriter { return b.ResponseWriter }

// writerOnly hides a writer's ReadFrom, which would copy in small blocks.
type writerOnly struct{ io.Writer }

// TunnelCheck is how often open tunnels are judged again by their
// sandbox's current policy.
var TunnelCheck = time.Second

// channel is something open through the gateway for a sandbox: a CONNECT
// tunnel, a request in flight or a credential route's answer. Every
// TunnelCheck, each is judged again by its sandbox's current policy and
// ended when that no longer allows it.
type channel struct {
	req        *http.Request
	host, port string
	end        func()
	// cred, on a credential route, is the credential it was served
	// with: the route lives as long as the sandbox holds that same one.
	cred *Credential
	// to is the address it reaches, once known (under Server.mu): the
	// ranges may come to refuse it (the host took it). A credential
	// route's (cred set) is the user's upstream, which a private range
	// does not refuse.
	to net.Addr
}

// allowed reports whether v, the sandbox's current view (nil: gone or
// unreadable), still lets ch go on.
func (ch *channel) allowed(v *View) bool {
	switch {
	case v == nil:
		return false
	case ch.cred != nil:
		return v.Credentials[ch.cred.Name] == *ch.cred
	}
	return v.Allows(ch.host)
}

// tunnel is the upstream side of an open CONNECT tunnel. It embeds the TCP
// connection, so that copies still splice in the kernel and half-closes
// pass through; Close also forgets its channel.
type tunnel struct {
	*net.TCPConn
	s  *Server
	ch *channel
}

func (t *tunnel) Close() error {
	t.s.forget(t.ch)
	return t.TCPConn.Close()
}

// tunnel registers the upstream connection of a tunnel to addr that req
// opened, until it closes.
func (s *Server) tunnel(req *http.Request, addr string, c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	host, port := splitTarget(addr, "443")
	t := &tunnel{TCPConn: tc, s: s}
	t.ch = &channel{req: req, host: host, port: port, to: tc.RemoteAddr(), end: func() { t.Close() }}
	s.open(t.ch)
	return t
}

func (s *Server) open(ch *channel) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.channels == nil {
		s.channels = map[*channel]bool{}
	}
	s.channels[ch] = true
	if !s.watching {
		s.watching = true
		go s.judge()
	}
}

func (s *Server) forget(ch *channel) {
	s.mu.Lock()
	delete(s.channels, ch)
	s.mu.Unlock()
}

// judge ends every open channel whose sandbox's policy no longer allows
// its host (an entry removed, the firewall back on, the policy gone),
// every TunnelCheck, while any is open.
func (s *Server) judge() {
	for {
		time.Sleep(TunnelCheck)
		s.mu.Lock()
		open := make([]*channel, 0, len(s.channels))
		to := map[*channel]net.Addr{}
		for ch := range s.channels {
			open = append(open, ch)
			to[ch] = ch.to
		}
		if len(open) == 0 {
			s.watching = false
			s.mu.Unlock()
			return
		}
		s.mu.Unlock()
		views := map[netip.Addr]*View{}
		lim, limErr := s.limits()
		for _, ch := range open {
			a := client(ch.req)
			v, seen := views[a]
			if !seen {
				v, _ = s.Store.Lookup(a) // unreadable or gone: nil, ended
				views[a] = v
			}
			reason := ""
			switch {
			case !ch.allowed(v):
				reason = ReasonClosed
				if ch.cred != nil {
					reason = ReasonCredentialGone
				}
			case to[ch] != nil && (limErr != nil || lim.refusesConn(to[ch], ch.cred != nil) != nil):
				reason = ReasonAddress
			default:
				continue
			}
			s.forget(ch)
			method := ch.req.Method
			s.record(ch.req, v, method, ch.host, ch.port, reason)
			ch.end()
		}
	}
}
