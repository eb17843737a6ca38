package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/vibesandbox/vibe/allowlist"
	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/egress"
	"github.com/vibesandbox/vibe/internal/safetext"
	"github.com/vibesandbox/vibe/sandbox"
	"github.com/vibesandbox/vibe/setup"
)

type runCmd struct {
	Project string   `arg:"" optional:"" help:"Project under ~/workspace to start in; . for the one holding the current directory." completion-predictor:"project"`
	Args    []string `arg:"" optional:"" passthrough:"" help:"Arguments for the agent (after --)."`
}

func (r *runCmd) Run(c *cli) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	cwd, err := s.cwdFor(r.Project)
	if err != nil {
		return err
	}
	if err := s.up(); err != nil {
		return err
	}
	args := r.Args
	if len(args) > 0 && args[0] == "--" {
		args = args[1:]
	}
	agent := cmp.Or(c.Agent, "claude")
	argv := append(append([]string{}, s.cfg.AgentCommand(agent)...), args...)
	s.spec.Agent = agent
	running, newest := s.mgr.Stale(s.spec.Name)
	loggedIn := false
	if dir := s.stateDir(agent); dir != "" {
		_, err := os.Lstat(filepath.Join(dir, config.AgentPresetNamed(agent).Keep[0]))
		loggedIn = err == nil
	}
	secretsPath, _ := configPath("secrets.env")
	for _, l := range guidance(s.spec.Name, s.spec.Image, agent, argv, s.secrets, secretsPath, loggedIn, running, newest) {
		fmt.Fprintf(os.Stderr, "vibe: %s\n", l)
	}
	code, err := s.asUser(argv, cwd, true)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

// guidance is what to do next before the agent starts, one line each:
// nothing when all is well. A command that is not the agent's own program
// (a script in its place) gets no word about keys.
func guidance(name, image, agent string, argv []string, sec map[string]string, secretsPath string, loggedIn bool, running, newest string) []string {
	var out []string
	if newest != "" {
		out = append(out, fmt.Sprintf("%s runs image %s, but %s now points at %s: vibe restore moves it there (projects are untouched)", name, short(running), image, short(newest)))
	}
	p := config.AgentPresetNamed(agent)
	if p != nil && len(argv) > 0 && filepath.Base(argv[0]) == p.Name && !loggedIn && !slices.ContainsFunc(p.Keys, func(k string) bool { return sec[k] != "" }) {
		who := agent
		if agent == "claude" {
			who = "the agent"
		}
		out = append(out, "no API key for "+who+": it will ask you to log in (or add "+p.Keys[0]+"=… to "+secretsPath+")")
	}
	return out
}

type upCmd struct {
	JSON bool `help:"Print what was done as JSON."`
}

func (u *upCmd) Run(c *cli) error {
	return launchReport(c, u.JSON, false)
}

// launchReport brings the sandbox up (afresh from the image with restore)
// and says how long each phase took.
func launchReport(c *cli, asJSON, restore bool) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	start := time.Now()
	if !asJSON {
		s.mgr.Progress = func(p string) { fmt.Fprintf(os.Stderr, "%6.1fs ▸ %s\n", time.Since(start).Seconds(), p) }
	}
	var aside func(string) (func() error, error)
	if restore {
		if inst, err := s.mgr.Get(s.spec.Name); err == nil {
			old := inst.Config["volatile.base_image"]
			if a, _, err := s.mgr.C.GetImageAlias(s.spec.Image); err == nil && old != "" && a.Target != old {
				fmt.Fprintf(os.Stderr, "vibe: %s now points at a newer image %s (the sandbox was made from %s); restoring from the newer one\n", s.spec.Image, short(a.Target), short(old))
			}
		} else if !errors.Is(err, sandbox.ErrNotFound) {
			return err
		}
		if s.cfg.Sandbox.Persist {
			unlock, err := lockState(s.spec.Name, 5*time.Second)
			if err != nil {
				return err
			}
			defer unlock()
			s.restoring = true
		}
		aside = func(former string) (func() error, error) {
			var kept []func() error
			all := func() error {
				for _, k := range kept {
					if err := k(); err != nil {
						return err
					}
				}
				return nil
			}
			if !s.cfg.Sandbox.Persist {
				return all, nil
			}
			// A disabled agent's folder too: every session may write
			// another agent's state, and it may be enabled again.
			for _, a := range config.AgentNames() {
				dir, err := agentStateDir(s.spec.Name, a)
				if err != nil {
					return nil, err
				}
				p := config.AgentPresetNamed(a)
				k, err := setAsideState(a, dir, former, p.Keep, p.Drop)
				if err != nil {
					return nil, err
				}
				kept = append(kept, k)
			}
			return all, nil
		}
	}
	if err := s.launch(aside); err != nil {
		return err
	}
	phases := s.mgr.Phases()
	total := time.Since(start).Seconds()
	if asJSON {
		return printJSON(struct {
			Name    string          `json:"name"`
			Seconds float64         `json:"seconds"`
			Phases  []sandbox.Phase `json:"phases"`
		}{s.spec.Name, total, phases})
	}
	if restore {
		fmt.Printf("%s restored from %s in %.1fs\n", s.spec.Name, s.spec.Image, total)
	} else {
		fmt.Printf("%s is up in %.1fs (%s mounted)\n", s.spec.Name, total, count(len(s.spec.Mounts), "project"))
	}
	for _, p := range phases {
		fmt.Printf("  %-10s %6.2fs\n", p.Name, p.Seconds)
	}
	return nil
}

