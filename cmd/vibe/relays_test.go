package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vibesandbox/vibe/sandbox"
)

// TestRelayHolder is not a test: it is the other vibe that holds a relay
// record, started by the tests below (a POSIX lock shows only to other
// processes).
func TestRelayHolder(t *testing.T) {
	if os.Getenv("VIBE_TEST_RELAY_HOLDER") == "" {
		return
	}
	release, err := holdRelay("app", os.Getenv("VIBE_TEST_RELAY_REMOTE"), sandbox.Port{Guest: 3000, Host: 13000}, sandbox.Relayed{UUID: "u1"})
	if err != nil {
		os.Stdout.WriteString("error " + err.Error() + "\n")
		os.Exit(1)
	}
	os.Stdout.WriteString("holding\n")
	os.Stdin.Read(make([]byte, 1)) // until the test closes it
	release()
	os.Exit(0)
}

func startHolder(t *testing.T, remote string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelayHolder$")
	cmd.Env = append(os.Environ(), "VIBE_TEST_RELAY_HOLDER=1", "VIBE_TEST_RELAY_REMOTE="+remote)
	in, _ := cmd.StdinPipe()
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); cmd.Wait() })
	if line, _ := bufio.NewReader(out).ReadString('\n'); line != "holding\n" {
		t.Fatalf("the holder says %q", line)
	}
	return cmd
}

// A running relay is found with the pid the kernel gives for its lock; a
// second relay of the same host port is refused; another remote's
// sandbox of the same name does not see it.
func TestRelayRecordsName(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	holder := startHolder(t, "")
	live := liveRelays("app", "")
	if len(live) != 1 || live[0].PID != holder.Process.Pid || live[0].Host != 13000 || live[0].Guest != 3000 || live[0].UUID != "u1" {
		t.Fatalf("live relays %+v, want the holder's (pid %d)", live, holder.Process.Pid)
	}
	if got := liveRelays("app", "elsewhere"); len(got) != 0 {
		t.Errorf("another remote's sandbox sees %+v", got)
	}
	if _, err := holdRelay("app", "", sandbox.Port{Guest: 3001, Host: 13000}, sandbox.Relayed{UUID: "u1"}); err == nil || !strings.Contains(err.Error(), "another vibe relays host port 13000") {
		t.Errorf("a second relay of the same host port: %v", err)
	}
	if ports := relayPorts("app", "", nil); len(ports) != 1 || ports[0] != (sandbox.Port{Guest: 3000, Host: 13000, Relay: holder.Process.Pid}) {
		t.Errorf("relay ports %+v", ports)
	}
}

// A record nobody holds (its vibe crashed) names no process, whatever pid
// or port it claims: nothing is listed and --rm signals nobody.
func TestStaleRelayRecordSignalsNobody(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	dir, _ := relayDir("app")
	os.MkdirAll(dir, 0o700)
	os.WriteFile(filepath.Join(dir, "13000.json"), []byte(`{"remote":"","guest":3000,"host":13000,"uuid":"u1","pid":1}`), 0o600)
	if got := liveRelays("app", ""); len(got) != 0 {
		t.Errorf("a stale record is listed: %+v", got)
	}
	if found, err := endRelay("app", "", 13000); found || err != nil {
		t.Errorf("--rm of a stale record: found %v, %v", found, err)
	}
	// A new relay takes the stale record over.
	release, err := holdRelay("app", "", sandbox.Port{Guest: 3000, Host: 13000}, sandbox.Relayed{UUID: "u2"})
	if err != nil {
		t.Fatal(err)
	}
	release()
	if _, err := os.Stat(filepath.Join(dir, "13000.json")); !os.IsNotExist(err) {
		t.Errorf("the record outlived its relay: %v", err)
	}
}

// A record that is a symlink is not followed, by the relay or by status.
func TestRelayRecordSymlinkNotFollowed(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	dir, _ := relayDir("app")
	os.MkdirAll(dir, 0o700)
	target := filepath.Join(t.TempDir(), "elsewhere")
	os.WriteFile(target, []byte("keep"), 0o600)
	os.Symlink(target, filepath.Join(dir, "13000.json"))
	if _, err := holdRelay("app", "", sandbox.Port{Guest: 3000, Host: 13000}, sandbox.Relayed{UUID: "u1"}); err == nil {
		t.Error("the relay wrote its record through a symlink")
	}
	if b, _ := os.ReadFile(target); string(b) != "keep" {
		t.Errorf("the symlink's target was changed: %q", b)
	}
}

// --rm pins the process before it signals: a relay that ended after vibe
// looked at its record, its pid now another process's, signals nobody; a
// relay still holding its record gets the signal and ends.
func TestRelayEndSignalsOnlyTheHolder(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", t.TempDir())
	holder := startHolder(t, "")
	live := liveRelays("app", "")
	if len(live) != 1 {
		t.Fatalf("live relays %+v", live)
	}
	// The same record as looked at, but its pid is now a bystander's.
	bystander := exec.Command("sleep", "60")
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { bystander.Process.Kill(); bystander.Wait() })
	reused := live[0]
	reused.PID = bystander.Process.Pid
	if err := signalHolder(reused, unix.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// A SIGTERM ends sleep at once; give it half a second to show.
	for range 10 {
		time.Sleep(50 * time.Millisecond)
		if stat, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", bystander.Process.Pid)); strings.Contains(string(stat), ") Z ") {
			t.Fatal("the bystander was signalled")
		}
	}
	if found, err := endRelay("app", "", 13000); !found || err != nil {
		t.Fatalf("--rm: found %v, %v", found, err)
	}
	err := holder.Wait()
	if ws, ok := holder.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
		t.Errorf("the holder did not end by SIGTERM: %v", err)
	}
}
