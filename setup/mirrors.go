package setup

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/distro"
	"github.com/vibesandbox/vibe/internal/capped"
	"github.com/vibesandbox/vibe/internal/regular"
)

// HostMirrors are the package servers and certificate authorities this
// machine is set up with, for a guest that must use the same (a company
// that mandates its mirrors and inspects TLS).
type HostMirrors struct {
	Mirrors config.Mirrors `json:"mirrors"`
}

// ReadHostMirrors reads the host's apt archives, npm registry, pip index
// and Go module proxy, as seen by the user whose home is home (copied as
// they are, public servers too: their hosts join the allowlist). Whatever is
// missing stays empty; each value must pass vibe.yaml's own checks.
func ReadHostMirrors(ctx context.Context, osr distro.OSRelease, u *user.User, home string) HostMirrors {
	var h HostMirrors
	if host, err := distro.HostSources("/"); err == nil {
		main, sec := distro.HostArchives(osr.ID, host)
		if main != nil {
			h.Mirrors.Apt = main.URI
		}
		if sec != nil {
			h.Mirrors.AptSecurity = sec.URI
		}
	}
	h.Mirrors.NPM = firstURL(command(ctx, u, home, "npm", "config", "get", "registry"))
	h.Mirrors.Go = firstURL(command(ctx, u, home, "go", "env", "GOPROXY"))
	for _, p := range []string{filepath.Join(home, ".config/pip/pip.conf"), filepath.Join(home, ".pip/pip.conf"), "/etc/pip.conf"} {
		b, err := ReadAsUser(p, u)
		if err != nil {
			continue
		}
		if v := iniValueOf(b, "global", "index-url"); v != "" {
			h.Mirrors.PyPI = v
			break
		}
	}
	// Each value must be one vibe.yaml accepts, or it is left out.
	for _, m := range []struct {
		v    *string
		http bool
	}{{&h.Mirrors.Apt, true}, {&h.Mirrors.AptSecurity, true}, {&h.Mirrors.NPM, false}, {&h.Mirrors.Go, false}, {&h.Mirrors.PyPI, false}} {
		if *m.v != "" && config.CheckMirror(*m.v, m.http) != nil {
			*m.v = ""
		}
	}
	return h
}

// HostCAs are the certificate authorities added to this machine's trust
// store (a company's TLS inspection, a local mirror's): a guest whose
// traffic takes this machine's way out needs them too. Only files the user
// can read and that hold nothing but certificates count (a bake reads them
// as the user, and refuses anything else), at most config.MaxCAFiles; each
// one left out is logged.
func HostCAs(u *user.User, logf func(string)) []string {
	cas, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	more, _ := filepath.Glob("/usr/local/share/ca-certificates/*/*.crt")
	all := append(cas, more...)
	slices.Sort(all)
	var out []string
	for _, p := range all {
		data, err := ReadAsUser(p, u)
		if err == nil {
			_, err = config.ParseCAs(p, data)
		}
		switch {
		case err != nil:
			logf("tls.ca leaves out " + p + ": " + err.Error())
		case len(out) == config.MaxCAFiles:
			logf(fmt.Sprintf("tls.ca leaves out %s: vibe.yaml takes at most %d", p, config.MaxCAFiles))
		default:
			out = append(out, p)
		}
	}
	return out
}

// command runs a host tool to read the user's setting, as that user (never
// root: the tool reads files the user controls, and Go or npm can be told
// there to fetch and run programs), from /, with a minimal environment and
// Go's toolchain switching off; briefly; "" on failure.
func command(ctx context.Context, u *user.User, home, name string, args ...string) string {
	// Looked up in the same fixed PATH it runs with (sudo's secure_path
	// may lack Go's folder).
	bin := ""
	for _, d := range filepath.SplitList(toolPath) {
		if st, err := os.Stat(filepath.Join(d, name)); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			bin = filepath.Join(d, name)
			break
		}
	}
	if bin == "" {
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = "/"
	cmd.Env = []string{"HOME=" + home, "PATH=" + toolPath, "GOTOOLCHAIN=local", "LC_ALL=C"}
	// Its own session (no terminal of root's to push input into), and
	// no wait on a descendant that keeps its output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.WaitDelay = 2 * time.Second
	if u != nil && os.Geteuid() == 0 {
		uid, err1 := strconv.Atoi(u.Uid)
		gid, err2 := strconv.Atoi(u.Gid)
		if err1 != nil || err2 != nil {
			return ""
		}
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
	}
	out := &capped.Buffer{Limit: 64 << 10}
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		return ""
	}
	return strings.TrimSpace(out.String())
}

const toolPath = "/usr/local/go/bin:/usr/local/bin:/usr/bin:/bin"

// firstURL is the first http(s) URL of a GOPROXY-style list.
func firstURL(s string) string {
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '|' }) {
		if f = strings.TrimSpace(f); strings.HasPrefix(f, "https://") || strings.HasPrefix(f, "http://") {
			return f
		}
	}
	return ""
}

// iniGet reads one key of one section of an INI file (pip.conf).
func iniGet(path, section, key string) string {
	b, err := ReadSmall(path)
	if err != nil {
		return ""
	}
	return iniValueOf(b, section, key)
}

func iniValueOf(b []byte, section, key string) string {
	cur := ""
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || line[0] == '#' || line[0] == ';':
		case line[0] == '[' && strings.HasSuffix(line, "]"):
			cur = strings.TrimSpace(line[1 : len(line)-1])
		case cur == section:
			if k, v, ok := strings.Cut(line, "="); ok && strings.TrimSpace(k) == key {
				return strings.TrimSpace(v)
			}
		}
	}
	return ""
}

// ReadSmall reads a regular file of at most 1 MiB without following a
// final symlink and without blocking on a FIFO.
func ReadSmall(path string) ([]byte, error) { return readBounded(path, syscall.O_NOFOLLOW) }

func readBounded(path string, flags int) ([]byte, error) { return regular.Read(path, flags, 1<<20) }
