package sandbox

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// A gitlink in a project's index (a submodule, .gitmodules or not) sends
// the host's git status into that folder's own git: its config (whose
// core.fsmonitor runs), its hooks, its own submodules. The agent writes
// the index and can make any folder a repository, so each checked-out
// gitlink's git folder is a host-run path of the project, as .git/modules
// is: protected in the sandbox and compared by the snapshot.

const (
	gitMaxIndex     = 32 << 20 // bytes of an index read whole
	gitMaxMemory    = 1 << 30  // git's address space while it reads one
	gitMaxLinkDepth = 4        // submodules of submodules, and so on
)

// gitDirFiles are what git reads or runs in a repository's git folder.
var gitDirFiles = []string{"config", "config.worktree", "commondir", "info", "hooks"}

// links records the git folders of the gitlinks in gitDir's index, whose
// worktree is worktree, and theirs in turn.
func (w *gitWalk) links(gitDir, worktree string, depth int) {
	index := filepath.Join(gitDir, "index")
	names, err := w.gitlinks(index)
	if err != nil {
		// There, and not looked into.
		w.cut(fmt.Sprintf("an index vibe cannot read for submodules (%s: %s)", w.name(index), shortErr(err)))
		return
	}
	if len(names) > 0 && depth >= gitMaxLinkDepth {
		w.cut(fmt.Sprintf("submodules nested more than %d deep (%s)", gitMaxLinkDepth, w.name(worktree)))
		return
	}
	for _, name := range names {
		if w.ctx.Err() != nil {
			w.cut(fmt.Sprintf("looking through git's configuration and submodules took more than %s", gitTimeout))
			return
		}
		if !filepath.IsLocal(name) {
			// git refuses such a path; never followed.
			w.cut(fmt.Sprintf("an index (%s) names a submodule outside its worktree", w.name(index)))
			continue
		}
		w.checkout(filepath.Join(worktree, name), depth)
	}
}

// checkout walks the repository whose worktree is sub, a gitlink's or
// one nested in a worktree, as git goes into it: through sub/.git.
func (w *gitWalk) checkout(sub string, depth int) {
	dotGit := filepath.Join(sub, ".git")
	if w.linked(sub) {
		// A link on the way, now (swapped in since it was listed, or
		// a gitlink's path): where it leads can change at any time.
		w.cut(fmt.Sprintf("the way to a git repository (%s) goes through a symbolic link", w.name(sub)))
		return
	}
	st, err := w.lstat(dotGit)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		// Not checked out: git does not go in.
	case err != nil:
		w.cut(fmt.Sprintf("%s cannot be looked at", w.name(dotGit)))
	case st.IsDir():
		w.repo(dotGit, sub, depth)
	case st.Mode()&fs.ModeSymlink != 0:
		// git follows the link: recorded itself, and where it leads.
		w.add(dotGit)
		if target, ok := w.readlink(dotGit); ok {
			w.repo(w.physical(sub, target, false), sub, depth)
		}
	case st.Mode().IsRegular():
		// A gitfile: recorded itself, and the folder it names.
		w.add(dotGit)
		if dir := w.gitfile(dotGit); dir != "" {
			w.repo(dir, sub, depth)
		}
	default:
		w.add(dotGit)
	}
}

// Bounds of nested: the entries it lists in one project, and the
// repositories it walks.
var (
	gitMaxScan   = 1 << 20
	gitMaxNested = 64
)

