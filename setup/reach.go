package setup

import (
	"context"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/vibesandbox/vibe/config"
)

// Switched is a part of the configuration setup changes because the
// sites it downloads from do not resolve here (a machine that reaches
// only its package mirrors): Node.js then comes from the distribution,
// anything else is turned off, each with why.
type Switched struct {
	Key   string   `json:"key"`   // toolchains.java, agent…
	Hosts []string `json:"hosts"` // the names that did not resolve
	// Set is the YAML key and value setup writes: source: distro, or
	// enabled: false.
	Set [2]string `json:"set"`
}

// lookupTimeout bounds each name lookup: a machine without a way out
// answers at once or never.
const lookupTimeout = 3 * time.Second

func resolveHost(ctx context.Context, host string) error {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	_, err := net.DefaultResolver.LookupHost(ctx, host)
	return err
}

// checkDownloads resolves every site the configuration downloads from (a
// name lookup only: nothing is sent to the sites) and decides what to
// switch for those that fail. Lookups run in parallel, each bounded.
func (s *Setup) checkDownloads(ctx context.Context, cfg *config.Config) []Switched {
	resolve := s.o.Resolve
	if resolve == nil {
		resolve = resolveHost
	}
	downloads := cfg.Downloads()
	failed := map[string]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	seen := map[string]bool{}
	for _, d := range downloads {
		for _, h := range d.Hosts {
			if seen[h] {
				continue
			}
			seen[h] = true
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := resolve(ctx, h); err != nil {
					mu.Lock()
					failed[h] = true
					mu.Unlock()
				}
			}()
		}
	}
	wg.Wait()
	var out []Switched
	for _, d := range downloads {
		var bad []string
		for _, h := range d.Hosts {
			if failed[h] {
				bad = append(bad, h)
			}
		}
		if len(bad) == 0 {
			continue
		}
		sw := Switched{Key: d.Key, Hosts: bad, Set: [2]string{"enabled", "false"}}
		switch d.Key {
		case "toolchains.node":
			sw.Set = [2]string{"source", config.NodeDistro}
		case "agent":
			// Without its CLI there is no agent to run: keep it, so the
			// bake says which registry failed rather than baking nothing.
			continue
		}
		out = append(out, sw)
		if d.Key == "toolchains.java" {
			// Maven and Gradle come with Java's SDKMAN.
			for _, k := range []string{"toolchains.maven", "toolchains.gradle"} {
				out = append(out, Switched{Key: k, Hosts: bad, Set: [2]string{"enabled", "false"}})
			}
		}
	}
	return out
}

// switchedComment says why setup changed a key.
func switchedComment(sw Switched) string {
	why := strings.Join(sw.Hosts, ", ") + " did not resolve when vibe setup ran:\n"
	if sw.Set[0] == "source" {
		return why + "Node.js from the distribution's packages instead (nvm where they resolve)."
	}
	return why + "off until the machine reaches it."
}
