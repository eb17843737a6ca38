// Package e2e is what the tests that need more than Go share: the switches
// that make a missing incus daemon (VIBE_E2E=1) or host tool
// (VIBE_TEST_STRICT=1), both set by make check and CI, a failure instead of
// a skip, and small helpers to run commands on the host and in instances.
// Only tests import it.
package e2e

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/vibesandbox/vibe/daemon"
)

// Daemon connects to the local daemon. Without VIBE_E2E=1 the test is
// skipped; with it, an unreachable daemon or a missing image (each of
// images, by alias) fails the test and says to run make testenv.
func Daemon(t testing.TB, images ...string) incus.InstanceServer {
	t.Helper()
	if os.Getenv("VIBE_E2E") != "1" {
		t.Skip("end-to-end test: set VIBE_E2E=1 (make check does) after make testenv")
	}
	c, err := incus.ConnectIncusUnix("", nil)
	if err == nil {
		_, _, err = c.GetServer()
	}
	if err != nil {
		t.Fatalf("VIBE_E2E=1 but the incus daemon is unreachable (run make testenv): %v", err)
	}
	for _, alias := range images {
		if _, _, err := c.GetImageAlias(alias); err != nil {
			t.Fatalf("VIBE_E2E=1 but the image %s is missing (run make testenv)", alias)
		}
	}
	return c
}

// Tool finds a host tool the test needs (a validator, ssh-keygen…). Under
// VIBE_TEST_STRICT=1 a missing one fails the test; otherwise the test is
// skipped. hint, if not empty, says how to install it.
func Tool(t testing.TB, name, hint string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if hint != "" {
			hint = " (" + hint + ")"
		}
		if os.Getenv("VIBE_TEST_STRICT") == "1" {
			t.Fatalf("%s is not installed%s (VIBE_TEST_STRICT=1): %v", name, hint, err)
		}
		t.Skipf("%s is not installed%s", name, hint)
	}
	return p
}

// Run runs cmd and returns its stdout, stderr and exit code; a command that
// cannot be started fails the test.
func Run(t testing.TB, cmd *exec.Cmd) (string, string, int) {
	t.Helper()
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

// Exec runs argv as root in an instance and returns its output (stdout and
// stderr interleaved) and exit code; a failed exec fails the test.
func Exec(t testing.TB, c incus.InstanceServer, name string, argv ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	w := &daemon.SyncWriter{W: &out}
	code, err := daemon.Execute(context.Background(), c, name, daemon.Exec{Command: argv, Stdout: w, Stderr: w})
	if err != nil {
		t.Fatalf("exec %v in %s: %v", argv, name, err)
	}
	return out.String(), code
}

// ForceDelete kills and deletes an instance; one that does not exist is fine.
func ForceDelete(c incus.InstanceServer, name string) {
	_ = daemon.ForceDelete(c, name)
}
