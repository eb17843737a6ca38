package sandbox

import (
	"cmp"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/internal/safetext"
	"github.com/vibesandbox/vibe/workspace"
)

// Proxy is where the guest's web traffic goes: a name that settle points
// at the guest's own proxy or at the egress gateway, on a port both use
// (gateway.Port), so that the image names no address of one host.
const Proxy = "http://vibe-proxy:3128"

// CABundle is the guest's system trust store, where tls.ca's extra
// certificate authorities are installed.
const CABundle = "/etc/ssl/certs/ca-certificates.crt"

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
		// The system trust store, which holds tls.ca's authorities: Node
		// and Python's requests keep bundles of their own unless told.
		"NODE_EXTRA_CA_CERTS": CABundle, "REQUESTS_CA_BUNDLE": CABundle, "SSL_CERT_FILE": CABundle,
	}
	if termName != "" {
		env["TERM"] = termName
	}
	if s.StateDir != "" {
		env["CLAUDE_CONFIG_DIR"] = StatePath
	}
	for name := range s.AgentStates {
		if p := config.AgentPresetNamed(name); p != nil && (p.StateAll || name == s.Agent) {
			env[p.StateEnv] = AgentStatePath(name)
		}
	}
	if p := config.AgentPresetNamed(s.Agent); p != nil {
		maps.Copy(env, p.Env)
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
	".git/hooks", ".git/config", ".git/config.worktree", ".git/commondir", ".git/info", ".git/worktrees",
	// A replace ref changes what a commit (HEAD) holds for git.
	".git/refs/replace",
	".gitmodules", ".envrc", ".vscode", ".idea", ".husky", ".claude", ".mcp.json",
	".pre-commit-config.yaml", ".lefthook", ".lefthook-local",
	// The other agents' project settings: MCP servers, hooks, plugins
	// opencode loads with no entry anywhere.
	".codex", ".gemini", ".opencode", "opencode.json", "opencode.jsonc",
}

// lefthook reads its configuration, and a local one merged into it that
// can add commands, under any of these names.
func init() {
	for _, dir := range []string{"", ".config/"} {
		for _, dot := range []string{"", "."} {
			for _, name := range []string{"lefthook", "lefthook-local"} {
				for _, ext := range []string{"yml", "yaml", "toml", "json", "jsonc"} {
					HostRun = append(HostRun, dir+dot+name+"."+ext)
				}
			}
		}
	}
}

// Bounds of a snapshot, so that a project the agent filled with files
// cannot stall the host. Each folder (a project, an agent's state) has its
// own bound on files, so that filling one hides nothing in another.
const (
	snapshotMaxFiles = 4096
	snapshotMaxRead  = 16 << 20  // of one file (its size is compared whole)
	snapshotMaxTotal = 256 << 20 // of one folder's files
)

// Snapshot maps each host-run file of the writable mounts to a digest of
// its type, mode, size and content (a symlink's target, never followed).
type Snapshot map[string]string

// tooMany names the entry that marks a folder whose host-run files were
// not all compared; its value says why (the first reason met). It is no
// file: Changed skips it, and Truncated names the folder after every
// session.
const tooMany = "(more host-run files than vibe compares: review them all)"

// TakeSnapshot records the host-run files of the writable mounts and, in
// each agent's state folder (states: agent → host folder), the entries
// that run code or steer it (its preset's Steer). Every path is opened
// inside its folder (os.Root): a symlink the agent made cannot lead the
// host's vibe out of it. Nothing is opened that could block (a FIFO the
// agent swapped in), and whatever the bounds leave uncompared marks its
// folder as cut short (Truncated), never silently. since, when given, is
// the snapshot this one will be compared with: of git's history, the
// commits that came since it are compared (the agent's commit under a
// fix-up that puts the hook back, which git reset --hard HEAD~1 writes
// out), not only those a name points at.
func TakeSnapshot(mounts []workspace.Mount, states map[string]string, since ...Snapshot) Snapshot {
	return takeSnapshot(mounts, states, false, since)
}

// TakeSnapshotHeld is TakeSnapshot while the sandbox is frozen (Hold): a
// project that changed under the listing cannot be one now.
func TakeSnapshotHeld(mounts []workspace.Mount, states map[string]string, since ...Snapshot) Snapshot {
	return takeSnapshot(mounts, states, true, since)
}

