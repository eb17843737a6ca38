package sandbox

import (
	"context"
	"io"
	"strings"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/egress"
)

// execFake answers GetInstance and ExecInstance: every exec prints out
// (then flood bytes more) and exits with code; each request is kept.
type execFake struct {
	incus.InstanceServer
	inst  *api.Instance
	out   string
	flood int
	code  int
	reqs  []api.InstanceExecPost
}

func (f *execFake) GetInstance(string) (*api.Instance, string, error) { return f.inst, "etag", nil }

func (f *execFake) ExecInstance(_ string, req api.InstanceExecPost, args *incus.InstanceExecArgs) (incus.Operation, error) {
	f.reqs = append(f.reqs, req)
	go func() {
		if args.Stdout != nil {
			io.WriteString(args.Stdout, f.out)
			chunk := []byte(strings.Repeat("A", 1<<20))
			for n := 0; n < f.flood; n += len(chunk) {
				args.Stdout.Write(chunk)
			}
		}
		close(args.DataDone)
	}()
	return &doneOp{code: f.code}, nil
}

type doneOp struct {
	incus.Operation
	code int
}

func (o *doneOp) WaitContext(context.Context) error { return nil }
func (o *doneOp) Wait() error                       { return nil }
func (o *doneOp) Get() api.Operation {
	return api.Operation{Metadata: map[string]any{"return": float64(o.code)}}
}

func running(firewall string) *api.Instance {
	return &api.Instance{Name: "app", StatusCode: api.Running,
		InstancePut:     api.InstancePut{Config: map[string]string{KeySandbox: "true", KeyFirewall: firewall}},
		ExpandedDevices: map[string]map[string]string{"eth0": {"type": "nic", "network": egress.DefaultNetwork, "ipv4.address": "10.0.0.5"}},
	}
}

// The launcher starts as root (it drops to the user itself), so nothing it
// runs may be found in a folder of the user's: the exec request's PATH is
// root's, and the user's PATH travels beside it for the command.
func TestLaunchSendsRootsPATH(t *testing.T) {
	s := &Spec{Name: "app", User: "vibe", UID: 1000, GID: 1000}
	f := &execFake{inst: &api.Instance{Name: "app", StatusCode: api.Running, InstancePut: api.InstancePut{Config: map[string]string{KeySandbox: "true"}}}}
	env := Env(s, GitIdentity{}, "xterm")
	if _, err := (&Manager{C: f}).Launch(context.Background(), s, []string{"claude"}, "/workspace", env, nil, false); err != nil {
		t.Fatal(err)
	}
	if len(f.reqs) != 1 || f.reqs[0].Command[0] != Launcher || f.reqs[0].User != 0 {
		t.Fatalf("expected one exec of the launcher as root, got %+v", f.reqs)
	}
	got := f.reqs[0].Environment
	if got["PATH"] != RootPATH {
		t.Errorf("the launcher runs as root with PATH %q, not %q (~/.vibe/node-bin is the user's)", got["PATH"], RootPATH)
	}
	if got["VIBE_USER_PATH"] != env["PATH"] {
		t.Errorf("the user's PATH is %q in the request, want %q", got["VIBE_USER_PATH"], env["PATH"])
	}
}

// Guest root owns the guest's bash: what a firewall status prints reaches
// the operator's terminal without its control characters (here, one that
// would conceal vibe's own "gateway: OPEN" line after it).
func TestFirewallStatusIsPrintable(t *testing.T) {
	f := &execFake{inst: running("off"), out: "mode: on\nenforcing: yes\x1b[8m\u009b2J"}
	out, err := (&Manager{C: f}).Firewall(context.Background(), &Spec{Name: "app", Gateway: &egress.Gateway{}}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "mode: on\nenforcing: yes") || !strings.HasSuffix(out, "gateway: OPEN (any host on ports 80 and 443; other protocols stay closed)") {
		t.Errorf("status %q", out)
	}
	if i := strings.IndexFunc(out, func(r rune) bool { return (r < 0x20 && r != '\n') || (r >= 0x7f && r < 0xa0) }); i >= 0 {
		t.Errorf("the guest's control character %q reaches the terminal: %q", out[i:i+1], out)
	}
}

// A guest that prints without end does not fill the host's memory.
func TestFirewallStatusIsBounded(t *testing.T) {
	f := &execFake{inst: running("on"), flood: 64 << 20}
	out, err := (&Manager{C: f}).Firewall(context.Background(), &Spec{Name: "app", Gateway: &egress.Gateway{}}, "status")
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 8<<20 {
		t.Errorf("vibe kept %d MiB of the guest's status", len(out)>>20)
	}
}
