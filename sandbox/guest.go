package sandbox

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/allowlist"
	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/internal/safetext"
	"github.com/vibesandbox/vibe/provision"
)

// SelfTest is the in-guest self-test's verdict.
type SelfTest struct {
	Code   int
	Output string
	// GatewayOpen: the operator opened the sandbox's egress at the gateway.
	GatewayOpen bool
}

// Off reports that the operator switched the firewall off on purpose (in
// the guest or at the gateway).
func (s *SelfTest) Off() bool { return s.Code == 3 || s.GatewayOpen }

// Err is nil when the sandbox is contained or deliberately open, and says
// why nothing may run in it otherwise.
func (s *SelfTest) Err() error {
	if s.Code == 0 || s.Code == 3 {
		return nil
	}
	return fmt.Errorf("the sandbox is not contained, so nothing will be started in it (fail closed):\n%s\nre-apply with `vibe config`, or `vibe restore` to start from the image again", strings.TrimRight(s.Output, "\n"))
}

// Firewall runs the guest's vibe-firewall (on, off or status) as root and
// returns what it printed. on and off fail on a non-zero exit; status
// reports whatever state there is. Behind a gateway, on and off also set
// what the gateway lets through for the sandbox (the outer layer, which
// the guest cannot change), and status reports both layers.
func (m *Manager) Firewall(ctx context.Context, s *Spec, action string) (string, error) {
	switch action {
	case "on", "off", "status":
	default:
		return "", fmt.Errorf("firewall: %q: use on, off or status", action)
	}
	inst, etag, err := m.held(s.Name)
	if err != nil {
		return "", err
	}
	_, on, err := m.behind(inst, s)
	if err != nil {
		return "", err
	}
	gwState := ""
	if on {
		if action != "status" {
			put := inst.Writable()
			put.Config[KeyFirewall] = action
			op, err := m.C.UpdateInstance(inst.Name, put, etag)
			if err == nil {
				err = op.WaitContext(ctx)
			}
			if err != nil {
				return "", fmt.Errorf("sandbox %s: %w", s.Name, err)
			}
			inst.Config[KeyFirewall] = action
			if _, err := m.pushPolicy(ctx, s, inst); err != nil {
				return "", err
			}
		}
		gwState = "\ngateway: enforcing the allowlist"
		if inst.Config[KeyFirewall] == "off" {
			gwState = "\ngateway: OPEN (any host on ports 80 and 443; other protocols stay closed)"
		}
	}
	if on && inst.StatusCode != api.Running {
		// The guest's own layer is applied when it next starts.
		return strings.TrimPrefix(gwState, "\n"), nil
	}
	// Only root's own files may decide: a changed vibe-firewall or
	// ruleset is reported, never run or believed.
	// What it prints is the guest's word (guest root owns its bash): it
	// reaches the operator's terminal bounded, in time and size, and
	// without control characters.
	runCtx, cancel := context.WithTimeout(ctx, settleTimeout)
	defer cancel()
	r, err := daemon.Run(runCtx, m.C, m.id(s.Name), daemon.Exec{Command: []string{"bash", "-c", guardedScript, "guarded", provision.Digests(), "/usr/local/sbin/vibe-firewall", action}})
	if err != nil {
		return "", err
	}
	out := strings.TrimSpace(r.Stdout + r.Stderr)
	if len(out) > statusLimit {
		out = out[:statusLimit] + " [cut]"
	}
	out = safetext.Text(out) + gwState
	if action != "status" && r.Code != 0 {
		return out, fmt.Errorf("vibe-firewall %s exited %d: %s", action, r.Code, out)
	}
	if action != "status" {
		m.writeStatus(ctx, s.Name, action == "off")
	}
	return out, nil
}

// readyTimeout bounds how long a started sandbox may take to boot.
const readyTimeout = 3 * time.Minute

// statusLimit bounds what vibe prints of the guest's firewall status.
const statusLimit = 16 << 10

// settleTimeout bounds one settle exec (its boot wait is 10 s).
const settleTimeout = 2 * time.Minute

// settleScript is provision/settle: sent with every settle, never stored
// in the image, so the host decides what is checked.
var settleScript = mustFile("settle")

// guardedScript is provision/guarded, sent likewise.
var guardedScript = mustFile("guarded")

func mustFile(name string) string {
	s, err := provision.File(name)
	if err != nil {
		panic("sandbox: " + err.Error()) // embedded: cannot happen
	}
	return s
}

