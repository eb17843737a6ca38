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

	"golang.org/x/sys/unix"

	"github.com/vibesandbox/vibe/sandbox"
)

// A relayed port (vibe port on a VM, on a remote daemon, or with --relay)
// lives as long as the vibe that serves it. Its record in vibe's state
// folder, which that vibe holds a POSIX lock on while it runs, is how vibe
// status lists it and vibe port --rm ends it. The pid comes from the
// kernel (the lock's holder), never from the file: a record left by a
// vibe that crashed names nothing, whatever process its pid is by now.
type relayRecord struct {
	Remote string `json:"remote"`
	Guest  int    `json:"guest"`
	Host   int    `json:"host"`
	UUID   string `json:"uuid"`
	PID    int    `json:"-"` // the lock's holder
	path   string
}

func relayDir(name string) (string, error) {
	return dataPath(filepath.Join("state", name, "relays"))
}

// holdRelay records this vibe's relay of p and holds the record's lock
// until release.
func holdRelay(name, remote string, p sandbox.Port, r sandbox.Relayed) (release func(), err error) {
	dir, err := relayDir(name)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay record: %w", err)
	}
	path := filepath.Join(dir, strconv.Itoa(p.Host)+".json")
	// A relay that ends removes its record: the file locked must still be
	// the one at the path, or it would be a record nobody finds.
	for range 3 {
		f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW, 0o600)
		if err != nil {
			return nil, fmt.Errorf("relay record: %w", err)
		}
		lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
		if err := syscall.FcntlFlock(f.Fd(), syscall.F_SETLK, &lk); err != nil {
			f.Close()
			return nil, fmt.Errorf("another vibe relays host port %d of %s already (vibe port --rm %d ends it)", p.Host, name, p.Host)
		}
		var held, there syscall.Stat_t
		if syscall.Fstat(int(f.Fd()), &held) != nil || syscall.Lstat(path, &there) != nil || held.Ino != there.Ino || held.Dev != there.Dev {
			f.Close()
			continue
		}
		b, _ := json.Marshal(relayRecord{Remote: remote, Guest: p.Guest, Host: p.Host, UUID: r.UUID})
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
	return nil, fmt.Errorf("relay record %s: it kept changing under this vibe; try again", path)
}

// liveRelays lists the relays of sandbox name on remote whose vibe still
// runs, sorted by host port.
func liveRelays(name, remote string) []relayRecord {
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
		if rec, ok := readLiveRelay(filepath.Join(dir, e.Name())); ok && rec.Remote == remote {
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
	lk := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart}
	if err := syscall.FcntlFlock(f.Fd(), syscall.F_GETLK, &lk); err != nil || lk.Type == syscall.F_UNLCK || lk.Pid <= 0 {
		return relayRecord{}, false // nobody holds it: stale
	}
	var rec relayRecord
	b, err := io.ReadAll(io.LimitReader(f, 4096))
	if err != nil || json.Unmarshal(b, &rec) != nil {
		return relayRecord{}, false
	}
	rec.PID, rec.path = int(lk.Pid), path
	return rec, true
}

// relayPorts adds the live relays of name to a list of forwarded ports.
func relayPorts(name, remote string, ports []sandbox.Port) []sandbox.Port {
	for _, r := range liveRelays(name, remote) {
		ports = append(ports, sandbox.Port{Guest: r.Guest, Host: r.Host, Relay: r.PID})
	}
	return ports
}

// relay serves p in the foreground until interrupted, restored or ended
// with vibe port --rm.
func (s *session) relay(remote string, p sandbox.Port, why string) error {
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
	release, err := holdRelay(s.spec.Name, remote, p, r)
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
func endRelay(name, remote string, host int) (bool, error) {
	for _, r := range liveRelays(name, remote) {
		if r.Host != host {
			continue
		}
		if err := signalHolder(r, unix.SIGTERM); err != nil {
			return true, fmt.Errorf("stop the vibe (pid %d) that relays host port %d: %w", r.PID, host, err)
		}
		return true, nil
	}
	return false, nil
}

// signalHolder signals the process that holds r's lock. A pid alone could
// be reused between the lock's look and the kill, so the process is pinned
// by a pidfd first and the lock is looked at again: if the same pid still
// holds it, the pidfd is that holder, and it alone gets the signal.
func signalHolder(r relayRecord, sig unix.Signal) error {
	fd, err := unix.PidfdOpen(r.PID, 0)
	if errors.Is(err, unix.ENOSYS) {
		return unix.Kill(r.PID, sig) // a kernel before 5.3: the pid as read
	}
	if err != nil {
		if errors.Is(err, unix.ESRCH) {
			return nil // it ended meanwhile
		}
		return err
	}
	defer unix.Close(fd)
	again, ok := readLiveRelay(r.path)
	if !ok || again.PID != r.PID {
		return nil // it ended meanwhile; the pid is someone else's now
	}
	if err := unix.PidfdSendSignal(fd, sig, nil, 0); err != nil && !errors.Is(err, unix.ESRCH) {
		return err
	}
	return nil
}
