package setup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/distro"
	"github.com/vibesandbox/vibe/egress"
)

// Options are what the user asked of vibe setup and what vibe knows.
type Options struct {
	Storage string     // auto, btrfs, zfs or dir
	User    *user.User // who ran sudo; nil when root ran it directly
	UID     int        // the sandbox user's host ids (config user.uid, user.gid)
	GID     int
	Base    string // the configured image.base
	Type    string // the configured instance.type when the user set one; "" decides by KVM
	Self    string // this vibe binary (for completions)
	// ConfigPath is the invoking user's vibe.yaml, written when missing.
	ConfigPath string
	// MirrorsFromHost copies the host's package servers and added
	// certificate authorities into the vibe.yaml setup writes.
	MirrorsFromHost bool
	// Resolve looks a host name up (nil: the system's resolver, bounded).
	Resolve func(ctx context.Context, host string) error
	// Where bash completions and built base trees go ("": the system's).
	CompletionDir, CacheDir string
	Log                     func(string)
}

// Uplink is the NAT network vibe makes for the gateway's outside leg when
// the default profile has none.
const Uplink = "vibe-uplink"

// Setup holds what the steps found and decided, for the later steps and
// the user's vibe.yaml.
type Setup struct {
	o       Options
	os      distro.OSRelease
	Decided Decisions
	// Whether the uplink and base checks ran (and decided), for a run of
	// only some steps.
	decidedUplink, decidedBase bool
}

// Decisions are what setup writes into the user's vibe.yaml.
type Decisions struct {
	InstanceType string `json:"instance_type"`
	TypeWhy      string `json:"type_why"`
	Base         string `json:"base,omitempty"`   // set when setup built a local base
	Uplink       string `json:"uplink,omitempty"` // set when setup made the uplink
	Pool         string `json:"pool"`
	// Archive and Security are the local base's archives (set with Base).
	Archive  string `json:"archive,omitempty"`
	Security string `json:"security,omitempty"`
	// Host is what --mirrors-from-host found.
	Host *HostMirrors `json:"host,omitempty"`
	// CA are the certificate authorities added to the host's trust store.
	CA []string `json:"ca,omitempty"`
	// Switched are the downloads whose sites do not resolve here.
	Switched []Switched `json:"switched,omitempty"`
}

// New prepares the steps for this host.
func New(o Options) *Setup {
	if o.Log == nil {
		o.Log = func(string) {}
	}
	if o.Storage == "" {
		o.Storage = "auto"
	}
	if o.CompletionDir == "" {
		o.CompletionDir = "/usr/share/bash-completion/completions"
	}
	if o.CacheDir == "" {
		o.CacheDir = "/var/cache/vibe/base"
	}
	s := &Setup{o: o, os: distro.ReadOSRelease("/")}
	s.Decided.CA = HostCAs(o.User, o.Log)
	if o.MirrorsFromHost {
		home := "/root"
		if o.User != nil {
			home = o.User.HomeDir
		} else if h, err := os.UserHomeDir(); err == nil {
			home = h
		}
		h := ReadHostMirrors(context.Background(), s.os, o.User, home)
		s.Decided.Host = &h
	}
	switch {
	case o.Type != "":
		s.Decided.InstanceType, s.Decided.TypeWhy = o.Type, "as configured"
	default:
		why := kvmWhy("/dev/kvm", "/proc/cpuinfo", runtime.GOARCH)
		if why == "" {
			s.Decided.InstanceType, s.Decided.TypeWhy = "vm", "KVM works here: each sandbox is a virtual machine with its own kernel"
			break
		}
		s.Decided.InstanceType, s.Decided.TypeWhy = "container", why+", so sandboxes are containers: they share the host's kernel, and a kernel exploit in the guest reaches the host (a VM's boundary is the hypervisor)"
	}
	return s
}

// Steps are the set-up, in order; with names, only those (in order).
func (s *Setup) Steps(only ...string) ([]Step, error) {
	all := s.steps()
	if len(only) == 0 {
		return all, nil
	}
	var out []Step
	for _, st := range all {
		if slices.Contains(only, st.Name) {
			out = append(out, st)
		}
	}
	for _, n := range only {
		if !slices.ContainsFunc(all, func(st Step) bool { return st.Name == n }) {
			var names []string
			for _, st := range all {
				names = append(names, st.Name)
			}
			return nil, fmt.Errorf("no step %q: the steps are %s", n, strings.Join(names, ", "))
		}
	}
	return out, nil
}