func takeSnapshot(mounts []workspace.Mount, states map[string]string, held bool, since []Snapshot) Snapshot {
	var prev Snapshot
	if len(since) > 0 {
		prev = since[0]
	}
	// Said first, whatever the projects hold: this vibe records git's
	// view (SinceLast).
	snap := Snapshot{gitViewKey: gitViewRefs}
	extra := walkHostRun(mounts, states, held)
	siblings := siblingWorktrees(mounts, extra)
	views, cancel := context.WithTimeout(context.Background(), gitTimeout)
	defer cancel()
	for _, name := range slices.Sorted(maps.Keys(states)) {
		p := config.AgentPresetNamed(name)
		root, err := os.OpenRoot(states[name])
		if p == nil || err != nil {
			if p != nil && !errors.Is(err, fs.ErrNotExist) {
				snap[filepath.Join(states[name], tooMany)] = "the folder cannot be opened: " + shortErr(err)
			}
			continue
		}
		sn := &snapper{root: root, base: states[name], snap: snap}
		for _, rel := range p.Steer {
			sn.add(rel, snapshotMaxDepth)
		}
		root.Close()
	}
	for _, m := range mounts {
		if m.ReadOnly {
			continue
		}
		root, err := os.OpenRoot(m.Source)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				snap[filepath.Join(m.Source, tooMany)] = "the folder cannot be opened: " + shortErr(err)
			}
			continue
		}
		sn := &snapper{ctx: views, root: root, base: m.Source, snap: snap, prev: prev}
		// The git walk's reasons first: the bounds below are ones the
		// agent can reach at will, and would take every slot.
		f := extra[filepath.Clean(m.Source)]
		if f != nil && f.unsteady {
			sn.cut(Unsteady) // first: the one a held snapshot mends
		}
		if f != nil && f.cut != "" {
			for _, r := range strings.Split(f.cut, "; ") {
				sn.cut(r)
			}
		}
		// .git as a file ("gitdir: …") or a link sends git elsewhere: it is
		// recorded itself, and nothing is looked up through it.
		gitDir := true
		if st, err := root.Lstat(".git"); err == nil && !st.IsDir() {
			sn.add(".git", 0)
			gitDir = false
		}
		for _, rel := range HostRun {
			if gitDir || !strings.HasPrefix(rel, ".git/") {
				sn.add(rel, snapshotMaxDepth)
			}
		}
		if gitDir {
			sn.modules(".git/modules", snapshotMaxDepth)
		}
		var rels []string
		if f != nil {
			rels = f.rel
			for _, rel := range f.rel {
				sn.addBelow(rel)
			}
		}
		if gitDir {
			sn.gitView(".git", sn.base, "", append(slices.Clone(HostRun), rels...))
		}
		if f != nil {
			sn.repoViews(f)
		}
		// A linked worktree mounted as a project of its own: its git
		// folder is in the project it belongs to (viewed from there).
		for _, w := range siblings {
			if w.in == filepath.Clean(m.Source) {
				sn.gitView(w.gitDir, w.top, "", append(slices.Clone(HostRun), w.rels...))
			}
		}
		root.Close()
	}
	return snap
}

// snapshotMaxDepth bounds how deep a folder is compared, snapshotMaxPath
// how long a path is recorded; past either, the folder is cut.
const (
	snapshotMaxDepth = 32
	snapshotMaxPath  = 1024
)

// snapper records one folder's files, up to snapshotMaxFiles of them, and
// lists at most that many entries of it.
type snapper struct {
	// ctx bounds the time git reads a snapshot's repositories in (one
	// deadline for all of them: each view could cost one otherwise).
	ctx  context.Context
	root *os.Root
	base string
	snap Snapshot
	// prev is the snapshot this one follows (TakeSnapshot's since), or
	// nil: git's view compares only the commits that came since.
	prev   Snapshot
	count  int   // files recorded
	listed int   // entries listed
	read   int64 // bytes read
}

func (sn *snapper) full() bool { return sn.count >= snapshotMaxFiles }

// cut marks the folder as holding more than the snapshot compares, for
// the reason given (see addReason).
func (sn *snapper) cut(reason string) {
	k := filepath.Join(sn.base, tooMany)
	sn.snap[k] = addReason(sn.snap[k], reason)
}