type shellCmd struct {
	Project string `arg:"" optional:"" help:"Project to start in." completion-predictor:"project"`
	Root    bool   `help:"A root shell, for the host operator (the sandbox user has no way to become root)."`
}

func (sh *shellCmd) Run(c *cli) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	cwd, err := s.cwdFor(sh.Project)
	if err != nil {
		return err
	}
	if err := s.up(); err != nil {
		return err
	}
	var code int
	if sh.Root {
		code, err = s.mgr.Run(s.ctx, s.spec.Name, daemon.Exec{Command: []string{"bash", "-l"}, Cwd: "/root", Env: map[string]string{"HOME": "/root", "TERM": termName(true)}, Terminal: true})
	} else {
		code, err = s.asUser([]string{"bash", "-l"}, cwd, true)
	}
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

type execCmd struct {
	Command []string `arg:"" passthrough:"" help:"The command and its arguments (after --)."`
	Project string   `short:"p" help:"Run in this project's folder." completion-predictor:"project"`
}

func (e *execCmd) Run(c *cli) error {
	argv := e.Command
	if len(argv) > 0 && argv[0] == "--" {
		argv = argv[1:]
	}
	if len(argv) == 0 {
		return errors.New("exec: give a command: vibe exec -- CMD [ARGS...]")
	}
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	cwd, err := s.cwdFor(e.Project)
	if err != nil {
		return err
	}
	if err := s.up(); err != nil {
		return err
	}
	code, err := s.asUser(argv, cwd, false)
	if err != nil {
		return err
	}
	if code != 0 {
		return exitCode(code)
	}
	return nil
}

type restoreCmd struct {
	JSON bool `help:"Print what was done as JSON."`
}

func (r *restoreCmd) Run(c *cli) error {
	return launchReport(c, r.JSON, true)
}

func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

type stopCmd struct{}

func (stopCmd) Run(c *cli) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	return s.mgr.Stop(s.ctx, s.spec.Name)
}

type rmCmd struct{}

func (rmCmd) Run(c *cli) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	return s.mgr.Delete(s.ctx, s.spec.Name)
}

type lsCmd struct {
	JSON bool `help:"Print JSON."`
}

func (l *lsCmd) Run(c *cli) error {
	srv, err := daemon.Connect(c.Remote)
	if err != nil {
		return err
	}
	list, err := (&sandbox.Manager{C: srv}).List()
	if err != nil {
		return err
	}
	if l.JSON {
		return printJSON(list)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tTYPE\tIMAGE\tNEWEST\tUPTIME")
	for _, in := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s (%s)\t%v\t%s\n", in.Name, in.Status, in.Type, in.Image, short(in.Fingerprint), in.Newest, in.Uptime)
	}
	return tw.Flush()
}

type statusCmd struct {
	JSON bool `help:"Print JSON."`
}

func (st *statusCmd) Run(c *cli) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	in, err := s.mgr.Status(s.ctx, s.spec.Name)
	if err != nil {
		return err
	}
	in.Ports = relayPorts(in.Name, c.Remote, in.Ports)
	if st.JSON {
		return printJSON(in)
	}
	newest := "yes"
	if !in.Newest {
		newest = "no: " + in.Image + " now points at " + short(in.NewestImage) + " (vibe restore moves to it)"
	}
	fmt.Printf("name       %s (%s, %s)\n", in.Name, in.Type, in.Status)
	if in.Instance != in.Name {
		fmt.Printf("instance   %s (restored: incus knows it by this name)\n", in.Instance)
	}
	fmt.Printf("image      %s %s (newest: %s)\n", in.Image, short(in.Fingerprint), newest)
	fmt.Printf("firewall   %s\n", strings.ReplaceAll(cmp.Or(in.Firewall, "unknown (not running)"), "\n", "; "))
	fmt.Printf("resources  %s CPUs, %s memory", in.CPU, in.Memory)
	if in.MemoryUsed > 0 {
		fmt.Printf(" (%d MiB used)", in.MemoryUsed>>20)
	}
	fmt.Println()
	if in.Uptime != "" {
		fmt.Printf("uptime     %s\n", in.Uptime)
	}
	for _, p := range slices.Sorted(maps.Keys(in.Mounts)) {
		fmt.Printf("mount      %s <- %s\n", p, in.Mounts[p])
	}
	for _, a := range in.ExtraAllowed {
		fmt.Printf("allowed    %s (added with vibe allow)\n", a)
	}
	for _, p := range in.Ports {
		fmt.Printf("port       %s\n", portLine(p, "", "vibe port"))
	}
	return nil
}

