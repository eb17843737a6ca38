// Package egress is the host's side of the egress gateway: the isolated
// incus bridge the sandboxes live on (no NAT, no route out, an ACL that
// drops everything but the gateway's proxy port, a DNS server that forwards
// no name), the gateway instance that bridges it to an uplink, and the
// per-sandbox policies and credentials vibe hands that gateway through the
// incus file API. None of it is reachable from inside a sandbox, so it holds
// when the guest's root is the agent's.
package egress

import (
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/template"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/gateway"
	"github.com/vibesandbox/vibe/provision"
)

// Defaults for the names vibe gives what it creates.
const (
	DefaultNetwork  = "vibe-sandbox"
	DefaultInstance = "vibe-gateway"
)

// Paths in the gateway instance.
const (
	stateDir    = "/run/vibe-gateway"
	logDir      = "/var/log/vibe-gateway"
	binPath     = "/usr/local/lib/vibe-gateway/vibe"
	unitPath    = "/etc/systemd/system/vibe-gateway.service"
	serviceUser = "vibe-gateway"
)

// Configuration keys vibe owns on the network and the gateway instance.
const (
	keyNetwork = "user.vibe.network"
	keyGateway = "user.vibe.gateway"
	keyBinary  = "user.vibe.gateway.binary" // digest of the pushed vibe
	keyUnit    = "user.vibe.gateway.unit"   // digest of the pushed unit
	keyIDs     = "user.vibe.gateway.ids"    // uid:gid of the service user
	keyStat    = "user.vibe.gateway.stat"   // size:mtime:path of the vibe whose digest is keyBinary
)

//go:embed vibe-gateway.service
var unitTemplate string

//go:embed vibe-gateway.nft
var rulesTemplate string

const rulesPath = "/etc/vibe-gateway/rules.nft"

// rangesPath is the gateway's file of the host's addresses and the user's
// private ranges (gateway.Ranges). It changes while the gateway runs (a
// VPN comes up, a lease changes), so it is not in the unit: the gateway
// reads it again, and no change of it restarts the gateway.
const rangesPath = "/etc/vibe-gateway/ranges.json"

// Gateway manages the isolated network and the gateway instance on one
// incus server.
type Gateway struct {
	C        incus.InstanceServer
	Network  string // the isolated bridge
	Instance string // the gateway instance
	Uplink   string // network of the gateway's outside leg; "" for the default profile's
	Image    string // image the gateway is made from: alias, fingerprint or remote:alias
	Binary   string // this vibe, pushed into the gateway (os.Executable)
	// Private are the private ranges an allowed name may reach
	// (egress.gateway.private): none by default.
	Private []netip.Prefix
	// Progress, if set, hears about slow steps (creating the gateway).
	Progress func(string)

	info *Info
	made map[netip.Addr]bool // sandbox folders made in the gateway by this run
}

// Info is where the gateway is.
type Info struct {
	Network  string
	Prefix   netip.Prefix // the bridge's subnet
	Host     netip.Addr   // the host's address on it (dnsmasq)
	Addr     netip.Addr   // the gateway's address on it
	Port     int
	uid, gid int64
}

// Proxy is the gateway's proxy URL, as sandboxes reach it.
func (i *Info) Proxy() string { return "http://" + i.HostPort() }

// CredentialURL is the base URL a sandbox uses for credential route name.
func (i *Info) CredentialURL(name string) string {
	return i.Proxy() + gateway.CredentialPath + name
}

func (g *Gateway) names() {
	if g.Network == "" {
		g.Network = DefaultNetwork
	}
	if g.Instance == "" {
		g.Instance = DefaultInstance
	}
}

func (g *Gateway) progress(msg string) {
	if g.Progress != nil {
		g.Progress(msg)
	}
}

// Ensure makes the network, its ACL and the gateway exist, run and carry
// this vibe's proxy, and returns where the gateway is. It is cheap when all
// is in place: a few reads, and this binary is hashed only when its size or
// time changed.
func (g *Gateway) Ensure(ctx context.Context) (*Info, error) {
	if g.info != nil {
		return g.info, nil
	}
	g.names()
	// A gateway still to be made needs a way out and an image: both are
	// checked before anything is made.
	var img *api.Image
	if _, _, err := g.C.GetInstance(g.Instance); api.StatusErrorCheck(err, 404) {
		if _, err := g.wayOut(); err != nil {
			return nil, err
		}
		if img, err = g.image(ctx); err != nil {
			return nil, err
		}
	}
	info, err := g.ensureNetwork()
	if err != nil {
		return nil, err
	}
	if err := g.ensureInstance(ctx, info, img); err != nil {
		return nil, err
	}
	g.info = info
	return info, nil
}

// networkConfig is what vibe's bridge must have. dnsmasq still hands out
// the pinned addresses, but forwards no name (no DNS channel out) and
// offers no router and no name server: a sandbox has no route anywhere,
// only its neighbour the gateway.
func networkConfig() map[string]string {
	return map[string]string{
		keyNetwork:                             "true",
		"ipv4.nat":                             "false",
		"ipv6.address":                         "none",
		"ipv4.dhcp":                            "true",
		"raw.dnsmasq":                          "no-resolv\ndhcp-option=3\ndhcp-option=6",
		"security.acls.default.egress.action":  "drop",
		"security.acls.default.ingress.action": "drop",
	}
}

