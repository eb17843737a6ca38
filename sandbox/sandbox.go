// Package sandbox manages disposable sandboxes: incus instances made from a
// baked vibe image, with the user's projects mounted, the egress allowlist
// applied, and containment proven by the in-guest self-test before anything
// runs as the sandbox user. All incus work goes through the Go client.
package sandbox

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/allowlist"
	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/egress"
	"github.com/vibesandbox/vibe/workspace"
)

// Instance configuration keys vibe owns.
const (
	KeySandbox = "user.vibe.sandbox"
	KeyImage   = "user.vibe.image"
	KeyAllow   = "user.vibe.allow"
	KeyStarted = "user.vibe.started"
)

// Spec describes a sandbox.
type Spec struct {
	Name         string
	Image        string // alias or fingerprint on the server
	InstanceType string // vm or container
	Network      string // attach eth0 to this network instead of the profile's
	CPU          int
	Memory, Disk string
	User         string // the sandbox user's name
	UID, GID     int    // its ids, in the guest and, for containers, on the host
	Mounts       []workspace.Mount
	StateDir     string // host folder for the agent's state; "" for none
	// AgentStates are the host folders of the other agents' state
	// (codex, gemini, opencode), mounted at AgentStatePath.
	AgentStates map[string]string
	// Agent is the agent a session starts (vibe --agent), "" for none:
	// its own environment and, behind the gateway, how its key reaches it.
	Agent string
	Allow allowlist.List // the whole allowlist: configuration, --allow, gateway
	Extra allowlist.List // this run's own entries (--allow), part of Allow
	// Gateway, when set, is the egress gateway the sandbox sits behind:
	// its only way out, outside the guest (nil: the guest's own proxy
	// and firewall alone, on the profile's network or Network).
	Gateway *egress.Gateway
	// Credentials are the user's own credential bindings, besides the ones
	// the gateway knows (egress.Bindings).
	Credentials []egress.Binding
}

// Home is the sandbox user's home in the guest.
func (s *Spec) Home() string { return config.User{Name: s.User}.Home() }

// Phase is one timed step, for `vibe up` and the bench.
type Phase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// StateFolders maps each agent whose state is persisted (Claude Code's
// included) to its host folder.
func (s *Spec) StateFolders() map[string]string {
	out := maps.Clone(s.AgentStates)
	if out == nil {
		out = map[string]string{}
	}
	if s.StateDir != "" {
		out["claude"] = s.StateDir
	}
	return out
}

// Manager works on one incus server.
type Manager struct {
	C incus.InstanceServer
	// Local: the daemon runs on this host (its unix socket), so the
	// guest's mount table can be read from this host's /proc.
	Local bool
	// Progress, if set, hears about phases as they start.
	Progress func(phase string)
	// Gateway is the egress gateway, when the configuration enables it
	// (what Delete tells to forget a sandbox).
	Gateway *egress.Gateway
	phases  []Phase
	last    time.Time
	current string
	mu      sync.Mutex
	names   map[string]string // sandbox name → instance name (see id)
}

// split divides the running phase: its first d seconds are named first,
// the rest becomes the phase named rest.
func (m *Manager) split(first string, d time.Duration, rest string) {
	if m.current != first || d <= 0 {
		return
	}
	m.phases = append(m.phases, Phase{Name: first, Seconds: float64(d.Milliseconds()) / 1000})
	m.current, m.last = rest, m.last.Add(d)
}

func (m *Manager) phase(name string) {
	if name != "" && name == m.current {
		return // one phase, begun by a caller already
	}
	now := time.Now()
	if m.current != "" {
		m.phases = append(m.phases, Phase{Name: m.current, Seconds: float64(now.Sub(m.last).Milliseconds()) / 1000})
	}
	m.current, m.last = name, now
	if name != "" && m.Progress != nil {
		m.Progress(name)
	}
}

