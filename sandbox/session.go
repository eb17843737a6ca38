package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"

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
// agent, vibe shell and vibe exec. Secrets are added last but cannot
// replace what vibe sets (the secrets parser refuses those keys).
func Env(s *Spec, secrets map[string]string, git GitIdentity, termName string) map[string]string {
	home := s.Home()
	env := map[string]string{
		"HOME": home, "USER": s.User, "LOGNAME": s.User, "SHELL": "/bin/bash", "LANG": "C.UTF-8",
		"PATH":       "/usr/local/lib/vibe/node-bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"http_proxy": Proxy, "https_proxy": Proxy, "HTTP_PROXY": Proxy, "HTTPS_PROXY": Proxy,
		"no_proxy": "localhost,127.0.0.1", "NO_PROXY": "localhost,127.0.0.1", "NODE_USE_ENV_PROXY": "1",
	}
	if termName != "" {
		env["TERM"] = termName
	}
	if s.StateDir != "" {
		env["CLAUDE_CONFIG_DIR"] = home + "/.claude"
	}
	if git.Name != "" {
		env["GIT_AUTHOR_NAME"], env["GIT_COMMITTER_NAME"] = git.Name, git.Name
	}
	if git.Email != "" {
		env["GIT_AUTHOR_EMAIL"], env["GIT_COMMITTER_EMAIL"] = git.Email, git.Email
	}
	for k, v := range secrets {
		if _, set := env[k]; !set {
			env[k] = v
		}
	}
	return env
}

// HostRun lists, per mounted project, the files that tools on the host run
// or obey (hooks, direnv, editor tasks, agent settings): an agent that
// plants something there reaches the host later.
var HostRun = []string{".git/config", ".envrc", ".vscode/tasks.json", ".claude/settings.json"}

// Snapshot maps each host-run file (and every .git/hooks file) of the
// mounts to a digest of its content.
type Snapshot map[string]string

// TakeSnapshot records the host-run files of the writable mounts.
func TakeSnapshot(mounts []workspace.Mount) Snapshot {
	snap := Snapshot{}
	for _, m := range mounts {
		if m.ReadOnly {
			continue
		}
		for _, rel := range HostRun {
			snap.add(filepath.Join(m.Source, rel))
		}
		hooks, _ := os.ReadDir(filepath.Join(m.Source, ".git", "hooks"))
		for _, h := range hooks {
			if !h.IsDir() {
				snap.add(filepath.Join(m.Source, ".git", "hooks", h.Name()))
			}
		}
	}
	return snap
}

func (s Snapshot) add(path string) {
	st, err := os.Lstat(path)
	if err != nil {
		return
	}
	h := sha256.New()
	h.Write([]byte(st.Mode().String()))
	if st.Mode().IsRegular() {
		if f, err := os.Open(path); err == nil {
			io.Copy(h, io.LimitReader(f, 16<<20))
			f.Close()
		}
	} else if st.Mode()&os.ModeSymlink != 0 {
		target, _ := os.Readlink(path)
		h.Write([]byte(target))
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