func (g *Gateway) ensureNetwork() (*Info, error) {
	n, etag, err := g.C.GetNetwork(g.Network)
	if api.StatusErrorCheck(err, 404) {
		cfg := networkConfig()
		subnet, perr := g.pickSubnet()
		if perr != nil {
			return nil, perr
		}
		cfg["ipv4.address"] = subnet
		err = g.C.CreateNetwork(api.NetworksPost{Name: g.Network, Type: "bridge", NetworkPut: api.NetworkPut{
			Description: "vibe sandboxes: no way out but the egress gateway (managed by vibe)",
			Config:      cfg,
		}})
		if err != nil {
			return nil, fmt.Errorf("create the sandbox network %s: %w", g.Network, err)
		}
		n, etag, err = g.C.GetNetwork(g.Network)
	}
	if err != nil {
		return nil, fmt.Errorf("sandbox network %s: %w", g.Network, err)
	}
	if n.Type != "bridge" || !n.Managed || n.Config[keyNetwork] != "true" {
		return nil, fmt.Errorf("network %s exists but is not vibe's sandbox network; remove it or set egress.gateway.network to another name", g.Network)
	}
	info, err := infoFor(n)
	if err != nil {
		return nil, err
	}
	if err := g.ensureACL(info); err != nil {
		return nil, err
	}
	// The configuration vibe owns is put back if anything changed it.
	want := wantNetwork(g.Network)
	put := n.Writable()
	changed := false
	for k, v := range want {
		if put.Config[k] != v {
			put.Config[k], changed = v, true
		}
	}
	if put.Config["ipv4.routing"] == "true" {
		put.Config["ipv4.routing"], changed = "false", true
	}
	if changed {
		if err := g.C.UpdateNetwork(g.Network, put, etag); err != nil {
			return nil, fmt.Errorf("set up the sandbox network %s: %w", g.Network, err)
		}
	}
	return info, nil
}

// wantNetwork is the configuration vibe owns on its bridge: networkConfig
// and the bridge's own ACL.
func wantNetwork(name string) map[string]string {
	want := networkConfig()
	want["security.acls"] = name
	return want
}

// infoFor says where the gateway is on vibe's bridge n: the host has the
// bridge's address, the gateway the second of the subnet (the third when
// the host holds the second).
func infoFor(n *api.Network) (*Info, error) {
	ip, err := netip.ParsePrefix(n.Config["ipv4.address"])
	if err != nil || !ip.Addr().Is4() || ip.Bits() > 28 {
		return nil, fmt.Errorf("sandbox network %s has no usable IPv4 subnet (%q); delete it and vibe makes it again", n.Name, n.Config["ipv4.address"])
	}
	info := &Info{Network: n.Name, Prefix: ip.Masked(), Host: ip.Addr(), Port: gateway.Port}
	info.Addr = info.Prefix.Addr().Next().Next()
	if info.Addr == info.Host {
		info.Addr = info.Addr.Next()
	}
	return info, nil
}

// pickSubnet finds a /24 for the bridge in 10.77.0.0/16.
func (g *Gateway) pickSubnet() (string, error) {
	s, err := FreeSubnet(g.C, 77)
	if err != nil {
		return "", errors.New("no free /24 in 10.77.0.0/16 for the sandbox network; create it by hand (incus network create " + g.Network + " ipv4.address=ADDR/24) with user.vibe.network=true")
	}
	return s, nil
}

// FreeSubnet finds a /24 in 10.OCTET.0.0/16 that no incus network and no
// route of this host uses (incus's own "auto" needs tools and answers this
// machine does not always have), as the bridge's address: 10.OCTET.N.1/24.
func FreeSubnet(c incus.InstanceServer, octet byte) (string, error) {
	var taken []netip.Prefix
	if nets, err := c.GetNetworks(); err == nil {
		for _, n := range nets {
			if p, err := netip.ParsePrefix(n.Config["ipv4.address"]); err == nil {
				taken = append(taken, p.Masked())
			}
		}
	}
	taken = append(taken, hostRoutes()...)
	for i := 0; i < 256; i++ {
		cand := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, octet, byte(i), 0}), 24)
		free := true
		for _, t := range taken {
			if t.Overlaps(cand) && t.Bits() > 0 {
				free = false
				break
			}
		}
		if free {
			return netip.PrefixFrom(cand.Addr().Next(), 24).String(), nil
		}
	}
	return "", fmt.Errorf("no free /24 in 10.%d.0.0/16", octet)
}

