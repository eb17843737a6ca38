package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/sandbox"
)

// vibe port: a dev server on the sandbox's loopback answers on this
// machine's 127.0.0.1 (and nowhere else), is listed by vibe status, and is
// gone after vibe restore.
func TestE2EPortForward(t *testing.T) {
	w := newWorld(t)
	t.Cleanup(func() { w.vibe("rm") })
	w.must("up")
	// A free host port, found by the kernel.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	host := l.Addr().(*net.TCPAddr).Port
	l.Close()

	// The sandbox user's server, on the guest's loopback only.
	if _, code := w.guest("sh", "-c", "mkdir -p /tmp/site && echo hello-from-the-sandbox > /tmp/site/index.html && chown -R vibe /tmp/site && cd /tmp/site && setsid runuser -u vibe -- python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null &"); code != 0 {
		t.Fatal("start the guest's server")
	}
	out := w.must("port", fmt.Sprintf("8000:%d", host))
	if !strings.Contains(out, fmt.Sprintf("http://127.0.0.1:%d -> %s:8000", host, w.name)) {
		t.Errorf("vibe port says %q", out)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", host)
	var body string
	for i := 0; i < 40; i++ {
		if r, err := http.Get(url); err == nil {
			b, _ := io.ReadAll(r.Body)
			r.Body.Close()
			body = string(b)
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if !strings.Contains(body, "hello-from-the-sandbox") {
		t.Fatalf("the forwarded port answered %q", body)
	}
	onlyLoopback(t, host)
	// Listed; again is a no-op; another guest port on the same host port
	// is refused.
	if st := w.must("status"); !strings.Contains(st, fmt.Sprintf("port       http://127.0.0.1:%d -> 8000", host)) {
		t.Errorf("vibe status does not list the port:\n%s", st)
	}
	w.must("port", fmt.Sprintf("8000:%d", host))
	if _, errOut, code := w.vibe("port", fmt.Sprintf("8001:%d", host)); code == 0 || !strings.Contains(errOut, "already forwards") {
		t.Errorf("a second forward on the same host port: exit %d %s", code, errOut)
	}
	var listed []sandbox.Port
	if err := json.Unmarshal([]byte(w.must("port", "--json")), &listed); err != nil || len(listed) != 1 || listed[0] != (sandbox.Port{Guest: 8000, Host: host}) {
		t.Errorf("vibe port --json: %v %v", listed, err)
	}

	// restore makes a new sandbox from the image: the forward is gone.
	w.must("restore")
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", host), time.Second); err == nil {
		c.Close()
		t.Error("the port still answers after vibe restore")
	}
	if st := w.must("status"); strings.Contains(st, "port ") {
		t.Errorf("vibe status lists a port after restore:\n%s", st)
	}
	// Forwarded again, then stopped with --rm.
	w.guest("sh", "-c", "cd /tmp && setsid runuser -u vibe -- python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null &")
	w.must("port", fmt.Sprintf("8000:%d", host))
	if out := w.must("port", "--rm", fmt.Sprint(host)); !strings.Contains(out, "no longer reaches") {
		t.Errorf("--rm says %q", out)
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", host), time.Second); err == nil {
		c.Close()
		t.Error("the port still answers after --rm")
	}
	// --rm of a port that is not forwarded says so.
	if _, errOut, code := w.vibe("port", "--rm", fmt.Sprint(host)); code == 0 || !strings.Contains(errOut, "forwards nothing") {
		t.Errorf("--rm of nothing: exit %d %s", code, errOut)
	}
}

// The status line (Claude Code runs it with the session on stdin) shows
// the sandbox, its egress mode, red OFF when the operator opened it, and
// the image vibe told the guest about, as root, at the start.
func TestE2EStatusLine(t *testing.T) {
	w := newWorld(t)
	t.Cleanup(func() { w.vibe("rm") })
	w.must("up")
	session := `{"model":{"display_name":"Opus"},"workspace":{"current_dir":"/workspace/app"},"context_window":{"context_window_size":200000,"current_usage":{"input_tokens":50000}}}`
	line := func() string {
		out, errOut, code := w.vibe("exec", "--", "sh", "-c", "printf '%s' \"$1\" | /usr/local/bin/vibe-statusline", "sh", session)
		if code != 0 {
			t.Fatalf("vibe-statusline: exit %d %s", code, errOut)
		}
		return out
	}
	img, _, err := w.c.GetImageAlias("vibe-offline")
	if err != nil {
		t.Fatal(err)
	}
	out := line()
	for _, want := range []string{"vibe " + w.name + " │ egress allowlist │ image " + img.Target[:12] + " │ app", "│ Opus │ ctx 25%"} {
		if !strings.Contains(out, want) {
			t.Errorf("status line %q lacks %q", out, want)
		}
	}
	// Only root writes what it reads; the agent cannot.
	if _, _, code := w.vibe("exec", "--", "sh", "-c", "echo '{\"egress\":\"allowlist\"}' > /run/vibe-status.json"); code == 0 {
		t.Error("the sandbox user wrote the status line's facts")
	}
	if _, _, code := w.vibe("exec", "--", "sh", "-c", "echo '{}' > /etc/claude-code/managed-settings.json"); code == 0 {
		t.Error("the sandbox user rewrote the managed settings")
	}
	w.must("firewall", "off")
	if out := line(); !strings.Contains(out, "\x1b[1;31megress OFF") {
		t.Errorf("with the firewall off the status line says %q", out)
	}
	w.must("firewall", "on")
	if out := line(); !strings.Contains(out, "egress allowlist") {
		t.Errorf("with the firewall on again the status line says %q", out)
	}
}

// startRelay runs vibe port --relay in the background, as a VM's port
// runs, and returns it once it says it listens.
func (w *world) startRelay(spec string) (*exec.Cmd, *bytes.Buffer) {
	w.t.Helper()
	cmd := exec.Command(vibeBin, "--config", filepath.Join(w.dir, "vibe.yaml"), "port", "--relay", spec)
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(w.dir, "config"), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"), "HOME="+w.dir)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	out, err := cmd.StdoutPipe()
	if err != nil {
		w.t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	w.t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || !strings.Contains(line, "this vibe relays it while it runs") {
		w.t.Fatalf("vibe port --relay %s: %q %v\n%s", spec, line, err, errb.String())
	}
	return cmd, &errb
}

// waitExit waits for cmd to end by itself and returns its exit code.
func waitExit(t *testing.T, cmd *exec.Cmd, within time.Duration) int {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(within):
		t.Fatalf("vibe port --relay still runs after %s", within)
		return -1
	}
}

// The relay that VMs get (incus proxies into a VM only by NAT, which the
// sandbox's network does not let in), run here on a container with
// --relay: the same requests reach the daemon either way. It answers on
// the host's loopback only, carries data unchanged and in parallel, runs
// its guest half as the sandbox user, is listed while it runs, and ends
// with --rm and by itself at vibe restore.
func TestE2EPortRelay(t *testing.T) {
	w := newWorld(t)
	t.Cleanup(func() { w.vibe("rm") })
	w.must("up")
	host, other := freePort(t), freePort(t)
	if _, code := w.guest("sh", "-c", "mkdir -p /tmp/site && echo hello-from-the-sandbox > /tmp/site/index.html && head -c 8388608 /dev/urandom > /tmp/site/big && chown -R vibe /tmp/site && cd /tmp/site && setsid runuser -u vibe -- python3 -m http.server 8000 --bind 127.0.0.1 >/dev/null 2>&1 < /dev/null &"); code != 0 {
		t.Fatal("start the guest's server")
	}
	sum, _ := w.guest("sh", "-c", "sha256sum /tmp/site/big | cut -d' ' -f1")
	relay, relayErr := w.startRelay(fmt.Sprintf("8000:%d", host))
	get := func(path string) (string, error) {
		var err error
		for i := 0; i < 40; i++ {
			var r *http.Response
			if r, err = http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", host, path)); err == nil {
				b, rerr := io.ReadAll(r.Body)
				r.Body.Close()
				return string(b), rerr
			}
			time.Sleep(250 * time.Millisecond)
		}
		return "", err
	}
	if body, err := get("/"); !strings.Contains(body, "hello-from-the-sandbox") {
		t.Fatalf("the relayed port answered %q %v", body, err)
	}
	// Figures for the note, not assertions: a request on a new connection
	// (one exec each), and one 8 MiB download.
	var lat []time.Duration
	for i := 0; i < 10; i++ {
		t0 := time.Now()
		get("/")
		lat = append(lat, time.Since(t0))
	}
	slices.Sort(lat)
	t0 := time.Now()
	get("/big")
	t.Logf("relay: a request on a new connection %s (median of 10), 8 MiB in %s", lat[5], time.Since(t0))
	// 8 MiB, 6 at once (a browser's share of connections): unchanged.
	var wg sync.WaitGroup
	for i := 0; i < 6; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			body, err := get("/big")
			if got := fmt.Sprintf("%x", sha256.Sum256([]byte(body))); got != strings.TrimSpace(sum) {
				t.Errorf("a parallel download came through as %d bytes, sha256 %s, want %s (%v)", len(body), got, strings.TrimSpace(sum), err)
			}
		}()
	}
	wg.Wait()
	// The guest half runs as the sandbox user, never as root.
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", host))
	if err != nil {
		t.Fatal(err)
	}
	var who string
	for i := 0; i < 20 && who == ""; i++ {
		time.Sleep(100 * time.Millisecond)
		who, _ = w.guest("sh", "-c", "ps -eo user:20,args | grep '[p]ython3 -I -c' | cut -d' ' -f1 | sort -u")
	}
	c.Close()
	if strings.TrimSpace(who) != "vibe" {
		t.Errorf("the guest half runs as %q, want the sandbox user only", who)
	}
	onlyLoopback(t, host)
	// Listed, with the pid that relays it; a second relay of the same host
	// port is refused.
	if st := w.must("status"); !strings.Contains(st, fmt.Sprintf("port       http://127.0.0.1:%d -> 8000 (relayed by vibe pid %d while it runs)", host, relay.Process.Pid)) {
		t.Errorf("vibe status does not list the relay:\n%s", st)
	}
	var listed []sandbox.Port
	if err := json.Unmarshal([]byte(w.must("port", "--json")), &listed); err != nil || len(listed) != 1 || listed[0] != (sandbox.Port{Guest: 8000, Host: host, Relay: relay.Process.Pid}) {
		t.Errorf("vibe port --json: %v %v", listed, err)
	}
	if _, errOut, code := w.vibe("port", "--relay", fmt.Sprintf("8001:%d", host)); code == 0 || !strings.Contains(errOut, "is taken on 127.0.0.1") {
		t.Errorf("a second relay on the same host port: exit %d %s", code, errOut)
	}
	// A guest port nobody listens on: the connection closes, and the relay
	// says which port refused.
	idle, idleErr := w.startRelay(fmt.Sprintf("8002:%d", other))
	if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", other)); err == nil {
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		if n, _ := c.Read(make([]byte, 1)); n != 0 {
			t.Error("a relay to a closed guest port answered")
		}
		c.Close()
	}
	// --rm ends a relay.
	if out := w.must("port", "--rm", fmt.Sprint(other)); !strings.Contains(out, "no longer reaches") {
		t.Errorf("--rm of a relay says %q", out)
	}
	waitExit(t, idle, 10*time.Second)
	if !strings.Contains(idleErr.String(), "refused a connection: nothing answers on 127.0.0.1:8002") {
		t.Errorf("the relay to a closed port said %q", idleErr.String())
	}
	// restore makes a new instance: the relay ends by itself and says why.
	w.must("restore")
	if code := waitExit(t, relay, 10*time.Second); code == 0 || !strings.Contains(relayErr.String(), "run vibe port again") {
		t.Errorf("the relay after restore: exit %d %q", code, relayErr.String())
	}
	if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", host), time.Second); err == nil {
		c.Close()
		t.Error("the relayed port still answers after vibe restore")
	}
	if st := w.must("status"); strings.Contains(st, "port ") {
		t.Errorf("vibe status lists a port after restore:\n%s", st)
	}
}

// freePort is a free port of the host's loopback, found by the kernel.
func freePort(t *testing.T) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// onlyLoopback checks that no other address of this machine answers on
// host port.
func onlyLoopback(t *testing.T, port int) {
	t.Helper()
	addrs, _ := net.InterfaceAddrs()
	for _, a := range addrs {
		ip, _, _ := net.ParseCIDR(a.String())
		if ip == nil || ip.IsLoopback() || ip.To4() == nil {
			continue
		}
		if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), fmt.Sprint(port)), time.Second); err == nil {
			c.Close()
			t.Errorf("port %d also answers on %s", port, ip)
		}
	}
}