type firewallCmd struct {
	Action string `arg:"" enum:"on,off,status" help:"on, off or status."`
}

func (f *firewallCmd) Run(c *cli) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	out, err := s.mgr.Firewall(s.ctx, s.spec, f.Action)
	if err != nil {
		return err
	}
	if f.Action != "status" {
		out, err = s.mgr.Firewall(s.ctx, s.spec, "status")
		if err != nil {
			return err
		}
	}
	fmt.Println(out)
	if f.Action == "off" {
		fmt.Fprintf(os.Stderr, "vibe: WARNING: egress from %s is now open; `vibe firewall on` closes it\n", s.spec.Name)
	}
	return nil
}

type configCmd struct{}

func (configCmd) Run(c *cli) error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	st, err := s.mgr.Apply(s.ctx, s.spec)
	if err != nil {
		return err
	}
	if st.Off() {
		fmt.Fprintln(os.Stderr, "vibe: WARNING: the firewall is off (operator's choice)")
	}
	fmt.Printf("%s: %s mounted, %s applied, self-test passed\n", s.spec.Name, count(len(s.spec.Mounts), "project"), count(len(s.spec.Allow), "allowlist entry"))
	return nil
}

type allowCmd struct {
	Entry string `arg:"" help:"An allowlist entry: example.com, =host.example.com or re:^…$."`
}

func (a *allowCmd) Run(c *cli) error {
	e, err := allowlist.Parse(a.Entry)
	if err != nil {
		return err
	}
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	if err := s.mgr.Allow(s.ctx, s.spec, e); err != nil {
		return err
	}
	fmt.Printf("%s may now reach %s (%s)\n", s.spec.Name, e.String(), e.Pattern)
	return nil
}

type portCmd struct {
	Port  string `arg:"" optional:"" help:"PORT (the same port on the host) or PORT:HOSTPORT; with --rm, the HOSTPORT to stop. None: list them." placeholder:"PORT[:HOSTPORT]"`
	Rm    bool   `help:"Stop forwarding the host port given."`
	Relay bool   `help:"Relay the port through this vibe while it runs, instead of an incus proxy device (what VMs and a daemon on another machine get anyway)."`
	JSON  bool   `help:"List as JSON."`
}

func (pc *portCmd) Run(c *cli) error {
	var p sandbox.Port
	var err error
	if pc.Port != "" {
		if p, err = sandbox.ParsePort(pc.Port); err != nil {
			return err
		}
	} else if pc.Rm {
		return fmt.Errorf("vibe port --rm HOSTPORT: which host port to stop")
	}
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.close()
	switch {
	case pc.Port == "":
		in, err := s.mgr.Status(s.ctx, s.spec.Name)
		if err != nil {
			return err
		}
		ports := relayPorts(s.spec.Name, c.Remote, in.Ports)
		if pc.JSON {
			if ports == nil {
				ports = []sandbox.Port{}
			}
			return printJSON(ports)
		}
		for _, p := range ports {
			fmt.Println(portLine(p, s.spec.Name+":", ""))
		}
		return nil
	case pc.Rm:
		if relayed, err := endRelay(s.spec.Name, c.Remote, p.Host); relayed || err != nil {
			if err == nil {
				fmt.Printf("127.0.0.1:%d no longer reaches %s (its relay was told to stop)\n", p.Host, s.spec.Name)
			}
			return err
		}
		if err := s.mgr.Unforward(s.ctx, s.spec.Name, p.Host); err != nil {
			return err
		}
		fmt.Printf("127.0.0.1:%d no longer reaches %s\n", p.Host, s.spec.Name)
		return nil
	case pc.Relay:
		return s.relay(c.Remote, p, "asked for with --relay")
	case !s.mgr.Local:
		// A proxy device would listen on the daemon's machine.
		return s.relay(c.Remote, p, "the incus daemon runs on another machine")
	}
	if err := s.mgr.Forward(s.ctx, s.spec.Name, p); err != nil {
		if errors.Is(err, sandbox.ErrVMPorts) {
			return s.relay(c.Remote, p, "incus proxies into a VM only by NAT, which the sandbox's network does not let in")
		}
		return err
	}
	fmt.Printf("http://127.0.0.1:%d -> %s:%d (this machine's loopback only; vibe port --rm %d or vibe restore ends it)\n", p.Host, s.spec.Name, p.Guest, p.Host)
	return nil
}

