package setup

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/config"
)

// UserConfig is the vibe.yaml setup writes: only what it found on this
// host, each with why; the rest stays the built-in defaults.
func UserConfig(d Decisions) []byte {
	doc := &yaml.Node{Kind: yaml.MappingNode}
	doc.HeadComment = "Written by `vibe setup` for this machine. Edit freely: vibe setup never\n" +
		"overwrites it. Everything else is the built-in default (vibe-build defaults\n" +
		"prints it with comments)."
	put := func(m *yaml.Node, key, value, comment string) {
		k := &yaml.Node{Kind: yaml.ScalarNode, Value: key, HeadComment: comment}
		m.Content = append(m.Content, k, &yaml.Node{Kind: yaml.ScalarNode, Value: value})
	}
	section := func(m *yaml.Node, key string) *yaml.Node {
		v := &yaml.Node{Kind: yaml.MappingNode}
		m.Content = append(m.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: key}, v)
		return v
	}
	put(section(doc, "instance"), "type", d.InstanceType, d.TypeWhy)
	if d.Base != "" {
		put(section(doc, "image"), "base", d.Base, "The configured base image could not be reached from here: this one was\nbuilt on this machine from the distribution's signed packages\n(vibe-build base).")
	}
	gw := section(section(doc, "egress"), "gateway")
	put(gw, "enabled", "true", "Egress filtering and API keys live in a gateway outside the guest, where\neven root in the guest cannot reach them.")
	if d.Uplink != "" {
		put(gw, "uplink", d.Uplink, "The gateway's way out: the default profile has no network here.")
	}
	if d.Host == nil && d.Archive != "" {
		mirrors := section(doc, "mirrors")
		put(mirrors, "apt", d.Archive, "The archive the local base was built from (its host joins the allowlist).")
		if d.Security != "" {
			put(mirrors, "apt_security", d.Security, "")
		}
	}
	if h := d.Host; h != nil {
		m := h.Mirrors
		if m.Apt == "" && d.Archive != "" {
			m.Apt, m.AptSecurity = d.Archive, d.Security
		}
		var mirrors *yaml.Node
		for _, kv := range [][2]string{{"apt", m.Apt}, {"apt_security", m.AptSecurity}, {"npm", m.NPM}, {"pypi", m.PyPI}, {"go", m.Go}} {
			if kv[1] == "" {
				continue
			}
			comment := ""
			if mirrors == nil {
				mirrors = section(doc, "mirrors")
				comment = "This machine's own package servers (vibe setup --mirrors-from-host)."
			}
			put(mirrors, kv[0], kv[1], comment)
		}
	}
	if len(d.CA) > 0 {
		tls := section(doc, "tls")
		list := &yaml.Node{Kind: yaml.SequenceNode}
		for _, p := range d.CA {
			list.Content = append(list.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: p})
		}
		tls.Content = append(tls.Content, &yaml.Node{Kind: yaml.ScalarNode, Value: "ca", HeadComment: "The certificate authorities added to this machine's trust store\n(/usr/local/share/ca-certificates): the guest's traffic takes this\nmachine's way out, so it trusts them too. Images you bake trust them,\nand so does anyone you share those images with: remove any you would\nnot hand on (a development CA such as mkcert's)."}, list)
	}
	if len(d.Switched) > 0 {
		tc := section(doc, "toolchains")
		for _, sw := range d.Switched {
			name, ok := strings.CutPrefix(sw.Key, "toolchains.")
			if !ok {
				continue
			}
			put(section(tc, name), sw.Set[0], sw.Set[1], "")
			tc.Content[len(tc.Content)-2].HeadComment = switchedComment(sw)
		}
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	_ = enc.Encode(doc)
	return buf.Bytes()
}

