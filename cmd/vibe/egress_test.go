package main

// Egress, tested for real: a sandbox on an isolated incus bridge (no host
// address, no DHCP from incus, no NAT) whose only neighbour is an instance
// of this test playing "the internet" (DHCP, DNS for *.test, HTTP on 80,
// 443 and 8443, UDP echo). No packet can leave the bridge, so nothing is
// sent outside this machine.

import (
	"net"
	"os"
	"strings"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/internal/e2e"
)

const (
	egressNet  = "vibe-e2e-net"
	internetVM = "vibe-e2e-inet"
)

// freeSubnet picks a /24 prefix the host has no address in.
func freeSubnet(t *testing.T) string {
	addrs, _ := net.InterfaceAddrs()
	for _, prefix := range []string{"198.51.100", "203.0.113", "198.18.7"} {
		_, cidr, _ := net.ParseCIDR(prefix + ".0/24")
		used := false
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok && cidr.Contains(ipn.IP) {
				used = true
			}
		}
		if !used {
			return prefix
		}
	}
	t.Fatal("no free test subnet")
	return ""
}

func setupInternet(t *testing.T, c incus.InstanceServer) string {
	t.Helper()
	prefix := freeSubnet(t)
	e2e.ForceDelete(c, internetVM)
	_ = c.DeleteNetwork(egressNet) // left by an interrupted run
	err := c.CreateNetwork(api.NetworksPost{Name: egressNet, Type: "bridge", NetworkPut: api.NetworkPut{
		Config: map[string]string{"ipv4.address": "none", "ipv6.address": "none"},
	}})
	if err != nil {
		t.Fatalf("create the isolated bridge: %v", err)
	}
	t.Cleanup(func() { c.DeleteNetwork(egressNet) })
	addr := prefix + ".2"
	netcfg := "version: 1\nconfig:\n  - type: physical\n    name: eth0\n    subnets:\n      - type: static\n        address: " + addr + "/24\n"
	op, err := c.CreateInstance(api.InstancesPost{
		Name:   internetVM,
		Source: api.InstanceSource{Type: "image", Alias: "vibe-test-base"},
		InstancePut: api.InstancePut{
			Config:  map[string]string{"cloud-init.network-config": netcfg},
			Devices: map[string]map[string]string{"eth0": {"type": "nic", "network": egressNet, "name": "eth0"}},
		},
		Start: true,
	})
	if err == nil {
		err = op.Wait()
	}
	if err != nil {
		t.Fatalf("create the internet instance: %v", err)
	}
	t.Cleanup(func() { e2e.ForceDelete(c, internetVM) })
	script, err := os.ReadFile("testdata/internet.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateInstanceFile(internetVM, "/root/internet.py", incus.InstanceFileArgs{Content: strings.NewReader(string(script)), Mode: 0o755, Type: "file", WriteMode: "overwrite"}); err != nil {
		t.Fatal(err)
	}
	w := &world{t: t, c: c, name: internetVM}
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := w.guest("ip", "-4", "-br", "addr", "show", "eth0")
		if strings.Contains(out, addr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the internet instance never got %s: %s", addr, out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	w.guest("sh", "-c", "setsid python3 /root/internet.py "+addr+" "+secretValue+" >/root/internet.log 2>&1 < /dev/null &")
	return addr
}

func TestE2EEgress(t *testing.T) {
	w := newWorld(t)
	server := setupInternet(t, w.c)
	t.Logf("internet at %s on bridge %s", server, egressNet)
	// Cleanups run last-first: the sandbox must leave the bridge before the
	// bridge can go.
	t.Cleanup(func() {
		w.vibe("rm")
		_ = w.c.DeleteNetwork(egressNet)
	})

	// The sandbox joins the isolated bridge; allowed.test is allowed for this run.
	out, stderr, code := w.vibe("--network", egressNet, "--allow", "allowed.test", "up")
	if code != 0 {
		t.Fatalf("up on the isolated bridge: %s%s", out, stderr)
	}
	// It learned its resolver from DHCP, and the firewall admitted it.
	if out, _ := w.guest("nft", "list", "set", "inet", "vibe", "resolvers"); !strings.Contains(out, server) {
		diag, _ := w.guest("sh", "-c", "cat /etc/resolv.conf; ip -br addr; systemctl is-system-running; journalctl -b --no-pager | grep -iE 'dhclient|vibe-firewall|networking' | tail -20")
		t.Fatalf("the firewall did not learn the resolver %s:\n%s\n%s", server, out, diag)
	}

	// sh runs a command as the sandbox user, through vibe exec (with the
	// per-run allowlist entry, as a user's session would have it).
	sh := func(script string) (string, int) {
		out, errOut, code := w.vibe("--network", egressNet, "--allow", "allowed.test", "exec", "--", "sh", "-c", script)
		return out + errOut, code
	}
	status := func(args string) string {
		out, _ := sh("curl -s -o /dev/null -w '%{http_code}' --max-time 10 " + args)
		return strings.TrimSpace(out[len(out)-3:])
	}
	tunnel := func(hostport string) string {
		out, _ := sh("curl -s -o /dev/null -w '%{http_connect}' --max-time 10 --proxytunnel http://" + hostport + "/")
		return strings.TrimSpace(out[len(out)-3:])
	}

	// An allowed name through the proxy works, plain and tunnelled to 443.
	if out, code := sh("curl -sS --max-time 10 http://www.allowed.test/"); code != 0 || !strings.Contains(out, "hello from www.allowed.test:80") {
		t.Errorf("allowed name: exit %d %s", code, out)
	}
	if out, code := sh("curl -sS --max-time 10 --proxytunnel http://api.allowed.test:443/"); code != 0 || !strings.Contains(out, ":443") {
		t.Errorf("allowed name through CONNECT to 443: exit %d %s", code, out)
	}
	// A denied name and lookalikes are refused by the proxy.
	for _, host := range []string{"denied.test", "allowed.test.evil.test", "evilallowed.test", "allowed.testx.test"} {
		if got := status("http://" + host + "/"); got != "403" {
			t.Errorf("GET %s: HTTP %s, want 403", host, got)
		}
	}
	if got := tunnel("evil.test:443"); got != "403" {
		t.Errorf("CONNECT evil.test:443: %s, want 403", got)
	}
	// CONNECT to another port of an allowed name is refused.
	if got := tunnel("allowed.test:8443"); got != "403" {
		t.Errorf("CONNECT allowed.test:8443: %s, want 403", got)
	}
	// Direct TCP and UDP by IP, around the proxy, fail.
	if out, code := sh("curl -sS --noproxy '*' --max-time 5 http://" + server + "/"); code == 0 {
		t.Errorf("direct TCP by IP got through: %s", out)
	}
	if out, code := sh("curl -sS --noproxy '*' --max-time 5 http://" + server + ":8443/"); code == 0 {
		t.Errorf("direct TCP to 8443 by IP got through: %s", out)
	}
	udp := `python3 -c "
import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3)
try:
  s.sendto(b'ping',('` + server + `',5353));print(s.recvfrom(64)[0].decode())
except Exception as e:
  print('blocked',type(e).__name__);sys.exit(1)"`
	if out, code := sh(udp); code == 0 {
		t.Errorf("direct UDP by IP got an answer: %s", out)
	}
	// The sandbox user cannot switch the firewall off or flush nftables.
	if _, code := sh("/usr/local/sbin/vibe-firewall off"); code == 0 {
		t.Error("the sandbox user switched the firewall off")
	}
	if _, code := sh("nft flush ruleset"); code == 0 {
		t.Error("the sandbox user flushed nftables")
	}
	if out, code := sh("curl -sS --noproxy '*' --max-time 5 http://" + server + "/"); code == 0 {
		t.Errorf("direct TCP after the sandbox user's attempts: %s", out)
	}

	// Nothing connects in: servers the agent starts, TCP and UDP, answer
	// no one on the bridge (and port isolation keeps sandboxes apart).
	sh(`setsid python3 -m http.server 8000 --bind 0.0.0.0 </dev/null >/dev/null 2>&1 &
setsid python3 -c "
import socket
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.bind(('0.0.0.0',9999))
while True:
  d,a=s.recvfrom(64);open('/tmp/udp-in','ab').write(d);s.sendto(b'pong',a)" </dev/null >/dev/null 2>&1 &
sleep 1`)
	addrOut, _ := w.guest("sh", "-c", "ip -4 -o addr show eth0 | awk '{ print $4 }' | cut -d/ -f1")
	sandboxAddr := strings.TrimSpace(addrOut)
	if out, code := w.guest("sh", "-c", "ss -Hltn 'sport = :8000' | wc -l"); code != 0 || strings.TrimSpace(out) != "1" {
		t.Fatalf("the agent's server does not listen: %s", out)
	}
	inet := &world{t: t, c: w.c, name: internetVM}
	if out, code := inet.guest("curl", "-sS", "--max-time", "5", "http://"+sandboxAddr+":8000/"); code == 0 {
		t.Errorf("an inbound TCP connection to the agent's server was answered: %s", out)
	}
	inbound := `python3 -c "
import socket,sys
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM);s.settimeout(3)
s.sendto(b'in',('` + sandboxAddr + `',9999))
try: print(s.recvfrom(64)[0].decode())
except Exception as e: print('no answer',type(e).__name__);sys.exit(1)"`
	if out, code := inet.guest("sh", "-c", inbound); code == 0 {
		t.Errorf("an inbound UDP datagram was answered: %s", out)
	}
	if out, _ := w.guest("sh", "-c", "cat /tmp/udp-in 2>/dev/null"); out != "" {
		t.Errorf("an inbound UDP datagram reached the agent's listener: %q", out)
	}
	if inst, _, err := w.c.GetInstance(w.instance()); err == nil && inst.ExpandedDevices["eth0"]["security.port_isolation"] != "true" {
		t.Errorf("the sandbox's NIC is not port-isolated: %v", inst.ExpandedDevices["eth0"])
	}

	// The operator opens egress and closes it again.
	w.must("firewall", "off")
	if out, code := sh("curl -sS --noproxy '*' --max-time 10 http://" + server + "/"); code != 0 || !strings.Contains(out, "hello from") {
		t.Errorf("with the firewall off, direct TCP: exit %d %s", code, out)
	}
	if out, code := sh(udp); code != 0 || !strings.Contains(out, "ping") {
		t.Errorf("with the firewall off, direct UDP: exit %d %s", code, out)
	}
	w.must("firewall", "on")
	if out, code := sh("curl -sS --noproxy '*' --max-time 5 http://" + server + "/"); code == 0 {
		t.Errorf("after firewall on, direct TCP got through: %s", out)
	}
	if out, code := sh("curl -sS --max-time 10 http://www.allowed.test/"); code != 0 || !strings.Contains(out, "hello from") {
		t.Errorf("after firewall on, the allowed name: exit %d %s", code, out)
	}
}