// settle waits for the guest to finish booting, checks root's files
// against the digests this vibe knows, remounts vibe's mounts nosuid,nodev
// and makes the host-run files of writable projects read-only, installs
// the spec's allowlist plus the sandbox's added entries (restarting the
// proxy when it changed), applies the firewall and runs the self-test. Anything that cannot be done stops
// everything (fail closed).
func (m *Manager) settle(ctx context.Context, s *Spec, inst *api.Instance, want map[string]map[string]string) (*SelfTest, time.Duration, error) {
	list, err := filterFile(s, inst.Config[KeyAllow])
	if err != nil {
		return nil, 0, err
	}
	gw, err := m.pushPolicy(ctx, s, inst)
	if err != nil {
		return nil, 0, err
	}
	specs := mountSpecs(s, want, gitHostRun(s.Mounts, s.StateFolders()))
	deadline := time.Now().Add(readyTimeout)
	last := ""
	for {
		argv := append([]string{"bash", "-c", settleScript, "settle", provision.Digests(), strings.Join(HostRun, "\n"), s.User, gw}, specs...)
		// Bounded: a guest that makes settle hang (a huge mount table, a
		// stuck command) fails closed instead of holding vibe.
		runCtx, cancel := context.WithTimeout(ctx, settleTimeout)
		r, err := daemon.Run(runCtx, m.C, m.id(s.Name), daemon.Exec{Command: argv, Stdin: strings.NewReader(list)})
		cancel()
		if err != nil {
			last = err.Error()
		} else {
			last = lastLines(r.Stderr)
		}
		switch {
		case err == nil && r.Code == 100:
			return nil, 0, fmt.Errorf("the firewall of %s could not be applied, so nothing will start in it (fail closed): %s", s.Name, lastLines(r.Stderr))
		case err == nil && r.Code == 102:
			return nil, 0, fmt.Errorf("the proxy of %s would not take the allowlist: %s", s.Name, lastLines(r.Stderr))
		case err == nil && r.Code == 103:
			return nil, 0, fmt.Errorf("sandbox %s: %s, so nothing will start in it (fail closed); vibe restore makes it again from the image (or bake it again with this vibe-build)", s.Name, lastLines(r.Stderr))
		case err == nil && r.Code == 104:
			return nil, 0, fmt.Errorf("sandbox %s: a mount could not be made nosuid,nodev or protected, so nothing will start in it (fail closed): %s", s.Name, lastLines(r.Stderr))
		case err == nil && r.Code != 101:
			out, timing := splitTiming(r.Stderr)
			return &SelfTest{Code: r.Code, Output: r.Stdout + out, GatewayOpen: gw != "-" && inst.Config[KeyFirewall] == "off"}, timing, nil
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("sandbox %s: timed out after %s waiting for it to boot (last: %s)", s.Name, readyTimeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// splitTiming removes the timing line from stderr and returns the boot wait.
func splitTiming(stderr string) (string, time.Duration) {
	i := strings.LastIndex(stderr, "vibe-timing ")
	if i < 0 {
		return stderr, 0
	}
	var boot, self int
	fmt.Sscanf(stderr[i:], "vibe-timing boot=%d selftest=%d", &boot, &self)
	return stderr[:i], time.Duration(boot) * time.Millisecond
}

func lastLines(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > 3 {
		lines = lines[len(lines)-3:]
	}
	return strings.Join(lines, "; ")
}

// filterFile is the proxy's filter file for the sandbox: the spec's
// allowlist plus the sandbox's own added entries (its KeyAllow value).
func filterFile(s *Spec, added string) (string, error) {
	list, err := allowed(s, added)
	if err != nil {
		return "", err
	}
	return list.FilterFile(), nil
}

// allowed is the sandbox's whole allowlist: the spec's (configuration and
// this run's) plus the sandbox's own added entries (its KeyAllow value).
func allowed(s *Spec, added string) (allowlist.List, error) {
	list := append(allowlist.List{}, s.Allow...)
	if added != "" {
		extra, err := allowlist.ParseList(strings.Split(added, "\n"))
		if err != nil {
			return nil, fmt.Errorf("sandbox %s: its added allowlist entries: %w", s.Name, err)
		}
		list = merge(list, extra)
	}
	return list, nil
}

// merge appends the entries of b that a does not have yet.
func merge(a, b allowlist.List) allowlist.List {
	seen := map[string]bool{}
	for _, e := range a {
		seen[e.String()] = true
	}
	for _, e := range b {
		if !seen[e.String()] {
			seen[e.String()] = true
			a = append(a, e)
		}
	}
	return a
}

// Allow adds an entry to the sandbox's own allowlist (kept in its instance
// configuration) and applies it when the sandbox runs.
func (m *Manager) Allow(ctx context.Context, s *Spec, e allowlist.Entry) error {
	inst, etag, err := m.held(s.Name)
	if err != nil {
		return err
	}
	put := inst.Writable()
	var entries []string
	if cur := put.Config[KeyAllow]; cur != "" {
		entries = strings.Split(cur, "\n")
	}
	for _, x := range entries {
		if x == e.String() {
			return nil
		}
	}
	put.Config[KeyAllow] = strings.Join(append(entries, e.String()), "\n")
	op, err := m.C.UpdateInstance(inst.Name, put, etag)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", s.Name, err)
	}
	if err := op.WaitContext(ctx); err != nil {
		return err
	}
	inst.Config[KeyAllow] = put.Config[KeyAllow]
	if _, on, err := m.behind(inst, s); err != nil {
		return err
	} else if on {
		// The gateway judges the next request by it: nothing in the
		// guest restarts.
		_, err := m.pushPolicy(ctx, s, inst)
		return err
	}
	if inst.StatusCode != api.Running {
		return nil
	}
	want, err := m.mountDevices(s)
	if err != nil {
		return err
	}
	st, _, err := m.settle(ctx, s, inst, want)
	if err != nil {
		return err
	}
	return st.Err()
}
