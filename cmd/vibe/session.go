package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/posener/complete"

	"github.com/vibesandbox/vibe/allowlist"
	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/images"
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
}

func (s *session) close() { s.stop() }

// open loads the configuration and secrets, resolves the mounts, and
// connects. Nothing is created or started.
func (c *cli) open() (*session, error) {
	cfg, err := config.Load(c.Config, config.CurrentHost())
	if err != nil {
		return nil, err
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
		User: cfg.User.Name, Mounts: mounts, Allow: allow,
	}
	if cfg.Sandbox.Persist {
		dir, err := dataPath(filepath.Join("state", name, "claude"))
		if err != nil {
			return nil, err
		}
		spec.StateDir = dir
	}
	srv, err := daemon.Connect(c.Remote)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	return &session{cfg: cfg, spec: spec, secrets: sec, mgr: &sandbox.Manager{C: srv}, ctx: ctx, stop: stop, trust: c.Trust}, nil
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
	return workspace.Resolve(expand(cfg.Sandbox.Workspace), list)
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
func (s *session) up() error {
	if err := s.fetchImage(); err != nil {
		return err
	}
	st, err := s.mgr.Up(s.ctx, s.spec)
	if err != nil {
		return err
	}
	if st.Off() {
		fmt.Fprintf(os.Stderr, "\n  WARNING: the egress firewall of %s is OFF (switched off by the operator).\n  Everything in it can reach the network. `vibe firewall on` closes it again.\n\n", s.spec.Name)
	}
	return nil
}

// fetchImage imports an image named as REMOTE:NAME or by an https tree
// into the daemon, verified (and signed by a trusted key with --trust), and
// points the spec at its fingerprint. Only a sandbox being created needs it.
func (s *session) fetchImage() error {
	if !source.IsRemote(s.spec.Image) {
		return nil
	}
	if _, err := s.mgr.Get(s.spec.Name); err == nil {
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
		fmt.Fprintf(os.Stderr, "vibe: imported %s as %s (verified)\n", s.spec.Image, short(res.Fingerprint))
	}
	s.spec.Image = res.Fingerprint
	return nil
}

// guestIDs returns the sandbox user's uid and gid as the guest knows them.
func (s *session) guestIDs() (uint32, uint32, error) {
	var out strings.Builder
	w := &daemon.SyncWriter{W: &out}
	code, err := s.mgr.Run(s.ctx, s.spec.Name, daemon.Exec{
		Command: []string{"sh", "-c", `printf '%s %s' "$(id -u "$1")" "$(id -g "$1")"`, "sh", s.spec.User},
		Stdin:   strings.NewReader(""), Stdout: w, Stderr: w,
	})
	if err != nil {
		return 0, 0, err
	}
	var uid, gid uint32
	if _, err := fmt.Sscanf(out.String(), "%d %d", &uid, &gid); code != 0 || err != nil || uid == 0 {
		return 0, 0, fmt.Errorf("sandbox %s has no usable user %s (%s); vibe restore relaunches it from the image", s.spec.Name, s.spec.User, strings.TrimSpace(out.String()))
	}
	return uid, gid, nil
}

// asUser runs argv in the sandbox as the sandbox user with the agent's
// environment and returns its exit status.
func (s *session) asUser(argv []string, cwd string, terminal bool) (int, error) {
	uid, gid, err := s.guestIDs()
	if err != nil {
		return -1, err
	}
	env := sandbox.Env(s.spec, s.secrets, sandbox.HostGitIdentity(), termName(terminal))
	before := sandbox.TakeSnapshot(s.spec.Mounts)
	code, err := s.mgr.Run(s.ctx, s.spec.Name, daemon.Exec{Command: argv, UID: uid, GID: gid, Cwd: cwd, Env: env, Terminal: terminal})
	if changed := sandbox.TakeSnapshot(s.spec.Mounts).Changed(before); len(changed) > 0 {
		fmt.Fprintf(os.Stderr, "\nvibe: WARNING: files that run or are obeyed on the host changed during the session; review them before using these projects on the host:\n")
		for _, p := range changed {
			fmt.Fprintf(os.Stderr, "  %s\n", p)
		}
	}
	return code, err
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

// cwdFor maps a project argument to a folder in the guest: "" is
// ~/workspace, "." the mounted project holding the current directory.
func (s *session) cwdFor(project string) (string, error) {
	base := s.spec.Home() + "/workspace"
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
