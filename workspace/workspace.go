// Package workspace decides which host folders a sandbox mounts and where:
// every folder under the drop-in workspace directory, plus the entries of
// the workspaces list file, and maps a host path (`vibe .`) to the project
// and sub-path inside the sandbox.
//
// List file syntax, one entry per line:
//
//	/abs/path            mounted as ~/workspace/<basename>
//	name=/abs/path       mounted as ~/workspace/name
//	?/abs/path           optional: skipped quietly when absent
//	~/code/app           ~ is the host user's home
//	/abs/path:ro         read-only (also name=/abs/path:ro)
//	/abs/path:hostrun-rw its host-run files (git hooks and config, .envrc,
//	                     editor settings) stay writable by the agent
//	/abs/path:sensitive-ok  mount it although Guard refuses it (your home,
//	                     a dot-folder of it, a system or vibe folder)
//	# comment            blank lines and comments are ignored
package workspace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// Mount is one host folder shared into the sandbox.
type Mount struct {
	Name     string // folder under ~/workspace in the guest
	Source   string // absolute host path
	ReadOnly bool
	Optional bool
	// HostRunWritable leaves the project's host-run files (git hooks and
	// config, .envrc, editor settings) writable by the agent: an explicit,
	// loudly reported choice of the user's own list.
	HostRunWritable bool
	// SensitiveOK lifts Guard's check for this entry: the user's own,
	// explicit choice to mount a folder that holds credentials.
	SensitiveOK bool
	Line        int // line in the list file; 0 for the drop-in directory
}