// portLine describes a forward: where it answers and what it reaches, or a
// warning when its device listens beyond the loopback.
func portLine(p sandbox.Port, guestPrefix, note string) string {
	if p.Exposed != "" {
		return fmt.Sprintf("WARNING: %s listens on %q, not only this machine's loopback (changed outside vibe; vibe port --rm %d)", sandbox.PortDevice(p.Host), p.Exposed, p.Host)
	}
	line := fmt.Sprintf("http://127.0.0.1:%d -> %s%d", p.Host, guestPrefix, p.Guest)
	if p.Relay != 0 {
		note = fmt.Sprintf("relayed by vibe pid %d while it runs", p.Relay)
	}
	if note != "" {
		line += " (" + note + ")"
	}
	return line
}

type doctorCmd struct{}

func (doctorCmd) Run(c *cli) error {
	failed := false
	report := func(level, what, detail string) {
		if level == "FAIL" {
			failed = true
		}
		fmt.Printf("%-4s %s: %s\n", level, what, detail)
	}
	cfg, err := config.Load(c.Config, config.CurrentHost())
	if err != nil {
		report("FAIL", "configuration", err.Error())
		return exitCode(1)
	}
	report("ok", "configuration", cfg.Source)
	srv, err := daemon.Connect(c.Remote)
	if err != nil {
		report("FAIL", "incus daemon", err.Error()+" (sudo vibe setup installs and starts it)")
		return exitCode(1)
	}
	info, _, err := srv.GetServer()
	if err != nil {
		report("FAIL", "incus daemon", err.Error())
		return exitCode(1)
	}
	report("ok", "incus daemon", "version "+info.Environment.ServerVersion+", drivers "+info.Environment.Driver)
	_, kvmErr := os.Stat("/dev/kvm")
	vms, _ := daemon.SupportsVMs(srv)
	switch {
	case vms && c.Remote == "" && !setup.KVM():
		// incus offers VMs wherever /dev/kvm and QEMU are; PVM's /dev/kvm
		// boots no ordinary guest kernel.
		report("warn", "virtual machines", "incus offers them, but this machine's /dev/kvm has no VT-x or AMD-V behind it (PVM): an ordinary guest kernel does not boot; use instance.type: container")
	case vms:
		report("ok", "virtual machines", "KVM available")
	case cfg.Instance.Type == config.VM:
		report("FAIL", "virtual machines", "the configuration asks for VMs but the server cannot run them (/dev/kvm: "+errText(kvmErr)+"); set instance.type: container (sudo vibe setup writes it) or use a machine with KVM")
	default:
		report("warn", "virtual machines", "not available (no KVM); containers share the host's kernel, a weaker boundary")
	}
	if cfg.Instance.Type == config.Container && c.Remote == "" {
		if err := sandbox.CheckDelegation(cfg.User.UID, cfg.User.GID); err != nil {
			report("FAIL", "id map", err.Error()+" (sudo vibe setup delegates them)")
		} else {
			report("ok", "id map", fmt.Sprintf("uid %d and gid %d map to the same host ids; guest root to an unprivileged one", cfg.User.UID, cfg.User.GID))
		}
	}
	if p, _, err := srv.GetProfile("default"); err == nil {
		pool := p.Devices["root"]["pool"]
		if sp, _, err := srv.GetStoragePool(pool); err == nil {
			if sp.Driver == "dir" {
				report("warn", "storage", "pool "+pool+" uses the dir driver: every launch unpacks the whole image; zfs or btrfs clone it in an instant (on a new machine, sudo vibe setup makes one)")
			} else {
				report("ok", "storage", "pool "+pool+" ("+sp.Driver+")")
			}
		} else {
			report("FAIL", "storage", "the default profile has no root disk pool: sudo vibe setup creates one")
		}
	}
	image := cfg.Image.Alias
	if c.Image != "" {
		image = c.Image
	}
	if a, _, err := srv.GetImageAlias(image); err == nil {
		report("ok", "image", image+" -> "+short(a.Target))
	} else {
		report("FAIL", "image", image+" not found: bake it with vibe-build build (no image server here? sudo vibe setup builds a local base first)")
	}
	if cfg.Instance.Type == config.VM && c.Remote != "" {
		report("warn", "virtiofsd", "the daemon is remote: check there that virtiofsd knows --translate-uid (VM mounts need it)")
	} else if cfg.Instance.Type == config.VM {
		switch path := findVirtiofsd(); {
		case path == "":
			report("FAIL", "virtiofsd", "not found: VM mounts would fall back to 9p, which incus cannot plug into a VM and which maps no ids (install virtiofsd)")
		case !virtiofsdMapsIDs(path):
			report("FAIL", "virtiofsd", path+" cannot translate ids (no --translate-uid): incus cannot give a VM its id map, so VM mounts fail; install a newer virtiofsd")
		default:
			report("ok", "virtiofsd", path+" (translates ids)")
		}
	}
	if p, err := configPath("secrets.env"); err == nil {
		if st, err := os.Stat(p); err == nil {
			if st.Mode().Perm()&0o077 != 0 {
				report("FAIL", "secrets", p+" is readable by others: chmod 600 "+p)
			} else {
				report("ok", "secrets", p)
			}
		} else {
			report("warn", "secrets", p+" does not exist: the agent will have no API key unless you log in inside the sandbox")
		}
	}
	if gw := cfg.Egress.Gateway; gw.Enabled {
		g := &egress.Gateway{C: srv, Network: gw.Network, Instance: gw.Instance, Uplink: gw.Uplink, Private: gw.PrivatePrefixes()}
		ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
		for _, f := range g.Check(ctx) {
			report(map[bool]string{true: "ok", false: "FAIL"}[f.OK], f.What, f.Detail)
		}
		stop()
	} else {
		report("warn", "egress gateway", "off: egress and the API key are enforced inside the guest only, where guest root can undo them (egress.gateway.enabled: true moves them out; the vibe.yaml sudo vibe setup writes has it on)")
	}
	for _, a := range cfg.EnabledAgents() {
		p := config.AgentPresetNamed(a)
		if cfg.Egress.Gateway.Enabled {
			report("ok", "agent "+a, p.Gateway)
		} else {
			report("warn", "agent "+a, "its key ("+strings.Join(p.Keys[:1], "")+") goes into the guest: the egress gateway is off")
		}
	}
	home, _ := os.UserHomeDir()
	if mounts, err := resolveMounts(cfg, home); err != nil {
		report("FAIL", "workspaces", err.Error())
	} else {
		report("ok", "workspaces", fmt.Sprintf("%d projects", len(mounts)))
	}
	if failed {
		return exitCode(1)
	}
	return nil
}

