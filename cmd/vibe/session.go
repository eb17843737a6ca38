package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/posener/complete"

	"github.com/vibesandbox/vibe/allowlist"
	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/egress"
	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/internal/atomicfile"
	"github.com/vibesandbox/vibe/sandbox"
	"github.com/vibesandbox/vibe/secrets"
	"github.com/vibesandbox/vibe/signing"
	"github.com/vibesandbox/vibe/source"
	"github.com/vibesandbox/vibe/workspace"
)

// session is everything a command needs: configuration, the sandbox spec,
// secrets and a connection to incus.
type session struct {
	cfg     *config.Config
	spec    *sandbox.Spec
	secrets map[string]string
	mgr     *sandbox.Manager
	ctx     context.Context
	stop    context.CancelFunc
	trust   string // allowed-signers file for remote images
	// restoring: this vibe holds the sandbox's state lock for a restore.
	restoring bool
}

func (s *session) close() { s.stop() }

// open loads the configuration and secrets, resolves the mounts, and
// connects. Nothing is created or started.
func (c *cli) open() (*session, error) {
	cfg, err := config.Load(c.Config, config.CurrentHost())
	if err != nil {
		return nil, err
	}
	if n := cfg.Notice(); n != "" {
		fmt.Fprintf(os.Stderr, "vibe: %s\n", n)
	}
	if c.InstanceType != "" {
		if err := cfg.Override(config.Overrides{InstanceType: c.InstanceType}); err != nil {
			return nil, err
		}
	}
	name := cfg.Name
	if c.Name != "" {
		name = c.Name
	}
	image := cfg.Image.Alias
	if c.Image != "" {
		image = c.Image
	}
	if c.Trust != "" && !source.IsRemote(image) {
		return nil, fmt.Errorf("--trust checks an image fetched from a tree (https://… or REMOTE:NAME); %s is an image on this machine: check it with vibe-build verify %s --trust %s", image, image, c.Trust)
	}
	home, _ := os.UserHomeDir()
	mounts, err := resolveMounts(cfg, home)
	if err != nil {
		return nil, err
	}
	secretsPath, err := configPath("secrets.env")
	if err != nil {
		return nil, err
	}
	sec, err := secrets.Load(secretsPath)
	if err != nil {
		return nil, err
	}
	allow := append(allowlist.List{}, cfg.Allowlist...)
	extra := append([]string{}, c.Allow...)
	if gw, err := secrets.GatewayHost(sec); err != nil {
		return nil, err
	} else if gw != "" {
		extra = append(extra, "="+gw)
	}
	for _, raw := range extra {
		e, err := allowlist.Parse(raw)
		if err != nil {
			return nil, fmt.Errorf("--allow: %w", err)
		}
		allow = append(allow, e)
	}
	spec := &sandbox.Spec{
		Name: name, Image: image, InstanceType: cfg.Instance.Type, Network: c.Network,
		CPU: cfg.Instance.CPU, Memory: cfg.Instance.Memory, Disk: cfg.Instance.Disk,
		User: cfg.User.Name, UID: cfg.User.UID, GID: cfg.User.GID, Mounts: mounts, Allow: allow,
		Extra: allow[len(cfg.Allowlist):],
	}
	if cfg.Sandbox.Persist {
		// Claude Code's folder serves agent.command, whatever runs there.
		dir, err := agentStateDir(name, "claude")
		if err != nil {
			return nil, err
		}
		spec.StateDir = dir
		for _, a := range cfg.EnabledAgents() {
			if a == "claude" {
				continue
			}
			if spec.AgentStates == nil {
				spec.AgentStates = map[string]string{}
			}
			if spec.AgentStates[a], err = agentStateDir(name, a); err != nil {
				return nil, err
			}
		}
	}
	if c.Agent != "" && c.Agent != "claude" && !cfg.Agents.Extra(c.Agent).Enabled {
		return nil, fmt.Errorf("--agent %s: agents.%s.enabled is off; set it in your vibe.yaml and bake the image again (vibe-build build), then vibe restore", c.Agent, c.Agent)
	}
	srv, err := daemon.Connect(c.Remote)
	if err != nil {
		return nil, err
	}
	if gw := cfg.Egress.Gateway; gw.Enabled {
		if c.Network != "" {
			return nil, fmt.Errorf("--network picks the sandbox's network, and behind the egress gateway the sandbox is on the gateway's own (%s); set egress.gateway.uplink to choose how the gateway reaches the outside", gw.Network)
		}
		bin, err := os.Executable()
		if err != nil {
			return nil, fmt.Errorf("find this vibe to hand it to the gateway: %w", err)
		}
		img := gw.Image
		if img == "" {
			img = cfg.Image.Base
		}
		spec.Gateway = &egress.Gateway{C: srv, Network: gw.Network, Instance: gw.Instance, Uplink: gw.Uplink, Image: img, Binary: bin, Private: gw.PrivatePrefixes()}
		for _, c := range cfg.Egress.Credentials {
			spec.Credentials = append(spec.Credentials, egress.Binding{Key: c.Key, Upstream: c.Upstream, Header: c.Header, Prefix: c.Prefix, BaseURLEnv: c.BaseURLEnv})
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	mgr := &sandbox.Manager{C: srv, Local: c.Remote == "", Gateway: spec.Gateway}
	return &session{cfg: cfg, spec: spec, secrets: sec, mgr: mgr, ctx: ctx, stop: stop, trust: c.Trust}, nil
}

// agentStateDir is the host folder of agent's state in sandbox name.
func agentStateDir(name, agent string) (string, error) {
	return dataPath(filepath.Join("state", name, agent))
}

// recoverState finishes what restores of this sandbox cut short left of
// its agents' state (recoverStates), before the sandbox is used.
func (s *session) recoverState() error {
	if !s.cfg.Sandbox.Persist {
		return nil
	}
	return recoverStates(s.spec.Name, s.restoring, func(former string) (sandbox.FormerState, error) {
		return s.mgr.Former(s.ctx, s.spec.Name, former)
	})
}

// recoverStates is recoverAside for each agent's state in sandbox name,
// under the sandbox's state lock (held already, or taken here: while a
// restore holds it, what it set aside is its own, and nothing is done).
func recoverStates(name string, held bool, former func(string) (sandbox.FormerState, error)) error {
	if !held {
		unlock, err := lockState(name, 0)
		if errors.Is(err, errStateBusy) {
			return nil
		}
		if err != nil {
			return err
		}
		defer unlock()
	}
	for _, a := range config.AgentNames() {
		dir, err := agentStateDir(name, a)
		if err != nil {
			return err
		}
		p := config.AgentPresetNamed(a)
		if err := recoverAside(a, dir, p.Keep, p.Drop, former); err != nil {
			return err
		}
	}
	return nil
}

// errStateBusy: another vibe holds the sandbox's state lock.
var errStateBusy = errors.New("another vibe is setting this sandbox's agent state aside or bringing it back (a vibe restore); try again once it is done")

// lockState takes sandbox name's state lock, which a restore holds from
// setting its agents' state aside until their logins are back, and the
// recovery of a restore cut short while it looks: neither sees the other
// halfway. The kernel lets it go when vibe ends, however it ends. It is
// tried for up to wait (a recovery's look takes milliseconds; a restore's
// hold, its old instance's kill).
func lockState(name string, wait time.Duration) (func(), error) {
	path, err := dataPath(filepath.Join("state", name, ".lock"))
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state lock: %w", err)
	}
	for deadline := time.Now().Add(wait); ; time.Sleep(50 * time.Millisecond) {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("state lock: %w", err)
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errStateBusy
		}
	}
}

