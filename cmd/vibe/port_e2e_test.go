package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
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
	// Only the loopback: no other address of this machine listens.
	if addrs, _ := net.InterfaceAddrs(); len(addrs) > 0 {
		for _, a := range addrs {
			ip, _, _ := net.ParseCIDR(a.String())
			if ip == nil || ip.IsLoopback() || ip.To4() == nil {
				continue
			}
			if c, err := net.DialTimeout("tcp", net.JoinHostPort(ip.String(), fmt.Sprint(host)), time.Second); err == nil {
				c.Close()
				t.Errorf("the port also answers on %s", ip)
			}
		}
	}
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