func errText(err error) string {
	if err == nil {
		return "present"
	}
	return "missing"
}

// virtiofsdMapsIDs reports whether the virtiofsd at path can translate
// ids, from its own help text: incus hands it the sandbox's id map as
// --translate-uid and --translate-gid.
func virtiofsdMapsIDs(path string) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	out, _ := exec.CommandContext(ctx, path, "--help").CombinedOutput()
	return bytes.Contains(out, []byte("--translate-uid"))
}

func findVirtiofsd() string {
	if p, err := exec.LookPath("virtiofsd"); err == nil {
		return p
	}
	// incus's own order.
	for _, p := range []string{"/usr/lib/qemu/virtiofsd", "/usr/libexec/virtiofsd", "/usr/lib/virtiofsd"} {
		if _, err := os.Stat(p); err == nil {
			return filepath.Clean(p)
		}
	}
	return ""
}

// checkCmd answers "would the sandbox reach HOST?" without a sandbox.
type checkCmd struct {
	Entry string   `arg:"" help:"An allowlist entry to validate (example.com, =host.example.com, re:^…$)."`
	Hosts []string `arg:"" optional:"" help:"Host names to test against the entry and against the configured allowlist."`
}

func (k *checkCmd) Run(c *cli) error {
	e, err := allowlist.Parse(k.Entry)
	if err != nil {
		return err
	}
	cfg, err := config.Load(c.Config, config.CurrentHost())
	if err != nil {
		return err
	}
	fmt.Printf("entry    %s (%s)\npattern  %s\n", e.String(), e.Kind, e.Pattern)
	for _, h := range k.Hosts {
		fmt.Printf("host     %-40s entry:%-5v configured allowlist:%v\n", h, e.Match(h), cfg.Allowlist.Allows(h))
	}
	return nil
}

