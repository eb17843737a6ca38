package sandbox

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lxc/incus/v6/shared/api"
	"golang.org/x/sys/unix"

	"github.com/vibesandbox/vibe/daemon"
)

// Where mounts land in the guest. Both folders and every folder above them
// belong to root and are closed to the sandbox user (the image makes them
// so), so it cannot swap one for a symlink and choose where the next mount
// lands; ~/workspace is only a link to MountRoot.
const (
	MountRoot = "/workspace"
	StatePath = "/var/lib/vibe/state/claude"

	wsPrefix    = "vibe-ws-"
	stateDevice = "vibe-agent-state"
)

// AgentStatePath is where the state folder of agent name is mounted.
func AgentStatePath(name string) string { return "/var/lib/vibe/state/" + name }

// ProjectPath is where project name is mounted in the guest.
func ProjectPath(name string) string { return MountRoot + "/" + name }

// mountDevice is the device name of the mount of project name: short and
// fixed-length, distinct for distinct names. A VM's virtiofs tag is made
// from it: incus 6.0 refuses a long one, and from 6.21 hashes it while the
// agent's hot-plug mount still looks for the name.
func mountDevice(name string) string {
	sum := sha256.Sum256([]byte(name))
	return wsPrefix + hex.EncodeToString(sum[:6])
}

func isProjectDevice(name string) bool {
	return strings.HasPrefix(name, wsPrefix) || name == stateDevice || strings.HasPrefix(name, stateDevice+"-")
}

// idmap maps exactly the sandbox user's uid and gid to the same host ids:
// every other guest id, root's included, stays in the container's
// unprivileged range on the host, so nothing guest root writes into a
// mount belongs to a privileged host id.
func idmap(s *Spec) string {
	return fmt.Sprintf("uid %d %d\ngid %d %d", s.UID, s.UID, s.GID, s.GID)
}

// needIdmap checks, where it can (a local daemon), that the host lets
// incus map the sandbox user's ids.
func (m *Manager) needIdmap(s *Spec) error {
	if s.UID <= 0 || s.GID <= 0 {
		return fmt.Errorf("sandbox user %s has uid %d gid %d; a sandbox user must not be root", s.User, s.UID, s.GID)
	}
	// A VM's mounts translate ids in virtiofsd, which needs no delegation.
	if !m.Local || s.InstanceType == "vm" {
		return nil
	}
	return CheckDelegation(s.UID, s.GID)
}

// CheckDelegation checks that root is delegated the sandbox user's ids in
// /etc/subuid and /etc/subgid, which incus needs to map them into a
// container. A missing file lets incus decide (it says so if it cannot).
func CheckDelegation(uid, gid int) error {
	for _, f := range []struct {
		path string
		id   int
	}{{"/etc/subuid", uid}, {"/etc/subgid", gid}} {
		ok, err := delegated(f.path, f.id)
		if err != nil || ok {
			continue
		}
		kind := strings.TrimPrefix(filepath.Base(f.path), "sub")
		return fmt.Errorf("incus may not map the sandbox user's %s %d: add the line \"root:%d:1\" to %s (and restart incus), so that the sandbox user's files keep your ownership while guest root maps to an unprivileged host id", kind, f.id, f.id, f.path)
	}
	return nil
}

// delegated reports whether the subordinate id file gives root id.
func delegated(path string, id int) (bool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return false, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Split(strings.TrimSpace(line), ":")
		if len(f) != 3 || (f[0] != "root" && f[0] != "0") {
			continue
		}
		start, err1 := strconv.Atoi(f[1])
		n, err2 := strconv.Atoi(f[2])
		if err1 == nil && err2 == nil && id >= start && id < start+n {
			return true, nil
		}
	}
	return false, nil
}

