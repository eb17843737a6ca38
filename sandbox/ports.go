package sandbox

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/lxc/incus/v6/shared/api"
)

// Port is a port of the sandbox's loopback made reachable on the host's
// loopback (127.0.0.1 only): a dev server the user wants to open in a
// browser. It forwards connections into the guest; nothing about it lets
// the guest connect out.
type Port struct {
	Guest int `json:"guest"`
	Host  int `json:"host"`
	// Exposed names where a device under vibe's name listens when that is
	// not the host's loopback (someone changed it): shown, never hidden.
	Exposed string `json:"exposed,omitempty"`
	// Relay is the pid of the vibe that relays the port (a VM's, or one
	// forwarded with --relay); 0 for an incus proxy device.
	Relay int `json:"relay_pid,omitempty"`
}

const portPrefix = "vibe-port-"

// ParsePort reads PORT or PORT:HOSTPORT (the host port defaults to the
// guest's). Host ports below 1024 are refused: incus listens as root, and
// a forwarded dev server has no business on a privileged port.
func ParsePort(s string) (Port, error) {
	g, h, found := strings.Cut(s, ":")
	if !found {
		h = g
	}
	gp, err1 := strconv.Atoi(g)
	hp, err2 := strconv.Atoi(h)
	if err1 != nil || err2 != nil || gp < 1 || gp > 65535 || hp < 1 || hp > 65535 {
		return Port{}, fmt.Errorf("port %q: give PORT or PORT:HOSTPORT, each 1 to 65535 (8080, or 3000:13000)", s)
	}
	if hp < 1024 {
		return Port{}, fmt.Errorf("port %q: host port %d is privileged; pick one from 1024 up (PORT:HOSTPORT)", s, hp)
	}
	return Port{Guest: gp, Host: hp}, nil
}

func (p Port) device() map[string]string {
	// Not NAT: incus's own proxy listens on the host's loopback and
	// connects from inside the container's network namespace to its
	// loopback, so the guest's firewall and the egress policy stay as
	// they are.
	return map[string]string{
		"type":    "proxy",
		"listen":  "tcp:127.0.0.1:" + strconv.Itoa(p.Host),
		"connect": "tcp:127.0.0.1:" + strconv.Itoa(p.Guest),
		"bind":    "host",
	}
}

// PortDevice is the name of the device that forwards host port hostPort.
func PortDevice(hostPort int) string { return portPrefix + strconv.Itoa(hostPort) }

// ports reads the forwarded ports off an instance's devices, sorted by
// host port. A device under vibe's name that listens anywhere but the
// host's loopback is listed with Exposed set, so that status shows it.
func ports(inst *api.Instance) []Port {
	var out []Port
	for name, d := range inst.Devices {
		hs, ok := strings.CutPrefix(name, portPrefix)
		hp, err := strconv.Atoi(hs)
		if !ok || err != nil || name != PortDevice(hp) || d["type"] != "proxy" {
			continue
		}
		p := Port{Host: hp}
		if gs, ok := strings.CutPrefix(d["connect"], "tcp:127.0.0.1:"); ok {
			p.Guest, _ = strconv.Atoi(gs)
		}
		if !sameDevice(d, p.device()) {
			p.Exposed = d["listen"]
			if d["nat"] == "true" {
				p.Exposed += " (nat)"
			}
			if p.Exposed == "" {
				p.Exposed = "unknown"
			}
		}
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Port) int { return a.Host - b.Host })
	return out
}

// ErrVMPorts is returned for VM sandboxes: incus proxies into a VM only by
// NAT, to an address the sandbox's isolated network does not let in, and
// never from the host's loopback. vibe relays their ports instead (Relay).
var ErrVMPorts = errors.New("a VM's ports cannot have an incus proxy device on the host's loopback")

// Forward makes the sandbox's guest port reachable on the host's loopback
// at p.Host. The device lives on the instance, so vibe restore, which
// makes a new instance from the image, ends it.
func (m *Manager) Forward(ctx context.Context, name string, p Port) error {
	inst, etag, err := m.held(name)
	if err != nil {
		return err
	}
	if inst.Type == "virtual-machine" {
		return ErrVMPorts
	}
	// A forward waiting on a stopped sandbox could keep it from starting
	// once something else holds the port.
	if inst.StatusCode != api.Running {
		return fmt.Errorf("%s is %s: start it first (vibe up), then forward its port", name, strings.ToLower(inst.Status))
	}
	put := inst.Writable()
	if put.Devices == nil {
		put.Devices = map[string]map[string]string{}
	}
	dev := PortDevice(p.Host)
	if d, ok := put.Devices[dev]; ok {
		if sameDevice(d, p.device()) {
			return nil
		}
		return fmt.Errorf("host port %d already forwards to another port of %s (vibe port --rm %d first)", p.Host, name, p.Host)
	}
	put.Devices[dev] = p.device()
	op, err := m.C.UpdateInstance(inst.Name, put, etag)
	if err == nil {
		err = op.WaitContext(ctx)
	}
	if err != nil {
		if strings.Contains(err.Error(), "address already in use") {
			return fmt.Errorf("forward port %d of %s: host port %d is taken on 127.0.0.1; pick another (vibe port %d:HOSTPORT)", p.Guest, name, p.Host, p.Guest)
		}
		return fmt.Errorf("forward port %d of %s to 127.0.0.1:%d: %w", p.Guest, name, p.Host, err)
	}
	return nil
}

// Unforward ends the forward on host port hostPort.
func (m *Manager) Unforward(ctx context.Context, name string, hostPort int) error {
	inst, etag, err := m.held(name)
	if err != nil {
		return err
	}
	put := inst.Writable()
	dev := PortDevice(hostPort)
	if _, ok := put.Devices[dev]; !ok {
		return fmt.Errorf("%s forwards nothing on host port %d (vibe status lists what it does)", name, hostPort)
	}
	delete(put.Devices, dev)
	op, err := m.C.UpdateInstance(inst.Name, put, etag)
	if err == nil {
		err = op.WaitContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("stop forwarding host port %d of %s: %w", hostPort, name, err)
	}
	return nil
}