// Phases returns and resets the phase timings recorded so far.
func (m *Manager) Phases() []Phase {
	m.phase("")
	p := m.phases
	m.phases = nil
	return p
}

// ErrNotFound is returned for a sandbox that does not exist.
var ErrNotFound = errors.New("no such sandbox")

// Get returns the sandbox's instance, or ErrNotFound.
func (m *Manager) Get(name string) (*api.Instance, error) {
	m.mu.Lock()
	n, ok := m.names[name]
	m.mu.Unlock()
	if ok && n != name {
		if inst, _, err := m.C.GetInstance(n); err == nil && holds(inst, name) {
			return inst, nil
		}
	}
	return m.lookup(name)
}

// Up makes sure the sandbox exists and runs with the spec's mounts and
// allowlist applied, and proves containment with the self-test. It returns
// the self-test's verdict (an operator's firewall-off is not an error).
func (m *Manager) Up(ctx context.Context, s *Spec) (*SelfTest, error) {
	m.phases, m.current = nil, ""
	inst, err := m.Get(s.Name)
	if errors.Is(err, ErrNotFound) {
		// Between a restore's discard of the old instance and its create
		// of the new one, there is none: a second one is not made here.
		left := m.discardedAt(s.Name)
		for _, at := range left {
			if underWay(at) {
				return nil, fmt.Errorf("a vibe restore of %s is under way (it set the old instance aside %s ago); run this again once it has ended", s.Name, time.Since(at).Round(time.Second))
			}
		}
		go m.sweep(left, "")
		return m.up(ctx, s, m.freeName(s.Name, ""))
	}
	if err != nil {
		return nil, err
	}
	return m.finish(ctx, s, inst)
}

// up makes the sandbox's instance as name and brings it to ready.
func (m *Manager) up(ctx context.Context, s *Spec, name string) (*SelfTest, error) {
	// One request creates and starts it with its mounts in place.
	m.phase("create")
	if err := m.create(ctx, s, name, true); err != nil {
		return nil, err
	}
	inst, err := m.Get(s.Name)
	if err != nil {
		return nil, err
	}
	return m.finish(ctx, s, inst)
}

// Replace makes the sandbox afresh from its image (vibe restore). The new
// instance is made and started under a name of its own while the old one
// is killed (incus renames only a stopped instance, and the kill takes
// most of a second here), so restore costs what up does. aside runs before
// the new one starts (vibe moves the agent's state folder aside there: the
// old one's mount follows the folder, the new one's gets an empty one);
// the function it returns runs once nothing of the old one runs (vibe
// brings the agent's login back there: a process left in the old one could
// write into it until then). aside is told the old one (FormerID; "" when
// there is none), so that what a restore cut short left can be told apart
// later (Former).
func (m *Manager) Replace(ctx context.Context, s *Spec, aside func(former string) (func() error, error)) (*SelfTest, error) {
	m.phases, m.current = nil, ""
	old, err := m.Get(s.Name)
	if errors.Is(err, ErrNotFound) {
		kept, err := aside("")
		if err == nil {
			err = kept()
		}
		if err != nil {
			return nil, err
		}
		return m.Up(ctx, s)
	}
	if err != nil {
		return nil, err
	}
	m.phase("create")
	// The gateway forgets the old one first: nothing it holds for the old
	// address may outlive it.
	if err := m.forget(ctx, old); err != nil {
		return nil, err
	}
	go func() { m.sweep(m.discardedAt(s.Name), old.Name) }()
	kept, err := aside(FormerID(old))
	if err != nil {
		return nil, err
	}
	// Marked long before the new one is made (a request against a
	// create): another vibe finds neither for that moment, never two.
	killed := make(chan error, 1)
	go func() {
		// Seen through whatever ends this vibe (an interrupt): the login
		// comes back only once the old one is dead.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		err := m.discard(old)
		if err == nil {
			err = m.kill(ctx, old.Name)
		}
		killed <- err
	}()
	fresh := m.freeName(s.Name, old.Name)
	st, err := m.up(ctx, s, fresh)
	// Nothing of the old one runs once the kill has returned; the login
	// comes back only then, and the new one goes if it cannot.
	kerr := <-killed
	if kerr == nil {
		kerr = kept()
	}
	if kerr != nil {
		kerr = fmt.Errorf("%w; the agents' logins stay set aside beside their folders (*.restoring.*) while the old instance %s may still run: incus delete -f %s, and the next vibe up brings them back", kerr, old.Name, old.Name)
		if derr := daemon.ForceDelete(m.C, fresh); derr != nil {
			kerr = fmt.Errorf("%w (and the new sandbox's instance %s is left: incus delete -f %s)", kerr, fresh, fresh)
		}
		return nil, errors.Join(err, kerr)
	}
	// The old one goes in the background: the daemon finishes the delete
	// whether or not this process is still there (and the next vibe of
	// the sandbox deletes one it never got to). One started again (by a
	// vibe that found it before it was marked) is killed first.
	if _, derr := m.C.DeleteInstance(old.Name); derr != nil {
		if derr = daemon.ForceDelete(m.C, old.Name); derr != nil && m.Progress != nil {
			m.Progress("the old sandbox's instance " + old.Name + " was not deleted (" + derr.Error() + "): incus delete -f " + old.Name)
		}
	}
	return st, err
}