// checkIdmap refuses a sandbox made before ids were mapped (a container's
// mounts would be shifted, a VM's passed through: guest root as host root).
func (m *Manager) checkIdmap(inst *api.Instance, s *Spec) error {
	if inst.Config["raw.idmap"] == idmap(s) {
		return nil
	}
	return fmt.Errorf("sandbox %s was made without vibe's id map (guest root could own files on the host); vibe restore makes it again from the image", s.Name)
}

// mountDevices are the disk devices for the spec's mounts and the agent's
// state folder (created on the host if missing). Containers see the host
// ids through the sandbox's id map, never shifted. A VM's mounts keep
// virtiofsd's default of no cache: the io.cache modes incus offers for them
// (metadata, unsafe) keep attributes for a long time, so a file the user
// changes on the host while the agent works would be read stale (even cut
// short) in the guest.
func (m *Manager) mountDevices(s *Spec) (map[string]map[string]string, error) {
	want := map[string]map[string]string{}
	for _, mt := range s.Mounts {
		d := map[string]string{"type": "disk", "source": mt.Source, "path": ProjectPath(mt.Name)}
		if mt.ReadOnly {
			d["readonly"] = "true"
		}
		want[mountDevice(mt.Name)] = d
	}
	states := map[string][2]string{}
	if s.StateDir != "" {
		states[stateDevice] = [2]string{s.StateDir, StatePath}
	}
	for name, dir := range s.AgentStates {
		states[stateDevice+"-"+name] = [2]string{dir, AgentStatePath(name)}
	}
	for dev, st := range states {
		if err := os.MkdirAll(st[0], 0o700); err != nil {
			return nil, fmt.Errorf("agent state folder: %w", err)
		}
		// Run as root, vibe hands the folder to the sandbox user's ids,
		// the only ids the sandbox can write through.
		if os.Getuid() == 0 {
			if err := os.Chown(st[0], s.UID, s.GID); err != nil {
				return nil, fmt.Errorf("agent state folder: %w", err)
			}
		}
		want[dev] = map[string]string{"type": "disk", "source": st[0], "path": st[1]}
	}
	return want, nil
}

// applyMounts makes the instance's mount devices match want: missing ones
// added, stale ones removed.
func (m *Manager) applyMounts(ctx context.Context, s *Spec, want map[string]map[string]string) error {
	return m.updateDevices(ctx, s.Name, want)
}

// detachMounts removes every vibe mount from a stopped sandbox.
func (m *Manager) detachMounts(ctx context.Context, name string) error {
	return m.updateDevices(ctx, name, nil)
}

// mountsDiffer reports whether the project devices in have are not exactly
// want.
func mountsDiffer(have, want map[string]map[string]string) bool {
	for dev, d := range have {
		if isProjectDevice(dev) {
			if w, ok := want[dev]; !ok || !sameDevice(w, d) {
				return true
			}
		}
	}
	for dev := range want {
		if _, ok := have[dev]; !ok {
			return true
		}
	}
	return false
}

func (m *Manager) updateDevices(ctx context.Context, name string, want map[string]map[string]string) error {
	// Never a discarded instance's (another vibe may be starting one it
	// found before a restore discarded it): the ETag makes this check and
	// the update one step.
	inst, etag, err := m.held(name)
	if err != nil {
		return err
	}
	put := inst.Writable()
	if !mountsDiffer(put.Devices, want) {
		return nil
	}
	// The project devices become exactly want.
	maps.DeleteFunc(put.Devices, func(dev string, _ map[string]string) bool { return isProjectDevice(dev) })
	maps.Copy(put.Devices, want)
	op, err := m.C.UpdateInstance(inst.Name, put, etag)
	if err == nil {
		err = op.WaitContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("mount workspaces into %s, so nothing will start in it (fail closed; vibe restore makes it again from the image): %w", name, err)
	}
	return nil
}

