package sandbox

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/provision"
)

// fakeServer answers GetInstance with inst and records updates; any other
// call panics (the embedded interface is nil), so a test sees every
// request the code under test makes.
type fakeServer struct {
	incus.InstanceServer
	inst    *api.Instance
	err     error
	updates int
}

func (f *fakeServer) GetInstance(name string) (*api.Instance, string, error) {
	if f.err != nil {
		return nil, "", f.err
	}
	f.inst.Name = name
	return f.inst, "etag", nil
}

// GetInstances lists none: the one instance is found by its name.
func (f *fakeServer) GetInstances(api.InstanceType) ([]api.Instance, error) {
	if f.err != nil && !api.StatusErrorCheck(f.err, 404) {
		return nil, f.err
	}
	return nil, nil
}

func (f *fakeServer) UpdateInstance(string, api.InstancePut, string) (incus.Operation, error) {
	f.updates++
	return nil, errors.New("unexpected update")
}

func sandboxInstance(typ api.InstanceType, status api.StatusCode, uuid string) *api.Instance {
	return &api.Instance{
		Type: string(typ), StatusCode: status, Status: status.String(),
		InstancePut: api.InstancePut{Config: map[string]string{KeySandbox: "true", "volatile.uuid": uuid}},
	}
}

// A VM gets no proxy device (incus would refuse one on the host's
// loopback, and NAT cannot enter the sandbox's network): Forward says so
// without asking incus to change the instance, and vibe relays instead.
// The VM path cannot run here (no KVM); this asserts its requests.
func TestForwardMakesNoDeviceForVMs(t *testing.T) {
	f := &fakeServer{inst: sandboxInstance(api.InstanceTypeVM, api.Running, "u1")}
	m := &Manager{C: f}
	if err := m.Forward(context.Background(), "app", Port{Guest: 3000, Host: 13000}); !errors.Is(err, ErrVMPorts) {
		t.Fatalf("Forward on a VM: %v, want ErrVMPorts", err)
	}
	if f.updates != 0 {
		t.Errorf("Forward on a VM sent %d updates", f.updates)
	}
	r, err := m.StartRelay("app")
	if err != nil || r.UUID != "u1" {
		t.Errorf("StartRelay on a running VM: %+v %v", r, err)
	}
}

// The exec that carries a connection runs the embedded guest half as the
// sandbox user, in isolated mode, with only a PATH: nothing of the host's
// environment and nothing the guest chose. It starts through the launcher,
// as every process of the user's that vibe starts does, so that none
// starts while settle has the user stopped (it would stop the settle).
func TestRelayExecRequest(t *testing.T) {
	prog, err := provision.File("port-relay")
	if err != nil {
		t.Fatal(err)
	}
	e, err := relayExec(&Spec{User: "vibe", UID: 1000, GID: 1001}, 3000)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{Launcher, "vibe", "-", "--", "/usr/bin/python3", "-I", "-c", prog, "3000"}; !reflect.DeepEqual(e.Command, want) {
		t.Errorf("command %q", e.Command)
	}
	if e.UID != 0 || e.GID != 0 || e.Cwd != "/" || !reflect.DeepEqual(e.Env, map[string]string{"PATH": RootPATH, "VIBE_USER_PATH": "/usr/bin:/bin"}) {
		t.Errorf("exec as %d:%d in %q with %v", e.UID, e.GID, e.Cwd, e.Env)
	}
}

// A relay refuses a stopped sandbox, and ends when its instance is
// deleted or replaced by vibe restore (a new volatile.uuid); one stopped
// after it started keeps it, as it would keep a proxy device.
func TestRelayFollowsItsInstance(t *testing.T) {
	f := &fakeServer{inst: sandboxInstance(api.InstanceTypeContainer, api.Stopped, "u1")}
	m := &Manager{C: f}
	if _, err := m.StartRelay("app"); err == nil || !strings.Contains(err.Error(), "vibe up") {
		t.Errorf("StartRelay on a stopped sandbox: %v", err)
	}
	f.inst = sandboxInstance(api.InstanceTypeContainer, api.Running, "")
	if _, err := m.StartRelay("app"); err == nil {
		t.Error("StartRelay without volatile.uuid: no error")
	}
	r := Relayed{UUID: "u1"}
	for _, tc := range []struct {
		inst *api.Instance
		err  error
		want string
	}{
		{sandboxInstance(api.InstanceTypeContainer, api.Running, "u1"), nil, ""},
		{sandboxInstance(api.InstanceTypeContainer, api.Running, "u2"), nil, "restored"},
		{sandboxInstance(api.InstanceTypeContainer, api.Stopped, "u1"), nil, ""},
		{nil, api.StatusErrorf(http.StatusNotFound, "not found"), "gone"},
		// A daemon that did not answer once is not the end.
		{nil, errors.New("connection reset"), "did not answer"},
	} {
		f.inst, f.err = tc.inst, tc.err
		got, final := m.relayGone("app", r)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) || final != (tc.want != "" && tc.want != "did not answer") {
			t.Errorf("relayGone = %q (final %v), want %q", got, final, tc.want)
		}
	}
}