// maxReasons is how many different reasons a folder's mark keeps: one the
// agent can cause at will (a big file) does not hide another.
const maxReasons = 3

// addReason adds reason to the reasons in have ("; " between them), if it
// is a new one and there is room.
func addReason(have, reason string) string {
	if have == "" {
		return reason
	}
	list := strings.Split(have, "; ")
	if len(list) >= maxReasons || slices.Contains(list, reason) {
		return have
	}
	return have + "; " + reason
}

// quotePath is a path of the agent's, for a message: one line, at most
// 80 characters of it.
func quotePath(rel string) string {
	if len(rel) > 80 {
		rel = rel[:80] + "..."
	}
	return strconv.Quote(safetext.Line(rel))
}

// shortErr is an error's text, for a message: one line, bounded.
func shortErr(err error) string {
	s := safetext.Line(err.Error())
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// list returns the entries of folder rel, which Lstat saw as st, or
// cuts: a folder that cannot be opened as one, is no longer the one seen
// (a symlink swapped in, which os.Root follows inside the folder), cannot
// be read, or holds more than the snapshot lists is not compared whole.
func (sn *snapper) list(rel string, st os.FileInfo) []os.DirEntry {
	room := snapshotMaxFiles - sn.listed
	if room <= 0 {
		sn.cut(fmt.Sprintf("more than %d entries", snapshotMaxFiles))
		return nil
	}
	// O_DIRECTORY: a FIFO swapped in after the Lstat fails here, where
	// opening it would wait for a writer.
	d, err := sn.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		sn.cut(quotePath(rel) + " cannot be opened as a folder")
		return nil
	}
	defer d.Close()
	if dst, err := d.Stat(); err != nil || !os.SameFile(st, dst) {
		sn.cut(quotePath(rel) + " was swapped while it was looked at")
		return nil
	}
	entries, err := d.ReadDir(room)
	sn.listed += len(entries)
	if err != nil && err != io.EOF {
		sn.cut(quotePath(rel) + " cannot be listed")
	}
	if len(entries) == room {
		if more, _ := d.ReadDir(1); len(more) > 0 {
			sn.cut(fmt.Sprintf("more than %d entries", snapshotMaxFiles))
		}
	}
	return entries
}

// add records rel and, for a folder, what it holds, depth levels down.
// addBelow records a path a git configuration names, however deep: a
// folder on its way that is a symlink (which os.Root would follow, inside
// the folder) is recorded itself instead.
func (sn *snapper) addBelow(rel string) {
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i := 1; i < len(parts); i++ {
		a := strings.Join(parts[:i], "/")
		if st, err := sn.root.Lstat(a); err == nil && st.Mode()&os.ModeSymlink != 0 {
			sn.add(a, 0)
			return
		}
	}
	sn.add(rel, snapshotMaxDepth)
}

func (sn *snapper) add(rel string, depth int) {
	if sn.full() {
		sn.cut(fmt.Sprintf("more than %d files", snapshotMaxFiles))
		return
	}
	if len(rel) > snapshotMaxPath {
		// A path this long is a flood of the host's memory and output.
		sn.cut(fmt.Sprintf("a path longer than %d bytes", snapshotMaxPath))
		return
	}
	st, err := sn.root.Lstat(rel)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			// There, but not to be looked at (out of the folder, denied).
			sn.cut(quotePath(rel) + " cannot be looked at")
		}
		return
	}
	h := sha256.New()
	fmt.Fprintf(h, "%s %d\n", st.Mode(), st.Size())
	switch {
	case st.Mode().IsRegular():
		sn.content(h, rel, st)
	case st.Mode()&os.ModeSymlink != 0:
		target, _ := sn.root.Readlink(rel)
		h.Write([]byte(target))
	case st.IsDir() && depth <= 0:
		if len(sn.list(rel, st)) > 0 {
			sn.cut(fmt.Sprintf("%s is deeper than %d levels", quotePath(rel), snapshotMaxDepth))
		}
	case st.IsDir():
		for _, e := range sn.list(rel, st) {
			sn.add(rel+"/"+e.Name(), depth-1)
		}
	}
	if sn.full() {
		sn.cut(fmt.Sprintf("more than %d files", snapshotMaxFiles))
		return
	}
	sn.count++
	sn.snap[filepath.Join(sn.base, rel)] = hex.EncodeToString(h.Sum(nil))
}

