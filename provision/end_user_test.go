package provision

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// end-user ends every process of the user, a detached one and one whose
// first thread has ended included, and leaves everyone else's.
func TestEndUserEndsEveryProcessOfTheUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("ends another user's processes: run as root")
	}
	// A uid of the test's own, which nothing on this machine runs as:
	// end-user ends every process of the uid it is given.
	uid := 0
	for u := 3_900_000_000 + os.Getpid()%1000; uid == 0; u++ {
		if out, _ := exec.Command("ps", "-L", "-U", strconv.Itoa(u), "-o", "pid=").Output(); len(strings.TrimSpace(string(out))) == 0 {
			uid = u
		}
	}
	gid := uid
	var left []*exec.Cmd
	for range 3 {
		c := exec.Command("sleep", "600")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		left = append(left, c)
	}
	mine := exec.Command("sleep", "600")
	if err := mine.Start(); err != nil {
		t.Fatal(err)
	}
	defer mine.Process.Kill()
	out, err := exec.Command("bash", "end-user", strconv.Itoa(uid)).CombinedOutput()
	if err != nil {
		t.Fatalf("end-user: %v\n%s", err, out)
	}
	for _, c := range left {
		done := make(chan error, 1)
		go func() { done <- c.Wait() }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			c.Process.Kill()
			t.Errorf("process %d of uid %d is still running", c.Process.Pid, uid)
		}
	}
	if err := mine.Process.Signal(syscall.Signal(0)); err != nil {
		t.Errorf("another user's process ended too: %v", err)
	}
	for _, bad := range []string{"0", "", "x", "-1"} {
		if out, err := exec.Command("bash", "end-user", bad).CombinedOutput(); err == nil || !strings.Contains(string(out), "not a user's uid") {
			t.Errorf("end-user %q: %v %s", bad, err, out)
		}
	}
}