func (s *Setup) configStep(path string) Step {
	uid, gid := s.owner()
	return Step{
		Name: "vibe.yaml",
		Check: func(ctx context.Context) (State, error) {
			// Run alone (--only vibe.yaml), it decides what those steps would.
			if !s.decidedUplink {
				if _, err := s.checkUplink(ctx); err != nil {
					return State{}, err
				}
			}
			if !s.decidedBase {
				if _, err := s.checkBase(ctx); err != nil {
					return State{}, err
				}
			}
			// The sites to check are those of the configuration setup
			// would write (its mirrors, say), before anything is switched.
			d := s.Decided
			d.Switched = nil
			cfg, err := config.Parse(path, UserConfig(d), config.Host{UID: uid, GID: gid})
			if err != nil {
				return State{}, fmt.Errorf("the configuration setup made does not validate (a bug): %w", err)
			}
			s.Decided.Switched = s.checkDownloads(ctx, cfg)
			if _, err := os.Lstat(path); err == nil {
				return State{Done: true, Detail: path + " exists and is left as it is; setup would write:\n" + string(UserConfig(s.Decided))}, nil
			}
			return State{Detail: "write " + path + ": instance.type " + s.Decided.InstanceType + ", the egress gateway on" + baseNote(s.Decided)}, nil
		},
		Do: func(context.Context) error {
			data := UserConfig(s.Decided)
			if _, err := config.Parse(path, data, config.Host{UID: uid, GID: gid}); err != nil {
				return fmt.Errorf("the configuration setup made does not validate (a bug): %w", err)
			}
			return writeAsUser(path, data, uid, gid)
		},
	}
}

func baseNote(d Decisions) string {
	note := ""
	if d.Base != "" {
		note += ", image.base " + d.Base
	}
	if h := d.Host; h != nil {
		n := 0
		for _, v := range []string{h.Mirrors.Apt, h.Mirrors.AptSecurity, h.Mirrors.NPM, h.Mirrors.PyPI, h.Mirrors.Go} {
			if v != "" {
				n++
			}
		}
		note += fmt.Sprintf(", %d package servers of this machine", n)
	}
	if len(d.CA) > 0 {
		note += fmt.Sprintf(", %d certificate authorities of this machine", len(d.CA))
	}
	for _, sw := range d.Switched {
		note += fmt.Sprintf(", %s %s: %s (%s does not resolve)", sw.Key, sw.Set[0], sw.Set[1], strings.Join(sw.Hosts, ", "))
	}
	return note
}

// asUser runs fn with the user's file-system identity (fsuid, fsgid and
// no supplementary group of root's): the kernel then applies the user's
// own permissions to every path fn opens, so a symlink the user planted
// leads nowhere the user could not reach anyway, and what fn makes is the
// user's. The calls act on one thread, which is locked and never
// unlocked, so it ends with the goroutine.
func asUser(uid, gid int, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if os.Geteuid() == 0 && uid > 0 {
			for _, set := range []func() error{
				func() error { return unix.Setgroups([]int{gid}) },
				func() error { return unix.Setfsgid(gid) },
				func() error { return unix.Setfsuid(uid) },
			} {
				if err := set(); err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- fn()
	}()
	return <-errc
}

// writeAsUser creates path (and its folders) as the user; an existing
// file is never replaced (O_EXCL), a final symlink never followed.
func writeAsUser(path string, data []byte, uid, gid int) error {
	return asUser(uid, gid, func() error {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL|unix.O_NOFOLLOW, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	})
}

// ReadAsUser reads one of the user's files as the user (symlinks are
// followed, with the user's permissions), bounded, never blocking on a
// FIFO. With u nil it reads as this process.
func ReadAsUser(path string, u *user.User) ([]byte, error) {
	uid, gid := 0, 0
	if u != nil {
		uid, _ = strconv.Atoi(u.Uid)
		gid, _ = strconv.Atoi(u.Gid)
	}
	var out []byte
	err := asUser(uid, gid, func() error {
		b, err := readBounded(path, 0)
		out = b
		return err
	})
	return out, err
}