// content adds a regular file's bytes to h, within the bounds. The file
// opened must be the one Lstat saw: a FIFO or device swapped in between
// is never read (a read could wait for ever). A file that cannot be read
// (a lease the agent holds makes the open fail) or changed while read
// cuts the folder: its content went uncompared.
func (sn *snapper) content(h io.Writer, rel string, st os.FileInfo) {
	f, err := openSeen(sn.root, rel, st)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			sn.cut(quotePath(rel) + " cannot be read")
		}
		return
	}
	defer f.Close()
	if st.Size() > snapshotMaxRead {
		// Past the bound, a change that keeps the size is unseen.
		sn.cut(fmt.Sprintf("%s is larger than %d MiB", quotePath(rel), snapshotMaxRead>>20))
	}
	n, _ := io.Copy(h, io.LimitReader(f, min(snapshotMaxRead, snapshotMaxTotal-sn.read)))
	sn.read += n
	if sn.read >= snapshotMaxTotal && n < min(st.Size(), snapshotMaxRead) {
		// This file's content went uncompared.
		sn.cut(fmt.Sprintf("more than %d MiB of host-run files", snapshotMaxTotal>>20))
	}
}

// errNotSeen says a file is no longer the one looked at, or not a file.
var errNotSeen = errors.New("not the regular file looked at")

// openSeen opens rel in root only if it is the regular file Lstat saw as
// st, and still is once open: never through a link, and never blocking on
// a FIFO swapped in between the look and the open.
func openSeen(root *os.Root, rel string, st os.FileInfo) (*os.File, error) {
	if !st.Mode().IsRegular() {
		return nil, errNotSeen
	}
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fst, err := f.Stat(); err != nil || !fst.Mode().IsRegular() || !os.SameFile(st, fst) {
		f.Close()
		return nil, errNotSeen
	}
	return f, nil
}

// modules records each submodule's git folder under dir (.git/modules):
// what git reads as configuration or runs (config, config.worktree,
// commondir, info, hooks). A submodule's name may hold slashes (lib/foo),
// even one inside another's (a, a/b), and its own submodules are in its
// modules folder: every folder is visited but a git folder's objects,
// refs, logs and caches, which can be huge and run nothing. A link
// anywhere here is recorded (git follows it).
func (sn *snapper) modules(dir string, depth int) {
	st, err := sn.root.Lstat(dir)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return
	case err != nil || !st.IsDir():
		sn.add(dir, 0)
		return
	case depth <= 0:
		sn.cut(fmt.Sprintf("%s is nested deeper than %d levels", quotePath(dir), snapshotMaxDepth))
		return
	}
	entries := sn.list(dir, st)
	gitDir := false
	for _, e := range entries {
		if n := e.Name(); n == "HEAD" || n == "config" || n == "commondir" {
			gitDir = true
		}
	}
	if gitDir {
		for _, name := range []string{"config", "config.worktree", "commondir", "gitdir"} {
			sn.add(dir+"/"+name, 0)
		}
		sn.add(dir+"/info", snapshotMaxDepth)
		sn.add(dir+"/hooks", snapshotMaxDepth)
	}
	for _, e := range entries {
		n := e.Name()
		switch {
		case e.Type()&fs.ModeSymlink != 0:
			sn.add(dir+"/"+n, 0)
		case !e.IsDir():
		case gitDir && slices.Contains(gitBulk, n):
		default:
			sn.modules(dir+"/"+n, depth-1)
		}
	}
}

// gitBulk are the folders of a git folder that hold data, not
// configuration or programs, and may be huge (info and hooks are
// recorded on their own).
var gitBulk = []string{"objects", "refs", "logs", "lfs", "rr-cache", "info", "hooks"}

// Truncated lists the folders that held more host-run files than the
// snapshot compares, sorted: a change past the bound goes unseen there.
func (s Snapshot) Truncated() []string {
	var out []string
	for p, v := range s {
		if isMark(p, v) {
			out = append(out, filepath.Dir(p))
		}
	}
	sort.Strings(out)
	return out
}

