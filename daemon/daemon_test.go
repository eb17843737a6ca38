package daemon

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
)

// A VM's root disk: on the profile's pool, at the configured size, cached
// in the host's page cache.
func TestVMRootDisk(t *testing.T) {
	got := vmRootDisk("fast", "20GiB")
	want := map[string]string{"type": "disk", "path": "/", "pool": "fast", "size": "20GiB", "io.cache": "writeback"}
	if len(got) != len(want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

// incus's refusal of a disk smaller than the image becomes what to set.
func TestExplainDiskSize(t *testing.T) {
	// The message incus 6.0 to 6.23 sends (storage/drivers/volume.go).
	incusErr := errors.New("Failed creating instance from image: Source image size (16106127360) exceeds specified volume size (10737418240)")
	err := ExplainDiskSize(incusErr, "10GiB")
	for _, want := range []string{"instance.disk 10GiB is smaller", "at least 15GiB", "vibe.yaml"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	if !errors.Is(err, incusErr) {
		t.Error("the daemon's error is not wrapped")
	}
	other := errors.New("Instance type \"virtual-machine\" is not supported on this server")
	if ExplainDiskSize(other, "10GiB") != other {
		t.Error("another error was rewritten")
	}
	if ExplainDiskSize(nil, "10GiB") != nil {
		t.Error("no error became one")
	}
}

func TestSocketHint(t *testing.T) {
	if h := socketHint(errors.New("dial unix /var/lib/incus/unix.socket: connect: connection refused")); !strings.Contains(h, "is incusd running") {
		t.Errorf("refused: %q", h)
	}
	if h := socketHint(fmt.Errorf("dial: %w", os.ErrPermission)); !strings.Contains(h, "incus-admin") {
		t.Errorf("permission denied: %q", h)
	}
}