// nested walks each repository in the project's worktree that no index
// names, as a gitlink's: the host's git add -A takes one in as a gitlink
// (with a warning), and from then on git status runs its configuration
// (core.fsmonitor). So is each folder git would take for a repository
// itself (HEAD, objects and refs, or a commondir: a bare repository, with
// core.worktree = . a worktree too), which git finds when it runs there.
// They are found by listing the worktree, every folder but a .git, each
// opened by its name in the folder listed, never through a link nor
// anything that could block, within gitMaxScan entries, paths of
// snapshotMaxPath bytes and the walk's time; past those, and past
// gitMaxNested repositories, it cuts.
func (w *gitWalk) nested() {
	walked := map[string]bool{w.project: true}
	for _, wt := range w.repos {
		walked[wt] = true
	}
	// The project's own folder is the user's path: opened as named.
	root, err := unix.Open(w.project, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		w.cut(fmt.Sprintf("the project cannot be listed for git repositories nested in it (%s)", shortErr(err)))
		return
	}
	listed := 0
	var found, bare []string
	var stamps []folderStamp
	unsure := false // a folder that cannot be looked at again
	cantList := func(rel string) {
		w.cut(fmt.Sprintf("%s cannot be listed for git repositories nested in it", w.name(filepath.Join(w.project, rel))))
	}
	// list looks through the folder rel, open as fd, which it closes (one
	// descriptor a level).
	var list func(fd int, rel string) bool
	list = func(fd int, rel string) bool {
		defer unix.Close(fd)
		var st unix.Stat_t
		if unix.Fstat(fd, &st) == nil && len(stamps) < gitMaxStamps {
			stamps = append(stamps, folderStamp{rel, stampOf(&st)})
		} else {
			unsure = true
		}
		f, err := listFolder(fd, filepath.Join(w.project, rel), gitMaxScan-listed)
		if listed += f.n; listed > gitMaxScan {
			w.cut(fmt.Sprintf("the project holds more than %d entries: vibe did not look through them all for git repositories nested in it", gitMaxScan))
			return false
		}
		if err != nil {
			cantList(rel)
		}
		switch {
		case f.dotGit && rel != "" && !walked[filepath.Join(w.project, rel)]:
			found = append(found, rel)
		case !f.dotGit && f.gitDir && !walked[filepath.Join(w.project, rel)]:
			if _, done := w.repos[filepath.Join(w.project, rel)]; !done {
				bare = append(bare, rel) // not a git folder a walk went into
			}
		}
		for _, d := range f.dirs {
			name := filepath.Join(rel, d)
			switch {
			case w.ctx.Err() != nil:
				w.cut(fmt.Sprintf("looking through git's configuration and submodules took more than %s", gitTimeout))
				return false
			case len(name) > snapshotMaxPath:
				w.cut(fmt.Sprintf("a path longer than %d bytes (%s): vibe did not look below it for git repositories", snapshotMaxPath, w.name(filepath.Join(w.project, rel))))
			default:
				// O_NOFOLLOW, O_DIRECTORY: a link or a FIFO swapped in
				// since the listing fails here (and cuts), never leads
				// elsewhere nor blocks.
				sub, err := unix.Openat(fd, d, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
				switch {
				case err == nil:
				case !w.held && (err == unix.ELOOP || err == unix.ENOTDIR || err == unix.ENOENT):
					unsure = true // no longer the folder listed: moved
					continue
				default:
					cantList(name)
					continue
				}
				if !list(sub, name) {
					return false
				}
			}
		}
		return true
	}
	if list(root, "") && !w.held && (unsure || !w.steady(stamps)) {
		w.of(w.project).unsteady = true
	}
	if len(found)+len(bare) > gitMaxNested {
		w.cut(fmt.Sprintf("more than %d git repositories nested in the project", gitMaxNested))
		return
	}
	for _, rel := range found {
		w.checkout(filepath.Join(w.project, rel), 1)
	}
	for _, rel := range bare {
		dir := filepath.Join(w.project, rel)
		w.repo(dir, dir, 1)
	}
}

// Unsteady is the reason a project is cut short when it changed while
// the walk listed it for nested repositories: a process in the sandbox
// (one the agent left running) can move a repository from a folder not
// yet listed into one already listed. The snapshot is taken again with
// the sandbox held (Manager.Hold).
const Unsteady = "the project changed while vibe looked through it for git repositories"

// gitMaxStamps bounds the folders nested looks at again; past it, the
// listing is taken for unsteady (and a snapshot taken again held).
var gitMaxStamps = 1 << 16

// folderStamp is a folder nested listed and how it was before the
// listing.
type folderStamp struct {
	rel   string
	stamp stamp
}

// stamp is what tells a folder changed: a rename, creation or removal in
// it sets its times, a swap its identity.
type stamp struct {
	dev, ino     uint64
	mtime, ctime unix.Timespec
}

func stampOf(st *unix.Stat_t) stamp {
	return stamp{uint64(st.Dev), st.Ino, st.Mtim, st.Ctim}
}

// steady reports whether every folder listed is as it was before its
// listing, looked at again by name from the project (no link followed at
// the end).
func (w *gitWalk) steady(stamps []folderStamp) bool {
	root, err := unix.Open(w.project, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(root)
	for _, f := range stamps {
		var st unix.Stat_t
		if unix.Fstatat(root, cmp.Or(f.rel, "."), &st, unix.AT_SYMLINK_NOFOLLOW) != nil || stampOf(&st) != f.stamp {
			return false
		}
	}
	return true
}

// folder is what nested needs of a folder's listing.
type folder struct {
	dirs   []string // the folders in it (their type as listed: no link), but a .git
	dotGit bool     // a .git is there
	gitDir bool     // git would take it for a git folder: HEAD, and objects and refs or a commondir
	n      int      // entries, counted no further than one past the bound
}

// listFolder lists the folder open as fd (named name, for a file system
// that does not say an entry's type), at most max entries and one more.
func listFolder(fd int, name string, max int) (folder, error) {
	var f folder
	// A descriptor of its own to read with (the folders in it are opened
	// by fd): opened not to block (a FIFO swapped in fails O_DIRECTORY
	// instead), it is a folder, read as one (os.File would take a
	// non-blocking descriptor for one of its poller's).
	own, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return f, err
	}
	if err := unix.SetNonblock(own, false); err != nil {
		unix.Close(own)
		return f, err
	}
	file := os.NewFile(uintptr(own), name)
	defer file.Close()
	seen := map[string]bool{}
	for f.n <= max {
		ents, err := file.ReadDir(256)
		f.n += len(ents)
		for _, e := range ents {
			switch n := e.Name(); {
			case n == ".git":
				f.dotGit = true
			case e.IsDir():
				f.dirs = append(f.dirs, n)
				seen[n] = true
			case n == "HEAD" || n == "commondir":
				seen[n] = true
			}
		}
		if err != nil {
			f.gitDir = seen["HEAD"] && (seen["objects"] && seen["refs"] || seen["commondir"])
			if err == io.EOF {
				return f, nil
			}
			return f, err
		}
	}
	return f, nil
}

// repo records what git reads or runs in gitDir, a repository whose
// worktree is worktree (and in the common folder its commondir names),
// follows its configuration, and its gitlinks. A git folder outside the
// mounts is the user's (a linked worktree's submodules are kept in the
// main repository's): nothing in it is recorded, but its configuration and
// index still lead into the worktree, which is the agent's.
func (w *gitWalk) repo(gitDir, worktree string, depth int) {
	if gitDir == "" {
		return // cut already
	}
	if w.ctx.Err() != nil {
		w.cut(fmt.Sprintf("looking through git's configuration and submodules took more than %s", gitTimeout))
		return
	}
	if wt, ok := w.repos[gitDir]; ok {
		// The same git folder for another worktree: git goes into each
		// with its own moves (core.worktree), not followed twice here.
		if wt != worktree {
			w.cut(fmt.Sprintf("one git folder (%s) serves two submodules", w.name(gitDir)))
		}
		return
	}
	w.repos[gitDir] = worktree
	_, _, in := w.mount(gitDir)
	// Your own settings apply there too, relative to its worktree (a
	// global core.hooksPath = .githooks is sub/.githooks): read first, as
	// yours, before anything of the agent's can name your files.
	w.walk(userGitConfigs(w.home), worktree, gitDir, true)
	if !in && w.probing == "" && !w.below(gitDir, w.own) {
		// Named by a file the agent can write (a gitfile, a link, an
		// index), outside the mounts and the project's own git folders:
		// probed.
		w.probe(gitDir, func(p *gitWalk) { p.repo(gitDir, worktree, depth) })
		return
	}
	// A folder reached through a link can be pointed elsewhere at any
	// time: what is below it is neither protected nor compared for
	// certain.
	if in && w.linked(gitDir) {
		w.cut(fmt.Sprintf("a submodule's git folder (%s) is reached through a symbolic link", w.name(gitDir)))
		return
	}
	if in {
		w.record(gitDir)
	}
	configs := []string{filepath.Join(gitDir, "config"), filepath.Join(gitDir, "config.worktree")}
	format := slices.Clone(configs) // where git learns the index's layout
	// A linked worktree's (or one made so) configuration and hooks are
	// in its common folder.
	if data, ok := w.read(filepath.Join(gitDir, "commondir")); !ok {
		w.cut(fmt.Sprintf("%s cannot be read", w.name(filepath.Join(gitDir, "commondir"))))
	} else if common := gitPath(data); common != "" {
		dir := w.physical(gitDir, common, !in)
		if dir == "" {
			return // cut
		}
		if _, _, cin := w.mount(dir); in && !cin {
			// git reads the layout of the index from there, unseen.
			w.cut(fmt.Sprintf("a submodule's commondir (%s) leads out of the folders vibe mounts", w.name(filepath.Join(gitDir, "commondir"))))
			return
		}
		format = append(format, filepath.Join(dir, "config"))
		if !w.common[dir] {
			w.common[dir] = true
			switch _, _, cin := w.mount(dir); {
			case !cin:
			case w.linked(dir):
				w.cut(fmt.Sprintf("a submodule's common git folder (%s) is reached through a symbolic link", w.name(dir)))
			default:
				w.record(dir)
			}
		}
		configs = append(configs, filepath.Join(dir, "config"))
	}
	w.walk(configs, worktree, gitDir, !in)
	if in && w.worktreeMoved(gitDir, worktree, format) {
		return
	}
	if !w.formatOther(format) {
		w.links(gitDir, worktree, depth+1)
	}
}

// below reports whether p is one of dirs or inside one.
func (w *gitWalk) below(p string, dirs []string) bool {
	for _, d := range dirs {
		if rel, err := filepath.Rel(d, p); err == nil && (rel == "." || filepath.IsLocal(rel)) {
			return true
		}
	}
	return false
}

// worktreeMoved reports whether the repository at gitDir, whose files
// the agent may have written, moves its worktree away from worktree
// (core.worktree), and if so cuts: git runs hooks and commands from
// there, which is not followed. git takes core.worktree from the
// repository's configuration (the common folder's, format[2], for a
// linked worktree only with extensions.worktreeConfig, which also reads
// config.worktree), never from an include, relative to gitDir. (git
// itself names the worktree of a submodule it keeps in .git/modules,
// where it is: that one is fine.)
func (w *gitWalk) worktreeMoved(gitDir, worktree string, format []string) bool {
	files := format[:2] // config, config.worktree (this one always: over-cautious)
	if len(format) > 2 {
		files = format[1:2]
		if w.worktreeConfig[format[2]] {
			files = format[1:]
		}
	}
	for _, f := range files {
		for _, wt := range w.worktrees[f] {
			if w.physical(gitDir, wt, false) != filepath.Clean(worktree) {
				w.cut(fmt.Sprintf("the git configuration file %s moves its worktree elsewhere (core.worktree), which vibe does not follow", w.name(f)))
				return true
			}
		}
	}
	return false
}

// formatOther reports whether a configuration file of configs names an
// object format other than SHA-1, and if so cuts: such an index holds
// longer hashes, and vibe's reading of it (as SHA-1) could take it
// otherwise than the host's git does.
func (w *gitWalk) formatOther(configs []string) bool {
	for _, c := range configs {
		if w.otherFormat[c] {
			w.cut(fmt.Sprintf("%s names an object format other than SHA-1 (a SHA-256 repository, extensions.objectFormat), whose index vibe does not read for submodules", w.name(c)))
			return true
		}
	}
	return false
}

// record adds what git reads or runs in gitDir; those of a git folder
// the snapshot's walk of the project's .git/modules visits are protected
// and compared as such already (not one below a folder it skips: objects,
// refs and the like, or deeper than it goes).
func (w *gitWalk) record(gitDir string) {
	exempt := false
	if rel, ok := strings.CutPrefix(gitDir, filepath.Join(w.project, ".git", "modules")+"/"); ok {
		parts := strings.Split(rel, "/")
		exempt = len(parts) < snapshotMaxDepth
		for _, p := range parts {
			exempt = exempt && !slices.Contains(gitBulk, p)
		}
	}
	if !exempt {
		for _, n := range gitDirFiles {
			w.add(filepath.Join(gitDir, n))
		}
	}
	w.followLinks(gitDir)
}

// followLinks records where the links among gitDir's files and hooks
// lead, in a mount (a user's .git/hooks -> ../.githooks, or one hook
// linked to a script of the project's): the snapshot records a link's
// text, and the guest does not protect a link, so what git runs there is
// a host-run path of its own.
func (w *gitWalk) followLinks(gitDir string) {
	if _, _, in := w.mount(gitDir); !in {
		return
	}
	paths := []string{}
	for _, n := range gitDirFiles {
		paths = append(paths, filepath.Join(gitDir, n))
	}
	hooks := filepath.Join(gitDir, "hooks")
	if st, err := w.lstat(hooks); err == nil && st.IsDir() {
		for _, e := range w.entries(hooks) {
			paths = append(paths, filepath.Join(hooks, e))
		}
	}
	for _, p := range paths {
		w.addLinkTarget(p)
	}
}

// entries lists at most gitMaxExtra names in the folder dir, as open
// reads a file: in a mount without following the agent's links, and the
// user's own folder (a linked worktree's common folder) as it is.
func (w *gitWalk) entries(dir string) []string {
	var d *os.File
	root, rel, err := w.rooted(dir)
	switch {
	case err == errNoMount:
		d, err = os.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NONBLOCK, 0)
	case err == nil:
		d, err = root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
		root.Close()
	}
	if err != nil {
		return nil
	}
	defer d.Close()
	names, _ := d.Readdirnames(gitMaxExtra)
	return names
}