func (s *Setup) steps() []Step {
	return []Step{
		{Name: "incus", Check: s.checkIncus, Do: s.installIncus},
		{Name: "ids", Check: s.checkIDs, Do: s.delegateIDs},
		{Name: "daemon", Check: s.checkDaemon, Do: func(ctx context.Context) error { return startDaemon(ctx, s.o.Log, false) }},
		{Name: "storage", Check: s.checkStorage, Do: s.makeStorage},
		{Name: "uplink", Check: s.checkUplink, Do: s.makeUplink},
		{Name: "base", Check: s.checkBase, Do: s.buildBase},
		{Name: "group", Check: s.checkGroup, Do: s.addGroup},
		{Name: "completion", Check: s.checkCompletion, Do: s.writeCompletion},
		s.configStep(s.o.ConfigPath),
	}
}

// owner is the invoking user's uid and gid (0, 0 without sudo).
func (s *Setup) owner() (int, int) {
	if s.o.User == nil {
		return 0, 0
	}
	uid, _ := strconv.Atoi(s.o.User.Uid)
	gid, _ := strconv.Atoi(s.o.User.Gid)
	return uid, gid
}

func (s *Setup) checkIncus(context.Context) (State, error) {
	if incusInstalled() {
		return State{Done: true, Detail: "installed"}, nil
	}
	p, err := s.installPlan()
	if err != nil {
		return State{}, err
	}
	from := "the distribution's archive"
	if p.Target != "" {
		from = p.Target
	}
	return State{Detail: fmt.Sprintf("install %s from %s", strings.Join(p.Packages, " "), from)}, nil
}

func (s *Setup) installPlan() (InstallPlan, error) {
	host, err := distro.HostSources("/")
	if err != nil {
		return InstallPlan{}, err
	}
	return PlanInstall(s.os, host, KVM())
}

func (s *Setup) installIncus(ctx context.Context) error {
	p, err := s.installPlan()
	if err != nil {
		return err
	}
	return aptInstall(ctx, p, s.o.Log)
}

func (s *Setup) checkIDs(context.Context) (State, error) {
	if delegated("/", s.o.UID, s.o.GID) {
		return State{Done: true, Detail: fmt.Sprintf("incus may map uid %d and gid %d", s.o.UID, s.o.GID)}, nil
	}
	return State{Detail: fmt.Sprintf("let incus map the sandbox user's uid %d and gid %d to the same host ids (/etc/subuid, /etc/subgid)", s.o.UID, s.o.GID)}, nil
}

func (s *Setup) delegateIDs(ctx context.Context) error {
	if err := delegate("/", s.o.UID, s.o.GID); err != nil {
		return err
	}
	if connect() != nil {
		// incusd reads the delegated ids when it starts.
		return startDaemon(ctx, s.o.Log, true)
	}
	return nil
}

func (s *Setup) checkDaemon(context.Context) (State, error) {
	if c := connect(); c != nil {
		srv, _, err := c.GetServer()
		if err == nil {
			return State{Done: true, Detail: "incus " + srv.Environment.ServerVersion + " answers"}, nil
		}
	}
	how := "by hand (no systemd here)"
	if Systemd("/") {
		how = "through systemd"
	}
	return State{Detail: "start incusd " + how}, nil
}

// poolFacts are what decides the storage driver.
type poolFacts struct {
	ZFS, BtrfsKernel, MkfsBtrfs bool
}

func hostPoolFacts() poolFacts {
	_, zpool := exec.LookPath("zpool")
	_, mkfs := exec.LookPath("mkfs.btrfs")
	_, devzfs := os.Stat("/dev/zfs")
	return poolFacts{ZFS: zpool == nil && devzfs == nil, BtrfsKernel: kernelHas("btrfs"), MkfsBtrfs: mkfs == nil}
}

// ChooseDriver picks the default pool's driver: one that clones the image
// for each sandbox instead of unpacking it, which makes launches and
// restores seconds faster and keeps one copy of the image's blocks.
func chooseDriver(want string, f poolFacts) (driver, why string, pkgs []string, err error) {
	switch want {
	case "dir":
		return "dir", "as asked (each launch unpacks the whole image)", nil, nil
	case "zfs", "auto":
		if f.ZFS {
			return "zfs", "zfs is set up here: a sandbox is a clone of the image's snapshot", nil, nil
		}
		if want == "zfs" {
			return "", "", nil, fmt.Errorf("zfs is not usable here (no zpool command or no /dev/zfs): install zfsutils-linux and its kernel module, or use --storage btrfs")
		}
	}
	if want == "btrfs" || want == "auto" {
		if f.BtrfsKernel {
			if !f.MkfsBtrfs {
				pkgs = []string{"btrfs-progs"}
			}
			return "btrfs", "btrfs on a loop file: a sandbox is a snapshot of the image, made in well under a second, instead of an unpacked copy", pkgs, nil
		}
		if want == "btrfs" {
			return "", "", nil, fmt.Errorf("this kernel has no btrfs: use --storage dir")
		}
		return "dir", "this kernel has neither zfs nor btrfs, so each launch unpacks the whole image (slower, more disk)", nil, nil
	}
	return "", "", nil, fmt.Errorf("--storage %q: want auto, btrfs, zfs or dir", want)
}

