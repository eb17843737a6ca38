package sandbox

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
)

// A sandbox's name is not always its instance's. vibe restore makes the new
// instance under a name of its own and starts it while the old one is
// killed: incus renames only a stopped instance, and a kill takes most of
// a second (lxcfs's post-stop hook alone sleeps half of one), which would
// otherwise sit on the critical path. Each instance carries its sandbox's
// name in KeyName (an instance made before that key is its own sandbox);
// the old one is marked KeyDiscarded before its kill, so that a restore cut
// short never leaves two instances claiming one sandbox.
const (
	KeyName      = "user.vibe.name"
	KeyDiscarded = "user.vibe.discarded"
)

// sandboxName is the name of the sandbox inst holds.
func sandboxName(inst *api.Instance) string {
	if n := inst.Config[KeyName]; n != "" {
		return n
	}
	return inst.Name
}

// holds says whether inst is the live instance of sandbox name.
func holds(inst *api.Instance, name string) bool {
	return inst.Config[KeySandbox] == "true" && inst.Config[KeyDiscarded] == "" && sandboxName(inst) == name
}

// id is the name of the instance that holds sandbox name: the one found
// last, or name itself when none does yet (what a new sandbox is made as).
func (m *Manager) id(name string) string {
	m.mu.Lock()
	n, ok := m.names[name]
	m.mu.Unlock()
	if ok {
		return n
	}
	if inst, err := m.lookup(name); err == nil {
		return inst.Name
	}
	return name
}

// remember records that instance holds sandbox name.
func (m *Manager) remember(name, instance string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.names == nil {
		m.names = map[string]string{}
	}
	m.names[name] = instance
}

// lookup finds the live instance of sandbox name, asking the daemon.
func (m *Manager) lookup(name string) (*api.Instance, error) {
	inst, _, err := m.C.GetInstance(name)
	switch {
	case err == nil && holds(inst, name):
		m.remember(name, inst.Name)
		return inst, nil
	case err == nil && inst.Config[KeySandbox] != "true":
		return nil, fmt.Errorf("instance %q exists but is not a vibe sandbox; pick another --name", name)
	case err == nil && inst.Config[KeyDiscarded] == "":
		return nil, fmt.Errorf("instance %q holds sandbox %q; pick another --name", name, sandboxName(inst))
	case err != nil && !api.StatusErrorCheck(err, 404):
		return nil, fmt.Errorf("sandbox %s: %w", name, err)
	}
	// Restored at least once, or being restored: listed by its key.
	insts, err := m.C.GetInstances(api.InstanceTypeAny)
	if err != nil {
		return nil, fmt.Errorf("sandbox %s: list instances: %w", name, err)
	}
	var found []*api.Instance
	for i := range insts {
		if insts[i].Name != name && insts[i].Config[KeyName] == name && holds(&insts[i], name) {
			found = append(found, &insts[i])
		}
	}
	switch len(found) {
	case 0:
		return nil, fmt.Errorf("%w %q (vibe up creates it)", ErrNotFound, name)
	case 1:
		m.remember(name, found[0].Name)
		return found[0], nil
	}
	names := make([]string, len(found))
	for i, f := range found {
		names[i] = f.Name
	}
	sort.Strings(names)
	return nil, fmt.Errorf("sandbox %s is held by %d instances (%s), as two vibe restores of it ran at once: incus delete -f all but one", name, len(found), strings.Join(names, ", "))
}

// held returns the instance of sandbox name, with the ETag an update of it
// must carry, only while it still holds the sandbox: one a restore has
// discarded since it was found is never changed.
func (m *Manager) held(name string) (*api.Instance, string, error) {
	inst, etag, err := m.C.GetInstance(m.id(name))
	if err != nil {
		return nil, "", fmt.Errorf("sandbox %s: %w", name, err)
	}
	if inst.Config[KeySandbox] != "true" {
		return nil, "", fmt.Errorf("instance %q exists but is not a vibe sandbox", inst.Name)
	}
	if !holds(inst, name) {
		return nil, "", fmt.Errorf("%w %q: its instance %s was discarded by a vibe restore (vibe up makes it again)", ErrNotFound, name, inst.Name)
	}
	return inst, etag, nil
}

