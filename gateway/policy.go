// Package gateway is the egress gateway: the filtering proxy that runs in an
// instance of its own, with one leg on the sandboxes' isolated bridge and one
// on an uplink. A sandbox reaches nothing but this proxy (the bridge's ACL
// says so, outside the guest), and the proxy lets each sandbox, known by the
// address incus pins to it, reach only the hosts of its own allowlist, on
// ports 80 and 443. Credentials are held here and added to requests on
// their way out, so they never enter a guest.
//
// The host's vibe writes each sandbox's policy as files into the gateway's
// memory-backed state folder (through the incus file API); the gateway reads
// them again whenever they change, so a policy change applies to the next
// request. Nothing in a policy file is ever run.
package gateway

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/vibesandbox/vibe/allowlist"
)

// Port is the proxy's port on the sandbox bridge.
const Port = 3128

// CredentialPath prefixes a credential route: a request for
// /vibe-credential/NAME/REST goes to NAME's upstream with REST appended and
// the real credential in its header.
const CredentialPath = "/vibe-credential/"

// File names in a sandbox's state folder (STATE/sandboxes/ADDRESS/).
const (
	PolicyFile      = "policy.json"
	CredentialsFile = "credentials.json"
	SessionPrefix   = "session-" // session-ID.json: one session's --allow entries
)

// Limits on what the gateway reads from its state folder.
const (
	maxFile     = 1 << 20
	maxSessions = 64
)

// Policy is one sandbox's egress policy.
type Policy struct {
	Sandbox string   `json:"sandbox"`
	Allow   []string `json:"allow"`
	// Open: the operator switched the sandbox's firewall off; any host on
	// ports 80 and 443 passes (nothing else ever does).
	Open bool `json:"open,omitempty"`
}

// Session is one session's own --allow entries; each session writes its
// own file, so two sessions never undo each other's entries.
type Session struct {
	Allow []string `json:"allow"`
	// Host and PID name the vibe process that runs the session, so that
	// one killed before it could end it is pruned by the next.
	Host string `json:"host,omitempty"`
	PID  int    `json:"pid,omitempty"`
}

// Credential is a secret bound to one upstream: the gateway adds it to
// requests on the sandbox's credential route NAME, and nowhere else.
type Credential struct {
	Name     string `json:"name"`     // the route: /vibe-credential/NAME/
	Upstream string `json:"upstream"` // https://api.example.com[/base]
	Header   string `json:"header"`   // x-api-key, Authorization, ...
	Prefix   string `json:"prefix,omitempty"`
	Value    string `json:"value"`
}

// Credentials is the credentials file of one sandbox.
type Credentials struct {
	Credentials []Credential `json:"credentials"`
}

// Ranges are the destinations that change while the gateway runs, in a
// file of vibe's (Server.RangesFile): the host's own addresses, never
// dialled, and the private ranges the user lets allowed names reach. Read
// again when it changes, so that neither change restarts the gateway,
// which would cut every sandbox's connections.
type Ranges struct {
	Never   []netip.Prefix `json:"never"`
	Private []netip.Prefix `json:"private"`
}

// View is what the gateway knows of one sandbox at one moment.
type View struct {
	Sandbox     string
	Allow       allowlist.List
	Open        bool
	Credentials map[string]Credential
}

// Allows reports whether the view lets host through (the port is the
// server's to check).
func (v *View) Allows(host string) bool {
	return v.Open || v.Allow.Allows(host)
}

// Store reads the sandboxes' policies from the state folder, caching each
// file by modification time and size.
type Store struct {
	Dir string // STATE/sandboxes

	mu    sync.Mutex
	cache map[string]cached
}

type cached struct {
	stamp stamp
	val   any
}

// ErrUnknown is returned for an address that has no policy.
var ErrUnknown = errors.New("no sandbox has this address")