// Unsteady reports whether a project changed while the snapshot listed
// it (a process in the sandbox at work): taken again with the sandbox
// held, it is whole.
func (s Snapshot) Unsteady() bool {
	for p, v := range s {
		if isMark(p, v) && slices.Contains(strings.Split(v, "; "), Unsteady) {
			return true
		}
	}
	return false
}

// Reason says why the folder dir, one Truncated lists, was not compared
// whole.
func (s Snapshot) Reason(dir string) string {
	return cmp.Or(s[filepath.Join(dir, tooMany)], "not compared whole")
}

// isMark reports whether the entry p, v is a folder's cut-short mark: a
// file the agent names so is recorded with a digest, never a reason.
func isMark(p, v string) bool {
	if filepath.Base(p) != tooMany {
		return false
	}
	_, err := hex.DecodeString(v)
	return len(v) != 2*sha256.Size || err != nil
}

// Changed lists files added, removed or modified since before, sorted.
func (s Snapshot) Changed(before Snapshot) []string {
	var out []string
	for p, d := range s {
		if before[p] != d && !isMark(p, d) && !hiddenKey(p) {
			out = append(out, p)
		}
	}
	for p, d := range before {
		// A version of a host-run file no ref holds any more cannot be
		// checked out: its going is no change to review.
		if _, ok := s[p]; !ok && !isMark(p, d) && !refsKey.MatchString(p) {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// groupAtLeast is how many changed entries a new folder holds before it is
// shown as one line.
const groupAtLeast = 4

// GroupRoots are the folders below which a new folder may be reported as
// one line (Grouped): each entry the snapshot records of an agent's state
// (its preset's Steer) and of a writable project (HostRun, .git/modules).
// Never a project or a state folder itself: a new .git there, or a new
// .gemini holding settings.json, is named file by file.
func GroupRoots(mounts []workspace.Mount, states map[string]string) []string {
	var out []string
	for name, dir := range states {
		if p := config.AgentPresetNamed(name); p != nil {
			for _, rel := range p.Steer {
				out = append(out, filepath.Join(dir, rel))
			}
		}
	}
	for _, m := range mounts {
		if m.ReadOnly {
			continue
		}
		for _, rel := range append(slices.Clone(HostRun), ".git/modules") {
			out = append(out, filepath.Join(m.Source, rel))
		}
	}
	return out
}

// Grouped is Changed for people. What was there before and changed or
// went is named, always, first (changed); what is new comes after
// (added), where a folder that is new since before (nothing recorded in
// it or below it) and holds groupAtLeast new entries or more is one line
// naming it, so that an agent's first run (which unpacks dozens of
// bundled skills) does not bury the line that matters. Folders are
// grouped only strictly below one of roots (GroupRoots), and never where
// before was cut short: there, "new" may only mean "not compared".
func (s Snapshot) Grouped(before Snapshot, roots []string) (changed, added []string) {
	old := map[string]bool{}
	for p := range before {
		for d := p; !old[d]; d = filepath.Dir(d) {
			old[d] = true
			if d == filepath.Dir(d) {
				break
			}
		}
	}
	var usable []string
	for _, r := range roots {
		r = filepath.Clean(r)
		cut := false
		for d := r; ; d = filepath.Dir(d) {
			if _, ok := before[filepath.Join(d, tooMany)]; ok {
				cut = true
			}
			if d == filepath.Dir(d) {
				break
			}
		}
		if !cut {
			usable = append(usable, r)
		}
	}
	below := func(d string) bool {
		for _, r := range usable {
			if strings.HasPrefix(d, r+"/") {
				return true
			}
		}
		return false
	}
	groups := map[string][]string{}
	for _, p := range s.Changed(before) {
		if _, there := before[p]; there {
			changed = append(changed, p)
			continue
		}
		top := ""
		for d := p; below(d) && !old[d]; d = filepath.Dir(d) {
			top = d
		}
		groups[top] = append(groups[top], p)
	}
	for top, ps := range groups {
		if top == "" || len(ps) < groupAtLeast {
			for _, p := range ps {
				added = append(added, p+" (new)")
			}
			continue
		}
		added = append(added, fmt.Sprintf("%s/ (a new folder of %d files and folders: review it whole)", top, len(ps)))
	}
	sort.Strings(changed)
	sort.Strings(added)
	return changed, added
}

// Printable is text from the guest made safe to print on one line.
func Printable(s string) string { return safetext.Line(s) }