// kill stops the discarded instance name for certain: another vibe may
// have started it before it was marked, so it is looked at again.
func (m *Manager) kill(ctx context.Context, name string) error {
	for range 3 {
		inst, _, err := m.C.GetInstance(name)
		if api.StatusErrorCheck(err, 404) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("stop %s: %w", name, err)
		}
		if inst.StatusCode == api.Stopped {
			return nil
		}
		if err := daemon.Kill(ctx, m.C, inst); err != nil {
			return err
		}
	}
	return fmt.Errorf("the old sandbox's instance %s is started again as fast as it is stopped; vibe restore once nothing else starts it", name)
}

// sweep deletes, in the background, the instances a restore cut short left
// marked for deletion (left, from discardedAt): not one a restore may still
// be replacing, nor this restore's own (mine).
func (m *Manager) sweep(left map[string]time.Time, mine string) {
	for n, at := range left {
		if n != mine && !underWay(at) {
			go func() { _ = daemon.ForceDelete(m.C, n) }()
		}
	}
}

// finish brings a made sandbox to ready: started, its mounts in place,
// its allowlist and firewall applied and its self-test passed.
func (m *Manager) finish(ctx context.Context, s *Spec, inst *api.Instance) (*SelfTest, error) {
	vm := inst.Type == string(api.InstanceTypeVM)
	if err := m.checkIdmap(inst, s); err != nil {
		return nil, err
	}
	want, err := m.mountDevices(s)
	if err != nil {
		return nil, err
	}
	if inst.StatusCode == api.Frozen {
		// Left frozen by a vibe that ended while it read the projects.
		if err := m.setState(ctx, m.id(s.Name), api.InstanceStatePut{Action: "unfreeze", Timeout: -1}); err != nil {
			return nil, fmt.Errorf("unfreeze %s: %w", s.Name, err)
		}
		if inst, err = m.Get(s.Name); err != nil {
			return nil, err
		}
	}
	if inst.StatusCode != api.Running && inst.StatusCode != api.Stopped {
		return nil, fmt.Errorf("sandbox %s is %s; vibe stop, then vibe up", s.Name, strings.ToLower(inst.Status))
	}
	step := planMounts(vm, inst.StatusCode == api.Running, inst.Devices, want)
	switch step {
	case detachStartPlug:
		m.phase("start")
		if err := m.detachMounts(ctx, s.Name); err != nil {
			return nil, err
		}
		if err := m.start(ctx, s.Name); err != nil {
			return nil, err
		}
	case restartVM:
		if err := daemon.WaitAgent(ctx, m.C, m.id(s.Name), readyTimeout); err != nil {
			return nil, err
		}
		if err := m.idle(ctx, s); err != nil {
			return nil, err
		}
		m.phase("stop")
		if err := m.Stop(ctx, s.Name); err != nil {
			return nil, err
		}
		fallthrough
	case attachStart:
		m.phase("start")
		if err := m.applyMounts(ctx, s, want); err != nil {
			return nil, err
		}
		if err := m.start(ctx, s.Name); err != nil {
			return nil, err
		}
	}
	if vm {
		m.phase("agent")
		if err := daemon.WaitAgent(ctx, m.C, m.id(s.Name), readyTimeout); err != nil {
			return nil, err
		}
	}
	if step == detachStartPlug || step == plugRunning {
		m.phase("mounts")
		if err := m.applyMounts(ctx, s, want); err != nil {
			return nil, err
		}
	}
	// One exec waits for the boot to finish, installs the allowlist,
	// applies the firewall and runs the self-test; the guest reports how
	// long the boot wait and the rest took.
	m.phase("ready")
	st, bootWait, err := m.settle(ctx, s, inst, want)
	if err != nil {
		return nil, err
	}
	m.split("ready", bootWait, "selftest")
	// The mounts are where vibe put them, as the kernel sees them; a VM
	// attaches them as it boots, so this also waits for them.
	if err := m.verifyMounts(ctx, s, want); err != nil {
		return nil, err
	}
	m.writeStatus(ctx, s.Name, st.Off())
	m.phase("")
	return st, st.Err()
}

