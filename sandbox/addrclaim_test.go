package sandbox

import (
	"context"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/allowlist"
	"github.com/vibesandbox/vibe/egress"
)

// claimFake is an incus server with vibe's bridge and gateway, and a
// second vibe process that creates the sandbox "victim" at 10.77.0.10 at
// the same moment: the first listing of instances predates it, everything
// after sees it, and incus refuses a second NIC with its address (409, as
// internal/server/device/nic_bridged.go does). The gateway's files are a
// map; "rm -rf" in the gateway removes from it. Every request is logged.
type claimFake struct {
	incus.InstanceServer
	mu     sync.Mutex
	files  map[string]string
	listed int
	log    []string
}

const victimDir = "/run/vibe-gateway/sandboxes/10.77.0.10"

func (f *claimFake) note(s string) { f.mu.Lock(); f.log = append(f.log, s); f.mu.Unlock() }

var gwInst = &api.Instance{Name: egress.DefaultInstance, StatusCode: api.Running,
	InstancePut: api.InstancePut{Config: map[string]string{"user.vibe.gateway": "true", "user.vibe.gateway.ids": "999:999"},
		Devices: map[string]map[string]string{"eth1": {"type": "nic", "network": egress.DefaultNetwork, "ipv4.address": "10.77.0.2"}}}}

var victimInst = api.Instance{Name: "victim", StatusCode: api.Running,
	InstancePut: api.InstancePut{Config: map[string]string{KeySandbox: "true"},
		Devices: map[string]map[string]string{"eth0": egress.NIC(egress.DefaultNetwork, netipMust("10.77.0.10"))}}}

func (f *claimFake) GetInstance(name string) (*api.Instance, string, error) {
	if name == egress.DefaultInstance {
		c := *gwInst
		return &c, "e", nil
	}
	return nil, "", api.StatusErrorf(404, "not found")
}

func (f *claimFake) GetInstances(api.InstanceType) ([]api.Instance, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.listed++
	f.log = append(f.log, "GET /1.0/instances")
	if f.listed == 1 { // the other vibe's create has not reached incus yet
		return []api.Instance{*gwInst}, nil
	}
	return []api.Instance{*gwInst, victimInst}, nil
}

func (f *claimFake) GetNetwork(name string) (*api.Network, string, error) {
	if name != egress.DefaultNetwork {
		return nil, "", api.StatusErrorf(404, "not found")
	}
	cfg := map[string]string{"ipv4.address": "10.77.0.1/24", "user.vibe.network": "true", "ipv4.nat": "false", "ipv6.address": "none",
		"ipv4.dhcp": "true", "raw.dnsmasq": "no-resolv\ndhcp-option=3\ndhcp-option=6", "security.acls.default.egress.action": "drop",
		"security.acls.default.ingress.action": "drop", "security.acls": egress.DefaultNetwork}
	return &api.Network{Name: name, Type: "bridge", Managed: true, NetworkPut: api.NetworkPut{Config: cfg}}, "e", nil
}

func (f *claimFake) GetNetworks() ([]api.Network, error)     { return nil, nil }
func (f *claimFake) GetServer() (*api.Server, string, error) { return &api.Server{}, "e", nil }
func (f *claimFake) GetConnectionInfo() (*incus.ConnectionInfo, error) {
	return &incus.ConnectionInfo{}, nil
}
func (f *claimFake) UpdateNetwork(string, api.NetworkPut, string) error { return nil }
func (f *claimFake) GetNetworkACL(string) (*api.NetworkACL, string, error) {
	return &api.NetworkACL{}, "e", nil
}
func (f *claimFake) UpdateNetworkACL(string, api.NetworkACLPut, string) error { return nil }
func (f *claimFake) GetProfile(string) (*api.Profile, string, error) {
	return &api.Profile{Name: "default"}, "e", nil
}
func (f *claimFake) GetImageAlias(string) (*api.ImageAliasesEntry, string, error) {
	return nil, "", api.StatusErrorf(404, "no alias")
}
func (f *claimFake) GetImage(string) (*api.Image, string, error) {
	return &api.Image{Type: "container", Fingerprint: "f00d"}, "e", nil
}
func (f *claimFake) UpdateInstance(string, api.InstancePut, string) (incus.Operation, error) {
	return &doneOp{}, nil
}

