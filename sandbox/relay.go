package sandbox

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/internal/capped"
	"github.com/vibesandbox/vibe/provision"
)

// A relay forwards a port without a proxy device: incus proxies into a VM
// only by NAT, to an address the sandbox's network does not let in and
// never from the host's loopback, and a daemon on another machine would
// listen on that machine's loopback. So this vibe listens on the host's
// loopback itself and carries each connection into the guest through
// incus exec (provision/port-relay, run as the sandbox user), for as long
// as it runs. Nothing about it opens a network path into or out of the
// sandbox.

// relayMax bounds the connections relayed at once: each is an exec.
const relayMax = 64

// relayWatch is how often a relay checks that its instance still runs.
const relayWatch = time.Second

// ErrRelayEnded says why a relay stopped on its own.
var ErrRelayEnded = errors.New("relay ended")

// Relayed is what a running relay needs to be found again: the instance it
// serves, by incus's id for it (a restored sandbox has a new one).
type Relayed struct {
	UUID string
}

// StartRelay checks that the sandbox runs and returns what identifies it,
// before the caller listens: a relay for a stopped sandbox is refused.
func (m *Manager) StartRelay(name string) (Relayed, error) {
	inst, err := m.Get(name)
	if err != nil {
		return Relayed{}, err
	}
	if inst.StatusCode != api.Running {
		return Relayed{}, fmt.Errorf("%s is %s: start it first (vibe up), then forward its port", name, strings.ToLower(inst.Status))
	}
	return Relayed{UUID: inst.Config["volatile.uuid"]}, nil
}

// Relay serves ln (on the host's loopback) until ctx ends or the instance
// started with is gone or replaced (vibe restore), carrying each
// connection to 127.0.0.1:guest in the guest. logf reports connections the
// guest refused, at most once until one succeeds again. It closes ln.
func (m *Manager) Relay(ctx context.Context, s *Spec, r Relayed, ln net.Listener, guest int, logf func(string)) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		t := time.NewTicker(relayWatch)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			if why := m.relayGone(s.Name, r); why != "" {
				cancel(fmt.Errorf("%w: %s", ErrRelayEnded, why))
				return
			}
		}
	}()
	req, err := relayExec(s, guest)
	if err != nil {
		return err
	}
	slots := make(chan struct{}, relayMax)
	var wg sync.WaitGroup
	defer wg.Wait()
	var mu sync.Mutex
	quiet := false
	for {
		conn, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				if cause := context.Cause(ctx); errors.Is(cause, ErrRelayEnded) {
					return cause
				}
				return nil // interrupted: the user ended it
			}
			return fmt.Errorf("relay to %s:%d: %w", s.Name, guest, err)
		}
		select {
		case slots <- struct{}{}:
		default:
			conn.Close() // more at once than relayMax: refused, not queued
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer conn.Close()
			e := req
			var errb capped.Buffer
			errb.Limit = 512
			e.Stdin, e.Stdout, e.Stderr = conn, conn, &errb
			code, err := daemon.Execute(ctx, m.C, s.Name, e)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case ctx.Err() != nil:
			case err != nil && !quiet:
				quiet = true
				logf(fmt.Sprintf("a connection to %s:%d failed: %v", s.Name, guest, err))
			case code != 0 && !quiet:
				quiet = true
				logf(fmt.Sprintf("%s:%d refused a connection: %s", s.Name, guest, Printable(strings.TrimSpace(errb.String()))))
			case err == nil && code == 0:
				quiet = false
			}
		}()
	}
}

// relayExec is the exec that carries one connection: the guest's half of
// the relay, as the sandbox user, with nothing of the host's environment.
func relayExec(s *Spec, guest int) (daemon.Exec, error) {
	prog, err := provision.File("port-relay")
	if err != nil {
		return daemon.Exec{}, err
	}
	return daemon.Exec{
		Command: []string{"python3", "-I", "-c", prog, strconv.Itoa(guest)},
		UID:     uint32(s.UID), GID: uint32(s.GID), Cwd: "/",
		Env: map[string]string{"PATH": "/usr/bin:/bin"},
	}, nil
}

// relayGone says why the relay's instance is no longer the one it serves,
// or "". A stopped sandbox keeps its relay, as it keeps a proxy device
// (connections fail until it runs again); a new instance under the name
// (vibe restore) or none ends it.
func (m *Manager) relayGone(name string, r Relayed) string {
	inst, _, err := m.C.GetInstance(name)
	switch {
	case api.StatusErrorCheck(err, 404):
		return name + " is gone (deleted, or being restored): run vibe port again once it runs"
	case err != nil:
		return "the incus daemon did not answer: " + err.Error()
	case inst.Config["volatile.uuid"] != r.UUID:
		return name + " was restored (a new instance): run vibe port again"
	}
	return ""
}