// mountStep is how a sandbox gets the mounts it wants, by kind and state.
type mountStep int

const (
	mountsInPlace mountStep = iota
	// A stopped container starts without them and has them plugged in once
	// it runs: LXC creates a missing mount point before it checks for
	// symlinks, following whatever the guest left at that path on the
	// host's side, while a running container's are mounted inside it.
	detachStartPlug
	plugRunning // a running container whose mounts differ
	// A VM has them attached while stopped and mounts them as it boots:
	// incus hot-plugs at most 8 devices into a VM per boot.
	attachStart
	restartVM // a running VM whose mounts differ: stopped, then as attachStart
)

func planMounts(vm, running bool, have, want map[string]map[string]string) mountStep {
	differ := mountsDiffer(have, want)
	switch {
	case !vm && !running:
		return detachStartPlug
	case !vm && differ:
		return plugRunning
	case vm && !running:
		return attachStart
	case vm && differ:
		return restartVM
	}
	return mountsInPlace
}

// idle refuses to restart a VM while anything of the sandbox user's runs
// in it (a session, or what one left behind): that would end it.
func (m *Manager) idle(ctx context.Context, s *Spec) error {
	r, err := daemon.Run(ctx, m.C, m.id(s.Name), daemon.Exec{Command: []string{"pgrep", "-U", strconv.Itoa(s.UID)}})
	if err != nil {
		return fmt.Errorf("sandbox %s: %w", s.Name, err)
	}
	switch r.Code {
	case 1: // none
		return nil
	case 0:
		return fmt.Errorf("sandbox %s is a VM running with other mounts, and processes of %s run in it: a VM takes new mounts as it boots, so end those sessions (or vibe stop) and run this again", s.Name, s.User)
	}
	return fmt.Errorf("sandbox %s: cannot tell whether processes of %s run in it (pgrep exit %d); vibe stop, then run this again", s.Name, s.User, r.Code)
}

