package sandbox

import (
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/internal/e2e"
)

// The script vibe runs in every guest before anything starts is shell too:
// it passes shellcheck like the shipped scripts.
func TestSettleScriptPassesShellcheck(t *testing.T) {
	bin := e2e.Tool(t, "shellcheck", "")
	cmd := exec.Command(bin, "-s", "sh", "-")
	cmd.Stdin = strings.NewReader("#!/bin/sh\n" + settleScript + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
}

func TestSplitTiming(t *testing.T) {
	out, boot := splitTiming("warning: x\nvibe-timing boot=1234 selftest=56\n")
	if out != "warning: x\n" || boot != 1234*time.Millisecond {
		t.Errorf("got %q %v", out, boot)
	}
	if out, boot := splitTiming("no timing"); out != "no timing" || boot != 0 {
		t.Errorf("got %q %v", out, boot)
	}
}