func sameDevice(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// mountSpecs are the settle script's MOUNT arguments: each mount point,
// rw: or ro:, and pj: for a writable project (whose host-run files the
// guest makes read-only) unless its entry says :hostrun-rw.
func mountSpecs(s *Spec, want map[string]map[string]string, extra map[string]*gitFound) []string {
	open := map[string]bool{}
	for _, mt := range s.Mounts {
		open[mountDevice(mt.Name)] = mt.HostRunWritable
	}
	// A project's own host-run paths (gitHostRun) follow every mount: the
	// mount that holds one is remounted before it is protected.
	var own []string
	for _, mt := range s.Mounts {
		dev := mountDevice(mt.Name)
		if d, ok := want[dev]; ok && strings.HasPrefix(dev, wsPrefix) && !open[dev] && d["readonly"] != "true" {
			if f := extra[filepath.Clean(mt.Source)]; f != nil {
				for _, rel := range f.rel {
					own = append(own, "hr:"+path.Join(d["path"], filepath.ToSlash(rel)))
				}
			}
		}
	}
	slices.Sort(own)
	var out []string
	for dev, d := range want {
		kind := "rw:"
		switch {
		case d["readonly"] == "true":
			kind = "ro:"
		case strings.HasPrefix(dev, wsPrefix) && !open[dev]:
			kind = "pj:"
		}
		out = append(out, kind+d["path"])
	}
	sort.Strings(out)
	return append(out, own...)
}

// mountEntry is one line of /proc/PID/mountinfo. The kernel lists mounts
// in the order they were attached (mount ids are reused, so they are not).
type mountEntry struct {
	Seq          int // the line's place in the table
	ID, Parent   int
	Major, Minor uint32
	Root, Point  string
	Options      string
}

// parseMountinfo reads mountinfo lines (proc(5)); the kernel escapes
// spaces, tabs, newlines and backslashes in paths as octal.
func parseMountinfo(text string) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 6 {
			continue
		}
		var e mountEntry
		var err error
		if e.ID, err = strconv.Atoi(f[0]); err != nil {
			return nil, fmt.Errorf("mountinfo: %q", sc.Text())
		}
		e.Parent, _ = strconv.Atoi(f[1])
		if _, err := fmt.Sscanf(f[2], "%d:%d", &e.Major, &e.Minor); err != nil {
			return nil, fmt.Errorf("mountinfo: %q", sc.Text())
		}
		e.Root, e.Point, e.Options = unescapeMount(f[3]), unescapeMount(f[4]), f[5]
		e.Seq = len(out)
		out = append(out, e)
	}
	return out, sc.Err()
}

func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// visible returns the mount a path sees: the newest mount at the path or
// above it. A mount made later over a folder above hides the one below.
func visible(entries []mountEntry, path string) (mountEntry, bool) {
	var best mountEntry
	found := false
	for _, e := range entries {
		if e.Point == path || e.Point == "/" || strings.HasPrefix(path, e.Point+"/") {
			if !found || e.Seq > best.Seq {
				best, found = e, true
			}
		}
	}
	return best, found && best.Point == path
}

// hostRoot is what a bind mount of host folder src shows as its root and
// device in mountinfo: src's path inside the host filesystem holding it.
func hostRoot(host []mountEntry, src string) (root string, major, minor uint32, err error) {
	real, err := filepath.EvalSymlinks(src)
	if err != nil {
		return "", 0, 0, err
	}
	var st syscall.Stat_t
	if err := syscall.Stat(real, &st); err != nil {
		return "", 0, 0, err
	}
	major, minor = unix.Major(st.Dev), unix.Minor(st.Dev)
	var best *mountEntry
	for i, e := range host {
		if e.Major == major && e.Minor == minor && (e.Point == "/" || real == e.Point || strings.HasPrefix(real, e.Point+"/")) {
			if best == nil || len(e.Point) > len(best.Point) {
				best = &host[i]
			}
		}
	}
	if best == nil {
		return "", 0, 0, fmt.Errorf("%s is on no mount this host lists", real)
	}
	rel := strings.TrimPrefix(strings.TrimPrefix(real, best.Point), "/")
	return filepath.Join(best.Root, rel), major, minor, nil
}