// create makes the instance name for the sandbox s from its image, and
// starts it when start is set.
func (m *Manager) create(ctx context.Context, s *Spec, name string, start bool) error {
	if err := daemon.NeedVMs(m.C, s.InstanceType); err != nil {
		return err
	}
	img, err := m.image(s.Image)
	if err != nil {
		return err
	}
	want := daemon.ImageType(s.InstanceType)
	if img.Type != want {
		return fmt.Errorf("image %q is a %s image; a %s sandbox needs a %s image (bake one with vibe-build build --instance-type %s)", s.Image, img.Type, s.InstanceType, want, s.InstanceType)
	}
	devices, err := m.mountDevices(s)
	if err != nil {
		return err
	}
	var addr netip.Addr
	if s.Gateway != nil {
		if addr, err = s.Gateway.Address(ctx); err != nil {
			return err
		}
		// The gateway's bridge is the only network it has.
		maps.Copy(devices, s.Gateway.Devices(addr))
	} else {
		for name, nic := range m.nics(s) {
			devices[name] = nic
		}
	}
	if root := daemon.VMRootDisk(m.C, s.InstanceType, s.Disk); root != nil {
		devices["root"] = root
	}
	if err := m.needIdmap(s); err != nil {
		return err
	}
	post := createRequest(s, img.Fingerprint, devices, time.Now())
	// Behind a gateway it is made stopped: only once incus has given it
	// its address (another vibe may have taken that address meanwhile, and
	// incus refuses a second) is the gateway told what the address holds.
	post.Name, post.Start = name, start && s.Gateway == nil
	op, err := m.C.CreateInstance(post)
	if err != nil {
		return daemon.ExplainDiskSize(fmt.Errorf("create sandbox %s: %w", s.Name, err), s.Disk)
	}
	if err := op.WaitContext(ctx); err != nil {
		return daemon.ExplainDiskSize(fmt.Errorf("create sandbox %s: %w", s.Name, err), s.Disk)
	}
	m.remember(s.Name, name)
	if s.Gateway == nil {
		return nil
	}
	// Its policy is in place before it boots; whatever a sandbox gone
	// before left at this address goes first.
	p, err := policy(s, &api.Instance{})
	if err == nil {
		err = s.Gateway.Forget(ctx, addr)
	}
	if err == nil {
		err = s.Gateway.SetPolicy(ctx, addr, p)
	}
	told := err == nil
	if err == nil && start {
		err = m.setState(ctx, name, api.InstanceStatePut{Action: "start", Timeout: -1})
	}
	if err == nil {
		return nil
	}
	// Made stopped under its own name, it may have been found and started
	// meanwhile by another vibe of the same project: running, it is that
	// vibe's now (and its start is this one's), never deleted here.
	if inst, _, gerr := m.C.GetInstance(name); gerr == nil && inst.StatusCode != api.Stopped {
		if told && start && inst.StatusCode == api.Running {
			return nil
		}
		return fmt.Errorf("create sandbox %s: %w (another vibe has started it meanwhile)", s.Name, err)
	}
	if derr := daemon.ForceDelete(m.C, name); derr != nil {
		err = fmt.Errorf("%w (and the new sandbox %s is left: incus delete -f %s)", err, name, name)
	}
	return fmt.Errorf("create sandbox %s: %w", s.Name, err)
}

// createRequest is the request that creates and starts the sandbox from
// image fp with devices.
func createRequest(s *Spec, fp string, devices map[string]map[string]string, now time.Time) api.InstancesPost {
	post := api.InstancesPost{
		Name:   s.Name,
		Type:   daemon.APIType(s.InstanceType),
		Source: api.InstanceSource{Type: "image", Fingerprint: fp},
		InstancePut: api.InstancePut{
			Config: map[string]string{
				KeySandbox:      "true",
				KeyName:         s.Name,
				KeyImage:        s.Image,
				KeyStarted:      now.UTC().Format(time.RFC3339),
				"limits.cpu":    strconv.Itoa(s.CPU),
				"limits.memory": s.Memory,
				// vibe starts it, with its mounts detached (see Up): the
				// daemon must not start it with them when it restarts.
				"boot.autostart": "false",
				// Only the sandbox user's ids reach the host through a
				// mount: guest root is an unprivileged host id in a
				// container; on a VM, virtiofsd refuses every other id
				// instead of passing guest root through as host root.
				"raw.idmap": idmap(s),
			},
			Devices: devices,
		},
		Start: true,
	}
	if s.InstanceType == "container" {
		// The image is provisioned already: cloud-init has nothing left to
		// do in a sandbox but cost seconds of every boot, and a profile's
		// cloud-init.user-data must not run code in one. Its systemd
		// generator reads the kernel command line of a container from
		// this variable. (A VM's image has no NoCloud seed, so its
		// cloud-init finds nothing to do; its root was baked at its size.)
		post.Config["environment.KERNEL_CMDLINE"] = "cloud-init=disabled"
	}
	return post
}

