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
	// Without incus's id for the instance, a restore could not be told.
	if inst.Config["volatile.uuid"] == "" {
		return Relayed{}, fmt.Errorf("%s has no volatile.uuid: this incus is too old to relay ports safely", name)
	}
	return Relayed{UUID: inst.Config["volatile.uuid"]}, nil
}

// Relay serves ln (on the host's loopback) until ctx ends or the instance
// started with is gone or replaced (vibe restore), carrying each
// connection to 127.0.0.1:guest in the guest. logf reports connections the
// guest refused, at most once until one succeeds again. It closes ln.
func (m *Manager) Relay(ctx context.Context, s *Spec, r Relayed, ln net.Listener, guest int, logf func(string)) error {
	req, err := relayExec(s, guest)
	if err != nil {
		ln.Close()
		return err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	var wg sync.WaitGroup
	// Whatever ends the loop ends the connections too, before waiting
	// for them: a guest server that never closes cannot hold vibe, nor
	// can a daemon that stopped answering (its calls take no context).
	defer func() {
		cancel(nil)
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(relayDrain):
		}
	}()
	go func() {
		<-ctx.Done()
		ln.Close()
	}()
	go func() {
		t := time.NewTicker(relayWatch)
		defer t.Stop()
		failed := 0
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
			why, final := m.relayGone(s.Name, r)
			switch {
			case why == "":
				failed = 0
			case final:
				cancel(fmt.Errorf("%w: %s", ErrRelayEnded, why))
				return
			default: // the daemon did not answer: a few times in a row end it
				if failed++; failed >= relayPatience {
					cancel(fmt.Errorf("%w: %s", ErrRelayEnded, why))
					return
				}
			}
		}
	}()
	slots := make(chan struct{}, relayMax)
	var mu sync.Mutex
	quiet := false
	report := func(ok bool, msg string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case ctx.Err() != nil:
		case ok:
			quiet = false
		case !quiet:
			quiet = true
			logf(msg)
		}
	}
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
			// The instance is checked again for each connection: the
			// watch's last look may be a second old.
			if why, final := m.relayGone(s.Name, r); why != "" && final {
				cancel(fmt.Errorf("%w: %s", ErrRelayEnded, why))
				return
			}
			e := req
			var errb capped.Buffer
			errb.Limit = 512
			e.Stdin, e.Stdout, e.Stderr = conn, conn, &errb
			code, err := daemon.Execute(ctx, m.C, m.id(s.Name), e)
			switch {
			case err != nil:
				report(false, fmt.Sprintf("a connection to %s:%d failed: %s", s.Name, guest, Printable(err.Error())))
			case code == relayRefused:
				report(false, fmt.Sprintf("%s:%d refused a connection: %s", s.Name, guest, Printable(strings.TrimSpace(errb.String()))))
			case code != 0:
				report(false, fmt.Sprintf("the relay in %s ended with status %d: %s", s.Name, code, Printable(strings.TrimSpace(errb.String()))))
			default:
				report(true, "")
			}
		}()
	}
}

// relayRefused is port-relay's exit status when nothing listens.
const relayRefused = 3

// relayDrain bounds the wait for a stopping relay's connections.
const relayDrain = 5 * time.Second

// relayPatience is how many checks in a row the daemon may fail before a
// relay gives up.
const relayPatience = 5

// relayExec is the exec that carries one connection: the guest's half of
// the relay, as the sandbox user, with nothing of the host's environment.
// The launcher starts it, as it starts everything of the user's: it waits
// while settle has the user stopped (a process of the user's that starts
// then stops the settle).
func relayExec(s *Spec, guest int) (daemon.Exec, error) {
	prog, err := provision.File("port-relay")
	if err != nil {
		return daemon.Exec{}, err
	}
	return daemon.Exec{
		Command: []string{Launcher, s.User, "-", "--", "/usr/bin/python3", "-I", "-c", prog, strconv.Itoa(guest)},
		Cwd:     "/",
		Env:     map[string]string{"PATH": RootPATH, "VIBE_USER_PATH": "/usr/bin:/bin"},
	}, nil
}

// relayGone says why the relay's instance is no longer the one it serves,
// or "", and whether that is final (not a daemon that did not answer). A
// stopped sandbox keeps its relay, as it keeps a proxy device (connections
// fail until it runs again); a new instance under the name (vibe restore)
// or none ends it.
func (m *Manager) relayGone(name string, r Relayed) (string, bool) {
	inst, err := m.lookup(name)
	switch {
	case errors.Is(err, ErrNotFound):
		return name + " is gone (deleted, or being restored): run vibe port again once it runs", true
	case err != nil:
		return "the incus daemon did not answer: " + Printable(err.Error()), false
	case inst.Config["volatile.uuid"] != r.UUID:
		return name + " was restored (a new instance): run vibe port again", true
	}
	return "", false
}
