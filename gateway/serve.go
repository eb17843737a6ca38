package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"path/filepath"
	"sync"
	"time"
)

// Options configure Serve.
type Options struct {
	Listen netip.AddrPort // the gateway's address and port on the sandbox bridge
	Bridge netip.Prefix   // the sandbox bridge: never a destination
	// Ranges is the file of the host's addresses and of the private ranges
	// an allowed name may reach (Ranges), which vibe rewrites as they
	// change: required, since without it nothing is dialled.
	Ranges string
	State  string // STATE: sandboxes/ADDRESS/*.json
	Log    string // the egress logs' folder (ADDRESS.jsonl)
}

// MaxConnsPerSandbox bounds the connections one address holds open, so
// that one sandbox cannot exhaust the gateway for the others.
const MaxConnsPerSandbox = 256

// limitListener closes a new connection from an address that holds
// MaxConnsPerSandbox already.
type limitListener struct {
	net.Listener
	max int
	mu  sync.Mutex
	n   map[netip.Addr]int
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
		a := ap.Addr().Unmap()
		l.mu.Lock()
		if l.n[a] >= l.max {
			l.mu.Unlock()
			c.Close()
			continue
		}
		l.n[a]++
		l.mu.Unlock()
		return &countedConn{Conn: c, release: func() {
			l.mu.Lock()
			if l.n[a]--; l.n[a] <= 0 {
				delete(l.n, a)
			}
			l.mu.Unlock()
		}}, nil
	}
}

type countedConn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *countedConn) Close() error {
	c.once.Do(c.release)
	return c.Conn.Close()
}

// CloseWrite, CloseRead and ReadFrom pass through to the TCP connection:
// the proxy half-closes tunnels, and a TCP-to-TCP copy is spliced in the
// kernel rather than copied through this process.
func (c *countedConn) CloseWrite() error {
	if hc, ok := c.Conn.(interface{ CloseWrite() error }); ok {
		return hc.CloseWrite()
	}
	return c.Conn.Close()
}

func (c *countedConn) CloseRead() error {
	if hc, ok := c.Conn.(interface{ CloseRead() error }); ok {
		return hc.CloseRead()
	}
	return nil
}

func (c *countedConn) ReadFrom(r io.Reader) (int64, error) {
	if rf, ok := c.Conn.(io.ReaderFrom); ok {
		return rf.ReadFrom(r)
	}
	return io.Copy(struct{ io.Writer }{c.Conn}, r)
}

// Serve runs the proxy until ctx ends.
func Serve(ctx context.Context, o Options) error {
	if !o.Listen.IsValid() {
		return errors.New("gateway: no listen address")
	}
	if o.Ranges == "" {
		return errors.New("gateway: no ranges file")
	}
	never := append([]netip.Prefix(nil), DefaultNever...)
	if o.Bridge.IsValid() {
		never = append(never, o.Bridge.Masked())
	}
	s := &Server{
		Store:      &Store{Dir: filepath.Join(o.State, "sandboxes")},
		Log:        &Logger{Dir: o.Log},
		Self:       o.Listen.Addr(),
		Never:      never,
		RangesFile: o.Ranges,
	}
	ln, err := net.Listen("tcp", o.Listen.String())
	if err != nil {
		return fmt.Errorf("gateway: listen on %s: %w", o.Listen, err)
	}
	srv := &http.Server{
		Handler:           s.Handler(),
		ReadHeaderTimeout: 30 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	ln = &limitListener{Listener: ln, max: MaxConnsPerSandbox, n: map[netip.Addr]int{}}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