func (f *claimFake) ExecInstance(_ string, req api.InstanceExecPost, args *incus.InstanceExecArgs) (incus.Operation, error) {
	if req.Command[0] == "bash" { // the install script: named, not printed
		f.note("EXEC gateway gateway-install " + strings.Join(req.Command[4:], " "))
	} else {
		f.note("EXEC gateway " + strings.Join(req.Command, " "))
	}
	out := ""
	switch req.Command[0] {
	case "systemctl":
		out = "running"
	case "ss":
		out = "LISTEN 0 4096 10.77.0.2:3128 0.0.0.0:*"
	case "bash":
		if len(req.Command) > 4 && req.Command[4] == "prepare" {
			out = "999:999"
		}
	case "rm":
		dir := req.Command[len(req.Command)-1]
		f.mu.Lock()
		for p := range f.files {
			if p == dir || strings.HasPrefix(p, dir+"/") {
				delete(f.files, p)
			}
		}
		f.mu.Unlock()
	}
	go func() {
		if args.Stdout != nil {
			io.WriteString(args.Stdout, out)
		}
		close(args.DataDone)
	}()
	return &doneOp{}, nil
}

func (f *claimFake) GetInstanceFile(inst, path string) (io.ReadCloser, *incus.InstanceFileResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.files[path]
	if !ok {
		return nil, nil, api.StatusErrorf(404, "not found")
	}
	return io.NopCloser(strings.NewReader(c)), &incus.InstanceFileResponse{Type: "file"}, nil
}

func (f *claimFake) CreateInstanceFile(inst, path string, a incus.InstanceFileArgs) error {
	f.note("POST /1.0/instances/" + inst + "/files?path=" + path)
	if a.Type == "file" {
		b, _ := io.ReadAll(a.Content)
		f.mu.Lock()
		f.files[path] = string(b)
		f.mu.Unlock()
	}
	return nil
}

func (f *claimFake) CreateInstance(req api.InstancesPost) (incus.Operation, error) {
	addr := req.Devices["eth0"]["ipv4.address"]
	f.note("POST /1.0/instances " + req.Name + " eth0.ipv4.address=" + addr)
	if addr == "10.77.0.10" {
		return nil, api.StatusErrorf(409, "Failed add validation for device \"eth0\": IP address %q already defined on another NIC", addr)
	}
	return &doneOp{}, nil
}

// behindGateway is a manager on c and the spec of sandbox name (allowing
// host) behind a gateway on c, with a vibe binary to hand it.
func behindGateway(t *testing.T, c incus.InstanceServer, name, host string) (*Manager, *Spec) {
	bin := filepath.Join(t.TempDir(), "vibe")
	os.WriteFile(bin, []byte("vibe binary"), 0o755)
	g := &egress.Gateway{C: c, Binary: bin}
	e, _ := allowlist.Parse(host)
	s := &Spec{Name: name, Image: "img", InstanceType: "container", User: "vibe", UID: 1000, GID: 1000,
		Allow: allowlist.List{e}, Gateway: g}
	return &Manager{C: c, Gateway: g}, s
}

// Two vibe processes at once (two projects brought up together, a bake
// beside a vibe up) may pick the same free address. The gateway is told
// what an address holds only once incus has given it to the sandbox: the
// one incus refuses (409) leaves the other's policy, credentials and
// sessions alone (it forgot them and wrote its own allowlist there, under
// its own name, before).
func TestCreateClaimsTheAddressBeforeTheGatewayHearsOfIt(t *testing.T) {
	f := &claimFake{files: map[string]string{
		victimDir + "/policy.json":      `{"sandbox":"victim","allow":["victim-only.example"]}`,
		victimDir + "/credentials.json": `{"credentials":[{"name":"ANTHROPIC_API_KEY","upstream":"https://api.anthropic.com","header":"X-Api-Key","value":"sk-victim"}]}`,
		victimDir + "/session-00.json":  `{"allow":[],"host":"h","pid":1}`,
	}}
	m, s := behindGateway(t, f, "intruder", "intruder-project.example")
	err := m.create(context.Background(), s, "intruder", true)
	if err == nil || !strings.Contains(err.Error(), "already defined") {
		t.Fatalf("create: %v (want incus's 409)", err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	trace := strings.Join(f.log, "\n  ")
	if p := f.files[victimDir+"/policy.json"]; !strings.Contains(p, `"victim"`) {
		t.Errorf("the running sandbox victim at 10.77.0.10 now has the policy %s\n(requests, in order:\n  %s)", p, trace)
	}
	if _, ok := f.files[victimDir+"/credentials.json"]; !ok {
		t.Errorf("victim's credentials at 10.77.0.10 were removed by a create that never got the address")
	}
	if _, ok := f.files[victimDir+"/session-00.json"]; !ok {
		t.Errorf("victim's session at 10.77.0.10 was removed by a create that never got the address")
	}
}

func netipMust(s string) netip.Addr { return netip.MustParseAddr(s) }

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
	f := &raceFake{claimFake: claimFake{files: map[string]string{}}}
	m, s := behindGateway(t, f, "proj", "proj.example")
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
