package sandbox

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"

	incus "github.com/lxc/incus/v6/client"

	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/egress"
)

// Run executes e in the sandbox, on the process's own standard streams
// where e leaves them unset, and returns the command's exit code.
func (m *Manager) Run(ctx context.Context, name string, e daemon.Exec) (int, error) {
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	return daemon.Execute(ctx, m.C, m.id(name), e)
}

// Launcher is the guest program that starts everything of the sandbox
// user's (provision/launch).
const Launcher = "/usr/local/lib/vibe/launch"

// RootPATH is the launcher's PATH while it is root: the user's own leads
// with a folder the user owns (~/.vibe/node-bin), where a planted id or
// setpriv would run as root. The user's travels as VIBE_USER_PATH.
const RootPATH = "/usr/sbin:/usr/bin:/sbin:/bin"

// Launch runs argv in the sandbox as the sandbox user, in cwd, through the
// guest's launcher. env travels in the exec request; secrets never do:
// incus hands an exec's environment to a host process's argv and shows it
// in its operations API. They go in a root-only file pushed through the
// file API into the guest's /run (memory), which the launcher reads and
// removes before the command starts.
func (m *Manager) Launch(ctx context.Context, s *Spec, argv []string, cwd string, env, secrets map[string]string, terminal bool) (int, error) {
	inst, err := m.Get(s.Name)
	if err != nil {
		return -1, err
	}
	addr, on, err := m.behind(inst, s)
	if err != nil {
		return -1, err
	}
	if on {
		// Behind a gateway, the credentials it knows stay there: the
		// guest gets placeholders and the gateway's routes. This run's
		// --allow entries are its own, beside any other session's.
		info, err := s.Gateway.Ensure(ctx)
		if err != nil {
			return -1, err
		}
		bound, err := egress.Bind(secrets, info, s.Credentials...)
		if err != nil {
			return -1, err
		}
		end, err := s.Gateway.StartSession(ctx, addr, s.Extra.Strings(), bound.Credentials)
		if err != nil {
			return -1, err
		}
		defer end()
		env = maps.Clone(env)
		maps.Copy(env, bound.Env)
		// The routes are reached directly, not through the proxy: a
		// client that tunnels every proxied request (undici's, in Gemini
		// CLI) would ask the gateway for a CONNECT to its own port.
		for _, k := range []string{"no_proxy", "NO_PROXY"} {
			env[k] = strings.TrimPrefix(env[k]+","+info.Addr.String(), ",")
		}
		secrets = bound.Guest
	}
	if s.Agent != "" {
		argv, env, secrets = agentSession(s.Agent, argv, env, secrets)
	}
	path := "-"
	if len(secrets) > 0 {
		var buf bytes.Buffer
		for _, k := range slices.Sorted(maps.Keys(secrets)) {
			buf.WriteString(k + "=" + secrets[k])
			buf.WriteByte(0)
		}
		id := make([]byte, 16)
		if _, err := rand.Read(id); err != nil {
			return -1, err
		}
		path = "/run/vibe/secrets/" + hex.EncodeToString(id)
		err := m.C.CreateInstanceFile(m.id(s.Name), path, incus.InstanceFileArgs{Content: bytes.NewReader(buf.Bytes()), UID: 0, GID: 0, Mode: 0o400, Type: "file", WriteMode: "overwrite"})
		if err != nil {
			return -1, fmt.Errorf("hand the secrets to %s: %w", s.Name, err)
		}
		// The launcher removed it already, unless it never ran.
		defer m.C.DeleteInstanceFile(m.id(s.Name), path)
	}
	env = maps.Clone(env)
	env["VIBE_USER_PATH"], env["PATH"] = env["PATH"], RootPATH
	cmd := append([]string{Launcher, s.User, path, "--"}, argv...)
	return m.Run(ctx, s.Name, daemon.Exec{Command: cmd, Cwd: cwd, Env: env, Terminal: terminal})
}
