package egress

import (
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
)

// Attacks hostile reviews made on the gateway's ranges file; each failed on
// the code it attacked.

// filesFake is a gateway instance's files, as vibe reads and writes them.
type filesFake struct {
	hostFake
	mu     sync.Mutex
	files  map[string]string
	pushes int
}

func (f *filesFake) GetInstanceFile(_, path string) (io.ReadCloser, *incus.InstanceFileResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.files[path]
	if !ok {
		return nil, nil, api.StatusErrorf(404, "not found")
	}
	return io.NopCloser(strings.NewReader(c)), &incus.InstanceFileResponse{Type: "file"}, nil
}

func (f *filesFake) CreateInstanceFile(_, path string, a incus.InstanceFileArgs) error {
	b, _ := io.ReadAll(a.Content)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.files[path] = string(b)
	f.pushes++
	return nil
}

// Whatever a vibe with older ranges left in the gateway (its write landed
// after a newer one's, or it was cut off before it could say what it
// wrote), the next vibe writes its own: the file itself is compared, never
// a record of it. (Reviews: a record written beside the file stayed true
// for the newer ranges while the gateway read the older ones, so a private
// range taken out of egress.gateway.private stayed reachable.)
func TestRangesLeaveNoStaleFile(t *testing.T) {
	f := &filesFake{files: map[string]string{}}
	stale := &Gateway{C: f, Uplink: "vibe-uplink", Private: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	cur := &Gateway{C: f, Uplink: "vibe-uplink"}
	rOld, rNew := must(stale.ranges()), must(cur.ranges())
	if err := cur.syncRanges(rNew); err != nil {
		t.Fatal(err)
	}
	if err := stale.syncRanges(rOld); err != nil { // lands last
		t.Fatal(err)
	}
	if err := cur.syncRanges(rNew); err != nil {
		t.Fatal(err)
	}
	if got := f.files[rangesPath]; got != string(rNew) {
		t.Errorf("the gateway reads %s, want the current %s", got, rNew)
	}
	// An unchanged file is not written again.
	n := f.pushes
	if err := cur.syncRanges(rNew); err != nil {
		t.Fatal(err)
	}
	if f.pushes != n {
		t.Error("the same ranges were written again")
	}
}

type flakyHost struct{ hostFake }

func (flakyHost) GetNetworks() ([]api.Network, error) { return nil, api.StatusErrorf(503, "busy") }
func (flakyHost) GetServer() (*api.Server, string, error) {
	return nil, "", api.StatusErrorf(503, "busy")
}

// A daemon that does not answer one of the reads of the host's addresses
// fails the command: a ranges file short of an address would let the
// gateway dial the host there.
func TestRangesNeedEveryHostAddress(t *testing.T) {
	if r, err := (&Gateway{C: flakyHost{}, Uplink: "vibe-uplink"}).ranges(); err == nil {
		t.Errorf("ranges written without the daemon's answers: %s", strings.TrimSpace(string(r)))
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}
