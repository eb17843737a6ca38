package sandbox

import (
	"reflect"
	"strings"
	"testing"

	"github.com/lxc/incus/v6/shared/api"
)

func TestParsePort(t *testing.T) {
	for in, want := range map[string]Port{"8080": {Guest: 8080, Host: 8080}, "3000:13000": {Guest: 3000, Host: 13000}, "22:2222": {Guest: 22, Host: 2222}} {
		if got, err := ParsePort(in); err != nil || got != want {
			t.Errorf("ParsePort(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"80":          "privileged",
		"8080:443":    "privileged",
		"0":           "1 to 65535",
		"70000":       "1 to 65535",
		"http":        "PORT or PORT:HOSTPORT",
		"1:2:3":       "PORT or PORT:HOSTPORT",
		"8080:":       "PORT or PORT:HOSTPORT",
		"-1":          "1 to 65535",
		"127.0.0.1:8": "PORT or PORT:HOSTPORT",
	} {
		if _, err := ParsePort(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("ParsePort(%q) = %v, want an error containing %q", in, err, want)
		}
	}
}

// The device listens on the host's loopback only and connects to the
// guest's loopback, without NAT: the exact request incus gets.
func TestPortDevice(t *testing.T) {
	want := map[string]string{"type": "proxy", "listen": "tcp:127.0.0.1:13000", "connect": "tcp:127.0.0.1:3000", "bind": "host"}
	if got := (Port{Guest: 3000, Host: 13000}).device(); !reflect.DeepEqual(got, want) {
		t.Errorf("device %v, want %v", got, want)
	}
}

// Devices under vibe's names read as forwarded ports; one edited to listen
// on every address is shown as exposed, never hidden or passed off as
// loopback-only; a name vibe would not make is not one of them.
func TestPortsFromDevices(t *testing.T) {
	inst := &api.Instance{InstancePut: api.InstancePut{Devices: map[string]map[string]string{
		"vibe-port-13000": (Port{Guest: 3000, Host: 13000}).device(),
		"vibe-port-8080":  (Port{Guest: 8080, Host: 8080}).device(),
		"vibe-port-08081": (Port{Guest: 8081, Host: 8081}).device(),
		"vibe-port-9000":  {"type": "proxy", "listen": "tcp:0.0.0.0:9000", "connect": "tcp:127.0.0.1:9000", "bind": "host"},
		"workspace":       {"type": "disk", "source": "/x", "path": "/y"},
	}}}
	want := []Port{{Guest: 8080, Host: 8080}, {Guest: 9000, Host: 9000, Exposed: "tcp:0.0.0.0:9000"}, {Guest: 3000, Host: 13000}}
	if got := ports(inst); !reflect.DeepEqual(got, want) {
		t.Errorf("ports %v, want %v", got, want)
	}
}