// stateDir is the host folder of agent's state, "" when not persisted.
func (s *session) stateDir(agent string) string {
	if agent == "claude" {
		return s.spec.StateDir
	}
	return s.spec.AgentStates[agent]
}

// resolveMounts expands the configured workspace folder and list file.
func resolveMounts(cfg *config.Config, home string) ([]workspace.Mount, error) {
	expand := func(p string) string {
		if strings.HasPrefix(p, "~/") && home != "" {
			return filepath.Join(home, p[2:])
		}
		return p
	}
	var list []workspace.Mount
	if p := expand(cfg.Sandbox.Workspaces); p != "" {
		b, err := os.ReadFile(p)
		if err != nil && !os.IsNotExist(err) {
			return nil, fmt.Errorf("workspaces %s: %w", p, err)
		}
		if err == nil {
			list, err = workspace.ParseList(string(b), home)
			if err != nil {
				return nil, fmt.Errorf("workspaces %s: %w", p, err)
			}
		}
	}
	var own []string
	for _, f := range []func(string) (string, error){configPath, dataPath} {
		if p, err := f(""); err == nil {
			own = append(own, p)
		}
	}
	return workspace.Resolve(expand(cfg.Sandbox.Workspace), list, workspace.Guard{Home: home, Own: own})
}

func configPath(name string) (string, error) { return xdgPath("XDG_CONFIG_HOME", ".config", name) }

func dataPath(name string) (string, error) { return xdgPath("XDG_DATA_HOME", ".local/share", name) }

// xdgPath is $ENV/vibe/name, or ~/fallback/vibe/name when ENV is unset or
// not absolute (as the XDG base directory rules say).
func xdgPath(env, fallback, name string) (string, error) {
	base := os.Getenv(env)
	if !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(home, fallback)
	}
	return filepath.Join(base, "vibe", name), nil
}

