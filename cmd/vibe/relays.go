package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/vibesandbox/vibe/sandbox"
)

// A relayed port (vibe port on a VM, on a remote daemon, or with --relay)
// lives as long as the vibe that serves it. Its record in vibe's state
// folder, locked while that vibe runs, is how vibe status lists it and
// vibe port --rm ends it: a record whose lock is free is stale, whatever
// process its pid names by now.
type relayRecord struct {
	PID   int    `json:"pid"`
	Guest int    `json:"guest"`
	Host  int    `json:"host"`
	UUID  string `json:"uuid"`
}

func relayDir(name string) (string, error) {
	return dataPath(filepath.Join("state", name, "relays"))
}

// holdRelay records this vibe's relay of p and locks the record until
// release.
func holdRelay(name string, p sandbox.Port, r sandbox.Relayed) (release func(), err error) {
	dir, err := relayDir(name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay record: %w", err)
	}
	path := filepath.Join(dir, strconv.Itoa(p.Host)+".json")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil, fmt.Errorf("relay record: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("another vibe relays host port %d of %s already (vibe port --rm %d ends it)", p.Host, name, p.Host)
	}
	b, _ := json.Marshal(relayRecord{PID: os.Getpid(), Guest: p.Guest, Host: p.Host, UUID: r.UUID})
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt(b, 0)
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("relay record %s: %w", path, err)
	}
	return func() {
		os.Remove(path)
		f.Close()
	}, nil
}

// liveRelays lists the relays of sandbox name whose vibe still runs,
// sorted by host port.
func liveRelays(name string) []relayRecord {
	dir, err := relayDir(name)
	if err != nil {
		return nil
	}
	entries, _ := os.ReadDir(dir)
	var out []relayRecord
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".json") || !e.Type().IsRegular() {
			continue
		}
		if rec, ok := readLiveRelay(filepath.Join(dir, e.Name())); ok {
			out = append(out, rec)
		}
	}
	return out
}

func readLiveRelay(path string) (relayRecord, bool) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return relayRecord{}, false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); !errors.Is(err, syscall.EWOULDBLOCK) {
		return relayRecord{}, false // free (stale), or not lockable
	}
	var rec relayRecord
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil || json.Unmarshal(b, &rec) != nil || rec.PID <= 0 {
		return relayRecord{}, false
	}
	return rec, true
}

// relayPorts adds the live relays of name to a list of forwarded ports.
func relayPorts(name string, ports []sandbox.Port) []sandbox.Port {
	for _, r := range liveRelays(name) {
		ports = append(ports, sandbox.Port{Guest: r.Guest, Host: r.Host, Relay: r.PID})
	}
	return ports
}

// relay serves p in the foreground until interrupted, restored or ended
// with vibe port --rm.
func (s *session) relay(p sandbox.Port, why string) error {
	r, err := s.mgr.StartRelay(s.spec.Name)
	if err != nil {
		return err
	}
	ln, err := new(net.ListenConfig).Listen(s.ctx, "tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Host)))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return fmt.Errorf("forward port %d of %s: host port %d is taken on 127.0.0.1; pick another (vibe port %d:HOSTPORT)", p.Guest, s.spec.Name, p.Host, p.Guest)
		}
		return fmt.Errorf("forward port %d of %s: %w", p.Guest, s.spec.Name, err)
	}
	release, err := holdRelay(s.spec.Name, p, r)
	if err != nil {
		ln.Close()
		return err
	}
	defer release()
	fmt.Printf("http://127.0.0.1:%d -> %s:%d (this machine's loopback only; %s, so this vibe relays it while it runs: Ctrl-C, vibe port --rm %d or vibe restore ends it)\n", p.Host, s.spec.Name, p.Guest, why, p.Host)
	return s.mgr.Relay(s.ctx, s.spec, r, ln, p.Guest, func(msg string) {
		fmt.Fprintln(os.Stderr, "vibe: "+msg)
	})
}

// endRelay stops the live relay of host port host, if there is one.
func endRelay(name string, host int) (bool, error) {
	for _, r := range liveRelays(name) {
		if r.Host != host {
			continue
		}
		if err := syscall.Kill(r.PID, syscall.SIGTERM); err != nil {
			return true, fmt.Errorf("stop the vibe (pid %d) that relays host port %d: %w", r.PID, host, err)
		}
		return true, nil
	}
	return false, nil
}