func (s *Setup) checkStorage(context.Context) (State, error) {
	if c := connect(); c != nil {
		pool, _, err := c.GetStoragePool("default")
		p, _, perr := c.GetProfile("default")
		if perr != nil {
			return State{}, perr
		}
		hasRoot := p.Devices["root"]["type"] == "disk"
		if err == nil && hasRoot {
			s.Decided.Pool = pool.Driver
			detail := "pool \"default\" (" + pool.Driver + ")"
			if pool.Driver == "dir" {
				detail += "; dir unpacks the image at every launch: a btrfs or zfs pool clones it instead"
			}
			return State{Done: true, Detail: detail}, nil
		}
		if err == nil {
			return State{Detail: "give the default profile a root disk on the pool \"default\""}, nil
		}
	}
	d, why, _, err := chooseDriver(s.o.Storage, hostPoolFacts())
	if err != nil {
		return State{}, err
	}
	return State{Detail: fmt.Sprintf("create the pool \"default\" (%s: %s)", d, why)}, nil
}

func (s *Setup) makeStorage(ctx context.Context) error {
	c := connect()
	if c == nil {
		return fmt.Errorf("incus does not answer")
	}
	if _, _, err := c.GetStoragePool("default"); err != nil {
		d, _, pkgs, err := chooseDriver(s.o.Storage, hostPoolFacts())
		if err != nil {
			return err
		}
		if len(pkgs) > 0 {
			if err := aptPackages(ctx, s.o.Log, pkgs...); err != nil {
				return err
			}
		}
		if err := c.CreateStoragePool(api.StoragePoolsPost{Name: "default", Driver: d, StoragePoolPut: api.StoragePoolPut{
			Description: "created by vibe setup",
		}}); err != nil {
			return fmt.Errorf("create the %s pool \"default\": %w", d, err)
		}
		s.Decided.Pool = d
	}
	p, etag, err := c.GetProfile("default")
	if err != nil {
		return err
	}
	if p.Devices["root"]["type"] != "disk" {
		put := p.Writable()
		if put.Devices == nil {
			put.Devices = map[string]map[string]string{}
		}
		put.Devices["root"] = map[string]string{"type": "disk", "path": "/", "pool": "default"}
		if err := c.UpdateProfile("default", put, etag); err != nil {
			return fmt.Errorf("add a root disk to the default profile: %w", err)
		}
	}
	return nil
}

// profileNIC names the default profile's network, "" when it has none.
func profileNIC(p *api.Profile) string {
	for _, d := range p.Devices {
		if d["type"] == "nic" && d["network"] != "" {
			return d["network"]
		}
	}
	return ""
}

func (s *Setup) checkUplink(context.Context) (State, error) {
	s.decidedUplink = true
	c := connect()
	if c == nil {
		return State{Detail: "after incus starts: the default profile's network, or a NAT bridge " + Uplink}, nil
	}
	p, _, err := c.GetProfile("default")
	if err != nil {
		return State{}, err
	}
	if n := profileNIC(p); n != "" {
		return State{Done: true, Detail: "the default profile's network " + n}, nil
	}
	s.Decided.Uplink = Uplink
	if n, _, err := c.GetNetwork(Uplink); err == nil {
		return State{Done: true, Detail: fmt.Sprintf("%s (%s, NAT)", Uplink, n.Config["ipv4.address"])}, nil
	}
	return State{Detail: "create " + Uplink + ", a NAT bridge for the egress gateway's outside leg (the default profile has no network)"}, nil
}

func (s *Setup) makeUplink(context.Context) error {
	c := connect()
	if c == nil {
		return fmt.Errorf("incus does not answer")
	}
	subnet, err := egress.FreeSubnet(c, 78)
	if err != nil {
		return fmt.Errorf("%w: create it by hand: incus network create %s ipv4.address=ADDR/24 ipv4.nat=true", err, Uplink)
	}
	return c.CreateNetwork(api.NetworksPost{Name: Uplink, Type: "bridge", NetworkPut: api.NetworkPut{
		Description: "the egress gateway's way out (created by vibe setup)",
		Config:      map[string]string{"ipv4.address": subnet, "ipv4.nat": "true", "ipv6.address": "none"},
	}})
}

