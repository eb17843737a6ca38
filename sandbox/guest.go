package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/allowlist"
)

// result is a finished non-interactive command.
type result struct {
	Stdout, Stderr string
	Code           int
}

// run executes a command non-interactively as root (unless e says
// otherwise) and collects its output.
func run(ctx context.Context, c incus.InstanceServer, name string, e Exec) (result, error) {
	var out, errb bytes.Buffer
	e.Stdout, e.Stderr = &out, &errb
	if e.Stdin == nil {
		e.Stdin = bytes.NewReader(nil)
	}
	code, err := execute(ctx, c, name, e)
	return result{Stdout: out.String(), Stderr: errb.String(), Code: code}, err
}

// SelfTest is the in-guest self-test's verdict.
type SelfTest struct {
	Code   int
	Output string
}

// Off reports that the operator switched the firewall off on purpose.
func (s *SelfTest) Off() bool { return s.Code == 3 }

// Err is nil when the sandbox is contained or deliberately open, and says
// why nothing may run in it otherwise.
func (s *SelfTest) Err() error {
	if s.Code == 0 || s.Code == 3 {
		return nil
	}
	return fmt.Errorf("the sandbox is not contained, so nothing will be started in it (fail closed):\n%s\nre-apply with `vibe config`, or `vibe restore` to start from the image again", strings.TrimRight(s.Output, "\n"))
}

// SelfTest runs vibe-selftest in the guest.
func (m *Manager) SelfTest(ctx context.Context, name string) (*SelfTest, error) {
	r, err := run(ctx, m.C, name, Exec{Command: []string{"/usr/local/sbin/vibe-selftest"}})
	if err != nil {
		return nil, fmt.Errorf("self-test in %s: %w", name, err)
	}
	return &SelfTest{Code: r.Code, Output: r.Stdout + r.Stderr}, nil
}

// Firewall runs the guest's vibe-firewall (on, off or status) as root and
// returns what it printed. on and off fail on a non-zero exit; status
// reports whatever state there is.
func (m *Manager) Firewall(ctx context.Context, name, action string) (string, error) {
	switch action {
	case "on", "off", "status":
	default:
		return "", fmt.Errorf("firewall: %q: use on, off or status", action)
	}
	r, err := run(ctx, m.C, name, Exec{Command: []string{"/usr/local/sbin/vibe-firewall", action}})
	if err != nil {
		return "", err
	}
	out := strings.TrimSpace(r.Stdout + r.Stderr)
	if action != "status" && r.Code != 0 {
		return out, fmt.Errorf("vibe-firewall %s exited %d: %s", action, r.Code, out)
	}
	return out, nil
}

// applyFirewall reloads the guest's ruleset in its remembered mode: it
// repairs a tampered table and learns resolvers that changed.
func (m *Manager) applyFirewall(ctx context.Context, name string) error {
	r, err := run(ctx, m.C, name, Exec{Command: []string{"/usr/local/sbin/vibe-firewall", "apply"}})
	if err == nil && r.Code == 0 {
		return nil
	}
	why := strings.TrimSpace(r.Stderr)
	if err != nil {
		why = err.Error()
	}
	return fmt.Errorf("the firewall of %s could not be applied, so nothing will start in it (fail closed): %s", name, why)
}

const allowlistPath = "/etc/vibe/allowlist"

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
	inst, etag, err := m.C.GetInstance(s.Name)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", s.Name, err)
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
	op, err := m.C.UpdateInstance(s.Name, put, etag)
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", s.Name, err)
	}
	if err := op.WaitContext(ctx); err != nil {
		return err
	}
	if inst.StatusCode != api.Running {
		return nil
	}
	return m.applyAllowlist(ctx, s)
}

// applyAllowlist writes the proxy's filter file when it differs from the
// spec's allowlist and restarts the proxy to read it.
func (m *Manager) applyAllowlist(ctx context.Context, s *Spec) error {
	list := append(allowlist.List{}, s.Allow...)
	if inst, _, err := m.C.GetInstance(s.Name); err == nil && inst.Config[KeyAllow] != "" {
		extra, err := allowlist.ParseList(strings.Split(inst.Config[KeyAllow], "\n"))
		if err != nil {
			return fmt.Errorf("sandbox %s: its added allowlist entries: %w", s.Name, err)
		}
		list = merge(list, extra)
	}
	want := list.FilterFile()
	if rc, _, err := m.C.GetInstanceFile(s.Name, allowlistPath); err == nil {
		cur, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if string(cur) == want {
			return nil
		}
	}
	err := m.C.CreateInstanceFile(s.Name, allowlistPath, incus.InstanceFileArgs{
		Content: strings.NewReader(want), UID: 0, GID: 0, Mode: 0o644, Type: "file", WriteMode: "overwrite",
	})
	if err != nil {
		return fmt.Errorf("write the allowlist into %s: %w", s.Name, err)
	}
	r, err := run(ctx, m.C, s.Name, Exec{Command: []string{"systemctl", "restart", "tinyproxy"}})
	if err != nil {
		return err
	}
	if r.Code != 0 {
		return fmt.Errorf("restart the proxy in %s: %s", s.Name, strings.TrimSpace(r.Stderr))
	}
	return nil
}