// guestMountinfo reads the guest's mount table. For a container on the
// local daemon it is read from the host's /proc (the kernel's word, where
// nothing in the guest can change it); otherwise from the guest's init.
func (m *Manager) guestMountinfo(ctx context.Context, name string) (string, bool, error) {
	if m.Local {
		if st, _, err := m.C.GetInstanceState(m.id(name)); err == nil && st.Pid > 0 {
			if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", st.Pid)); err == nil {
				return string(b), true, nil
			}
		}
	}
	r, err := daemon.Run(ctx, m.C, m.id(name), daemon.Exec{Command: []string{"cat", "/proc/1/mountinfo"}})
	if err != nil {
		return "", false, err
	}
	if r.Code != 0 {
		return "", false, fmt.Errorf("read the guest's mount table: %s", strings.TrimSpace(r.Stderr))
	}
	return r.Stdout, false, nil
}

// verifyMounts proves from the guest's mount table (never by following a
// path) that every mount is at its place, is the newest thing mounted
// there, carries nosuid and nodev, and, where the host's view can be read,
// shows the host folder it was given. VMs attach mounts as they boot, so
// a missing one is waited for; anything else stops everything.
func (m *Manager) verifyMounts(ctx context.Context, s *Spec, want map[string]map[string]string) error {
	if len(want) == 0 {
		return nil
	}
	var hostTable []mountEntry
	deadline := time.Now().Add(time.Minute)
	for {
		text, fromHost, err := m.guestMountinfo(ctx, s.Name)
		if err != nil {
			return err
		}
		entries, err := parseMountinfo(text)
		if err != nil {
			return err
		}
		if fromHost && hostTable == nil {
			b, err := os.ReadFile("/proc/self/mountinfo")
			if err == nil {
				hostTable, err = parseMountinfo(string(b))
			}
			if err != nil {
				return fmt.Errorf("read this host's mount table: %w", err)
			}
		}
		problem, missing := checkMounts(entries, hostTable, fromHost, want)
		if problem == "" {
			return nil
		}
		if !missing || s.InstanceType != "vm" || time.Now().After(deadline) {
			return fmt.Errorf("sandbox %s: %s, so nothing will start in it (fail closed); vibe restore makes it again from the image", s.Name, problem)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}

// checkMounts returns what is wrong with the guest's mounts, if anything,
// and whether it is only a mount not there yet.
func checkMounts(entries, hostTable []mountEntry, fromHost bool, want map[string]map[string]string) (string, bool) {
	for _, dev := range slices.Sorted(maps.Keys(want)) {
		d := want[dev]
		e, ok := visible(entries, d["path"])
		if !ok {
			return fmt.Sprintf("nothing is mounted at %s, where vibe mounts %s (the guest sees another folder there)", d["path"], d["source"]), true
		}
		opts := "," + e.Options + ","
		if !strings.Contains(opts, ",nosuid,") || !strings.Contains(opts, ",nodev,") {
			return fmt.Sprintf("the mount at %s lacks nosuid,nodev (%s)", d["path"], e.Options), false
		}
		if d["readonly"] == "true" && !strings.Contains(opts, ",ro,") {
			return fmt.Sprintf("the read-only mount at %s is writable", d["path"]), false
		}
		if fromHost {
			root, major, minor, err := hostRoot(hostTable, d["source"])
			if err != nil {
				return fmt.Sprintf("the source of %s: %v", d["path"], err), false
			}
			if e.Major != major || e.Minor != minor || e.Root != root {
				return fmt.Sprintf("%s shows %s (device %d:%d), not the host folder %s vibe mounted there", d["path"], e.Root, e.Major, e.Minor, d["source"]), false
			}
		}
	}
	return "", false
}
