package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"

	"github.com/vibesandbox/vibe/internal/safetext"
	"github.com/vibesandbox/vibe/workspace"
)

// Proxy is the guest's filtering proxy.
const Proxy = "http://127.0.0.1:8888"

// GitIdentity is the host user's git name and email.
type GitIdentity struct{ Name, Email string }

// HostGitIdentity reads user.name and user.email from the host's git.
func HostGitIdentity() GitIdentity {
	get := func(key string) string {
		out, err := exec.Command("git", "config", "--get", key).Output()
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(out))
	}
	return GitIdentity{Name: get("user.name"), Email: get("user.email")}
}

// Env is the environment of everything that runs as the sandbox user: the
// agent, vibe shell and vibe exec. It travels in the exec request, which
// incus shows to the host (process lists, its operations API), so it
// holds no secret: those go through Launch.
func Env(s *Spec, git GitIdentity, termName string) map[string]string {
	home := s.Home()
	env := map[string]string{
		"HOME": home, "USER": s.User, "LOGNAME": s.User, "SHELL": "/bin/bash", "LANG": "C.UTF-8",
		"PATH":       home + "/.vibe/node-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"http_proxy": Proxy, "https_proxy": Proxy, "HTTP_PROXY": Proxy, "HTTPS_PROXY": Proxy,
		"no_proxy": "localhost,127.0.0.1", "NO_PROXY": "localhost,127.0.0.1", "NODE_USE_ENV_PROXY": "1",
	}
	if termName != "" {
		env["TERM"] = termName
	}
	if s.StateDir != "" {
		env["CLAUDE_CONFIG_DIR"] = StatePath
	}
	if git.Name != "" {
		env["GIT_AUTHOR_NAME"], env["GIT_COMMITTER_NAME"] = git.Name, git.Name
	}
	if git.Email != "" {
		env["GIT_AUTHOR_EMAIL"], env["GIT_COMMITTER_EMAIL"] = git.Email, git.Email
	}
	return env
}

// HostRun lists, per project, what tools on the host run or obey: git
// hooks and configuration, direnv, editor and agent settings. An agent
// that plants something there reaches the host later, so the guest binds
// each that exists read-only onto itself (as do the config and hooks of
// every git submodule), and the host keeps a snapshot of them all between
// sessions to report any change, including ones made after a session.
var HostRun = []string{
	".git/hooks", ".git/config", ".gitmodules", ".envrc", ".vscode", ".idea", ".husky",
	".claude/settings.json", ".claude/settings.local.json", ".mcp.json",
}

// Bounds of a snapshot, so that a project the agent filled with files
// cannot stall the host.
const (
	snapshotMaxFiles = 4096
	snapshotMaxRead  = 16 << 20
)

// Snapshot maps each host-run file of the writable mounts to a digest of
// its type, mode and content (a symlink's target, never followed).
type Snapshot map[string]string

// TakeSnapshot records the host-run files of the writable mounts.
func TakeSnapshot(mounts []workspace.Mount) Snapshot {
	snap := Snapshot{}
	for _, m := range mounts {
		if m.ReadOnly {
			continue
		}
		for _, rel := range HostRun {
			snap.walk(filepath.Join(m.Source, rel), 8)
		}
		// Submodules: .git/modules/NAME[/modules/...]/{config,hooks}.
		filepath.WalkDir(filepath.Join(m.Source, ".git", "modules"), func(p string, d fs.DirEntry, err error) error {
			if err != nil || len(snap) >= snapshotMaxFiles {
				return filepath.SkipDir
			}
			if name := d.Name(); name == "config" || name == "hooks" {
				snap.walk(p, 4)
				if d.IsDir() {
					return filepath.SkipDir
				}
			}
			return nil
		})
	}
	return snap
}

// tooMany stands in a snapshot that reached its bound, so that an agent
// flooding a host-run folder to hide a file is reported too.
const tooMany = "(more host-run files than vibe compares: review them all)"

// walk adds path and, for a real folder, what it holds, depth levels down.
func (s Snapshot) walk(path string, depth int) {
	if len(s) >= snapshotMaxFiles {
		s[tooMany] = "truncated"
		return
	}
	st, err := os.Lstat(path)
	if err != nil {
		return
	}
	h := sha256.New()
	h.Write([]byte(st.Mode().String()))
	switch {
	case st.Mode().IsRegular():
		if f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0); err == nil {
			io.Copy(h, io.LimitReader(f, snapshotMaxRead))
			f.Close()
		}
	case st.Mode()&os.ModeSymlink != 0:
		target, _ := os.Readlink(path)
		h.Write([]byte(target))
	case st.IsDir() && depth > 0:
		entries, _ := os.ReadDir(path)
		for _, e := range entries {
			s.walk(filepath.Join(path, e.Name()), depth-1)
		}
	}
	if len(s) >= snapshotMaxFiles {
		s[tooMany] = "truncated"
		return
	}
	s[path] = hex.EncodeToString(h.Sum(nil))
}

// Changed lists files added, removed or modified since before, sorted.
func (s Snapshot) Changed(before Snapshot) []string {
	var out []string
	for p, d := range s {
		if before[p] != d {
			out = append(out, p)
		}
	}
	for p := range before {
		if _, ok := s[p]; !ok {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// Printable is text from the guest made safe to print on one line.
func Printable(s string) string { return safetext.Line(s) }