// within resolves the links on the way to abs, a path in a mount, as the
// kernel does: the path itself where it leads out of the mounts or the
// links loop, after a cut (a link of the agent's, whose target is not
// compared); abs itself when it is in no mount.
func (w *gitWalk) within(abs string) string {
	if _, _, in := w.mount(abs); !in {
		return abs
	}
	parts := strings.Split(strings.TrimPrefix(abs, "/"), "/")
	cur, hops := "/", 0
	for len(parts) > 0 {
		c := parts[0]
		parts = parts[1:]
		switch c {
		case "", ".":
			continue
		case "..":
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, c)
		st, err := w.lstat(next)
		if err != nil || st.Mode()&fs.ModeSymlink == 0 {
			cur = next
			continue
		}
		target, ok := w.readlink(next)
		if hops++; !ok || hops > 40 || target == "" {
			w.cut(fmt.Sprintf("%s leads through links vibe cannot follow", w.name(abs)))
			return ""
		}
		if filepath.IsAbs(target) {
			cur = "/"
		}
		parts = append(strings.Split(target, "/"), parts...)
	}
	if _, _, in := w.mount(cur); !in || w.linked(cur) {
		w.cut(fmt.Sprintf("%s leads through a symbolic link out of the mounted folders", w.name(abs)))
		return ""
	}
	return cur
}