// freeName is the name a new instance of sandbox name is made under: the
// sandbox's own when no instance has it (taken: one known to), else one of
// its own.
func (m *Manager) freeName(name, taken string) string {
	n := name
	for range 8 {
		if n != taken {
			if _, _, err := m.C.GetInstance(n); api.StatusErrorCheck(err, 404) {
				break
			}
		}
		n = fmt.Sprintf("%.40s-r%d", name, time.Now().UnixNano()%1e9)
	}
	return n
}

// discarded lists the instances of sandbox name that a restore marked for
// deletion: being deleted, or left by a restore cut short.
func (m *Manager) discarded(name string) []string {
	return slices.Sorted(maps.Keys(m.discardedAt(name)))
}

// restoreTime bounds a restore: an instance discarded less than this ago
// may be one a restore is still replacing.
const restoreTime = 2 * time.Minute

// underWay says whether a restore that started at (discarded its old
// instance, or set the agents' state aside) may still be at work (a mark
// ahead of this clock is not: it would hold vibe up off for as long as the
// clocks differ).
func underWay(at time.Time) bool {
	d := time.Since(at)
	return d >= 0 && d < restoreTime
}

// discardedAt is discarded, with when each was marked (zero: unreadable).
func (m *Manager) discardedAt(name string) map[string]time.Time {
	insts, err := m.C.GetInstances(api.InstanceTypeAny)
	if err != nil {
		return nil
	}
	out := map[string]time.Time{}
	for i := range insts {
		in := &insts[i]
		if in.Config[KeySandbox] == "true" && in.Config[KeyDiscarded] != "" && sandboxName(in) == name {
			t, _ := time.Parse(time.RFC3339, in.Config[KeyDiscarded])
			out[in.Name] = t
		}
	}
	return out
}

// discard marks inst as no longer its sandbox's, before anything else of
// a restore: from here on no vibe finds or starts it.
func (m *Manager) discard(inst *api.Instance) error {
	var err error
	// Again if another vibe changed it meanwhile (the ETag differs).
	for range 3 {
		var cur *api.Instance
		var etag string
		if cur, etag, err = m.C.GetInstance(inst.Name); err != nil {
			break
		}
		put := cur.Writable()
		put.Config[KeyDiscarded] = time.Now().UTC().Format(time.RFC3339)
		var op incus.Operation
		if op, err = m.C.UpdateInstance(inst.Name, put, etag); err == nil {
			err = op.Wait()
		}
		if err == nil || !api.StatusErrorCheck(err, http.StatusPreconditionFailed) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("mark %s for deletion: %w", inst.Name, err)
	}
	return nil
}

// FormerID names an instance a restore replaces, in a form fit for a file
// name (incus names hold no dot): its name and its volatile.uuid, which
// tells it from a later instance of the same name.
func FormerID(inst *api.Instance) string {
	return inst.Name + "." + inst.Config["volatile.uuid"]
}

// FormerState is what became of an instance a restore cut short replaced.
type FormerState int

const (
	// FormerGone: nothing of it runs with what the restore set aside (it
	// is deleted, or discarded and killed by Former).
	FormerGone FormerState = iota
	// FormerHolds: the restore never discarded it; it is the sandbox still.
	FormerHolds
	// FormerBusy: discarded so lately that a restore may still be at work.
	FormerBusy
)

// Former says what became of the instance former (FormerID) that a restore
// of sandbox name replaced before it was cut short (vibe killed). One it
// discarded is killed here first if it still runs: only then may what it
// wrote be handed to the sandbox's new instance.
func (m *Manager) Former(ctx context.Context, name, former string) (FormerState, error) {
	inst, uuid, _ := strings.Cut(former, ".")
	if inst == "" {
		return FormerGone, nil
	}
	in, _, err := m.C.GetInstance(inst)
	switch {
	case api.StatusErrorCheck(err, 404):
		return FormerGone, nil
	case err != nil:
		return 0, fmt.Errorf("sandbox %s: %w", name, err)
	case in.Config["volatile.uuid"] != uuid || in.Config[KeySandbox] != "true" || sandboxName(in) != name:
		return FormerGone, nil // another instance under its name since
	case holds(in, name):
		return FormerHolds, nil
	}
	if at, err := time.Parse(time.RFC3339, in.Config[KeyDiscarded]); err == nil && underWay(at) {
		return FormerBusy, nil
	}
	if err := m.kill(ctx, inst); err != nil {
		return 0, err
	}
	return FormerGone, nil
}