// nics are the sandbox's network devices: eth0 on --network, or the
// default profile's bridged NICs, each with port isolation where the
// server has it (a sandbox cannot reach another on the same bridge).
func (m *Manager) nics(s *Spec) map[string]map[string]string {
	out := map[string]map[string]string{}
	if s.Network != "" {
		out["eth0"] = map[string]string{"type": "nic", "network": s.Network, "name": "eth0"}
	} else if p, _, err := m.C.GetProfile("default"); err == nil {
		for name, d := range p.Devices {
			if d["type"] == "nic" && (d["nictype"] == "bridged" || (d["nictype"] == "" && d["network"] != "")) {
				out[name] = maps.Clone(d)
			}
		}
	}
	if !m.C.HasExtension("instance_nic_bridged_port_isolation") {
		return out
	}
	for name, d := range out {
		if d["nictype"] == "" {
			if n, _, err := m.C.GetNetwork(d["network"]); err != nil || n.Type != "bridge" {
				if s.Network == "" {
					delete(out, name) // not a bridge: the profile's device stays as it is
				}
				continue
			}
		}
		d["security.port_isolation"] = "true"
	}
	return out
}

// image resolves an alias or fingerprint on the server.
func (m *Manager) image(ref string) (*api.Image, error) {
	fp := ref
	if a, _, err := m.C.GetImageAlias(ref); err == nil {
		fp = a.Target
	}
	img, _, err := m.C.GetImage(fp)
	if err != nil {
		return nil, fmt.Errorf("image %q not found on the server: bake it with vibe-build build (or pass --image)", ref)
	}
	return img, nil
}

// start starts the stopped instance of sandbox name, never one a restore
// has discarded since it was found, and records when.
func (m *Manager) start(ctx context.Context, name string) error {
	inst, _, err := m.held(name)
	if err != nil {
		return err
	}
	if err := m.setState(ctx, inst.Name, api.InstanceStatePut{Action: "start", Timeout: -1}); err != nil {
		return fmt.Errorf("start %s: %w", name, err)
	}
	inst, etag, err := m.held(name)
	if err == nil {
		put := inst.Writable()
		put.Config[KeyStarted] = time.Now().UTC().Format(time.RFC3339)
		if op, err := m.C.UpdateInstance(inst.Name, put, etag); err == nil {
			_ = op.Wait()
		}
	}
	return nil
}

// Apply re-applies mounts and the allowlist to a running sandbox and runs
// the self-test (vibe config).
func (m *Manager) Apply(ctx context.Context, s *Spec) (*SelfTest, error) {
	inst, err := m.Get(s.Name)
	if err != nil {
		return nil, err
	}
	if inst.StatusCode != api.Running {
		return nil, fmt.Errorf("sandbox %s is %s; vibe up starts it (and applies the configuration)", s.Name, strings.ToLower(inst.Status))
	}
	if err := m.checkIdmap(inst, s); err != nil {
		return nil, err
	}
	want, err := m.mountDevices(s)
	if err != nil {
		return nil, err
	}
	if inst.Type == string(api.InstanceTypeVM) && mountsDiffer(inst.Devices, want) {
		return nil, fmt.Errorf("sandbox %s is a VM, which takes new mounts only as it boots (incus hot-plugs at most 8 per boot): vibe stop, then vibe up applies them", s.Name)
	}
	if err := m.applyMounts(ctx, s, want); err != nil {
		return nil, err
	}
	st, _, err := m.settle(ctx, s, inst, want)
	if err != nil {
		return nil, err
	}
	if err := m.verifyMounts(ctx, s, want); err != nil {
		return nil, err
	}
	return st, st.Err()
}

