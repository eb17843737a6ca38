package sandbox

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/egress"
	"github.com/vibesandbox/vibe/gateway"
)

// KeyFirewall is "off" while the operator has opened the sandbox's egress:
// kept on the host, where the guest cannot change it.
const KeyFirewall = "user.vibe.firewall"

// behind returns the sandbox's address on the gateway's bridge, and
// whether it sits there. A sandbox made one way and configured the other
// is an error: its network is fixed when it is made.
func (m *Manager) behind(inst *api.Instance, s *Spec) (netip.Addr, bool, error) {
	network := egress.DefaultNetwork
	if s.Gateway != nil && s.Gateway.Network != "" {
		network = s.Gateway.Network
	}
	var addr netip.Addr
	on := false
	for _, d := range inst.ExpandedDevices {
		if d["type"] == "nic" && d["network"] == network {
			on = true
			addr, _ = netip.ParseAddr(d["ipv4.address"])
		}
	}
	switch {
	case on && s.Gateway == nil:
		return addr, true, fmt.Errorf("sandbox %s sits behind the egress gateway, and egress.gateway.enabled is off: turn it on again, or vibe restore makes the sandbox without it", s.Name)
	case on && !addr.IsValid():
		return addr, true, fmt.Errorf("sandbox %s is on the gateway's network without a pinned address; vibe restore makes it again", s.Name)
	case !on && s.Gateway != nil:
		return addr, false, fmt.Errorf("sandbox %s was made without the egress gateway; vibe restore makes it again behind it", s.Name)
	}
	return addr, on, nil
}

// policy is what the gateway enforces for the sandbox: the configured
// allowlist with this run's entries, plus the sandbox's own added entries.
func policy(s *Spec, inst *api.Instance) (gateway.Policy, error) {
	list, err := allowed(s, inst.Config[KeyAllow])
	if err != nil {
		return gateway.Policy{}, err
	}
	return gateway.Policy{Sandbox: s.Name, Allow: list.Strings(), Open: inst.Config[KeyFirewall] == "off"}, nil
}

// pushPolicy hands the gateway the sandbox's policy and returns the
// settle argument naming the gateway ("-" for a sandbox without one).
func (m *Manager) pushPolicy(ctx context.Context, s *Spec, inst *api.Instance) (string, error) {
	addr, on, err := m.behind(inst, s)
	if err != nil || !on {
		return "-", err
	}
	info, err := s.Gateway.Ensure(ctx)
	if err != nil {
		return "", err
	}
	p, err := policy(s, inst)
	if err != nil {
		return "", err
	}
	if err := s.Gateway.SetPolicy(ctx, addr, p); err != nil {
		return "", err
	}
	s.Gateway.Prune(addr)
	return info.HostPort(), nil
}

// EgressLog streams the sandbox's egress log, kept by its gateway, to fn.
func (m *Manager) EgressLog(ctx context.Context, s *Spec, follow bool, fn func(gateway.Entry) error) error {
	inst, err := m.Get(s.Name)
	if err != nil {
		return err
	}
	addr, on, err := m.behind(inst, s)
	if err != nil {
		return err
	}
	if !on {
		return fmt.Errorf("sandbox %s is not behind the egress gateway, which keeps the log", s.Name)
	}
	return s.Gateway.Log(ctx, addr, follow, fn)
}
