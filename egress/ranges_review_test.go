package egress

// Attack from a hostile review of the ranges-file change: fails on the
// current code.

import (
	"context"
	"io"
	"net/netip"
	"strings"
	"sync"
	"testing"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
)

// rangesFake is a daemon holding the gateway instance: its configuration
// (with an ETag) and the files pushed into it. hooks order two vibes'
// calls the way the network may deliver them.
type rangesFake struct {
	hostFake
	mu                sync.Mutex
	config            map[string]string
	etag              int
	files             map[string]string
	onPush, afterPush func(content string)
	onSet             func(cfg map[string]string)
}

func (f *rangesFake) GetInstance(string) (*api.Instance, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	cfg := map[string]string{}
	for k, v := range f.config {
		cfg[k] = v
	}
	return &api.Instance{Name: DefaultInstance, StatusCode: api.Running, InstancePut: api.InstancePut{Config: cfg}}, string(rune('a' + f.etag)), nil
}

func (f *rangesFake) UpdateInstance(_ string, put api.InstancePut, etag string) (incus.Operation, error) {
	f.mu.Lock()
	if etag != string(rune('a'+f.etag)) {
		f.mu.Unlock()
		return nil, api.StatusErrorf(412, "etag")
	}
	f.config, f.etag = put.Config, f.etag+1
	f.mu.Unlock()
	if f.onSet != nil {
		f.onSet(put.Config)
	}
	return &doneOp{}, nil
}

func (f *rangesFake) CreateInstanceFile(_ string, path string, a incus.InstanceFileArgs) error {
	b, _ := io.ReadAll(a.Content)
	if f.onPush != nil {
		f.onPush(string(b)) // before the write lands
	}
	f.mu.Lock()
	f.files[path] = string(b)
	f.mu.Unlock()
	if f.afterPush != nil {
		f.afterPush(string(b))
	}
	return nil
}

type doneOp struct{ incus.Operation }

func (*doneOp) WaitContext(context.Context) error { return nil }
func (*doneOp) Wait() error                       { return nil }

// B2. Two vibe commands at once whose ranges differ (one started before
// the user took 10.20.0.0/16 out of egress.gateway.private, or before the
// host took a new address): each pushes its file, then records its digest
// in a separate request. Old's write lands after new's, new's record
// after old's: the gateway reads the OLD ranges while the instance says
// it has the new ones, and no later vibe ever pushes them again (its
// digest matches), for as long as the ranges stay so.
// Attacks a hostile review made on the gateway's ranges file; each failed
// on the code it attacked.

// Two vibes at once with other ranges (one started before the user took a
// range out of egress.gateway.private): whichever order their writes and
// records land in, the gateway ends on the file its record names, so the
// next vibe with other ranges writes its own.
func TestRangesRaceLeavesNoStaleFile(t *testing.T) {
	f := &rangesFake{config: map[string]string{keyGateway: "true", keyRanges: "digest-before-both"}, files: map[string]string{}}
	old := &Gateway{C: f, Uplink: "vibe-uplink", Private: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}
	cur := &Gateway{C: f, Uplink: "vibe-uplink"}
	rOld, rNew := string(must(old.ranges())), string(must(cur.ranges()))
	// The interleaving the review found, once (a vibe that tries again
	// goes on unhindered): the new write lands, the old one after it, the
	// old record, then the new one.
	newPushed, oldRecorded := make(chan struct{}), make(chan struct{})
	var oldOnce, newOnce, recOnce sync.Once
	f.onPush = func(c string) { // before the write lands
		if c == rOld {
			oldOnce.Do(func() { <-newPushed })
		}
	}
	f.afterPush = func(c string) { // the write landed; its answer is on its way
		if c == rNew {
			newOnce.Do(func() { close(newPushed); <-oldRecorded })
		}
	}
	f.onSet = func(cfg map[string]string) {
		if cfg[keyRanges] == digest([]byte(rOld)) {
			recOnce.Do(func() { close(oldRecorded) })
		}
	}
	var wg sync.WaitGroup
	for _, g := range []*Gateway{old, cur} {
		inst, _, _ := f.GetInstance(DefaultInstance) // ensureInstance's read
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := g.syncRanges(context.Background(), inst, must(g.ranges())); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	// Any later vibe, with the user's current configuration.
	later := &Gateway{C: f, Uplink: "vibe-uplink"}
	inst, _, _ := f.GetInstance(DefaultInstance)
	if err := later.syncRanges(context.Background(), inst, must(later.ranges())); err != nil {
		t.Fatal(err)
	}
	if got := f.files[rangesPath]; got != rNew {
		t.Errorf("the gateway reads     %s while every vibe believes it reads %s(10.20.0.0/16, taken out of egress.gateway.private, stays reachable until the ranges change again)", got, rNew)
	}
}

// flakyHost is hostFake whose daemon fails two reads once (busy, a
// timeout): hostAddrs drops their errors.
type flakyHost struct{ hostFake }

func (flakyHost) GetNetworks() ([]api.Network, error) { return nil, api.StatusErrorf(503, "busy") }
func (flakyHost) GetServer() (*api.Server, string, error) {
	return nil, "", api.StatusErrorf(503, "busy")
}

// B3 (pre-existing in hostAddrs, now pushed silently by syncRanges, with no
// restart or "gateway" progress line): one failed read of the daemon makes
// a ranges file without the host's other addresses, which the gateway
// accepts as valid, until the next vibe command.
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
