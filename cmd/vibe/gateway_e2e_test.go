package main

// The egress gateway, tested for real: the sandbox sits on vibe's isolated
// bridge, and the gateway's uplink is the test's own isolated bridge whose
// other member plays the internet (DHCP, DNS that logs every query, HTTP,
// UDP echo, a fake model API that answers only the real key, and a packet
// log of everything arriving). Nothing leaves the machine.

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/gateway"
	"github.com/vibesandbox/vibe/internal/e2e"
)

const (
	gwNet      = "vibe-e2e-sb"
	gwInstance = "vibe-e2e-gw"
	// hostAddrNet gives the host one more address while a sandbox runs.
	hostAddrNet = "vibe-e2e-haddr"
)

// removeGateway deletes a test's gateway instance, its network and ACL
// (left by an interrupted run, or at the end).
func removeGateway(c incus.InstanceServer, net, inst string) {
	e2e.ForceDelete(c, inst)
	_ = c.DeleteNetwork(net)
	_ = c.DeleteNetworkACL(net)
}

// gatewayWorld is a world whose configuration enables the gateway, with the
// test's internet as its uplink.
func gatewayWorld(t *testing.T) (*world, string) {
	w := newWorld(t)
	server := setupInternet(t, w.c)
	removeGateway(w.c, gwNet, gwInstance)
	// Cleanups run last-first: the sandbox goes, then the gateway, then
	// the networks (setupInternet's cleanups ran their registration first).
	t.Cleanup(func() { removeGateway(w.c, gwNet, gwInstance) })
	t.Cleanup(func() { w.vibe("rm") })
	extra := fmt.Sprintf(`egress:
  gateway:
    enabled: true
    uplink: %s
    image: vibe-test-base
    network: %s
    instance: %s
`, egressNet, gwNet, gwInstance)
	for _, p := range []string{filepath.Join(w.dir, "vibe.yaml"), filepath.Join(w.dir, "config", "vibe", "vibe.yaml")} {
		cfg, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(p, []byte(withEgress(t, string(cfg), extra)), 0o644)
	}
	// The user's own API endpoint, over plain HTTP in the test's internet:
	// the gateway forwards to it with the real key.
	os.WriteFile(filepath.Join(w.dir, "config", "vibe", "secrets.env"),
		[]byte("ANTHROPIC_API_KEY="+secretValue+"\nANTHROPIC_BASE_URL=http://api.model.test\n"), 0o600)
	return w, server
}

// bakeBehindGateway bakes the offline recipe with the builder behind the
// gateway, checks that the gateway judged the builder's requests and that
// the image forgot the gateway, and points the world at the image.
func bakeBehindGateway(t *testing.T, w *world) {
	const alias = "vibe-e2e-gwbake"
	offline, err := os.ReadFile("../../examples/offline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := withEgress(t, strings.Replace(string(offline), "alias: vibe-offline", "alias: "+alias, 1), fmt.Sprintf(`egress:
  gateway:
    enabled: true
    uplink: %s
    network: %s
    instance: %s
`, egressNet, gwNet, gwInstance))
	path := filepath.Join(w.dir, "bake.yaml")
	os.WriteFile(path, []byte(cfg), 0o644)
	t.Cleanup(func() {
		if a, _, err := w.c.GetImageAlias(alias); err == nil {
			w.c.DeleteImageAlias(alias)
			if op, err := w.c.DeleteImage(a.Target); err == nil {
				op.Wait()
			}
		}
	})
	cmd := exec.Command(vibeBuildBin, "build", "--config", path, "--force")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"))
	out, errOut, code := e2e.Run(t, cmd)
	if code != 0 {
		t.Fatalf("bake behind the gateway: exit %d\n%s%s", code, out, errOut)
	}
	// The builder's self-test asked the gateway for a name no recipe lists.
	log, _ := e2e.Exec(t, w.c, gwInstance, "sh", "-c", "cat /var/log/vibe-gateway/*.jsonl")
	if !strings.Contains(log, `"sandbox":"vibe-builder-`) || !strings.Contains(log, "vibe-selftest.invalid") {
		t.Errorf("the gateway never judged the builder's requests:\n%s", log)
	}
	// The image carries the filtering proxy configuration and no gateway.
	a, _, err := w.c.GetImageAlias(alias)
	if err != nil {
		t.Fatal(err)
	}
	const probe = "vibe-e2e-gwbake-probe"
	e2e.ForceDelete(w.c, probe)
	op, err := w.c.CreateInstance(api.InstancesPost{Name: probe, Source: api.InstanceSource{Type: "image", Fingerprint: a.Target}})
	if err == nil {
		err = op.Wait()
	}
	if err != nil {
		t.Fatal(err)
	}
	defer e2e.ForceDelete(w.c, probe)
	rc, _, err := w.c.GetInstanceFile(probe, "/etc/tinyproxy/tinyproxy.conf")
	if err != nil {
		t.Fatal(err)
	}
	conf, _ := io.ReadAll(rc)
	rc.Close()
	if !strings.Contains(string(conf), "FilterDefaultDeny Yes") || strings.Contains(string(conf), "Upstream") {
		t.Errorf("the baked image's proxy configuration is not the filtering one:\n%s", conf)
	}
	if rc, _, err := w.c.GetInstanceFile(probe, "/etc/vibe/gateway"); err == nil {
		rc.Close()
		t.Error("the baked image remembers this host's gateway")
	}
	for _, p := range []string{filepath.Join(w.dir, "vibe.yaml"), filepath.Join(w.dir, "config", "vibe", "vibe.yaml")} {
		b, _ := os.ReadFile(p)
		os.WriteFile(p, []byte(strings.Replace(string(b), "alias: vibe-offline", "alias: "+alias, 1)), 0o644)
	}
}