// up brings the sandbox up and enforces fail-closed: a sandbox that is not
// contained is refused; one the operator opened on purpose is announced.
func (s *session) up() error { return s.launch(nil) }

// launch brings the sandbox up. With aside set it makes the sandbox afresh
// from the image (vibe restore; see Manager.Replace for aside).
func (s *session) launch(aside func(former string) (func() error, error)) error {
	if err := s.fetchImage(aside != nil); err != nil {
		return err
	}
	if err := s.recoverState(); err != nil {
		return err
	}
	var st *sandbox.SelfTest
	var err error
	if aside != nil {
		st, err = s.mgr.Replace(s.ctx, s.spec, aside)
	} else {
		st, err = s.mgr.Up(s.ctx, s.spec)
	}
	if err != nil {
		return err
	}
	for _, m := range s.spec.Mounts {
		if m.HostRunWritable && !m.ReadOnly {
			fmt.Fprintf(os.Stderr, "vibe: WARNING: the agent can write the host-run files of %s (git hooks and config, .envrc, editor settings: they run on this host later); :hostrun-rw in the workspaces list asks for it\n", m.Name)
		}
	}
	if st.Off() {
		fmt.Fprintf(os.Stderr, "\n  WARNING: the egress firewall of %s is OFF (switched off by the operator).\n  Everything in it can reach the network%s. `vibe firewall on` closes it again.\n\n", s.spec.Name, map[bool]string{true: " (through the gateway: any host, on ports 80 and 443)", false: ""}[s.spec.Gateway != nil])
	}
	return nil
}

// fetchImage imports an image named as REMOTE:NAME or by an https tree
// into the daemon, verified (and signed by a trusted key with --trust), and
// points the spec at its fingerprint. Only a sandbox being created (or
// replaced) needs it.
func (s *session) fetchImage(replace bool) error {
	if !source.IsRemote(s.spec.Image) {
		return nil
	}
	if _, err := s.mgr.Get(s.spec.Name); err == nil && !replace {
		if s.trust != "" {
			return fmt.Errorf("--trust checks an image before a sandbox is made from it, and %s exists already; vibe restore makes it again from the image (checked with --trust)", s.spec.Name)
		}
		return nil
	}
	var trust *signing.AllowedSigners
	if s.trust != "" {
		var err error
		if trust, err = signing.LoadAllowedSigners(s.trust); err != nil {
			return err
		}
	}
	store, err := images.DefaultStore()
	if err != nil {
		return err
	}
	res, err := source.Import(s.ctx, s.mgr.C, store, s.spec.Image, "", images.ImportOptions{Trust: trust})
	if err != nil {
		return fmt.Errorf("image %s: %w", s.spec.Image, err)
	}
	if res.Added {
		how := "its hashes verified, but UNSIGNED: anyone who could change the source could have made it (--trust FILE requires a trusted signature)"
		switch {
		case res.Signer != nil && res.Trusted:
			how = "verified, signed by " + res.Signer.Principal + " (trusted)"
		case res.Signer != nil:
			how = "its hashes and signature verified, but no --trust file said whether key " + res.Signer.Fingerprint + " is trusted"
		}
		fmt.Fprintf(os.Stderr, "vibe: imported %s as %s: %s\n", s.spec.Image, short(res.Fingerprint), how)
	}
	s.spec.Image = res.Fingerprint
	return nil
}

// asUser runs argv in the sandbox as the sandbox user with the agent's
// environment (secrets through the launcher) and returns its exit status.
// Host-run files are compared with the snapshot kept on the host since the
// last session, before and after: a change made between sessions (by a
// process the agent left behind) is reported as well as one made in this.
func (s *session) asUser(argv []string, cwd string, terminal bool) (int, error) {
	snapPath, err := dataPath(filepath.Join("state", s.spec.Name, "host-run.json"))
	if err != nil {
		return -1, err
	}
	states := s.spec.StateFolders()
	// since is the snapshot the new one is compared with: of git's
	// history, what came since is compared.
	snap := func(since sandbox.Snapshot) sandbox.Snapshot {
		if taken := sandbox.TakeSnapshot(s.spec.Mounts, states, since); !taken.Unsteady() {
			return taken
		}
		// Something in the sandbox changed a project while it was
		// listed: again, with the sandbox frozen (which costs up to a
		// second, so only then).
		thaw, held := s.mgr.Hold(s.ctx, s.spec.Name)
		defer thaw()
		if held {
			return sandbox.TakeSnapshotHeld(s.spec.Mounts, states, since)
		}
		return sandbox.TakeSnapshot(s.spec.Mounts, states, since)
	}
	roots := sandbox.GroupRoots(s.spec.Mounts, states)
	last, haveLast := loadSnapshot(snapPath)
	before := snap(last)
	if haveLast {
		changed, added := before.SinceLast(last).Grouped(last, roots)
		warnChanged(changed, added, "since the last session ended (something in the sandbox went on running)")
	}
	env := sandbox.Env(s.spec, sandbox.HostGitIdentity(), termName(terminal))
	code, err := s.mgr.Launch(s.ctx, s.spec, argv, cwd, env, s.secrets, terminal)
	after := snap(before)
	changed, added := after.Grouped(before, roots)
	warnChanged(changed, added, "during the session")
	// Said after every session, not only when it first happens: past the
	// bound, a change goes unseen.
	for _, dir := range after.Truncated() {
		fmt.Fprintf(os.Stderr, "vibe: WARNING: vibe could not compare all the host-run files of %s (%s): a change there may go unreported; review it (vibe restore sets an agent's state aside)\n", sandbox.Printable(dir), sandbox.Printable(after.Reason(dir)))
	}
	if serr := saveSnapshot(snapPath, after); serr != nil && err == nil {
		err = serr
	}
	return code, err
}

