package egress

import (
	"encoding/json"
	"net/netip"
	"slices"
	"strings"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/gateway"
)

// hostFake is an incus server on a host with three addresses the gateway
// can route to: its address on the uplink (vibe-uplink, NAT), its address
// on the default bridge incusbr0 (which holds the user's other instances),
// and its LAN address, which incus reports in /1.0's environment.addresses
// (it listens on :8443).
type hostFake struct {
	incus.InstanceServer
}

var hostNets = map[string]*api.Network{
	"vibe-uplink":  {Name: "vibe-uplink", Type: "bridge", Managed: true, NetworkPut: api.NetworkPut{Config: map[string]string{"ipv4.address": "10.99.0.1/24", "ipv4.nat": "true", "ipv6.address": "none"}}},
	"incusbr0":     {Name: "incusbr0", Type: "bridge", Managed: true, NetworkPut: api.NetworkPut{Config: map[string]string{"ipv4.address": "10.10.0.1/24", "ipv6.address": "fd42:1:2:3::1/64"}}},
	"vibe-sandbox": {Name: "vibe-sandbox", Type: "bridge", Managed: true, NetworkPut: api.NetworkPut{Config: map[string]string{"ipv4.address": "10.77.0.1/24"}}},
}

func (hostFake) GetProfile(string) (*api.Profile, string, error) {
	return &api.Profile{Name: "default", ProfilePut: api.ProfilePut{Devices: map[string]map[string]string{
		"eth0": {"type": "nic", "network": "incusbr0"}}}}, "", nil
}

func (hostFake) GetNetwork(name string) (*api.Network, string, error) {
	if n, ok := hostNets[name]; ok {
		return n, "", nil
	}
	return nil, "", api.StatusErrorf(404, "not found")
}

func (hostFake) GetNetworks() ([]api.Network, error) {
	var out []api.Network
	for _, n := range hostNets {
		out = append(out, *n)
	}
	return out, nil
}

func (hostFake) GetConnectionInfo() (*incus.ConnectionInfo, error) {
	return &incus.ConnectionInfo{URL: "https://192.168.1.5:8443"}, nil
}

func (hostFake) GetServer() (*api.Server, string, error) {
	return &api.Server{Environment: api.ServerEnvironment{Addresses: []string{"192.168.1.5:8443", "10.10.0.1:8443", "10.99.0.1:8443"}}}, "", nil
}

// The gateway never dials the host: not at its address on the uplink, nor
// at its others one hop away behind the same route (its address on the
// user's default bridge, its LAN address incus listens on). A sandbox
// whose firewall is off CONNECTed to them; with it on, an allowed name
// whose DNS the attacker controls was pointed there.
func TestGatewayNeverDialsTheHost(t *testing.T) {
	g := &Gateway{C: hostFake{}, Uplink: "vibe-uplink", Private: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	b, err := g.ranges() // what ensureInstance hands the gateway
	if err != nil {
		t.Fatal(err)
	}
	var r gateway.Ranges
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(r.Private, g.Private) {
		t.Errorf("the ranges file's private ranges are %v, want %v", r.Private, g.Private)
	}
	never := func(a string) bool {
		addr := netip.MustParseAddr(a)
		for _, p := range r.Never {
			if p.Contains(addr) {
				return true
			}
		}
		return false
	}
	for _, host := range []string{
		"10.99.0.1",     // the host on the uplink
		"10.10.0.1",     // the host on incusbr0 (a managed network incus lists)
		"fd42:1:2:3::1", // the host's IPv6 on incusbr0
		"192.168.1.5",   // the host's LAN address (incus's environment.addresses)
	} {
		if !never(host) {
			t.Errorf("the gateway would dial the host at %s (Never = %v): a sandbox reaches the host's services on 80/443 through it", host, r.Never)
		}
	}
	// The unit does not name them: an address the host gains or loses
	// changes the ranges file, which the gateway reads again, not the
	// unit, whose change would restart it.
	u, err := g.unit(info())
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(u, "10.99.0.1") || strings.Contains(u, "192.168.1.5") {
		t.Errorf("the unit names the host's addresses:\n%s", u)
	}
}

// The host's loopback and link-local addresses are refused by the gateway
// whatever the unit says, and a link-local one comes and goes with every
// container (its veth): none of them is in the unit, so starting a
// container does not restart the gateway.
func TestHostAddrsLeaveOutWhatIsNeverDialled(t *testing.T) {
	for a, want := range map[string]bool{
		"127.0.0.1": true, "::1": true, "fe80::fc:ff:fe00:1": true, "169.254.3.4": true,
		"192.0.2.2": false, "fd00::2": false, "10.99.0.1": false,
	} {
		if got := neverAnyway(netip.MustParseAddr(a)); got != want {
			t.Errorf("neverAnyway(%s) = %v, want %v", a, got, want)
		}
	}
}