// linked reports whether a folder on the way to path, inside its mount,
// is a symlink (or cannot be looked at).
func (w *gitWalk) linked(path string) bool {
	root, rel, err := w.rooted(path)
	if err != nil {
		return err != errNoMount
	}
	defer root.Close()
	parts := strings.Split(filepath.ToSlash(rel), "/")
	for i := 1; i <= len(parts); i++ {
		st, err := root.Lstat(strings.Join(parts[:i], "/"))
		if errors.Is(err, fs.ErrNotExist) {
			return false
		}
		if err != nil || st.Mode()&fs.ModeSymlink != 0 {
			return true
		}
	}
	return false
}

// readlink reads a link inside its mount.
func (w *gitWalk) readlink(path string) (string, bool) {
	root, rel, err := w.rooted(path)
	if err != nil {
		return "", false
	}
	defer root.Close()
	target, err := root.Readlink(rel)
	return target, err == nil
}

// gitlinks returns the paths of the gitlinks in the index at path (none
// when there is no index). git itself reads a copy of the index (its
// entry modes, versions, extensions and threaded reads exactly as the
// host's git status sees them), in a repository of its own with no
// configuration but this: nothing of the project's is read or run. An
// index it cannot read whole (too big, split, too slow) is an error.
func (w *gitWalk) gitlinks(path string) ([]string, error) {
	f, err := w.openIfThere(path)
	if f == nil {
		return nil, err
	}
	defer f.Close()
	return indexGitlinks(w.ctx, f)
}