// baseMaxAge is how old a local base may get before setup builds it again
// with the archive's updates.
const baseMaxAge = 7 * 24 * time.Hour

// localBase is the base vibe setup builds for the host's own release.
func (s *Setup) localBase() string { return "vibe-base-" + s.hostRelease() }

func (s *Setup) hostRelease() string { return s.os.BuildRelease() }

func (s *Setup) checkBase(ctx context.Context) (State, error) {
	s.decidedBase = true
	c := connect()
	if c == nil {
		return State{Detail: "after incus starts: check that " + s.o.Base + " can be reached"}, nil
	}
	if s.Decided.InstanceType != "container" {
		return State{Done: true, Detail: s.o.Base + " (VM bases are not built locally: the VM bake needs an image server)"}, nil
	}
	if reachable(ctx, s.o.Base) {
		return State{Done: true, Detail: s.o.Base + " can be reached"}, nil
	}
	local := s.localBase()
	s.Decided.Base = local
	// The base keeps the archive it is built from, whose hosts the
	// allowlist then needs: setup writes them as mirrors.apt.
	if host, err := distro.HostSources("/"); err == nil {
		if spec, err := distro.Plan(distro.Request{Release: s.hostRelease()}, host); err == nil {
			// Only what vibe.yaml accepts (no other port, no file: URI).
			if config.CheckMirror(spec.Mirror, true) == nil {
				s.Decided.Archive = spec.Mirror
				if spec.Security != "" && config.CheckMirror(spec.Security, true) == nil {
					s.Decided.Security = spec.Security
				}
			} else {
				s.o.Log("the base's archive " + spec.Mirror + " cannot be a vibe.yaml mirror; add its host to egress.allow yourself")
			}
		}
	}
	if a, _, err := c.GetImageAlias(local); err == nil {
		img, _, err := c.GetImage(a.Target)
		if err == nil && time.Since(img.CreatedAt) > baseMaxAge {
			return State{Detail: fmt.Sprintf("%s cannot be reached; %s is %d days old: build it again for the archive's security updates", s.o.Base, local, int(time.Since(img.CreatedAt).Hours()/24))}, nil
		}
		return State{Done: true, Detail: fmt.Sprintf("%s cannot be reached; using %s, built here before", s.o.Base, local)}, nil
	}
	return State{Detail: fmt.Sprintf("%s cannot be reached: build %s from the distribution's packages (vibe-build base, about 2 minutes)", s.o.Base, local)}, nil
}

// reachable reports whether the base reference resolves within a few
// seconds: a local alias or fingerprint, or remote:alias on a remote the
// client configuration names.
func reachable(ctx context.Context, ref string) bool {
	ctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	done := make(chan bool, 1)
	go func() {
		remote, name, found := strings.Cut(ref, ":")
		if !found {
			remote, name = "local", ref
		}
		if remote == "local" {
			c := connect()
			if c == nil {
				done <- false
				return
			}
			_, _, err := c.GetImageAlias(name)
			if err != nil {
				_, _, err = c.GetImage(name)
			}
			done <- err == nil
			return
		}
		conf, err := daemon.ClientConfig()
		if err != nil {
			done <- false
			return
		}
		srv, err := conf.GetImageServer(remote)
		if err != nil {
			done <- false
			return
		}
		_, _, err = srv.GetImageAlias(name)
		done <- err == nil
	}()
	select {
	case ok := <-done:
		return ok
	case <-ctx.Done():
		return false
	}
}

func (s *Setup) buildBase(ctx context.Context) error {
	c := connect()
	if c == nil {
		return fmt.Errorf("incus does not answer")
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		if err := aptPackages(ctx, s.o.Log, "mmdebstrap"); err != nil {
			return err
		}
	}
	host, err := distro.HostSources("/")
	if err != nil {
		return err
	}
	spec, err := distro.Plan(distro.Request{Release: s.hostRelease()}, host)
	if err != nil {
		return err
	}
	_, err = distro.Build(ctx, c, distro.Options{Spec: spec, Alias: s.localBase(), CacheDir: s.o.CacheDir, MaxAge: baseMaxAge, Progress: logProgress(s.o.Log)})
	return err
}

type logProgress func(string)