// printJSON prints v in printable ASCII: its strings may be a guest's,
// an image's or a repository's.
func printJSON(v any) error {
	enc := json.NewEncoder(safetext.JSON(os.Stdout))
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

// count says "1 project", "2 projects", "1 allowlist entry", "2 allowlist entries".
func count(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	if strings.HasSuffix(noun, "y") {
		return fmt.Sprintf("%d %sies", n, strings.TrimSuffix(noun, "y"))
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// setAsideState sets an agent's state folder aside whole, beside it, and
// moves back only what keep names (its login and history, from
// config.AgentPresets), less what drop names; it says what stayed aside.
// Everything else there (settings with their hooks, MCP servers, plugins,
// downloaded helpers, instructions it wrote itself) was writable by the
// agent and would carry a compromise into the fresh sandbox. The folder is
// renamed within its parent, which is vibe's: no permission the agent set
// on it can stop that. A kept entry that cannot come back (a link on its
// way, a folder the agent closed, one the new sandbox made meanwhile)
// stays aside, and vibe says so.
//
// The folder is set aside at once, while the old sandbox (former, as
// sandbox.FormerID names it) may still run: its mount follows the folder,
// so it writes only there. What survives comes back in the function
// returned, which runs once nothing of the old sandbox runs (before, a
// process left in it could still write there). Until then the folder's
// name says so (pendingName): a vibe killed meanwhile leaves it for the
// next one (recoverAside).
func setAsideState(agent, dir, former string, keep, drop []string) (func() error, error) {
	none := func() error { return nil }
	if dir == "" {
		return none, nil
	}
	st, err := os.Lstat(dir)
	if os.IsNotExist(err) {
		return none, nil
	}
	if err != nil {
		return nil, fmt.Errorf("agent state: %w", err)
	}
	aside := pendingName(dir, former, time.Now())
	if err := os.Rename(dir, aside); err != nil {
		return nil, fmt.Errorf("set %s's state aside: %w", agent, err)
	}
	owner := ownerOf(st)
	if err := freshState(dir, owner); err != nil {
		return nil, err
	}
	return func() error { return keepBack(agent, dir, aside, keep, drop, owner) }, nil
}

// ownerOf is how folders made in an agent's state are owned: as the state
// folder (st) is (vibe run as root made it the sandbox user's, and the
// sandbox writes there).
func ownerOf(st os.FileInfo) func(*os.Root, string) error {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && os.Getuid() == 0 {
		return func(r *os.Root, p string) error { return r.Lchown(p, int(sys.Uid), int(sys.Gid)) }
	}
	return func(*os.Root, string) error { return nil }
}

// freshState makes an agent's empty state folder dir, owned as owner says.
func freshState(dir string, owner func(*os.Root, string) error) error {
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	defer r.Close()
	if err := owner(r, "."); err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	return nil
}

// pendingMark names a state folder a restore set aside and has not yet
// brought the login back from: DIR.restoring.FORMER.NANOS, beside DIR in
// vibe's own folder (the sandbox mounts only DIR), FORMER the old instance
// (sandbox.FormerID, "" with none) and NANOS when it was set aside.
const pendingMark = ".restoring."

func pendingName(dir, former string, at time.Time) string {
	return fmt.Sprintf("%s%s%s.%d", dir, pendingMark, former, at.UnixNano())
}

// parsePending reads name, an entry beside the state folder called base:
// the old instance and when, for a folder pendingName named.
func parsePending(base, name string) (former string, at time.Time, ok bool) {
	rest, ok := strings.CutPrefix(name, base+pendingMark)
	i := strings.LastIndexByte(rest, '.')
	if !ok || i < 0 {
		return "", time.Time{}, false
	}
	n, err := strconv.ParseInt(rest[i+1:], 10, 64)
	if err != nil || n <= 0 {
		return "", time.Time{}, false
	}
	return rest[:i], time.Unix(0, n), true
}

// recoverAside finishes what restores cut short (vibe killed, or its kill
// of the old instance failed) left of agent's state folder dir: folders
// set aside whose login never came back. former says what became of each
// one's old instance. Gone, the login and history come back as the restore
// would have brought them (the newest first: nothing in dir is replaced,
// so a login made since stays). Still the sandbox's (the restore never
// discarded it), the folder is put back whole, where its instance's mount
// expects it. The caller holds the sandbox's state lock (lockState): no
// restore is at work on these.
func recoverAside(agent, dir string, keep, drop []string, former func(string) (sandbox.FormerState, error)) error {
	entries, err := os.ReadDir(filepath.Dir(dir))
	if err != nil {
		if os.IsNotExist(err) {
			return nil
		}
		return fmt.Errorf("agent state: %w", err)
	}
	type pending struct {
		path, former string
		at           time.Time
	}
	var found []pending
	for _, e := range entries {
		if f, at, ok := parsePending(filepath.Base(dir), e.Name()); ok && e.IsDir() {
			found = append(found, pending{filepath.Join(filepath.Dir(dir), e.Name()), f, at})
		}
	}
	slices.SortFunc(found, func(a, b pending) int { return b.at.Compare(a.at) })
	for _, p := range found {
		state, err := former(p.former)
		if err != nil {
			return fmt.Errorf("%s's state set aside by a restore that did not finish (%s): %w", agent, sandbox.Printable(p.path), err)
		}
		switch state {
		case sandbox.FormerHolds:
			if err := os.Remove(dir); err != nil && !os.IsNotExist(err) {
				fmt.Fprintf(os.Stderr, "vibe: %s's state from before a restore that did not finish stays in %s, as %s was written since: move what you need back by hand\n", agent, sandbox.Printable(p.path), sandbox.Printable(dir))
				continue
			}
			if err := os.Rename(p.path, dir); err != nil {
				return fmt.Errorf("put %s's state back: %w", agent, err)
			}
			fmt.Fprintf(os.Stderr, "vibe: a restore of this sandbox did not finish; %s's state is back as it was\n", agent)
		case sandbox.FormerGone:
			st, err := os.Lstat(p.path)
			if err != nil {
				return fmt.Errorf("agent state: %w", err)
			}
			owner := ownerOf(st)
			if err := freshState(dir, owner); err != nil && !errors.Is(err, fs.ErrExist) {
				return err
			}
			if err := keepBack(agent, dir, p.path, keep, drop, owner); err != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "vibe: a restore of this sandbox was cut short; %s's login and history are back\n", agent)
		}
	}
	return nil
}

// keepBack moves what keep names from the folder set aside back to the
// agent's fresh state folder dir, less what drop names, and says what
// stayed aside. The new sandbox runs already and may rearrange dir as it
// goes: both folders are held open (os.Root), so no link out of either is
// followed, and nothing but what lies in them moves.
func keepBack(agent, dir, aside string, keep, drop []string, owner func(*os.Root, string) error) error {
	to, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	defer to.Close()
	from, err := os.OpenRoot(aside)
	if err != nil {
		return fmt.Errorf("agent state: %w", err)
	}
	defer from.Close()
	var lost []string
	for _, k := range keep {
		if err := moveBack(from, to, k, owner); err != nil && !os.IsNotExist(err) {
			lost = append(lost, sandbox.Printable(k))
		}
	}
	for _, d := range drop {
		// drop is PARENT/*/NAME: NAME in each folder of PARENT.
		parent, name, _ := strings.Cut(d, "/*/")
		in, err := openRootDir(to, parent)
		if err != nil {
			continue
		}
		entries, _ := readFolder(in)
		for _, e := range entries {
			if e.IsDir() {
				_ = moveEntry(in, filepath.Join(e.Name(), name), from, filepath.Join(parent, e.Name(), name))
			}
		}
		in.Close()
	}
	// What the last session's snapshot recorded of this state is set
	// aside with it, and vibe says where below: its going is no change for
	// the next session to report as made by something left running.
	forgetSnapshot(filepath.Join(filepath.Dir(dir), "host-run.json"), dir)
	// What stayed aside, named down to the level of what was kept.
	var left []string
	var list func(rel string)
	list = func(rel string) {
		entries, _ := os.ReadDir(filepath.Join(aside, rel))
		for _, e := range entries {
			p := filepath.Join(rel, e.Name())
			if e.IsDir() && e.Type()&os.ModeSymlink == 0 && slices.ContainsFunc(append(keep, drop...), func(k string) bool { return strings.HasPrefix(k, p+"/") || strings.HasPrefix(k, filepath.Dir(p)+"/*/") }) {
				list(p)
				continue
			}
			left = append(left, sandbox.Printable(p))
		}
	}
	list("")
	if len(left) > 0 {
		// No longer pending: what stays is the user's to look at.
		done := fmt.Sprintf("%s.set-aside-%s-%d", dir, time.Now().UTC().Format("20060102-150405"), time.Now().UnixNano()%1e6)
		if err := os.Rename(aside, done); err == nil {
			aside = done
		}
		fmt.Fprintf(os.Stderr, "vibe: %s's settings do not survive a restore (they may carry hooks it wrote); set aside in %s: %s (login and history kept)\n", agent, sandbox.Printable(aside), strings.Join(left, ", "))
	} else {
		// Only the empty folders of what came back are left.
		_ = os.RemoveAll(aside)
	}
	if len(lost) > 0 {
		fmt.Fprintf(os.Stderr, "vibe: WARNING: %s's %s could not be kept (a link on its way, a folder it cannot be moved out of, or a newer one there): it stays in %s, and the agent may ask you to log in again\n", agent, strings.Join(lost, ", "), sandbox.Printable(aside))
	}
	return nil
}

// moveBack moves rel from the folder set aside to the fresh one, making
// the folders on its way there (owned as owner says). A link on its way in
// the folder set aside is not followed: no path the agent laid out is.
func moveBack(from, to *os.Root, rel string, owner func(*os.Root, string) error) error {
	parts := strings.Split(rel, "/")
	for i := range len(parts) - 1 {
		st, err := from.Lstat(filepath.Join(parts[:i+1]...))
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%s: not a folder", rel)
		}
	}
	if _, err := from.Lstat(rel); err != nil {
		return err
	}
	for i := 1; i < len(parts); i++ {
		p := filepath.Join(parts[:i]...)
		if err := to.Mkdir(p, 0o700); err == nil {
			if err := owner(to, p); err != nil {
				return err
			}
		} else if !os.IsExist(err) {
			return err
		}
	}
	return moveEntry(from, rel, to, rel)
}

// moveEntry renames rel in from to dst in to (making the folders on its
// way there), each resolved in its folder held open: whatever the folders
// on the way become meanwhile, the entry moves from a folder of from to a
// folder of to, never anywhere else, and never over an entry there.
func moveEntry(from *os.Root, rel string, to *os.Root, dst string) error {
	src, err := openDir(from, filepath.Dir(rel))
	if err != nil {
		return err
	}
	defer src.Close()
	if filepath.Dir(dst) != "." {
		if err := to.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			return err
		}
	}
	dstDir, err := openDir(to, filepath.Dir(dst))
	if err != nil {
		return err
	}
	defer dstDir.Close()
	if _, err := from.Lstat(rel); err != nil {
		return err
	}
	// Never over what is there: a login the user made since stays.
	err = unix.Renameat2(int(src.Fd()), filepath.Base(rel), int(dstDir.Fd()), filepath.Base(dst), unix.RENAME_NOREPLACE)
	if errors.Is(err, unix.EINVAL) { // a file system without the flag
		if _, lerr := to.Lstat(dst); !os.IsNotExist(lerr) {
			return fs.ErrExist
		}
		err = unix.Renameat(int(src.Fd()), filepath.Base(rel), int(dstDir.Fd()), filepath.Base(dst))
	}
	return err
}

