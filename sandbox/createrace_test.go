package sandbox

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/allowlist"
	"github.com/vibesandbox/vibe/egress"
)

// raceFake: the sandbox "proj" is created stopped under its own name, and
// while this vibe tells the gateway about it, a second `vibe` of the same
// project (another terminal) finds it with Get, takes it for an existing
// sandbox and starts it (finish -> start), and its session begins.
type raceFake struct {
	claimFake
	mu2     sync.Mutex
	created bool
	running bool
	deleted []string
}

func (f *raceFake) GetInstances(api.InstanceType) ([]api.Instance, error) {
	return []api.Instance{*gwInst}, nil
}

func (f *raceFake) CreateInstance(req api.InstancesPost) (incus.Operation, error) {
	f.mu2.Lock()
	f.created = true
	f.mu2.Unlock()
	return &doneOp{}, nil
}

func (f *raceFake) GetInstance(name string) (*api.Instance, string, error) {
	if name == egress.DefaultInstance {
		return f.claimFake.GetInstance(name)
	}
	f.mu2.Lock()
	defer f.mu2.Unlock()
	if name != "proj" || !f.created {
		return nil, "", api.StatusErrorf(404, "not found")
	}
	st := api.Stopped
	if f.running {
		st = api.Running
	}
	return &api.Instance{Name: name, StatusCode: st, InstancePut: api.InstancePut{Config: map[string]string{KeySandbox: "true"}}}, "e", nil
}

func (f *raceFake) ExecInstance(inst string, req api.InstanceExecPost, args *incus.InstanceExecArgs) (incus.Operation, error) {
	if req.Command[0] == "rm" {
		// The other vibe: Get finds "proj", stopped; it starts it.
		f.mu2.Lock()
		f.running = true
		f.mu2.Unlock()
	}
	return f.claimFake.ExecInstance(inst, req, args)
}

func (f *raceFake) UpdateInstanceState(name string, st api.InstanceStatePut, _ string) (incus.Operation, error) {
	f.mu2.Lock()
	defer f.mu2.Unlock()
	if st.Action == "start" && f.running {
		return nil, api.StatusErrorf(400, "The instance is already running")
	}
	if st.Action == "stop" {
		f.running = false
	}
	return &doneOp{}, nil
}

func (f *raceFake) DeleteInstance(name string) (incus.Operation, error) {
	f.mu2.Lock()
	f.deleted = append(f.deleted, name)
	f.mu2.Unlock()
	return &doneOp{}, nil
}

// Made stopped under its own name, a new sandbox may be found and started
// by a second vibe of the same project (another terminal) while the first
// tells the gateway about it: the first one's start then fails, and it
// must neither delete that sandbox nor fail.
func TestCreateLeavesASandboxAnotherVibeStarted(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "vibe")
	os.WriteFile(bin, []byte("vibe binary"), 0o755)
	f := &raceFake{claimFake: claimFake{files: map[string]string{}}}
	g := &egress.Gateway{C: f, Binary: bin}
	e, _ := allowlist.Parse("proj.example")
	s := &Spec{Name: "proj", Image: "img", InstanceType: "container", User: "vibe", UID: 1000, GID: 1000,
		Allow: allowlist.List{e}, Gateway: g}
	m := &Manager{C: f, Gateway: g}
	err := m.create(context.Background(), s, "proj", true)
	if err != nil {
		t.Errorf("create: %v", err)
	}
	f.mu2.Lock()
	defer f.mu2.Unlock()
	for _, d := range f.deleted {
		if d == "proj" {
			t.Fatalf("create (%v) force-deleted sandbox proj, which another vibe had found stopped and started meanwhile (its session killed, its container gone)", err)
		}
	}
}