// nameRE: a single path component, no dot-only names, shell-safe.
var nameRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9._-]{0,63}$`)

// ValidName reports why name cannot be a project name, or nil.
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("project name %q is not allowed", name)
	case strings.Contains(name, "/"):
		return fmt.Errorf("project name %q contains '/'", name)
	case !nameRE.MatchString(name):
		return fmt.Errorf("project name %q: use letters, digits, '.', '_' and '-' (at most 64, not starting with '.' or '-')", name)
	}
	return nil
}

// ParseList parses a workspaces list file's content. home expands ~.
func ParseList(content, home string) ([]Mount, error) {
	var out []Mount
	for i, raw := range strings.Split(content, "\n") {
		line := strings.TrimSpace(raw)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		m, err := parseEntry(line, home)
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", i+1, err)
		}
		m.Line = i + 1
		out = append(out, m)
	}
	return out, nil
}

func parseEntry(line, home string) (Mount, error) {
	var m Mount
	if strings.ContainsAny(line, "\x00\r") {
		return m, errors.New("control characters are not allowed")
	}
	if rest, ok := strings.CutPrefix(line, "?"); ok {
		m.Optional, line = true, strings.TrimSpace(rest)
	}
	for {
		if rest, ok := strings.CutSuffix(line, ":ro"); ok {
			m.ReadOnly, line = true, rest
		} else if rest, ok := strings.CutSuffix(line, ":hostrun-rw"); ok {
			m.HostRunWritable, line = true, rest
		} else if rest, ok := strings.CutSuffix(line, ":sensitive-ok"); ok {
			m.SensitiveOK, line = true, rest
		} else {
			break
		}
	}
	name, path, hasName := strings.Cut(line, "=")
	if !hasName {
		path, name = line, ""
	}
	path = strings.TrimSpace(path)
	if path == "~" || strings.HasPrefix(path, "~/") {
		if home == "" {
			return m, errors.New("~ used but the home directory is unknown")
		}
		path = filepath.Join(home, strings.TrimPrefix(path, "~"))
	}
	if !filepath.IsAbs(path) {
		return m, fmt.Errorf("%q is not an absolute path (write /abs/path, ~/path or name=/abs/path)", path)
	}
	m.Source = filepath.Clean(path)
	if m.Source == "/" {
		return m, errors.New("mounting / is refused")
	}
	if hasName {
		m.Name = strings.TrimSpace(name)
	} else {
		m.Name = filepath.Base(m.Source)
	}
	if err := ValidName(m.Name); err != nil {
		return m, err
	}
	return m, nil
}

// Guard says what no mount may expose: the user's home as a whole, its
// dot-folders (.ssh, .gnupg, .aws, .config, .kube, .docker: credentials),
// vibe's own folders (Own), and the host's system and socket folders. A
// source is checked after every symlink in it is resolved, so
// /proc/self/cwd/… or a link in a project cannot reach them either. A list
// entry ending in :sensitive-ok (the user's own list, never a project's)
// lifts the check for that path.
type Guard struct {
	Home string
	Own  []string // vibe's configuration, data and state folders
}

// systemPaths are host folders a mount may neither be in nor hold.
var systemPaths = []string{"/proc", "/sys", "/dev", "/run", "/var/run", "/boot", "/etc", "/root",
	"/var/lib/incus", "/var/lib/lxd", "/var/lib/docker", "/var/snap/lxd", "/var/snap/incus", "/var/lib/containerd"}

func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, strings.TrimSuffix(dir, "/")+"/")
}

// Check says why src (a resolved, absolute path) must not be mounted, or
// returns nil. dropIn, the workspace folder, is the user's own place for
// projects: what is below it is fine even inside vibe's folders.
func (g Guard) Check(src, dropIn string) error {
	if dropIn != "" && src != dropIn && within(src, resolved(dropIn)) {
		return nil
	}
	home := resolved(g.Home)
	for _, sys := range systemPaths {
		if sys == home && g.Home != "" {
			continue // root's home is /root: the home rules below apply
		}
		if within(src, sys) || within(sys, src) {
			return fmt.Errorf("%s is or holds the host's %s, which no sandbox may see", src, sys)
		}
	}
	if g.Home != "" {
		if within(home, src) {
			return fmt.Errorf("%s is or holds your home folder: it would hand the sandbox your credentials and dotfiles; mount the projects themselves", src)
		}
		if rel, ok := strings.CutPrefix(src, home+"/"); ok && strings.HasPrefix(rel, ".") {
			return fmt.Errorf("%s is in a dot-folder of your home (.ssh, .config, .aws…), where credentials live", src)
		}
	}
	for _, own := range g.Own {
		if own = resolved(own); within(src, own) || within(own, src) {
			return fmt.Errorf("%s is or holds vibe's own folder %s (secrets, images, agent state)", src, own)
		}
	}
	return nil
}

// Resolve builds the mount set: each folder under dropIn (if it exists),
// then the list entries, each source with its symlinks resolved and
// checked against g. Optional entries whose source is missing are dropped;
// a missing required one is an error. Two mounts with one name are an
// error that names both.
func Resolve(dropIn string, list []Mount, g Guard) ([]Mount, error) {
	var out []Mount
	if dropIn != "" {
		entries, err := os.ReadDir(dropIn)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("workspace %s: %w", dropIn, err)
		}
		for _, e := range entries {
			p := filepath.Join(dropIn, e.Name())
			st, err := os.Stat(p) // follows symlinks: a link to a project counts
			if err != nil || !st.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if err := ValidName(e.Name()); err != nil {
				return nil, fmt.Errorf("workspace %s: %w", p, err)
			}
			src, err := filepath.EvalSymlinks(p)
			if err != nil {
				return nil, fmt.Errorf("workspace %s: %w", p, err)
			}
			if err := g.Check(src, dropIn); err != nil {
				return nil, fmt.Errorf("workspace %s: %w", p, err)
			}
			out = append(out, Mount{Name: e.Name(), Source: src})
		}
	}
	for _, m := range list {
		st, err := os.Stat(m.Source)
		if err != nil || !st.IsDir() {
			if m.Optional {
				continue
			}
			if err == nil {
				err = errors.New("not a directory")
			}
			return nil, fmt.Errorf("workspaces line %d: %s: %w (prefix the entry with ? to make it optional)", m.Line, m.Source, err)
		}
		src, err := filepath.EvalSymlinks(m.Source)
		if err != nil {
			return nil, fmt.Errorf("workspaces line %d: %s: %w", m.Line, m.Source, err)
		}
		if !m.SensitiveOK {
			if err := g.Check(src, dropIn); err != nil {
				return nil, fmt.Errorf("workspaces line %d: %w (if you mean it, end the entry with :sensitive-ok)", m.Line, err)
			}
		}
		m.Source = src
		out = append(out, m)
	}
	byName := map[string]Mount{}
	for _, m := range out {
		if prev, dup := byName[m.Name]; dup {
			return nil, fmt.Errorf("two workspaces are named %q: %s and %s; give one a name with name=/path", m.Name, describe(prev), describe(m))
		}
		byName[m.Name] = m
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func describe(m Mount) string {
	if m.Line > 0 {
		return fmt.Sprintf("%s (workspaces line %d)", m.Source, m.Line)
	}
	return m.Source + " (workspace folder)"
}

// Locate maps a host path to the mount containing it (the longest source
// that contains it) and the sub-path inside it: `vibe .` in
// ~/code/app/src is project "app", sub-path "src".
func Locate(mounts []Mount, hostPath string) (Mount, string, error) {
	p, err := filepath.Abs(hostPath)
	if err != nil {
		return Mount{}, "", err
	}
	if real, err := filepath.EvalSymlinks(p); err == nil {
		p = real
	}
	best, bestLen := -1, -1
	for i, m := range mounts {
		src := m.Source
		if real, err := filepath.EvalSymlinks(src); err == nil {
			src = real
		}
		if p == src || strings.HasPrefix(p, src+string(filepath.Separator)) {
			if len(src) > bestLen {
				best, bestLen = i, len(src)
			}
		}
	}
	if best < 0 {
		return Mount{}, "", fmt.Errorf("%s is not inside any mounted workspace; add it to the workspaces list or put it under the workspace folder", p)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(p, resolved(mounts[best].Source)), string(filepath.Separator))
	return mounts[best], rel, nil
}

func resolved(p string) string {
	if r, err := filepath.EvalSymlinks(p); err == nil {
		return r
	}
	return p
}