// forgetSnapshot drops what the snapshot saved at path records below dir
// and is not there any more (set aside). What is there is compared as
// ever: a session may have run on the new sandbox before a restore cut
// short was finished, and what it left changed since is reported.
// Each path is looked at inside dir (os.Root): a link the sandbox made on
// the way is not followed, and what it hides is kept (compared).
func forgetSnapshot(path, dir string) {
	snap, ok := loadSnapshot(path)
	if !ok {
		return
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return
	}
	defer r.Close()
	n := len(snap)
	maps.DeleteFunc(snap, func(p, _ string) bool {
		rel, ok := strings.CutPrefix(p, dir+"/")
		if !ok {
			return false
		}
		_, err := r.Lstat(rel)
		return errors.Is(err, fs.ErrNotExist)
	})
	if len(snap) != n {
		_ = saveSnapshot(path, snap)
	}
}

// openDir opens the folder name in r, and nothing else: a FIFO the
// sandbox swapped in for it (os.Root opens a last component as it is)
// would block the open until someone wrote to it.
func openDir(r *os.Root, name string) (*os.File, error) {
	return r.OpenFile(name, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
}

// openRootDir is Root.OpenRoot for a folder only (openDir): the root is
// opened again through the folder already held, never by its name.
func openRootDir(r *os.Root, name string) (*os.Root, error) {
	f, err := openDir(r, name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return os.OpenRoot("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
}

// readFolder lists a folder held open.
func readFolder(r *os.Root) ([]os.DirEntry, error) {
	f, err := r.Open(".")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return f.ReadDir(-1)
}

type trustCmd struct {
	File   string `arg:"" optional:"" default:"vibe.yaml" help:"The project's configuration file." type:"path"`
	Remove bool   `help:"Forget the trust: the file is ignored again."`
}

func (t *trustCmd) Run() error {
	p, err := config.Trust(t.File, t.Remove)
	if err != nil {
		return err
	}
	if t.Remove {
		fmt.Printf("%s is no longer trusted\n", p.Path)
		return nil
	}
	fmt.Printf("trusted %s (sha256 %s): vibe and vibe-build use it here until it changes\n", p.Path, p.SHA256[:16])
	fmt.Printf("  it may set only: %s\n", strings.Join(config.ProjectKeys, ", "))
	fmt.Printf("  it gets its own sandbox and image (suffix %s), never your main ones\n", p.Suffix)
	return nil
}