func (l logProgress) Phase(n string)  { l("▸ " + n) }
func (l logProgress) Log(line string) { l(line) }
func (l logProgress) Status(string)   {}

func (s *Setup) checkGroup(context.Context) (State, error) {
	if s.o.User == nil {
		return State{Done: true, Detail: "run through sudo to let your own user reach incus (only root can now)"}, nil
	}
	if inGroup(s.o.User, "incus-admin") {
		return State{Done: true, Detail: s.o.User.Username + " is in incus-admin"}, nil
	}
	return State{Detail: "add " + s.o.User.Username + " to incus-admin (log in again, or run newgrp incus-admin, for it to count)"}, nil
}

func inGroup(u *user.User, group string) bool {
	g, err := user.LookupGroup(group)
	if err != nil {
		return false
	}
	ids, _ := u.GroupIds()
	return slices.Contains(ids, g.Gid)
}

func (s *Setup) addGroup(ctx context.Context) error {
	return run(ctx, s.o.Log, "usermod", "-a", "-G", "incus-admin", "--", s.o.User.Username)
}

// completions are the bash completion files for vibe and vibe-build:
// each `complete -C BINARY NAME`, which the binaries print. Root's shells
// and every user's load these files and run BINARY on a tab, so it is
// written only for a binary that root alone can change (it and every
// folder above it root's, writable by no one else) at a path that needs no
// quoting.
func (s *Setup) completions() (map[string][]byte, string) {
	out := map[string][]byte{}
	for _, name := range []string{"vibe", "vibe-build"} {
		bin := filepath.Join(filepath.Dir(s.o.Self), name)
		if why := rootOnly(bin); why != "" {
			return nil, why
		}
		b, err := exec.Command(bin, "completion", "-c", "bash").Output()
		if err == nil && len(b) > 0 {
			out[filepath.Join(s.o.CompletionDir, name)] = b
		}
	}
	return out, ""
}

// rootOnly says why path is not a program only root can change ("" when
// it is).
func rootOnly(path string) string {
	if !safePath.MatchString(path) {
		return path + " needs quoting in a shell"
	}
	for p := path; ; p = filepath.Dir(p) {
		st, err := os.Lstat(p)
		if err != nil {
			return err.Error()
		}
		sys, ok := st.Sys().(*syscall.Stat_t)
		sticky := st.IsDir() && st.Mode()&os.ModeSticky != 0 // others cannot replace root's entries
		if !ok || sys.Uid != 0 || st.Mode()&0o022 != 0 && !sticky || st.Mode()&os.ModeSymlink != 0 {
			return p + " is not root's alone"
		}
		if p == "/" {
			return ""
		}
	}
}

var safePath = regexp.MustCompile(`^/[A-Za-z0-9._/+-]+$`)

func (s *Setup) checkCompletion(context.Context) (State, error) {
	if st, err := os.Stat(s.o.CompletionDir); err != nil || !st.IsDir() {
		return State{Done: true, Detail: "no bash-completion here; for zsh or fish, add `source <(vibe completion -c zsh)` to your shell's init file"}, nil
	}
	files, why := s.completions()
	if why != "" {
		if len(s.staleCompletions()) > 0 {
			return State{Detail: "remove the bash completion files an earlier setup wrote: " + why + " (root's shells would run it)"}, nil
		}
		return State{Done: true, Detail: "not installed for everyone: " + why + " (root's shells would run it); add `source <(vibe completion -c bash)` to your own ~/.bashrc"}, nil
	}
	for p, want := range files {
		if got, err := os.ReadFile(p); err != nil || string(got) != string(want) {
			return State{Detail: "install bash completion for vibe and vibe-build in " + s.o.CompletionDir}, nil
		}
	}
	return State{Done: true, Detail: "bash completion installed"}, nil
}

// staleCompletions are completion files for vibe that name a binary to
// run (complete -C), found where setup would write them.
func (s *Setup) staleCompletions() []string {
	var out []string
	for _, name := range []string{"vibe", "vibe-build"} {
		p := filepath.Join(s.o.CompletionDir, name)
		if b, err := ReadSmall(p); err == nil && strings.Contains(string(b), "complete ") && strings.Contains(string(b), " -C ") {
			out = append(out, p)
		}
	}
	return out
}

func (s *Setup) writeCompletion(context.Context) error {
	files, why := s.completions()
	if why != "" {
		for _, p := range s.staleCompletions() {
			if err := os.Remove(p); err != nil {
				return err
			}
		}
		return nil
	}
	for p, b := range files {
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