// Stop stops the sandbox; a stopped one is fine.
func (m *Manager) Stop(ctx context.Context, name string) error {
	inst, err := m.Get(name)
	if err != nil {
		return err
	}
	if inst.StatusCode == api.Stopped {
		return nil
	}
	if err := m.setState(ctx, inst.Name, api.InstanceStatePut{Action: "stop", Timeout: 60}); err != nil {
		op, ferr := m.C.UpdateInstanceState(inst.Name, api.InstanceStatePut{Action: "stop", Force: true, Timeout: -1}, "")
		if ferr != nil {
			return fmt.Errorf("stop %s: %w", name, err)
		}
		return op.WaitContext(ctx)
	}
	return nil
}

// Hold freezes the sandbox while vibe reads the projects it mounts (a
// snapshot lists a worktree, which a process the agent left running could
// rearrange under it), and returns what thaws it. held is false for a
// sandbox that is not running or could not be frozen: read as it is, the
// snapshot's own checks (nothing followed out, a swap noted, a listing
// looked at again) still hold, and say when it moved.
func (m *Manager) Hold(ctx context.Context, name string) (thaw func(), held bool) {
	inst, err := m.Get(name)
	if err != nil || inst.StatusCode != api.Running {
		return func() {}, false
	}
	if err := m.setState(ctx, inst.Name, api.InstanceStatePut{Action: "freeze", Timeout: -1}); err != nil {
		if m.Progress != nil {
			m.Progress("sandbox " + name + " could not be frozen while vibe read its projects: " + err.Error())
		}
		return func() {}, false
	}
	return func() {
		// Thawed even when ctx was cancelled (an interrupt).
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := m.setState(ctx, inst.Name, api.InstanceStatePut{Action: "unfreeze", Timeout: -1}); err != nil && m.Progress != nil {
			m.Progress("sandbox " + name + " stays frozen (" + err.Error() + "): incus start " + inst.Name)
		}
	}, true
}

// setState asks incus to change the instance's state (start, stop,
// freeze...) and waits until it has.
func (m *Manager) setState(ctx context.Context, name string, put api.InstanceStatePut) error {
	op, err := m.C.UpdateInstanceState(name, put, "")
	if err == nil {
		err = op.WaitContext(ctx)
	}
	return err
}

// forget removes what the gateway holds for the sandbox (its policy, its
// sessions, its credentials).
func (m *Manager) forget(ctx context.Context, inst *api.Instance) error {
	if m.Gateway == nil {
		return nil
	}
	addr, on, _ := m.behind(inst, &Spec{Name: inst.Name, Gateway: m.Gateway})
	if !on || !addr.IsValid() {
		return nil
	}
	return m.Gateway.Forget(ctx, addr)
}

// Delete removes the sandbox (stopping it first). Host folders are untouched.
func (m *Manager) Delete(ctx context.Context, name string) error {
	inst, err := m.Get(name)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if inst != nil {
		if err := m.forget(ctx, inst); err != nil {
			return err
		}
		if err := m.Stop(ctx, name); err != nil {
			return err
		}
		op, err := m.C.DeleteInstance(inst.Name)
		if err == nil {
			err = op.WaitContext(ctx)
		}
		if err != nil {
			return fmt.Errorf("delete %s: %w", name, err)
		}
	}
	// And what a restore cut short left of it (all there is, maybe).
	left := m.discarded(name)
	for _, n := range left {
		if err := daemon.ForceDelete(m.C, n); err != nil {
			return err
		}
	}
	if inst == nil && len(left) == 0 {
		return err
	}
	return nil
}