// hostRoutes are the IPv4 routes of this host (/proc/net/route), so the
// bridge never shadows a network the host reaches.
func hostRoutes() []netip.Prefix {
	b, err := os.ReadFile("/proc/net/route")
	if err != nil {
		return nil
	}
	var out []netip.Prefix
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 8 {
			continue
		}
		dst, err1 := strconv.ParseUint(f[1], 16, 32)
		mask, err2 := strconv.ParseUint(f[7], 16, 32)
		if err1 != nil || err2 != nil {
			continue
		}
		// /proc/net/route is in host byte order (little-endian here).
		a := netip.AddrFrom4([4]byte{byte(dst), byte(dst >> 8), byte(dst >> 16), byte(dst >> 24)})
		bits := 0
		for m := mask; m != 0; m >>= 1 {
			bits += int(m & 1)
		}
		out = append(out, netip.PrefixFrom(a, bits).Masked())
	}
	return out
}

// ensureACL: the only traffic the bridge carries between instances is TCP
// to the gateway's proxy port (replies follow by connection tracking).
func (g *Gateway) ensureACL(info *Info) error {
	want := wantACL(info)
	acl, etag, err := g.C.GetNetworkACL(g.Network)
	if api.StatusErrorCheck(err, 404) {
		if err := g.C.CreateNetworkACL(api.NetworkACLsPost{NetworkACLPost: api.NetworkACLPost{Name: g.Network}, NetworkACLPut: want}); err != nil {
			return fmt.Errorf("create the network ACL %s: %w", g.Network, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("network ACL %s: %w", g.Network, err)
	}
	if !aclIs(acl, want) {
		want.Config = acl.Config
		if err := g.C.UpdateNetworkACL(g.Network, want, etag); err != nil {
			return fmt.Errorf("set the network ACL %s: %w", g.Network, err)
		}
	}
	return nil
}

// wantACL is the ACL vibe sets on its bridge.
func wantACL(info *Info) api.NetworkACLPut {
	rule := api.NetworkACLRule{
		Action: "allow", Protocol: "tcp", State: "enabled",
		Destination: info.Addr.String() + "/32", DestinationPort: strconv.Itoa(info.Port),
		Description: "to the vibe egress gateway's proxy",
	}
	return api.NetworkACLPut{
		Description: "vibe sandboxes: only the egress gateway's proxy (managed by vibe)",
		Egress:      []api.NetworkACLRule{rule},
		Ingress:     []api.NetworkACLRule{rule},
	}
}

// aclIs reports whether acl has exactly the rules of want.
func aclIs(acl *api.NetworkACL, want api.NetworkACLPut) bool {
	return reflect.DeepEqual(acl.Egress, want.Egress) && reflect.DeepEqual(acl.Ingress, want.Ingress)
}

// unit renders the gateway's systemd unit and its ruleset (one text, the
// ruleset after a marker line, so that one digest covers both).
func (g *Gateway) unit(info *Info) (string, error) {
	var b bytes.Buffer
	data := map[string]any{"Addr": info.Addr, "Bits": info.Prefix.Bits(), "Prefix": info.Prefix, "Port": info.Port, "Ranges": rangesPath}
	if err := template.Must(template.New("unit").Parse(unitTemplate)).Execute(&b, data); err != nil {
		return "", err
	}
	b.WriteString(rulesMarker)
	err := template.Must(template.New("rules").Parse(rulesTemplate)).Execute(&b, data)
	return b.String(), err
}

const rulesMarker = "\n#---- " + rulesPath + "\n"

// ranges renders the gateway's ranges file: the host's own addresses
// (never dialled) and the private ranges the user allows.
func (g *Gateway) ranges() ([]byte, error) {
	never, err := g.hostAddrs()
	if err != nil {
		return nil, err
	}
	b, err := json.Marshal(gateway.Ranges{Never: never, Private: g.Private})
	return append(b, '\n'), err
}

func digest(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ensureInstance makes the gateway (from img, when Ensure resolved it),
// starts it, and hands it this vibe and its unit when they changed.
func (g *Gateway) ensureInstance(ctx context.Context, info *Info, img *api.Image) error {
	st, err := os.Stat(g.Binary)
	if err != nil {
		return fmt.Errorf("find this vibe (%s) to hand it to the gateway: %w", g.Binary, err)
	}
	// The binary is read and hashed only when it is not the one whose
	// size and time were recorded with the gateway's copy: reading 40 MB
	// on every command would cost a fifth of a second.
	stat := fmt.Sprintf("%d:%d:%s", st.Size(), st.ModTime().UnixNano(), g.Binary)
	ranges, err := g.ranges()
	if err != nil {
		return err
	}
	unit, err := g.unit(info)
	if err != nil {
		return err
	}
	inst, _, err := g.C.GetInstance(g.Instance)
	if api.StatusErrorCheck(err, 404) {
		if img == nil {
			if img, err = g.image(ctx); err != nil {
				return err
			}
		}
		g.progress("gateway")
		if err := g.create(ctx, info, img); err != nil {
			return err
		}
		inst, _, err = g.C.GetInstance(g.Instance)
	}
	if err != nil {
		return fmt.Errorf("gateway %s: %w", g.Instance, err)
	}
	if inst.Config[keyGateway] != "true" {
		return fmt.Errorf("instance %s exists but is not vibe's egress gateway; remove it or set egress.gateway.instance to another name", g.Instance)
	}
	if inst.StatusCode != api.Running {
		g.progress("gateway")
		op, err := g.C.UpdateInstanceState(g.Instance, api.InstanceStatePut{Action: "start", Timeout: -1}, "")
		if err == nil {
			err = op.WaitContext(ctx)
		}
		if err != nil {
			return fmt.Errorf("start the gateway %s: %w", g.Instance, err)
		}
	}
	if inst.Config[keyStat] == stat && inst.Config[keyBinary] != "" && inst.Config[keyUnit] == digest([]byte(unit)) {
		if err := g.syncRanges(ranges); err != nil {
			return err
		}
		return g.readIDs(inst, info)
	}
	bin, err := os.ReadFile(g.Binary)
	if err != nil {
		return fmt.Errorf("read this vibe (%s) to hand it to the gateway: %w", g.Binary, err)
	}
	if inst.Config[keyBinary] == digest(bin) && inst.Config[keyUnit] == digest([]byte(unit)) {
		if err := g.syncRanges(ranges); err != nil {
			return err
		}
		if err := g.record(ctx, map[string]string{keyStat: stat}); err != nil {
			return err
		}
		return g.readIDs(inst, info)
	}
	g.progress("gateway")
	if err := g.install(ctx, info, bin, unit, ranges); err != nil {
		return err
	}
	return g.record(ctx, map[string]string{keyStat: stat})
}

// syncRanges hands the gateway the ranges when the file it reads holds
// others; it reads them at its next request, without a restart. The file
// itself is compared (read back: a few milliseconds), never a record of
// what some vibe wrote, which a vibe cut off after the write, or one with
// older ranges whose write landed last, would leave untrue for good.
func (g *Gateway) syncRanges(ranges []byte) error {
	if r, _, err := g.C.GetInstanceFile(g.Instance, rangesPath); err == nil {
		held, err := io.ReadAll(io.LimitReader(r, 1<<20))
		r.Close()
		if err == nil && bytes.Equal(held, ranges) {
			return nil
		}
	}
	return g.push(rangesPath, ranges, 0, 0, 0o644)
}

// record sets configuration keys on the gateway instance.
func (g *Gateway) record(ctx context.Context, kv map[string]string) error {
	inst, etag, err := g.C.GetInstance(g.Instance)
	if err != nil {
		return err
	}
	put := inst.Writable()
	maps.Copy(put.Config, kv)
	op, err := g.C.UpdateInstance(g.Instance, put, etag)
	if err == nil {
		err = op.WaitContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("record the gateway's version: %w", err)
	}
	return nil
}

func (g *Gateway) readIDs(inst *api.Instance, info *Info) error {
	u, gr, ok := strings.Cut(inst.Config[keyIDs], ":")
	uid, err1 := strconv.ParseInt(u, 10, 32)
	gid, err2 := strconv.ParseInt(gr, 10, 32)
	if !ok || err1 != nil || err2 != nil || uid <= 0 || gid <= 0 {
		return fmt.Errorf("gateway %s: its service user is not recorded; delete it (incus delete -f %s) and vibe makes it again", g.Instance, g.Instance)
	}
	info.uid, info.gid = uid, gid
	return nil
}

// wayOut is the incus network of the gateway's outside leg: the configured
// uplink, or the default profile's network ("" when the profile's device
// names none, a macvlan for one). Without either vibe refuses to make a
// gateway, so that no sandbox runs unguarded on a machine that gives it no
// way out.
func (g *Gateway) wayOut() (string, error) {
	const fix = "run sudo vibe setup (it makes vibe-uplink, a NAT bridge), or set egress.gateway.uplink to an incus network that reaches the outside"
	if g.Uplink != "" {
		if _, _, err := g.C.GetNetwork(g.Uplink); err != nil {
			return "", fmt.Errorf("the egress gateway has no way out: egress.gateway.uplink names %s, which is not an incus network here (%w): %s", g.Uplink, err, fix)
		}
		return g.Uplink, nil
	}
	p, _, err := g.C.GetProfile("default")
	if err != nil {
		return "", fmt.Errorf("read the default profile for the gateway's uplink: %w", err)
	}
	for _, k := range slices.Sorted(maps.Keys(p.Devices)) {
		if d := p.Devices[k]; d["type"] == "nic" {
			return d["network"], nil
		}
	}
	return "", errors.New("the egress gateway has no way out: egress.gateway.uplink is empty and the default profile has no network device: " + fix)
}

// image is the container image the gateway is made from: local, or copied
// in from a remote (image.base may name one).
func (g *Gateway) image(ctx context.Context) (*api.Image, error) {
	img, err := daemon.Image(ctx, g.C, g.Image, "container", g.progress)
	if err != nil {
		return nil, fmt.Errorf("the egress gateway is a container made from image.base (or egress.gateway.image), and %w: set egress.gateway.image to a container image with systemd and nftables", err)
	}
	return img, nil
}

// create makes the gateway container from img: one leg on the uplink (by
// DHCP, from the image's own network set-up), one on the sandbox bridge at
// the pinned address (set by its unit).
func (g *Gateway) create(ctx context.Context, info *Info, img *api.Image) error {
	devices := map[string]map[string]string{
		"eth1": {"type": "nic", "network": info.Network, "name": "eth1", "ipv4.address": info.Addr.String(), "security.ipv4_filtering": "true"},
	}
	if g.Uplink != "" {
		devices["eth0"] = map[string]string{"type": "nic", "network": g.Uplink, "name": "eth0"}
	}
	op, err := g.C.CreateInstance(api.InstancesPost{
		Name:   g.Instance,
		Type:   api.InstanceTypeContainer,
		Source: api.InstanceSource{Type: "image", Fingerprint: img.Fingerprint},
		InstancePut: api.InstancePut{
			Description: "vibe egress gateway (managed by vibe)",
			Config: map[string]string{
				keyGateway:       "true",
				"boot.autostart": "true",
				"limits.memory":  "512MiB",
			},
			Devices: devices,
		},
		Start: true,
	})
	if err == nil {
		err = op.WaitContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("create the gateway %s: %w", g.Instance, err)
	}
	return nil
}

// hostAddrs are the host's own addresses: a sandbox must not reach the
// host's services through the gateway (a name rebound to one included).
// Each sits one hop away behind the uplink's route, not only the uplink's
// own: every managed network's (the user's other instances' bridges too),
// those incus says it listens on, and with a local daemon every address
// of this machine. Sorted, so that the gateway's ranges file changes only
// when they do.
func (g *Gateway) hostAddrs() ([]netip.Prefix, error) {
	seen := map[netip.Prefix]bool{}
	add := func(a netip.Addr) {
		if a.IsValid() && !a.IsUnspecified() && !neverAnyway(a) {
			a = a.Unmap().WithZone("")
			seen[netip.PrefixFrom(a, a.BitLen())] = true
		}
	}
	// A source that does not answer fails the command: a list short of
	// an address would let the gateway dial the host there.
	fail := func(what string, err error) ([]netip.Prefix, error) {
		return nil, fmt.Errorf("read the host's addresses (%s) for the gateway to refuse: %w", what, err)
	}
	nets, err := g.C.GetNetworks()
	if err != nil {
		return fail("networks", err)
	}
	// (A gateway with no way out is refused where it is made.)
	if name, err := g.wayOut(); err == nil && name != "" {
		n, _, err := g.C.GetNetwork(name)
		if err != nil {
			return fail("uplink "+name, err)
		}
		nets = append(nets, *n)
	}
	for _, n := range nets {
		for _, k := range []string{"ipv4.address", "ipv6.address"} {
			if p, err := netip.ParsePrefix(n.Config[k]); err == nil {
				add(p.Addr())
			}
		}
	}
	srv, _, err := g.C.GetServer()
	if err != nil {
		return fail("server", err)
	}
	for _, hp := range srv.Environment.Addresses {
		if ap, err := netip.ParseAddrPort(hp); err == nil {
			add(ap.Addr())
		} else if a, err := netip.ParseAddr(hp); err == nil {
			add(a)
		}
	}
	ci, err := g.C.GetConnectionInfo()
	if err != nil {
		return fail("connection", err)
	}
	if ci.SocketPath != "" {
		ifs, err := net.InterfaceAddrs()
		if err != nil {
			return fail("interfaces", err)
		}
		for _, ia := range ifs {
			if p, err := netip.ParsePrefix(ia.String()); err == nil {
				add(p.Addr())
			}
		}
	}
	out := slices.Collect(maps.Keys(seen))
	slices.SortFunc(out, func(a, b netip.Prefix) int { return a.Addr().Compare(b.Addr()) })
	return out, nil
}

// neverAnyway reports whether the gateway refuses a whatever its ranges
// file says (loopback, link-local): listed, every container started or
// stopped on this machine (its link-local address on the host's side)
// would change the file at the next vibe command.
func neverAnyway(a netip.Addr) bool {
	a = a.Unmap().WithZone("")
	for _, p := range gateway.DefaultNever {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// install puts this vibe and the unit into the gateway and (re)starts the
// service, then waits until the proxy listens.
func (g *Gateway) install(ctx context.Context, info *Info, bin []byte, unit string, ranges []byte) error {
	if err := g.waitBoot(ctx); err != nil {
		return err
	}
	script, err := provision.File("gateway-install")
	if err != nil {
		return err
	}
	r, err := g.run(ctx, "bash", "-c", script, "gateway-install", "prepare", serviceUser)
	if err != nil {
		return err
	}
	ids := strings.TrimSpace(r.Stdout)
	// A running program cannot be overwritten ("text file busy"): the new
	// one goes beside it and is renamed over it.
	if err := g.push(binPath+".new", bin, 0, 0, 0o755); err != nil {
		return err
	}
	unitText, rules, _ := strings.Cut(unit, rulesMarker)
	if err := g.push(unitPath, []byte(unitText), 0, 0, 0o644); err != nil {
		return err
	}
	if err := g.push(rulesPath, []byte(rules), 0, 0, 0o644); err != nil {
		return err
	}
	// Before the service starts: without it, nothing is dialled.
	if err := g.push(rangesPath, ranges, 0, 0, 0o644); err != nil {
		return err
	}
	if _, err := g.run(ctx, "bash", "-c", script, "gateway-install", "activate", binPath); err != nil {
		return err
	}
	if err := g.waitListen(ctx, info); err != nil {
		return err
	}
	if err := g.record(ctx, map[string]string{keyBinary: digest(bin), keyUnit: digest([]byte(unit)), keyIDs: ids}); err != nil {
		return err
	}
	return g.readIDs(&api.Instance{InstancePut: api.InstancePut{Config: map[string]string{keyIDs: ids}}}, info)
}

func (g *Gateway) waitBoot(ctx context.Context) error {
	deadline := time.Now().Add(2 * time.Minute)
	for {
		r, err := daemon.Run(ctx, g.C, g.Instance, daemon.Exec{Command: []string{"systemctl", "is-system-running"}})
		if err == nil {
			// Starting is enough: the uplink's DHCP may hold the boot
			// for a minute, and systemd takes units meanwhile.
			switch strings.TrimSpace(r.Stdout) {
			case "starting", "running", "degraded":
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the gateway %s did not finish booting in 2 minutes", g.Instance)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

func (g *Gateway) waitListen(ctx context.Context, info *Info) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if g.listening(ctx, info) == nil {
			return nil
		}
		if time.Now().After(deadline) {
			out, _ := daemon.Run(ctx, g.C, g.Instance, daemon.Exec{Command: []string{"journalctl", "-u", "vibe-gateway", "-n", "5", "--no-pager"}})
			return fmt.Errorf("the gateway's proxy does not listen on %s:%d: %s", info.Addr, info.Port, strings.TrimSpace(out.Stdout))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (g *Gateway) run(ctx context.Context, argv ...string) (daemon.Result, error) {
	r, err := daemon.Run(ctx, g.C, g.Instance, daemon.Exec{Command: argv})
	if err == nil && r.Code != 0 {
		err = fmt.Errorf("exit %d: %s", r.Code, strings.TrimSpace(r.Stderr+r.Stdout))
	}
	if err != nil {
		return r, fmt.Errorf("gateway %s: %s: %w", g.Instance, argv[0], err)
	}
	return r, nil
}

func (g *Gateway) push(path string, content []byte, uid, gid int64, mode int) error {
	err := g.C.CreateInstanceFile(g.Instance, path, incus.InstanceFileArgs{
		Content: bytes.NewReader(content), UID: uid, GID: gid, Mode: mode, Type: "file", WriteMode: "overwrite",
	})
	if err != nil {
		return fmt.Errorf("gateway %s: write %s: %w", g.Instance, path, err)
	}
	return nil
}

// Address picks a free address on the bridge for a new sandbox (incus pins
// it to the sandbox's NIC, which is how the gateway knows the sandbox).
func (g *Gateway) Address(ctx context.Context) (netip.Addr, error) {
	info, err := g.Ensure(ctx)
	if err != nil {
		return netip.Addr{}, err
	}
	insts, err := g.C.GetInstances(api.InstanceTypeAny)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("list instances: %w", err)
	}
	used := map[netip.Addr]bool{info.Host: true, info.Addr: true}
	for _, inst := range insts {
		for _, d := range inst.Devices {
			if d["network"] == info.Network {
				if a, err := netip.ParseAddr(d["ipv4.address"]); err == nil {
					used[a] = true
				}
			}
		}
	}
	a := info.Addr.Next()
	for n := 0; info.Prefix.Contains(a) && n < 4096; a, n = a.Next(), n+1 {
		if a.As4()[3] >= 10 && a.As4()[3] < 255 && !used[a] {
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("the sandbox network %s has no free address left (%s)", info.Network, info.Prefix)
}

// dir is the gateway folder of the sandbox at addr.
func dir(addr netip.Addr) string { return stateDir + "/sandboxes/" + addr.String() }

func (g *Gateway) putJSON(ctx context.Context, addr netip.Addr, name string, v any, mode int) error {
	info, err := g.Ensure(ctx)
	if err != nil {
		return err
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	// The folders are made once per run of vibe, not before every file.
	if !g.made[addr] {
		for _, d := range []string{stateDir + "/sandboxes", dir(addr)} {
			err := g.C.CreateInstanceFile(g.Instance, d, incus.InstanceFileArgs{UID: info.uid, GID: info.gid, Mode: 0o700, Type: "directory", WriteMode: "overwrite"})
			if err != nil {
				return fmt.Errorf("gateway %s: make %s: %w", g.Instance, d, err)
			}
		}
		if g.made == nil {
			g.made = map[netip.Addr]bool{}
		}
		g.made[addr] = true
	}
	return g.push(dir(addr)+"/"+name, b, info.uid, info.gid, mode)
}

// SetPolicy hands the gateway the policy of the sandbox at addr; the next
// request it sees is judged by it.
func (g *Gateway) SetPolicy(ctx context.Context, addr netip.Addr, p gateway.Policy) error {
	return g.putJSON(ctx, addr, gateway.PolicyFile, p, 0o600)
}

// StartSession registers one session of the sandbox at addr: its own
// --allow entries (beside any other session's) and the credentials it
// brings. The returned function ends it. Credentials are held only while a
// session runs: the last session to end removes them, so a process the
// agent leaves behind cannot use the key afterwards. Sessions whose vibe
// process is gone (killed) are pruned first.
func (g *Gateway) StartSession(ctx context.Context, addr netip.Addr, allow []string, creds []gateway.Credential) (func(), error) {
	id := make([]byte, 8)
	if _, err := io.ReadFull(randReader, id); err != nil {
		return nil, err
	}
	host, _ := os.Hostname()
	g.pruneSessions(addr, host)
	name := gateway.SessionPrefix + hex.EncodeToString(id) + ".json"
	if err := g.putJSON(ctx, addr, name, gateway.Session{Allow: allow, Host: host, PID: os.Getpid()}, 0o600); err != nil {
		return nil, err
	}
	end := func() {
		_ = g.C.DeleteInstanceFile(g.Instance, dir(addr)+"/"+name)
		if len(g.sessions(addr)) == 0 {
			_ = g.C.DeleteInstanceFile(g.Instance, dir(addr)+"/"+gateway.CredentialsFile)
		}
	}
	if len(creds) > 0 {
		if err := g.putJSON(ctx, addr, gateway.CredentialsFile, gateway.Credentials{Credentials: creds}, 0o400); err != nil {
			end()
			return nil, err
		}
	}
	return end, nil
}

// sessions lists the session files of the sandbox at addr.
func (g *Gateway) sessions(addr netip.Addr) []string {
	rc, resp, err := g.C.GetInstanceFile(g.Instance, dir(addr))
	if rc != nil {
		rc.Close()
	}
	if err != nil || resp == nil {
		return nil
	}
	var out []string
	for _, e := range resp.Entries {
		if strings.HasPrefix(e, gateway.SessionPrefix) && strings.HasSuffix(e, ".json") {
			out = append(out, e)
		}
	}
	return out
}

// Prune removes the sessions of the sandbox at addr that this host started
// and whose vibe process is gone (killed before it could end them), and the
// credentials when no session is left: a process the agent left behind
// cannot go on using the key once vibe next talks to the gateway.
func (g *Gateway) Prune(addr netip.Addr) {
	host, _ := os.Hostname()
	g.pruneSessions(addr, host)
	if len(g.sessions(addr)) == 0 {
		_ = g.C.DeleteInstanceFile(g.Instance, dir(addr)+"/"+gateway.CredentialsFile)
	}
}

// pruneSessions removes the sessions this host started whose vibe process
// no longer runs.
func (g *Gateway) pruneSessions(addr netip.Addr, host string) {
	for _, name := range g.sessions(addr) {
		rc, _, err := g.C.GetInstanceFile(g.Instance, dir(addr)+"/"+name)
		if err != nil {
			continue
		}
		var ses gateway.Session
		err = json.NewDecoder(io.LimitReader(rc, 64<<10)).Decode(&ses)
		rc.Close()
		if err == nil && ses.Host == host && !alive(ses.PID) {
			_ = g.C.DeleteInstanceFile(g.Instance, dir(addr)+"/"+name)
		}
	}
}

// alive: a PID the kernel cannot have (a gateway wrote it) is not alive;
// the session goes, never a signal to a process group.
func alive(pid int) bool {
	if pid <= 0 || pid > 1<<22 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// Forget removes everything the gateway holds for the sandbox at addr.
func (g *Gateway) Forget(ctx context.Context, addr netip.Addr) error {
	g.names()
	if _, _, err := g.C.GetInstance(g.Instance); api.StatusErrorCheck(err, 404) {
		return nil
	}
	delete(g.made, addr)
	_, err := g.run(ctx, "rm", "-rf", "--", dir(addr))
	return err
}

// Log streams the egress log of the client at addr to fn, oldest first;
// with follow it goes on until ctx ends.
func (g *Gateway) Log(ctx context.Context, addr netip.Addr, follow bool, fn func(gateway.Entry) error) error {
	logFile := logDir + "/" + gateway.LogName(addr.String())
	g.names()
	if _, _, err := g.C.GetInstance(g.Instance); err != nil {
		return fmt.Errorf("gateway %s: %w (vibe up makes it)", g.Instance, err)
	}
	argv := []string{"tail", "-q", "-n", "+1", "--", logFile + ".1", logFile}
	if follow {
		argv = []string{"tail", "-q", "-n", "+1", "-F", "--", logFile}
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		err := gateway.ReadEntries(pr, fn)
		pr.CloseWithError(err)
		done <- err
	}()
	_, err := daemon.Execute(ctx, g.C, g.Instance, daemon.Exec{Command: argv, Stdout: pw, Stdin: bytes.NewReader(nil)})
	pw.Close()
	rerr := <-done
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("read the egress log: %w", err)
	}
	return rerr
}

var randReader = rand.Reader

// Finding is one result of Check.
type Finding struct {
	OK     bool
	What   string
	Detail string
}

// Check reports on the network, its ACL, its DNS setting, the gateway and
// its uplink without changing anything (vibe doctor).
func (g *Gateway) Check(ctx context.Context) []Finding {
	g.names()
	var out []Finding
	add := func(ok bool, what, detail string) { out = append(out, Finding{ok, what, detail}) }
	if _, err := g.wayOut(); err != nil {
		add(false, "gateway uplink", err.Error())
	}
	n, _, err := g.C.GetNetwork(g.Network)
	if err != nil {
		add(false, "sandbox network", g.Network+" does not exist yet (vibe up makes it)")
		return out
	}
	bad := []string{}
	want := wantNetwork(g.Network)
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if n.Config[k] != want[k] {
			bad = append(bad, fmt.Sprintf("%s=%q", k, n.Config[k]))
		}
	}
	if len(bad) > 0 {
		add(false, "sandbox network", g.Network+" differs from what vibe sets: "+strings.Join(bad, ", ")+" (vibe up puts it back)")
	} else {
		add(true, "sandbox network", g.Network+" "+n.Config["ipv4.address"]+": no NAT, default-drop ACL, no DNS forwarding")
	}
	info, err := infoFor(n)
	if err != nil {
		add(false, "sandbox network", err.Error())
		return out
	}
	if acl, _, err := g.C.GetNetworkACL(g.Network); err != nil {
		add(false, "network ACL", g.Network+" is missing (vibe up makes it)")
	} else if !aclIs(acl, wantACL(info)) {
		add(false, "network ACL", "its rules are not vibe's (vibe up puts them back)")
	} else {
		add(true, "network ACL", fmt.Sprintf("only TCP to %s:%d", info.Addr, info.Port))
	}
	inst, _, err := g.C.GetInstance(g.Instance)
	if err != nil {
		add(false, "gateway", g.Instance+" does not exist yet (vibe up makes it)")
		return out
	}
	if inst.StatusCode != api.Running {
		add(false, "gateway", g.Instance+" is "+strings.ToLower(inst.Status)+" (vibe up starts it)")
		return out
	}
	if err := g.listening(ctx, info); err != nil {
		add(false, "gateway", err.Error())
	} else {
		add(true, "gateway", fmt.Sprintf("%s proxy listening on %s:%d", g.Instance, info.Addr, info.Port))
	}
	r, err := daemon.Run(ctx, g.C, g.Instance, daemon.Exec{Command: []string{"ip", "-4", "route", "show", "default"}})
	if err != nil || strings.TrimSpace(r.Stdout) == "" {
		add(false, "gateway uplink", "the gateway has no default route: its uplink ("+cmp.Or(g.Uplink, "the default profile's network")+") gives it no way out")
	} else {
		add(true, "gateway uplink", strings.TrimSpace(r.Stdout))
	}
	return out
}

// listening checks once that the proxy listens on its address.
func (g *Gateway) listening(ctx context.Context, info *Info) error {
	r, err := daemon.Run(ctx, g.C, g.Instance, daemon.Exec{Command: []string{"ss", "-Hltn", "src", info.Addr.String(), "sport", "=", ":" + strconv.Itoa(info.Port)}})
	if err != nil {
		return err
	}
	if strings.TrimSpace(r.Stdout) == "" {
		return fmt.Errorf("the gateway's proxy does not listen on %s:%d (vibe up restarts it)", info.Addr, info.Port)
	}
	return nil
}

// NIC is the one network device of an instance behind the gateway: on the
// isolated bridge, at a pinned address (how the gateway knows it), unable
// to take another address or reach another instance.
//
// incus applies the bridge's ACL only between an instance and the host or
// the outside, not between two instances on the bridge (a NIC's own ACL
// would, but needs bridge connection tracking this kernel may lack): port
// isolation keeps sandboxes apart, and the gateway's own ruleset
// (vibe-gateway.nft) answers only its proxy port and forwards nothing.
func NIC(network string, addr netip.Addr) map[string]string {
	return map[string]string{
		"type": "nic", "network": network, "name": "eth0",
		"ipv4.address":            addr.String(),
		"security.ipv4_filtering": "true",
		"security.mac_filtering":  "true",
		"security.port_isolation": "true",
	}
}

// Devices are the network devices of an instance behind the gateway: the
// default profile's own network devices masked, and NIC.
func (g *Gateway) Devices(addr netip.Addr) map[string]map[string]string {
	g.names()
	out := map[string]map[string]string{}
	if prof, _, err := g.C.GetProfile("default"); err == nil {
		for name, d := range prof.Devices {
			if d["type"] == "nic" {
				out[name] = map[string]string{"type": "none"}
			}
		}
	}
	out["eth0"] = NIC(g.Network, addr)
	return out
}

// KeyProxy is the instance configuration key through which a builder
// learns the gateway's proxy (ADDRESS:PORT) from the guest API while it
// provisions; a sandbox is told by settle instead. Neither is baked.
const KeyProxy = "user.vibe.gateway-proxy"

// HostPort is the gateway's proxy as ADDRESS:PORT.
func (i *Info) HostPort() string { return netip.AddrPortFrom(i.Addr, uint16(i.Port)).String() }
