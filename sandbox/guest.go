package sandbox

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

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

// settleScript runs in the guest as root. Exit 101: not booted yet (the
// caller retries); 100: the firewall could not be applied; 102: the proxy
// would not restart; otherwise the self-test's own status. Its last line on
// stderr reports the boot wait and the self-test in milliseconds.
const settleScript = `t0=$(date +%s%N)
state=$(systemctl is-system-running --wait 2>/dev/null)
case "$state" in running | degraded) ;; *) exit 101 ;; esac
t1=$(date +%s%N)
if [ "$1" = restart-proxy ]; then
	systemctl restart tinyproxy >&2 || exit 102
	# Wait until it answers: the self-test must not race its start.
	for _ in $(seq 1 50); do curl -s -o /dev/null --max-time 1 http://127.0.0.1:8888/ && break; sleep 0.1; done
fi
/usr/local/sbin/vibe-firewall apply >&2 || exit 100
/usr/local/sbin/vibe-selftest
rc=$?
echo "vibe-timing boot=$(((t1 - t0) / 1000000)) selftest=$((($(date +%s%N) - t1) / 1000000))" >&2
exit $rc`

// settle waits for the guest to finish booting, then re-applies the proxy
// and the firewall and runs the self-test. A firewall that cannot be
// applied stops everything (fail closed).
func (m *Manager) settle(ctx context.Context, name string, restartProxy bool) (*SelfTest, time.Duration, error) {
	arg := "keep-proxy"
	if restartProxy {
		arg = "restart-proxy"
	}
	deadline := time.Now().Add(readyTimeout)
	for {
		r, err := run(ctx, m.C, name, Exec{Command: []string{"sh", "-c", settleScript, "settle", arg}})
		switch {
		case err == nil && r.Code == 100:
			return nil, 0, fmt.Errorf("the firewall of %s could not be applied, so nothing will start in it (fail closed): %s", name, lastLines(r.Stderr))
		case err == nil && r.Code == 102:
			return nil, 0, fmt.Errorf("the proxy of %s would not restart with the new allowlist: %s", name, lastLines(r.Stderr))
		case err == nil && r.Code != 101:
			out, timing := splitTiming(r.Stderr)
			return &SelfTest{Code: r.Code, Output: r.Stdout + out}, timing, nil
		}
		if ctx.Err() != nil {
			return nil, 0, ctx.Err()
		}
		if time.Now().After(deadline) {
			return nil, 0, fmt.Errorf("sandbox %s: timed out after %s waiting for it to boot", name, readyTimeout)
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

const allowlistPath = "/etc/vibe/allowlist"

// writeAllowlist writes the proxy's filter file when it differs from the
// spec's allowlist (plus the sandbox's own added entries) and reports
// whether it did; the proxy must then be restarted to read it.
func (m *Manager) writeAllowlist(s *Spec) (bool, error) {
	list := append(allowlist.List{}, s.Allow...)
	if inst, _, err := m.C.GetInstance(s.Name); err == nil && inst.Config[KeyAllow] != "" {
		extra, err := allowlist.ParseList(strings.Split(inst.Config[KeyAllow], "\n"))
		if err != nil {
			return false, fmt.Errorf("sandbox %s: its added allowlist entries: %w", s.Name, err)
		}
		list = merge(list, extra)
	}
	want := list.FilterFile()
	if rc, _, err := m.C.GetInstanceFile(s.Name, allowlistPath); err == nil {
		cur, _ := io.ReadAll(io.LimitReader(rc, 1<<20))
		rc.Close()
		if string(cur) == want {
			return false, nil
		}
	}
	err := m.C.CreateInstanceFile(s.Name, allowlistPath, incus.InstanceFileArgs{
		Content: strings.NewReader(want), UID: 0, GID: 0, Mode: 0o644, Type: "file", WriteMode: "overwrite",
	})
	if err != nil {
		return false, fmt.Errorf("write the allowlist into %s: %w", s.Name, err)
	}
	return true, nil
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
	changed, err := m.writeAllowlist(s)
	if err != nil || !changed {
		return err
	}
	st, _, err := m.settle(ctx, s.Name, true)
	if err != nil {
		return err
	}
	return st.Err()
}