// indexGitlinks has git list the gitlinks of the index r holds (the
// agent's: it may be anything).
func indexGitlinks(ctx context.Context, r io.Reader) ([]string, error) {
	var names []string
	err := indexEntries(ctx, r, func(mode uint32, _, _, name string) error {
		// A gitlink is its type bits, whatever the rest (git enters a
		// folder listed as 160755 too).
		if mode&0o170000 == 0o160000 {
			names = append(names, filepath.FromSlash(name))
		}
		return nil
	})
	return names, err
}

// indexEntries has git list the entries of the index r holds (the
// agent's: it may be anything), each as its mode, object, stage and path
// (an error each returns stops git). git
// reads a copy, in a repository of vibe's own with no configuration but
// what lsIndex gives it.
func indexEntries(ctx context.Context, r io.Reader, each func(mode uint32, oid, stage, name string) error) error {
	tmp, gitDir, err := emptyRepo()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	index := filepath.Join(tmp, "index")
	copyTo, err := os.OpenFile(index, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	n, err := io.Copy(copyTo, io.LimitReader(r, gitMaxIndex+1))
	if cerr := copyTo.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if n > gitMaxIndex {
		return fmt.Errorf("an index of more than %d MiB", gitMaxIndex>>20)
	}
	// With index.threads (a submodule's own configuration sets it), git
	// reads the entries from the offsets an IEOT extension lists, which
	// may be other entries than those in order; and git does not check
	// those offsets (a crafted table writes past its array). Such an
	// index is not read here at all.
	data, err := os.ReadFile(index)
	if err != nil {
		return err
	}
	if hasOffsetTable(data) {
		return errors.New("an index with an entry offset table (IEOT)")
	}
	return lsIndex(ctx, gitDir, index, each)
}

// emptyRepo makes a temporary folder holding a repository with nothing in
// it (tmp/git, whose worktree is tmp/git/worktree), for git to read the
// agent's files in: no configuration of the project's is read there.
func emptyRepo() (tmp, gitDir string, err error) {
	tmp, err = os.MkdirTemp("", "vibe-git-")
	if err != nil {
		return "", "", err
	}
	gitDir = filepath.Join(tmp, "git")
	for _, d := range []string{"objects", "refs", "worktree"} {
		if err = os.MkdirAll(filepath.Join(gitDir, d), 0o700); err != nil {
			os.RemoveAll(tmp)
			return "", "", err
		}
	}
	if err = os.WriteFile(filepath.Join(gitDir, "HEAD"), []byte("ref: refs/heads/main\n"), 0o600); err != nil {
		os.RemoveAll(tmp)
		return "", "", err
	}
	return tmp, gitDir, nil
}

// hasOffsetTable reports whether git, reading the index data with threads,
// would find an IEOT extension (or cannot be sure it would not): git looks
// for it only through an EOIE extension at the end, which gives where the
// extensions start.
func hasOffsetTable(data []byte) bool {
	const hashLen, eoieLen = 20, 4 + 4 + 4 + 20
	if len(data) < 12+eoieLen+hashLen {
		return false
	}
	eoie := data[len(data)-hashLen-eoieLen:]
	if string(eoie[:4]) != "EOIE" {
		return false
	}
	pos := int(binary.BigEndian.Uint32(eoie[8:12]))
	end := len(data) - hashLen
	if pos < 12 || pos > end {
		return true
	}
	for pos+8 <= end {
		sig, size := string(data[pos:pos+4]), int(binary.BigEndian.Uint32(data[pos+4:pos+8]))
		if sig == "IEOT" {
			return true
		}
		if size > end-pos-8 {
			return true
		}
		pos += 8 + size
	}
	return pos != end
}

// gitMaxRecord bounds one entry of git's listing (mode, object, stage and
// a path git keeps under PATH_MAX).
const gitMaxRecord = 64 + 4096

// lsIndex lists the entries of the index at index with git ls-files (one
// block after another, never as threads would), in the empty repository
// gitDir. A folder entry (a sparse index) stands for a tree git expands
// from the project's objects, which may hold anything: an error.
func lsIndex(ctx context.Context, gitDir, index string, each func(mode uint32, oid, stage, name string) error) error {
	sparse := false
	err := runGit(ctx, gitDir, []string{"GIT_INDEX_FILE=" + index},
		[]string{"-c", "core.fsmonitor=false", "-c", "index.threads=1", "ls-files", "--stage", "-z"}, 0,
		func(rec []byte) error {
			// "MODE OID STAGE\tNAME"
			head, name, ok := bytes.Cut(rec, []byte("\t"))
			f := strings.Fields(string(head))
			if !ok || len(f) != 3 {
				return errors.New("git's listing is not one of entries")
			}
			m, err := strconv.ParseUint(f[0], 8, 32)
			if err != nil {
				return errors.New("git's listing is not one of entries")
			}
			if m&0o170000 == 0o040000 {
				sparse = true
			}
			return each(uint32(m), f[1], f[2], string(name))
		})
	if err == nil && sparse {
		err = errors.New("a sparse index (folder entries)")
	}
	return err
}

// runGit runs git with args in the repository gitDir of vibe's own (no
// system or global configuration, nothing of the user's environment but
// PATH) and env on top, under a bound of time (ctx) and memory (a crafted
// index or object makes git's reading grow), and hands each record of its
// output, ended by sep (NUL, or a newline), within gitMaxRecord bytes, to
// each. Anything git says
// on its error output is an error: what it could not read, it skips.
func runGit(ctx context.Context, gitDir string, env, args []string, sep byte, each func(rec []byte) error) error {
	return runGitInput(ctx, gitDir, env, args, nil, sep, each)
}

// runGitInput is runGit with input on git's standard input.
func runGitInput(ctx context.Context, gitDir string, env, args []string, input []byte, sep byte, each func(rec []byte) error) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"--no-optional-locks"}, args...)...)
	cmd.Dir = filepath.Join(gitDir, "worktree")
	cmd.Env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + gitDir, "LC_ALL=C",
		"GIT_DIR=" + gitDir, "GIT_WORK_TREE=" + cmd.Dir,
		"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_OPTIONAL_LOCKS=0",
	}, env...)
	stderr := &limited{n: 4096, cancel: cancel}
	cmd.Stderr = stderr
	if input != nil {
		cmd.Stdin = bytes.NewReader(input)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	mem, core := unix.Rlimit{Cur: gitMaxMemory, Max: gitMaxMemory}, unix.Rlimit{}
	if err := errors.Join(unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_AS, &mem, nil), unix.Prlimit(cmd.Process.Pid, unix.RLIMIT_CORE, &core, nil)); err != nil {
		cancel()
		cmd.Wait()
		return fmt.Errorf("bound git's memory: %w", err)
	}
	r := bufio.NewReaderSize(stdout, gitMaxRecord)
	var rerr error
	for {
		rec, err := r.ReadSlice(sep)
		if err == io.EOF && len(rec) == 0 {
			break
		}
		if err == nil {
			err = each(rec[:len(rec)-1])
		} else {
			err = fmt.Errorf("git's listing: %w", err) // a record past its bound, or cut off
		}
		if err != nil {
			rerr = err
			cancel()
			break
		}
	}
	what := "git " + args[len(args)-1]
	for _, a := range args {
		if !strings.HasPrefix(a, "-") && !strings.Contains(a, "=") {
			what = "git " + a // the subcommand: the first word that is no option
			break
		}
	}
	if parent.Err() != nil {
		// Killed at the deadline: whatever it said, that is why.
		cmd.Wait()
		return fmt.Errorf("%s took more than %s", what, gitTimeout)
	}
	if err := cmd.Wait(); err != nil && rerr == nil {
		rerr = fmt.Errorf("%s: %w", what, err)
		if msg, _, _ := strings.Cut(strings.TrimSpace(stderr.buf.String()), "\n"); msg != "" {
			// What git says is why (naming vibe's copy as the index).
			rerr = fmt.Errorf("%s: %s", what, strings.ReplaceAll(msg, filepath.Dir(gitDir), "vibe's copy"))
		}
	}
	// git says what it could not read and goes on (a tree it would
	// expand): anything it says means the list may be short.
	if rerr == nil && (stderr.buf.Len() > 0 || stderr.over) {
		rerr = fmt.Errorf("%s: %s", what, strings.TrimSpace(stderr.buf.String()))
	}
	return rerr
}