// Lookup returns the view of the sandbox at addr. Any file it cannot read
// or parse is an error: the caller denies (fail closed).
func (s *Store) Lookup(addr netip.Addr) (*View, error) {
	if !addr.IsValid() {
		return nil, ErrUnknown
	}
	dir := filepath.Join(s.Dir, addr.Unmap().String())
	var p Policy
	if err := s.read(filepath.Join(dir, PolicyFile), &p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, ErrUnknown
		}
		return nil, err
	}
	raws := append([]string(nil), p.Allow...)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, SessionPrefix) || !strings.HasSuffix(name, ".json") {
			continue
		}
		if n++; n > maxSessions {
			return nil, fmt.Errorf("more than %d sessions", maxSessions)
		}
		var ses Session
		if err := s.read(filepath.Join(dir, name), &ses); err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				continue // the session ended meanwhile
			}
			return nil, err
		}
		raws = append(raws, ses.Allow...)
	}
	list, err := allowlist.ParseList(raws)
	if err != nil {
		return nil, fmt.Errorf("policy of %s: %w", addr, err)
	}
	v := &View{Sandbox: p.Sandbox, Allow: list, Open: p.Open, Credentials: map[string]Credential{}}
	var creds Credentials
	switch err := s.read(filepath.Join(dir, CredentialsFile), &creds); {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return nil, err
	}
	for _, c := range creds.Credentials {
		v.Credentials[c.Name] = c
	}
	return v, nil
}

// read decodes the JSON file at path into v (a pointer), from the cache
// when the file has not changed (same inode, change time and size). A file
// being written is not valid JSON until it is whole, so a half-written
// policy is never a smaller policy: it is read again a moment later, and
// is an error (deny) if it stays broken.
func (s *Store) read(path string, v any) error {
	var err error
	for try := 0; try < 3; try++ {
		if try > 0 {
			time.Sleep(20 * time.Millisecond)
		}
		var broken bool
		broken, err = s.readOnce(path, v)
		if err == nil || !broken {
			return err
		}
	}
	return err
}

type stamp struct {
	ino, size    int64
	ctime, mtime time.Time
}

func stampOf(st os.FileInfo) stamp {
	s := stamp{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.ino = int64(sys.Ino)
		s.ctime = time.Unix(sys.Ctim.Sec, sys.Ctim.Nsec)
	}
	return s
}

// readOnce reads path once; broken says the content did not parse.
func (s *Store) readOnce(path string, v any) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return false, err
	}
	if !st.Mode().IsRegular() {
		return false, fmt.Errorf("%s is not a regular file", path)
	}
	now := stampOf(st)
	s.mu.Lock()
	c, ok := s.cache[path]
	s.mu.Unlock()
	if ok && c.stamp == now {
		return false, assign(v, c.val)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxFile+1))
	if err != nil {
		return false, err
	}
	if len(b) > maxFile {
		return false, fmt.Errorf("%s is larger than %d bytes", path, maxFile)
	}
	if err := json.Unmarshal(b, v); err != nil {
		return true, fmt.Errorf("%s: %w", path, err)
	}
	s.mu.Lock()
	if s.cache == nil {
		s.cache = map[string]cached{}
	}
	s.cache[path] = cached{stamp: now, val: deref(v)}
	s.mu.Unlock()
	return false, nil
}

func deref(v any) any {
	switch p := v.(type) {
	case *Policy:
		return *p
	case *Session:
		return *p
	case *Credentials:
		return *p
	case *Ranges:
		return *p
	}
	return nil
}

func assign(dst, val any) error {
	switch p := dst.(type) {
	case *Policy:
		*p = val.(Policy)
	case *Session:
		*p = val.(Session)
	case *Credentials:
		*p = val.(Credentials)
	case *Ranges:
		*p = val.(Ranges)
	default:
		return fmt.Errorf("unknown policy type %T", dst)
	}
	return nil
}

// Sandboxes lists the addresses that have a policy, for health reports.
func (s *Store) Sandboxes() []string {
	entries, _ := os.ReadDir(s.Dir)
	var out []string
	for _, e := range entries {
		if _, err := netip.ParseAddr(e.Name()); err == nil {
			out = append(out, e.Name())
		}
	}
	sort.Strings(out)
	return out
}