// Info is what `vibe ls` and `vibe status` report.
type Info struct {
	Name         string            `json:"name"`
	Instance     string            `json:"instance"` // incus's name for it (a restore makes a new one)
	Status       string            `json:"status"`
	Type         string            `json:"type"`
	Image        string            `json:"image"`
	Fingerprint  string            `json:"fingerprint"`
	Newest       bool              `json:"image_is_newest"`
	NewestImage  string            `json:"newest_fingerprint,omitempty"`
	Mounts       map[string]string `json:"mounts"`
	CPU          string            `json:"cpu"`
	Memory       string            `json:"memory"`
	Started      string            `json:"started,omitempty"`
	Uptime       string            `json:"uptime,omitempty"`
	Firewall     string            `json:"firewall,omitempty"`
	MemoryUsed   int64             `json:"memory_used,omitempty"`
	ExtraAllowed []string          `json:"extra_allowed,omitempty"`
	Ports        []Port            `json:"ports,omitempty"`
}

// List returns all sandboxes on the server.
func (m *Manager) List() ([]Info, error) {
	insts, err := m.C.GetInstances(api.InstanceTypeAny)
	if err != nil {
		return nil, fmt.Errorf("list instances: %w", err)
	}
	out := []Info{}
	for i := range insts {
		if insts[i].Config[KeySandbox] == "true" && insts[i].Config[KeyDiscarded] == "" {
			out = append(out, m.info(&insts[i]))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (m *Manager) info(inst *api.Instance) Info {
	in := Info{
		Name: sandboxName(inst), Instance: inst.Name, Status: strings.ToLower(inst.Status), Type: inst.Type,
		Image: inst.Config[KeyImage], Fingerprint: inst.Config["volatile.base_image"],
		Mounts: map[string]string{}, CPU: inst.Config["limits.cpu"], Memory: inst.Config["limits.memory"],
		Started: inst.Config[KeyStarted],
	}
	for name, d := range inst.Devices {
		if isProjectDevice(name) {
			in.Mounts[d["path"]] = d["source"]
		}
	}
	if a, _, err := m.C.GetImageAlias(in.Image); err == nil {
		in.Newest = a.Target == in.Fingerprint
		if !in.Newest {
			in.NewestImage = a.Target
		}
	}
	if in.Started != "" && inst.StatusCode == api.Running {
		if t, err := time.Parse(time.RFC3339, in.Started); err == nil {
			in.Uptime = time.Since(t).Round(time.Second).String()
		}
	}
	if extra := inst.Config[KeyAllow]; extra != "" {
		in.ExtraAllowed = strings.Split(extra, "\n")
	}
	in.Ports = ports(inst)
	return in
}

// Stale says, when the sandbox runs an image its alias no longer points at,
// which two images those are ("" when it is the newest, or cannot be told).
func (m *Manager) Stale(name string) (running, newest string) {
	inst, err := m.Get(name)
	if err != nil {
		return "", ""
	}
	in := m.info(inst)
	if in.Newest || in.NewestImage == "" {
		return "", ""
	}
	return in.Fingerprint, in.NewestImage
}

// Status reports on one sandbox, asking the guest for its firewall state
// when it runs.
func (m *Manager) Status(ctx context.Context, name string) (Info, error) {
	inst, err := m.Get(name)
	if err != nil {
		return Info{}, err
	}
	in := m.info(inst)
	if inst.StatusCode == api.Running {
		if st, _, err := m.C.GetInstanceState(inst.Name); err == nil {
			in.MemoryUsed = st.Memory.Usage
		}
		if fw, err := m.Firewall(ctx, &Spec{Name: name, Gateway: m.Gateway}, "status"); err == nil {
			in.Firewall = fw
		}
	}
	return in, nil
}