// gitfile returns the folder a gitfile ("gitdir: PATH") names, absolute,
// or "" when it names none.
func (w *gitWalk) gitfile(path string) string {
	data, ok := w.read(path)
	if !ok {
		w.cut(fmt.Sprintf("%s cannot be read", w.name(path)))
		return ""
	}
	dir := gitfileTarget(data)
	if dir == "" {
		return "" // git refuses it, and goes nowhere
	}
	return w.physical(filepath.Dir(path), dir, false)
}

// gitfileTarget is the folder a gitfile's content ("gitdir: PATH") names,
// as written, or "" where git refuses it.
func gitfileTarget(data []byte) string {
	dir, ok := strings.CutPrefix(gitPath(data), "gitdir: ")
	if !ok {
		return ""
	}
	return dir
}

// physical is the folder a path git finds in a file (a gitfile, a .git
// link, commondir, core.worktree) names, relative to base: as git takes
// it, with no ~ expanded, and ".." taken on disk, after any link before
// it. Where the path climbs out of a link in a mount, the text and the
// disk part ways: the project is cut short, and "" returned.
func (w *gitWalk) physical(base, p string, fromMine bool) string {
	if len(p) > snapshotMaxPath {
		w.cut(fmt.Sprintf("a path git follows is longer than %d bytes", snapshotMaxPath))
		return ""
	}
	cur := base
	if filepath.IsAbs(p) {
		cur = "/"
	}
	// through: a link (in a mount) is on the way to cur; one entry a
	// level, so that each folder is looked at once.
	through := w.linked(cur)
	var above []bool
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			if through {
				w.cut(fmt.Sprintf("a path git follows (%s) climbs out of a symbolic link", quotePath(p)))
				return ""
			}
			cur = filepath.Dir(cur)
			if n := len(above); n > 0 {
				through, above = above[n-1], above[:n-1]
			} else {
				through = w.linked(cur)
			}
		default:
			above = append(above, through)
			cur = filepath.Join(cur, c)
			if !through {
				st, err := w.lstat(cur)
				through = err != nil && !errors.Is(err, fs.ErrNotExist) || err == nil && st.Mode()&fs.ModeSymlink != 0
			}
		}
	}
	return w.place(cur, fromMine)
}