func TestE2EGateway(t *testing.T) {
	w, server := gatewayWorld(t)
	inet := &world{t: t, c: w.c, name: internetVM}
	bakeBehindGateway(t, w)
	out, stderr, code := w.vibe("--allow", "allowed.test", "up")
	if code != 0 {
		diag, _ := e2e.Exec(t, w.c, gwInstance, "journalctl", "-u", "vibe-gateway", "--no-pager", "-n", "20")
		t.Fatalf("up behind the gateway: %s%s\ngateway journal:\n%s", out, stderr, diag)
	}
	inst, _, err := w.c.GetInstance(w.instance())
	if err != nil {
		t.Fatal(err)
	}
	nic := inst.ExpandedDevices["eth0"]
	if nic["network"] != gwNet || nic["ipv4.address"] == "" || nic["security.ipv4_filtering"] != "true" || nic["security.port_isolation"] != "true" {
		t.Fatalf("the sandbox's NIC is not pinned on the gateway's bridge: %v", nic)
	}
	sandboxAddr := nic["ipv4.address"]
	// doctor and status see both layers.
	doc, _, _ := w.vibe("doctor")
	for _, want := range []string{"ok   sandbox network: " + gwNet, "ok   network ACL: only TCP to", "ok   gateway: " + gwInstance, "ok   gateway uplink: default via"} {
		if !strings.Contains(doc, want) {
			t.Errorf("vibe doctor lacks %q:\n%s", want, doc)
		}
	}
	if out := w.must("status"); !strings.Contains(out, "gateway: enforcing the allowlist") {
		t.Errorf("vibe status does not show the gateway:\n%s", out)
	}

	// A changed vibe (an upgrade) replaces the gateway's running copy.
	changed := filepath.Join(t.TempDir(), "vibe")
	bin, _ := os.ReadFile(vibeBin)
	os.WriteFile(changed, append(bin, 0), 0o755)
	up := exec.Command(changed, "--config", filepath.Join(w.dir, "vibe.yaml"), "--allow", "allowed.test", "exec", "--", "curl", "-sS", "--max-time", "10", "http://www.allowed.test/")
	up.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(w.dir, "config"), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"), "HOME="+w.dir)
	if out, errOut, code := e2e.Run(t, up); code != 0 || !strings.Contains(out, "hello from") {
		t.Errorf("after an upgrade of vibe: exit %d %s%s", code, out, errOut)
	}
	if inst, _, _ := w.c.GetInstance(gwInstance); inst == nil || inst.Config["user.vibe.gateway.binary"] == "" {
		t.Error("the gateway does not record the vibe it runs")
	}

	sh := func(script string) (string, int) {
		out, errOut, code := w.vibe("--allow", "allowed.test", "exec", "--", "sh", "-c", script)
		return out + errOut, code
	}
	status := func(target string) string {
		out, _, _ := w.vibe("--allow", "allowed.test", "exec", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", target)
		return strings.TrimSpace(out)
	}

	// As the agent: an allowed name works, plain and tunnelled.
	if out, code := sh("curl -sS --max-time 10 http://www.allowed.test/"); code != 0 || !strings.Contains(out, "hello from www.allowed.test") {
		t.Errorf("allowed name: exit %d %s", code, out)
	}
	if out, code := sh("curl -sS --max-time 10 --proxytunnel http://api.allowed.test:443/"); code != 0 || !strings.Contains(out, ":443") {
		t.Errorf("allowed name through CONNECT to 443: exit %d %s", code, out)
	}
	// Denied and look-alike names: 403, and never looked up.
	denied := []string{"denied.test", "allowed.test.evil.test", "evilallowed.test"}
	for _, host := range denied {
		if got := status("http://" + host + "/"); got != "403" {
			t.Errorf("GET %s: HTTP %s, want 403", host, got)
		}
	}
	if out, _ := sh("curl -s --max-time 10 http://denied.test/"); !strings.Contains(out, "vibe") || !strings.Contains(out, "denied.test") {
		t.Errorf("the 403 does not name the host and how to allow it: %q", out)
	}
	// The agent's API call carries a placeholder; the gateway adds the key.
	out, code = sh(`printf 'key=%s base=%s\n' "$ANTHROPIC_API_KEY" "$ANTHROPIC_BASE_URL"; curl -sS --max-time 10 -H "x-api-key: $ANTHROPIC_API_KEY" -d '{}' "$ANTHROPIC_BASE_URL/v1/messages"`)
	if code != 0 || !strings.Contains(out, "hello from the model") {
		t.Errorf("the agent's API call through the gateway: exit %d %s", code, out)
	}
	if strings.Contains(out, secretValue) || !strings.Contains(out, "key=vibe-gateway-holds-this-credential") {
		t.Errorf("the agent's environment: %s", out)
	}
	// A process left behind by a session cannot use the key once the
	// session has ended.
	sh(`setsid sh -c 'sleep 5; curl -s -o /dev/null -w "%{http_code}" -H "x-api-key: $ANTHROPIC_API_KEY" -d "{}" "$ANTHROPIC_BASE_URL/v1/messages" >/tmp/late-code' </dev/null >/dev/null 2>&1 &`)
	time.Sleep(8 * time.Second)
	if late, _ := w.guest("cat", "/tmp/late-code"); strings.TrimSpace(late) != "403" {
		t.Errorf("a process left behind used the credential after its session ended: HTTP %q", late)
	}
	// A vibe killed mid-session cannot end it: the next command it runs
	// against the sandbox prunes the session and the credentials with it.
	killed := exec.Command(vibeBin, "--config", filepath.Join(w.dir, "vibe.yaml"), "exec", "--", "sleep", "120")
	killed.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(w.dir, "config"), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"), "HOME="+w.dir)
	if err := killed.Start(); err != nil {
		t.Fatal(err)
	}
	leftover := "curl -s -o /dev/null -w '%{http_code}' -H 'x-api-key: x' -d '{}' \"$ANTHROPIC_BASE_URL/v1/messages\""
	for i := 0; i < 100; i++ {
		if o, _ := e2e.Exec(t, w.c, gwInstance, "sh", "-c", "ls /run/vibe-gateway/sandboxes/"+sandboxAddr+" | grep -c session-"); strings.TrimSpace(o) == "1" {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	killed.Process.Kill()
	killed.Wait()
	// The base URL from the agent's environment, as a leftover has it.
	base := fmt.Sprintf("http://%s:%d/vibe-credential/ANTHROPIC_API_KEY", gwAddrOf(t, w), gateway.Port)
	try := func() string {
		o, _ := w.guest("runuser", "-u", "vibe", "--", "env", "ANTHROPIC_BASE_URL="+base, "http_proxy=http://vibe-proxy:3128", "sh", "-c", leftover)
		return strings.TrimSpace(o)
	}
	if got := try(); got != "200" {
		t.Fatalf("control: with the killed session's credentials still held, HTTP %s", got)
	}
	w.must("up")
	if got := try(); got != "403" {
		t.Errorf("after vibe up, a killed session's credentials still work: HTTP %s", got)
	}

	// The key is nowhere in the guest: no process environment, no file.
	// (The search gets it in two halves, so that its own argv does not
	// hold it whole.)
	hunt := `grep -rlsF -f <(printf '%s%s\n' "$1" "$2") /proc/[0-9]*/environ /proc/[0-9]*/cmdline /run /etc /home /root /tmp /var/tmp /var/lib/vibe /workspace 2>/dev/null | head -5; true`
	half := len(secretValue) / 2
	if out, _ := w.guest("bash", "-c", hunt, "hunt", secretValue[:half], secretValue[half:]); strings.TrimSpace(out) != "" {
		t.Errorf("the key is in the guest: %s", out)
	}

	// vibe log shows both verdicts for this sandbox.
	logOut := w.must("log", "--json")
	var sawAllowed, sawDenied bool
	gateway.ReadEntries(strings.NewReader(logOut), func(e gateway.Entry) error {
		if e.Sandbox != w.name || e.Client != sandboxAddr {
			t.Errorf("a log entry of another sandbox: %+v", e)
		}
		sawAllowed = sawAllowed || (e.Host == "www.allowed.test" && e.Allowed)
		sawDenied = sawDenied || (e.Host == "denied.test" && !e.Allowed)
		return nil
	})
	if !sawAllowed || !sawDenied {
		t.Errorf("vibe log --json lacks the allowed or the denied request:\n%s", logOut)
	}
	if out := w.must("log", "--denied"); !strings.Contains(out, "denied.test") || strings.Contains(out, "www.allowed.test") {
		t.Errorf("vibe log --denied:\n%s", out)
	}

	// No proxy runs in the guest: its clients talk to the gateway, which
	// their settings name.
	if o, code := w.guest("pgrep", "-a", "tinyproxy"); code == 0 {
		t.Errorf("the guest's own proxy runs behind the gateway: %s", o)
	}
	if o, _ := w.guest("getent", "hosts", "vibe-proxy"); !strings.HasPrefix(o, gwAddrOf(t, w)+" ") {
		t.Errorf("vibe-proxy does not name the gateway: %q", o)
	}
	// vibe allow applies at once, with no restart in the guest.
	boot := func() string { o, _ := w.guest("cat", "/proc/sys/kernel/random/boot_id"); return o }
	before := boot()
	if got := status("http://later.test/"); got != "403" {
		t.Fatalf("later.test before vibe allow: %s", got)
	}
	w.must("allow", "later.test")
	if got := status("http://later.test/"); got != "200" {
		t.Errorf("later.test after vibe allow: %s, want 200", got)
	}
	if after := boot(); after != before {
		t.Error("the guest restarted for vibe allow")
	}

	// The operator opens the gateway for the sandbox and closes it again.
	w.must("firewall", "off")
	if got := status("http://anything.test/"); got != "200" {
		t.Errorf("with the firewall off, an unlisted name: %s, want 200", got)
	}
	if out := w.must("firewall", "status"); !strings.Contains(out, "OPEN") {
		t.Errorf("firewall status does not say the gateway is open: %s", out)
	}
	w.must("firewall", "on")
	if got := status("http://anything.test/"); got != "403" {
		t.Errorf("after firewall on, an unlisted name: %s, want 403", got)
	}

	// The host gains an address (a VPN's or a new lease on a laptop; a new
	// incus network here): the next vibe command hands it to the gateway,
	// which refuses it from then on without a restart, so no sandbox's
	// connection is cut. (Before, the address was in the gateway's unit.)
	gwPID := func() string {
		o, _ := e2e.Exec(t, w.c, gwInstance, "systemctl", "show", "-p", "MainPID", "--value", "vibe-gateway")
		return strings.TrimSpace(o)
	}
	pidBefore := gwPID()
	hostAddr := otherSubnet(t, server) + ".1"
	_ = w.c.DeleteNetwork(hostAddrNet)
	if err := w.c.CreateNetwork(api.NetworksPost{Name: hostAddrNet, Type: "bridge", NetworkPut: api.NetworkPut{
		Config: map[string]string{"ipv4.address": hostAddr + "/24", "ipv4.nat": "false", "ipv6.address": "none"},
	}}); err != nil {
		t.Fatalf("give the host another address: %v", err)
	}
	t.Cleanup(func() { w.c.DeleteNetwork(hostAddrNet) })
	if out, _, _ := w.vibe("--allow", "="+hostAddr, "exec", "--", "curl", "-s", "--max-time", "10", "http://"+hostAddr+"/"); !strings.Contains(out, "never connects to") {
		t.Errorf("the host's new address %s, allowed by name: %q, want the gateway's refusal", hostAddr, out)
	}
	if pidAfter := gwPID(); pidBefore == "" || pidAfter != pidBefore {
		t.Errorf("the gateway's service restarted for the host's new address (pid %s, then %s): every sandbox's connections were cut", pidBefore, pidAfter)
	}

	// Two sessions at once keep their own --allow entries: the second one's
	// start does not undo the first's.
	var wg sync.WaitGroup
	var firstOut string
	var firstCode int
	wg.Add(1)
	go func() {
		defer wg.Done()
		o, e, c := w.vibe("--allow", "one.test", "exec", "--", "sh", "-c", "sleep 8; curl -s -o /dev/null -w '%{http_code}' --max-time 10 http://one.test/")
		firstOut, firstCode = o+e, c
	}()
	time.Sleep(4 * time.Second)
	if o, e, c := w.vibe("--allow", "two.test", "exec", "--", "curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "10", "http://two.test/"); c != 0 || !strings.HasSuffix(strings.TrimSpace(o), "200") {
		t.Errorf("the second session's own entry: exit %d %s%s", c, o, e)
	}
	wg.Wait()
	if firstCode != 0 || !strings.HasSuffix(strings.TrimSpace(firstOut), "200") {
		t.Errorf("the first session's entry after a second session started: exit %d %s", firstCode, firstOut)
	}

	// As guest root, with the guest's firewall flushed, a route added and
	// other addresses taken: nothing reaches the internet but through the
	// gateway, and no name is looked up.
	inet.guest("sh", "-c", "rm -f /root/packets.log /root/dns.log")
	attack := `set +e
nft flush ruleset
ip route replace default via "$1" dev eth0
curl -s --noproxy '*' --max-time 3 http://"$2"/ && echo TCP-THROUGH
python3 - "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
for port in (5353, 53):
    try:
        s.sendto(b"leak-udp", (sys.argv[1], port)); print("UDP-ANSWER", s.recvfrom(64))
    except Exception:
        pass
PY
python3 - "$2" <<'PY'
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP); s.settimeout(2)
s.sendto(bytes([8, 0, 0xf7, 0xff, 0, 0, 0, 0]), (sys.argv[1], 0))
try:
    d = s.recvfrom(128)[0]
    if d[(d[0] & 15) * 4] == 0: print("ICMP-THROUGH")
except Exception:
    pass
PY
getent hosts leak-by-resolver.test && echo DNS-THROUGH
python3 - "$1" <<'PY'
import socket, struct, sys
q = struct.pack(">HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x0dleak-dnsmasq2\x04test\x00" + struct.pack(">HH", 1, 1)
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(2)
try:
    s.sendto(q, (sys.argv[1], 53)); d = s.recvfrom(512)[0]
    if struct.unpack(">H", d[6:8])[0] > 0: print("DNS-FORWARDED")
except Exception:
    pass
PY
ip addr add "$3"/24 dev eth0
curl -s --noproxy '*' --max-time 3 --interface "$3" http://"$2"/ && echo SPOOF-THROUGH
ip addr del "$3"/24 dev eth0
# The gateway as a router, and its other ports.
ip route replace default via "$4" dev eth0
curl -s --noproxy '*' --max-time 3 http://"$2"/ && echo ROUTED-THROUGH
timeout 3 bash -c 'exec 3<>/dev/tcp/'"$4"'/22' 2>/dev/null && echo GATEWAY-PORT-OPEN
ip route replace default via "$1" dev eth0
# A nested network namespace behind NAT, as Docker would make one.
unshare -n sleep 60 &
nest=$!
sleep 0.5
in_nest() { nsenter -t "$nest" -n "$@"; }
ip link add vn0 type veth peer name vn1
ip link set vn1 netns "$nest"
ip addr add 172.31.99.1/30 dev vn0
ip link set vn0 up
in_nest ip addr add 172.31.99.2/30 dev vn1
in_nest ip link set vn1 up
in_nest ip route add default via 172.31.99.1
sysctl -qw net.ipv4.ip_forward=1
nft add table ip vnat
nft 'add chain ip vnat post { type nat hook postrouting priority 100; }'
nft add rule ip vnat post oifname eth0 masquerade
in_nest timeout 2 bash -c 'exec 3<>/dev/tcp/172.31.99.1/9' 2>&1 | grep -q refused && echo NEST-UP
in_nest curl -s --max-time 3 http://"$2"/ && echo NESTED-THROUGH
kill "$nest"
true`
	host := bridgeHost(t, w)
	gwAddr := gwAddrOf(t, w)
	// Something listens on the gateway's port 22, so that an open port
	// would show.
	e2e.Exec(t, w.c, gwInstance, "sh", "-c", "setsid python3 -m http.server 22 </dev/null >/dev/null 2>&1 &")
	out, _ = w.guest("bash", "-c", attack, "attack", host, server, strings.TrimSuffix(host, ".1")+".250", gwAddr)
	if !strings.Contains(out, "NEST-UP") {
		t.Errorf("the nested network namespace could not be made, so it proved nothing:\n%s", out)
	}
	for _, leak := range []string{"TCP-THROUGH", "UDP-ANSWER", "ICMP-THROUGH", "DNS-THROUGH", "DNS-FORWARDED", "SPOOF-THROUGH", "NESTED-THROUGH", "ROUTED-THROUGH", "GATEWAY-PORT-OPEN"} {
		if strings.Contains(out, leak) {
			t.Errorf("guest root got out: %s\n%s", leak, out)
		}
	}
	// The logs do see what arrives: one allowed request through the
	// gateway shows up in both (the control for the checks below).
	if got := status("http://control.allowed.test/"); got != "200" {
		t.Errorf("the control request: %s", got)
	}
	time.Sleep(time.Second)
	if dns, _ := inet.guest("sh", "-c", "cat /root/dns.log 2>/dev/null"); !strings.Contains(dns, "control.allowed.test") {
		t.Errorf("the DNS log missed the control request's lookup:\n%s", dns)
	}
	if pk, _ := inet.guest("sh", "-c", "wc -l </root/packets.log 2>/dev/null"); strings.TrimSpace(pk) == "0" || strings.TrimSpace(pk) == "" {
		t.Errorf("the packet log saw nothing of the control request")
	}
	if dns, _ := inet.guest("sh", "-c", "cat /root/dns.log 2>/dev/null"); strings.Contains(dns, "leak") {
		t.Errorf("a name guest root asked for reached the DNS server:\n%s", dns)
	}
	pk, _ := inet.guest("sh", "-c", "cat /root/packets.log 2>/dev/null")
	prefix := strings.TrimSuffix(host, "1")
	for _, line := range strings.Split(strings.TrimSpace(pk), "\n") {
		if strings.HasPrefix(line, prefix) {
			t.Errorf("a packet from the sandbox's bridge arrived at the internet: %s", line)
		}
	}
	// Denied names of the whole run were never looked up by anyone.
	// (The log was reset above; check the run's denied names again now.)
	for _, h := range denied {
		status("http://" + h + "/") // the guest's firewall is gone: the gateway alone decides
	}
	time.Sleep(500 * time.Millisecond)
	if dns, _ := inet.guest("sh", "-c", "cat /root/dns.log 2>/dev/null"); func() bool {
		for _, h := range denied {
			if strings.Contains(dns, h) {
				return true
			}
		}
		return false
	}() {
		t.Errorf("a denied name was looked up:\n%s", dns)
	}
	// vibe config puts the guest's own layer back; the self-test proves it.
	w.must("config")
	// vibe rm makes the gateway forget the sandbox.
	w.must("rm")
	if _, code := e2e.Exec(t, w.c, gwInstance, "test", "-e", "/run/vibe-gateway/sandboxes/"+sandboxAddr); code == 0 {
		t.Error("the gateway still holds the policy of a removed sandbox")
	}
}

// otherSubnet is a test subnet (a /24's first three parts) that neither
// the host nor the test's internet (at server) is on.
func otherSubnet(t *testing.T, server string) string {
	addrs, _ := net.InterfaceAddrs()
next:
	for _, prefix := range []string{"203.0.113", "198.18.7", "198.51.100"} {
		if strings.HasPrefix(server, prefix+".") {
			continue
		}
		_, cidr, _ := net.ParseCIDR(prefix + ".0/24")
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && cidr.Contains(ipn.IP) {
				continue next
			}
		}
		return prefix
	}
	t.Fatal("no free test subnet")
	return ""
}

// bridgeHost is the host's address on the gateway's bridge.
func bridgeHost(t *testing.T, w *world) string {
	return strings.SplitN(mustNetwork(t, w, gwNet).Config["ipv4.address"], "/", 2)[0]
}

// gwAddrOf is the gateway's address on its bridge.
func gwAddrOf(t *testing.T, w *world) string {
	return strings.TrimSuffix(bridgeHost(t, w), "1") + "2"
}

func mustNetwork(t *testing.T, w *world, name string) *api.Network {
	t.Helper()
	n, _, err := w.c.GetNetwork(name)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// The gateway is on unless the user's own file turns it off, and a machine
// that gives it no way out gets no sandbox at all: vibe refuses, says what
// to run, and doctor fails the same check, instead of running the sandbox
// with the guest's own layer alone.
func TestE2EGatewayByDefaultFailsClosed(t *testing.T) {
	w := newWorld(t)
	const net, inst = "vibe-e2e-gwd", "vibe-e2e-gwd"
	if p, _, err := w.c.GetProfile("default"); err != nil || hasNIC(p.Devices) {
		t.Fatalf("this test needs a default profile without a network device, as make testenv leaves it: %v", err)
	}
	removeGateway(w.c, net, inst)
	t.Cleanup(func() { removeGateway(w.c, net, inst) })
	// The built-in default, with the test's own names: no enabled, no uplink.
	for _, p := range []string{filepath.Join(w.dir, "vibe.yaml"), filepath.Join(w.dir, "config", "vibe", "vibe.yaml")} {
		cfg, _ := os.ReadFile(p)
		os.WriteFile(p, []byte(withEgress(t, string(cfg), "egress:\n  gateway:\n    network: "+net+"\n    instance: "+inst+"\n")), 0o644)
	}
	_, stderr, code := w.vibe("up")
	if code == 0 || !strings.Contains(stderr, "no way out") || !strings.Contains(stderr, "sudo vibe setup") {
		t.Errorf("vibe up without an uplink for the gateway: exit %d, want a refusal that names vibe setup:\n%s", code, stderr)
	}
	if _, _, err := w.c.GetInstance(w.instance()); err == nil {
		t.Errorf("the sandbox %s was made although its gateway could not be", w.name)
	}
	if _, _, err := w.c.GetInstance(inst); err == nil {
		t.Errorf("a gateway %s was made with no way out", inst)
	}
	out, _, code := w.vibe("doctor")
	if code == 0 || !strings.Contains(out, "FAIL gateway uplink") || !strings.Contains(out, "sudo vibe setup") {
		t.Errorf("vibe doctor without an uplink: exit %d, want the uplink failed:\n%s", code, out)
	}
}

func hasNIC(devices map[string]map[string]string) bool {
	for _, d := range devices {
		if d["type"] == "nic" {
			return true
		}
	}
	return false
}