// maxAddedLines bounds the new files listed: a flood of them is a
// message in itself.
const maxAddedLines = 50

// warnChanged reports changed host-run files: every one that was there
// and changed or went, then the new ones up to maxAddedLines (so that a
// flood of new files cannot push a changed one out of sight). Their names
// came from the guest, so they are printed without control characters.
func warnChanged(changed, added []string, when string) {
	if len(changed)+len(added) == 0 {
		return
	}
	fmt.Fprintf(os.Stderr, "\nvibe: WARNING: files that run or are obeyed on the host (or, for the agent's settings and hooks, in every sandbox) changed %s; review them:\n", when)
	for _, p := range changed {
		fmt.Fprintf(os.Stderr, "  %s\n", sandbox.Printable(p))
	}
	for i, p := range added {
		if i == maxAddedLines {
			fmt.Fprintf(os.Stderr, "  … and %d more new\n", len(added)-i)
			break
		}
		fmt.Fprintf(os.Stderr, "  %s\n", sandbox.Printable(p))
	}
}

func loadSnapshot(path string) (sandbox.Snapshot, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, false
	}
	var snap sandbox.Snapshot
	if json.Unmarshal(b, &snap) != nil {
		return nil, false
	}
	return snap, true
}

func saveSnapshot(path string, snap sandbox.Snapshot) error {
	b, err := json.Marshal(snap)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("host-run snapshot: %w", err)
	}
	return atomicfile.Write(path, b, 0o600)
}

func termName(terminal bool) string {
	if !terminal {
		return ""
	}
	if t := os.Getenv("TERM"); t != "" {
		return t
	}
	return "xterm-256color"
}

// cwdFor maps a project argument to a folder in the guest: "" is the
// mount folder, "." the mounted project holding the current directory.
func (s *session) cwdFor(project string) (string, error) {
	base := sandbox.MountRoot
	switch project {
	case "":
		return base, nil
	case ".":
		wd, err := os.Getwd()
		if err != nil {
			return "", err
		}
		m, rel, err := workspace.Locate(s.spec.Mounts, wd)
		if err != nil {
			return "", err
		}
		if rel == "" {
			return base + "/" + m.Name, nil
		}
		return base + "/" + m.Name + "/" + filepath.ToSlash(rel), nil
	}
	if err := workspace.ValidName(project); err != nil {
		return "", err
	}
	for _, m := range s.spec.Mounts {
		if m.Name == project {
			return base + "/" + project, nil
		}
	}
	var names []string
	for _, m := range s.spec.Mounts {
		names = append(names, m.Name)
	}
	return "", fmt.Errorf("no project %q is mounted (mounted: %s); add it to the workspace folder or the workspaces list", project, strings.Join(names, ", "))
}

// predictSandboxes completes --name with the server's sandboxes.
func predictSandboxes(complete.Args) []string {
	srv, err := daemon.Connect("")
	if err != nil {
		return nil
	}
	list, err := (&sandbox.Manager{C: srv}).List()
	if err != nil {
		return nil
	}
	var names []string
	for _, in := range list {
		names = append(names, in.Name)
	}
	return names
}

// predictProjects completes PROJECT with the mounted projects.
func predictProjects(complete.Args) []string {
	cfg, err := config.Load("", config.CurrentHost())
	if err != nil {
		return nil
	}
	home, _ := os.UserHomeDir()
	mounts, err := resolveMounts(cfg, home)
	if err != nil {
		return nil
	}
	names := []string{"."}
	for _, m := range mounts {
		names = append(names, m.Name)
	}
	return names
}