// locate is where a path a configuration names (an include, a hooks
// folder, a command's program) is, relative to base: ~ is the home there.
func (w *gitWalk) locate(base, p string, fromMine bool) string {
	if strings.HasPrefix(p, "~") {
		return w.place(w.resolve(base, p), fromMine)
	}
	return w.physical(base, p, fromMine)
}

// place is where the absolute, clean path p is, for the question whether
// it is in a mount. One in a mount is taken as it is (a link inside is
// judged where it matters). One outside is resolved through the host's
// links: where that leads into a mount, it is taken there; and a path the
// agent wrote (not fromMine) that goes through a link outside the mounts
// cuts, and is "": /proc/self/cwd is one, and names another folder for
// each process that follows it (git's own working folder, in the
// project).
func (w *gitWalk) place(p string, fromMine bool) string {
	if p == "" {
		return ""
	}
	if _, _, in := w.mount(p); in {
		return p
	}
	r := evalExisting(p)
	if w.foreign(p) || w.foreign(r) {
		w.cut(fmt.Sprintf("a git path (%s) leads into an agent's state folder, which vibe does not follow", quotePath(p)))
		return ""
	}
	switch _, _, in := w.mount(r); {
	case r == p:
		return p
	case !fromMine:
		w.cut(fmt.Sprintf("a path the agent could write (%s) goes through a symbolic link outside the mounted folders", quotePath(p)))
		return ""
	case in:
		return r
	}
	return p
}

