package sandbox

import (
	"testing"
	"time"
)

func TestSplitTiming(t *testing.T) {
	out, boot := splitTiming("warning: x\nvibe-timing boot=1234 selftest=56\n")
	if out != "warning: x\n" || boot != 1234*time.Millisecond {
		t.Errorf("got %q %v", out, boot)
	}
	if out, boot := splitTiming("no timing"); out != "no timing" || boot != 0 {
		t.Errorf("got %q %v", out, boot)
	}
}
