package sandbox

import (
	"strconv"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/gateway"
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

// The guest's proxy settings and the gateway agree on the port.
func TestProxyIsTheGatewayPort(t *testing.T) {
	if want := "http://vibe-proxy:" + strconv.Itoa(gateway.Port); Proxy != want {
		t.Errorf("Proxy = %s, want %s", Proxy, want)
	}
}
