package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/creack/pty"
)

// console is the host side of a real terminal that vibe runs on.
type console struct {
	t   *testing.T
	pty *os.File
	mu  sync.Mutex
	out bytes.Buffer
}

func (c *console) read() {
	buf := make([]byte, 4096)
	for {
		n, err := c.pty.Read(buf)
		c.mu.Lock()
		c.out.Write(buf[:n])
		c.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (c *console) send(s string) {
	c.t.Helper()
	if _, err := c.pty.Write([]byte(s)); err != nil {
		c.t.Fatalf("write to the terminal: %v", err)
	}
}

// await waits (bounded) for re to match what the terminal showed after
// offset, and returns the submatches and the offset after the match.
func (c *console) await(re *regexp.Regexp, offset int, what string) ([]string, int) {
	c.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		seen := c.out.String()[offset:]
		c.mu.Unlock()
		if loc := re.FindStringSubmatchIndex(seen); loc != nil {
			m := make([]string, len(loc)/2)
			for i := range m {
				if loc[2*i] >= 0 {
					m[i] = seen[loc[2*i]:loc[2*i+1]]
				}
			}
			return m, offset + loc[1]
		}
		time.Sleep(50 * time.Millisecond)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t.Fatalf("waited 20s for %s; the terminal showed:\n%q", what, c.out.String()[offset:])
	return nil, 0
}

// vibe shell on a real terminal: the guest's pseudo-terminal takes the
// host terminal's size and follows it when the window is resized, the host
// side is raw (Ctrl-C reaches the guest's foreground command instead of
// killing vibe), and the shell's exit status comes back.
func TestE2ETerminal(t *testing.T) {
	w := newWorld(t)
	w.must("up")

	cmd := exec.Command(vibeBin, "--config", filepath.Join(w.dir, "vibe.yaml"), "shell", "app")
	cmd.Dir = w.dir
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(w.dir, "config"), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"), "HOME="+w.dir, "TERM=xterm")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Rows: 24, Cols: 80})
	if err != nil {
		t.Fatalf("start vibe shell on a terminal: %v", err)
	}
	defer f.Close()
	c := &console{t: t, pty: f}
	go c.read()
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
		}
	})

	// The guest echoes the command line too; only the output has "S=rows cols=E".
	size := regexp.MustCompile(`S=(\d+ \d+)=E`)
	c.send("echo \"S=$(stty size)=E\"\n")
	m, off := c.await(size, 0, "the guest's terminal size")
	if m[1] != "24 80" {
		t.Errorf("guest terminal size %q, want the host's 24 80", m[1])
	}

	// Resizing the host terminal sends vibe SIGWINCH; the guest follows.
	if err := pty.Setsize(f, &pty.Winsize{Rows: 40, Cols: 132}); err != nil {
		t.Fatal(err)
	}
	var got string
	for range 40 {
		c.send("echo \"S=$(stty size)=E\"\n")
		m, off = c.await(size, off, "the guest's terminal size after a resize")
		if got = m[1]; got == "40 132" {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if got != "40 132" {
		t.Errorf("guest terminal size %q after the host's resize, want 40 132", got)
	}

	// Raw mode: Ctrl-C is a byte for the guest, which interrupts its
	// foreground command; vibe and the shell go on.
	c.send("sleep 60\n")
	time.Sleep(time.Second)
	c.send("\x03")
	c.send("echo \"R=$((6*7))=E\"\n")
	c.await(regexp.MustCompile(`R=42=E`), off, "the shell after Ctrl-C interrupted sleep (within 20s, sleep was 60s)")

	c.send("exit 7\n")
	select {
	case err := <-done:
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
			t.Errorf("vibe shell ended with %v, want exit status 7", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("vibe shell did not end within 30s of exit 7")
	}
}