// evalExisting resolves the links of p as far as it exists.
func evalExisting(p string) string {
	rest := ""
	for d := p; ; d = filepath.Dir(d) {
		if r, err := filepath.EvalSymlinks(d); err == nil {
			return filepath.Join(r, rest)
		}
		if d == filepath.Dir(d) {
			return p
		}
		rest = filepath.Join(filepath.Base(d), rest)
	}
}

// gitPath is a path file's content as git reads it (a gitfile, commondir):
// up to a NUL (C's end of string), without its trailing CRs and LFs, and
// nothing else taken off: "a\nb" is a folder named so.
func gitPath(data []byte) string {
	s, _, _ := strings.Cut(string(data), "\x00")
	return strings.TrimRight(s, "\r\n")
}

// lstat looks at path inside the mount that holds it (one in no mount is
// not there).
func (w *gitWalk) lstat(path string) (fs.FileInfo, error) {
	root, rel, err := w.rooted(path)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Lstat(rel)
}

// errNoMount is rooted's answer for a path in no mount: not there, for
// what looks inside the mounts.
var errNoMount = fmt.Errorf("in no mount: %w", fs.ErrNotExist)

// rooted opens the mount that holds path, to be looked into without
// following a link out of it: its root (the caller closes it) and path
// within it.
func (w *gitWalk) rooted(path string) (*os.Root, string, error) {
	r, rel, in := w.mount(path)
	if !in {
		return nil, "", errNoMount
	}
	root, err := os.OpenRoot(r)
	return root, rel, err
}
