package sandbox

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/vibesandbox/vibe/workspace"
)

// A project's git configuration can send the host's git into the
// project's files: core.hooksPath names a folder of hooks (.githooks is a
// common one), include.path / includeIf.*.path pull in more configuration,
// and commands (a filter, core.fsmonitor, an alias) may start a script of
// the project's. All are the user's choice, made in .git/config (which the
// agent cannot write) or in the user's own configuration; the files they
// name often lie in the worktree, which it can. Those files are host-run
// files of that project too.

// Bounds of the walk through a project's configuration, which included
// files (the agent's, once written) can make as long as they like. Past
// one, what is left unread marks the project's snapshot as cut short.
const (
	gitMaxConfigs = 128      // configuration files read per project (those there)
	gitMaxConfig  = 64 << 10 // bytes of one (git takes seconds over a crafted MiB)
	gitMaxOutput  = 1 << 20  // of git's answer about one
	gitMaxExtra   = 256      // host-run paths found per project
	gitTimeout    = 10 * time.Second
)

// gitHooks are the names git runs from a hooks folder: a core.hooksPath
// that is the project's root protects these, not the whole project.
var gitHooks = []string{
	"applypatch-msg", "pre-applypatch", "post-applypatch", "pre-commit", "pre-merge-commit",
	"prepare-commit-msg", "commit-msg", "post-commit", "pre-rebase", "post-checkout", "post-merge",
	"pre-push", "pre-receive", "update", "proc-receive", "post-receive", "post-update",
	"reference-transaction", "push-to-checkout", "pre-auto-gc", "post-rewrite",
	"sendemail-validate", "fsmonitor-watchman", "post-index-change",
	"p4-changelist", "p4-prepare-changelist", "p4-post-changelist", "p4-pre-submit",
}

// gitKeys are the keys whose values git follows: the hooks folder, the
// includes, and the commands it runs (through a shell, from the worktree)
// or the programs it starts.
const gitKeys = `^(core\.hookspath|core\.worktree|extensions\.(objectformat|worktreeconfig)|include\.path|includeif\..*\.path` +
	`|core\.(fsmonitor|editor|pager|sshcommand|askpass|gitproxy|alternaterefscommand)|sequence\.editor|pager\..*` +
	`|diff\.external|diff\..*\.(command|textconv)|merge\..*\.driver|filter\..*\.(clean|smudge|process)` +
	`|(diff|merge)tool\..*\.(cmd|path)|alias\..*|credential\.helper|credential\..*\.helper` +
	`|gpg\.program|gpg\..*\.program|gpg\.ssh\.defaultkeycommand|interactive\.difffilter` +
	`|trailer\..*\.(command|cmd)|tar\..*\.command|remote\..*\.(uploadpack|receivepack)|submodule\..*\.update` +
	`|(man|browser)\..*\.(cmd|path)|guitool\..*\.cmd|lfs\.customtransfer\..*\.path|hook\..*\.command` +
	`|(diff|merge)\.(tool|guitool)|remote\..*\.vcs|pull\.(twohead|octopus)|remote\.pushdefault|branch\..*\.(remote|pushremote)` +
	`|http\.(.*\.)?savecookies|trace2\..*target|init\.templatedir|uploadpack\.packobjectshook|gc\.recentobjectshook` +
	`|instaweb\.(httpd|modulepath)|svn\.authorsprog|sendemail\.(.*\.)?smtpserveroption|format\.outputdirectory` +
	`|lfs\.extension\..*\.(clean|smudge)|lfs\.customtransfer\..*\.args|imap\.tunnel|delta\.(.*\.)?pager` +
	`|sendemail\.(.*\.)?(sendmailcmd|tocmd|cccmd|headercmd|smtpserver)|remote\..*\.(url|pushurl)|url\..*\.(insteadof|pushinsteadof)` +
	`|protocol\.allow|protocol\.ext\.allow)$`

// gitCutKeys are keys whose value, agent-written, cuts: git writes to it,
// copies hooks from it, or runs it in a way no command says.
var gitCutKeys = regexp.MustCompile(`^(trace2\..*target|init\.templatedir|uploadpack\.packobjectshook|instaweb\.(httpd|modulepath)` +
	`|sendemail\.(.*\.)?smtpserveroption|format\.outputdirectory)$`)

// gitFound is what a project's configuration sends git to.
type gitFound struct {
	rel      []string // host-run paths, relative to the mount that holds each
	cut      string   // why more may go unseen (a bound, something not read), or ""
	unsteady bool     // the project changed while it was listed (Unsteady)
	// repos are the project's submodules and nested repositories: git
	// folder and worktree, relative to the project, sorted.
	repos []gitRepo
}

// gitRepo is a repository in a project: its git folder and worktree.
type gitRepo struct{ gitDir, worktree string }

// gitHostRun returns, by host folder of each writable mount, the paths in
// it that the host's git reads or runs through the configuration of a
// project whose host-run files are protected: its core.hooksPath, the
// files its includes name (followed, whatever their condition), and the
// programs its commands start by a path. The user's own files (global and
// system configuration, .git/config, .git/config.worktree and what they
// include outside the mounts) are read first; a file in a mount, which the
// agent may have written, is read inside its mount, never through a
// symlink or anything that could block, and what it names outside the
// mounts is not followed. git itself parses each file, from standard
// input (without git on the host, nothing here runs hooks, and nothing is
// added).
func gitHostRun(mounts []workspace.Mount, states map[string]string) map[string]*gitFound {
	return walkHostRun(mounts, states, false)
}

// walkHostRun is gitHostRun; held says the sandbox is frozen (Manager.Hold)
// while it runs, so that nothing moves in the projects and the look for
// nested repositories need not look at its folders again.
func walkHostRun(mounts []workspace.Mount, states map[string]string, held bool) map[string]*gitFound {
	out := map[string]*gitFound{}
	var roots, projects []string
	for _, m := range mounts {
		if m.ReadOnly {
			continue
		}
		root := filepath.Clean(m.Source)
		roots = append(roots, root)
		if !m.HostRunWritable {
			projects = append(projects, root)
		}
	}
	if _, err := exec.LookPath("git"); err != nil || len(projects) == 0 {
		return out
	}
	ctx, cancel := context.WithTimeout(context.Background(), gitTimeout)
	defer cancel()
	home, _ := os.UserHomeDir()
	stateDirs := slices.Collect(maps.Values(states))
	for _, project := range projects {
		w := newGitWalk(ctx, project, projects, roots, stateDirs, home, out)
		w.held = held
		start := userGitConfigs(home)
		gitDir, own := w.projectGitDir()
		if gitDir != "" {
			w.own = []string{gitDir}
			for _, cfg := range own {
				w.own = append(w.own, filepath.Dir(cfg))
			}
			start = append(start, own...)
			w.followLinks(gitDir)
			w.stoppedRebase(gitDir)
			for _, cfg := range own {
				// The git folder's hooks, and a linked worktree's common
				// folder's, which git runs.
				w.hookDir(filepath.Join(filepath.Dir(cfg), "hooks"))
			}
		}
		w.walk(start, project, gitDir, true)
		w.hookManagers()
		w.pathInMounts()
		if gitDir != "" && !w.formatOther(own) {
			w.links(gitDir, project, 0)
		}
		w.nested()
		f := w.of(project)
		for gd, wt := range w.repos {
			rg, relG, okG := w.mount(gd)
			rw, relW, okW := w.mount(wt)
			if okG && okW && rg == project && rw == project && relG != ".git" {
				f.repos = append(f.repos, gitRepo{relG, relW})
			}
		}
		slices.SortFunc(f.repos, func(a, b gitRepo) int { return cmp.Compare(a.gitDir, b.gitDir) })
	}
	for _, f := range out {
		slices.Sort(f.rel)
		f.rel = slices.Compact(f.rel)
	}
	return out
}

// projectGitDir returns the project's git folder and the configuration
// files of it that are the user's (the agent cannot write them), or ""
// when there is none to follow. A .git folder's are protected in the
// sandbox. A .git file (a linked worktree, a submodule's checkout) is
// recorded by the snapshot and names a folder of the user's outside the
// mounts, whose index lists the gitlinks the host's git goes into; one
// that names a folder inside them, or a .git that is a link, is not
// followed: the project is cut short.
func (w *gitWalk) projectGitDir() (string, []string) {
	dotGit := filepath.Join(w.project, ".git")
	st, err := os.Lstat(dotGit)
	switch {
	case err != nil:
		return "", nil
	case st.IsDir():
		// A repository of its own has no commondir; one the agent
		// writes (none was there to protect) sends git's configuration,
		// hooks and index layout elsewhere.
		if _, err := w.lstat(filepath.Join(dotGit, "commondir")); !errors.Is(err, fs.ErrNotExist) {
			w.cut("the project's .git folder has a commondir, which sends git elsewhere for its configuration and hooks and which vibe does not follow")
			return "", nil
		}
		return dotGit, []string{filepath.Join(dotGit, "config"), filepath.Join(dotGit, "config.worktree")}
	case !st.Mode().IsRegular():
		w.cut("the project's .git is a symbolic link or another special file, which vibe does not follow")
		return "", nil
	}
	gitDir := w.gitfile(dotGit)
	if gitDir == "" {
		return "", nil // git goes nowhere (or cut)
	}
	if _, _, in := w.mount(gitDir); in {
		if sibling := w.siblingWorktree(gitDir); sibling != "" {
			// Another project's linked worktree: that project's .git
			// (its worktrees folder and config) is protected.
			return gitDir, []string{filepath.Join(gitDir, "config.worktree"), filepath.Join(sibling, ".git", "config")}
		}
		w.cut("the project's .git file names a git folder inside the mounted folders, which vibe does not follow")
		return "", nil
	}
	own := []string{filepath.Join(gitDir, "config"), filepath.Join(gitDir, "config.worktree")}
	if data, ok := w.read(filepath.Join(gitDir, "commondir")); !ok {
		w.cut(fmt.Sprintf("%s cannot be read", w.name(filepath.Join(gitDir, "commondir"))))
		return "", nil
	} else if common := gitPath(data); common != "" {
		dir := w.physical(gitDir, common, true)
		if dir == "" {
			return "", nil
		}
		if _, _, in := w.mount(dir); in {
			w.cut("the project's common git folder is inside the mounted folders, which vibe does not follow")
			return "", nil
		}
		own = append(own, filepath.Join(dir, "config"))
	}
	return gitDir, own
}

// hookManagers cuts for hooks that run the project's own programs, which
// the agent writes and no host-run path can hold: husky's, yorkie's and
// simple-git-hooks' run node_modules (its .bin first in PATH, a runner
// script, npx), and pre-commit's run Python with the worktree first on
// its import path. vibe protects the hooks, not what they run; the
// warning says so at every session. husky's own scripts are in the folder
// above its hooks path (.husky/_): that folder is a host-run path too,
// wherever the project keeps it.
func (w *gitWalk) hookManagers() {
	husky, node, python := false, false, false
	for _, dir := range w.hookDirs {
		if st, err := w.lstat(dir); err == nil && st.IsDir() && filepath.Base(dir) == "_" {
			if st, err := w.lstat(filepath.Join(dir, "h")); err == nil && st.Mode().IsRegular() || filepath.Base(filepath.Dir(dir)) == ".husky" {
				husky = true
				w.follow(filepath.Dir(dir))
			}
		}
		for _, name := range w.entries(dir) {
			if strings.HasSuffix(name, ".sample") {
				continue // git runs no sample
			}
			// A hook linked to a script of the project's (.githooks/
			// pre-commit -> ../scripts/x.sh): the script is a host-run
			// path too.
			w.addLinkTarget(filepath.Join(dir, name))
			data, ok := w.read(filepath.Join(dir, name))
			if !ok {
				continue
			}
			node = node || nodeRunner.Match(data)
			python = python || bytes.Contains(data, []byte("pre_commit"))
		}
	}
	if st, err := w.lstat(filepath.Join(w.project, ".husky", "_")); err == nil && st.IsDir() {
		husky = true
	}
	switch {
	case husky:
		w.cut("husky's hooks run programs from node_modules/.bin, which the agent can write: review it before you commit on the host, or commit with --no-verify")
	case node:
		w.cut("the project's git hooks run code from node_modules (a hook manager's runner, npx), which the agent can write: review it before you commit on the host, or commit with --no-verify")
	}
	if python {
		w.cut("pre-commit's hooks run Python with the project's folder first on its import path, which the agent can write: set PYTHONSAFEPATH=1 on the host, or commit with --no-verify")
	}
}

// pathInMounts cuts where the host's PATH has a folder in the mounts (a
// direnv PATH_add bin): a bare program name that git or a hook runs
// (less, ssh, sh) may then be a file the agent wrote, and no command says
// which.
func (w *gitWalk) pathInMounts() {
	for _, e := range filepath.SplitList(os.Getenv("PATH")) {
		if rest, ok := strings.CutPrefix(e, "~"); ok && w.home != "" && (rest == "" || strings.HasPrefix(rest, "/")) {
			e = w.home + rest // bash expands it when it looks a name up
		}
		if !filepath.IsAbs(e) {
			// . or bin: git's default pager, editor and ssh are looked
			// for in the worktree.
			w.cut(fmt.Sprintf("your PATH has %s, a relative folder: a program git runs by its name (the pager, ssh, a hook's tools) may be the agent's file in the project; take it out of PATH", quotePath(e)))
			return
		}
		if r, err := filepath.EvalSymlinks(e); err == nil {
			e = r // ~/bin -> ~/dotfiles/bin
		}
		if _, _, in := w.mount(filepath.Clean(e)); in {
			w.cut(fmt.Sprintf("your PATH has %s, a folder the agent can write: a program git runs by its name (the pager, ssh, a hook's tools) may be the agent's; take it out of PATH when you run git in the project", quotePath(e)))
			return
		}
	}
}

// stoppedRebase cuts for a rebase, cherry-pick or revert left stopped in
// a git folder the agent can write: its todo list's exec lines run on the
// host's git rebase --continue.
func (w *gitWalk) stoppedRebase(gitDir string) {
	if _, _, in := w.mount(gitDir); !in {
		return
	}
	for _, n := range []string{"rebase-merge", "rebase-apply", "sequencer"} {
		if _, err := w.lstat(filepath.Join(gitDir, n)); err == nil {
			w.cut(fmt.Sprintf("a rebase, cherry-pick or revert is left stopped (%s): its todo list runs commands on git rebase --continue; run git rebase --abort (or cherry-pick --abort) after reading it", quotePath(filepath.Join(".git", n))))
			return
		}
	}
}

// addLinkTarget records where p, a link in a mount, leads: the snapshot
// records a link's text, and the guest does not protect a link, so what
// git runs there is a host-run path of its own.
func (w *gitWalk) addLinkTarget(p string) {
	if st, err := w.lstat(p); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		if t := w.within(p); t != "" && t != p {
			w.add(t)
		}
	}
}

// hookDir adds a hooks folder of the project's, once.
func (w *gitWalk) hookDir(dir string) {
	if !slices.Contains(w.hookDirs, dir) {
		w.hookDirs = append(w.hookDirs, dir)
	}
}

// nodeRunner is a hook's text that starts code from node_modules: a path
// into it, or a package runner that looks there first.
var nodeRunner = regexp.MustCompile(`node_modules|\b(npx|npm|pnpm|pnpx|yarn|bunx|bun)\b`)

// siblingWorktree returns the protected project whose .git/worktrees
// holds gitDir (a linked worktree of it mounted as a project of its own),
// or "".
func (w *gitWalk) siblingWorktree(gitDir string) string {
	for _, p := range w.projects {
		if p == w.project || filepath.Dir(gitDir) != filepath.Join(p, ".git", "worktrees") {
			continue
		}
		if st, err := w.lstat(filepath.Join(p, ".git")); err == nil && st.IsDir() && !w.linked(gitDir) {
			if data, ok := w.read(filepath.Join(gitDir, "commondir")); ok && w.physical(gitDir, gitPath(data), false) == filepath.Join(p, ".git") {
				return p
			}
		}
	}
	return ""
}

// userGitConfigs are the host user's own and the system's configuration
// files, as git finds them.
func userGitConfigs(home string) []string {
	var files []string
	if os.Getenv("GIT_CONFIG_NOSYSTEM") == "" {
		files = append(files, cmp.Or(os.Getenv("GIT_CONFIG_SYSTEM"), "/etc/gitconfig"))
	}
	if g, ok := os.LookupEnv("GIT_CONFIG_GLOBAL"); ok {
		return append(files, g)
	}
	xdg := os.Getenv("XDG_CONFIG_HOME")
	if xdg == "" && home != "" {
		xdg = filepath.Join(home, ".config")
	}
	if xdg != "" {
		files = append(files, filepath.Join(xdg, "git", "config"))
	}
	if home != "" {
		files = append(files, filepath.Join(home, ".gitconfig"))
	}
	return files
}

type gitWalk struct {
	ctx      context.Context
	held     bool              // the sandbox is frozen: nothing moves in the projects
	parsed   map[string]parsed // the user's own files, by path
	project  string
	projects []string // every project whose host-run files are protected
	states   []string // the agents' state folders: the agent's, not followed
	roots    []string
	home     string
	out      map[string]*gitFound
	seen     map[string]bool
	repos    map[string]string // git folders looked into, and the worktree of each
	common   map[string]bool   // common folders recorded
	// otherFormat holds the configuration files read that name another
	// object format than SHA-1.
	otherFormat map[string]bool
	// worktrees and worktreeConfig are, by configuration file read, its
	// core.worktree values and extensions.worktreeConfig.
	worktrees      map[string][]string
	worktreeConfig map[string]bool
	files          int
	found          int
	// hookDirs are the project's own hooks folders: its git folders'
	// hooks and the core.hooksPath folders its configuration names.
	hookDirs []string
	// own are the project's git folder and its common folder: git
	// folders outside the mounts below them (a linked worktree's or a
	// --separate-git-dir's submodules) are the user's.
	own []string
	// probing is set in a walk of probe's: what it finds in a mount cuts
	// and is not recorded.
	probing string
}

// newGitWalk is a walk of project (one of projects, in the writable mounts
// roots, the agents' state folders states) that has read, counted and seen
// nothing yet and records in out.
func newGitWalk(ctx context.Context, project string, projects, roots, states []string, home string, out map[string]*gitFound) *gitWalk {
	return &gitWalk{ctx: ctx, project: project, projects: projects, roots: roots, states: states, home: home, out: out,
		seen: map[string]bool{}, repos: map[string]string{}, common: map[string]bool{},
		otherFormat: map[string]bool{}, worktrees: map[string][]string{}, worktreeConfig: map[string]bool{}}
}

func (w *gitWalk) of(root string) *gitFound {
	if w.out[root] == nil {
		w.out[root] = &gitFound{}
	}
	return w.out[root]
}

// cut marks the project as cut short for reason (see addReason).
func (w *gitWalk) cut(reason string) {
	f := w.of(w.project)
	f.cut = addReason(f.cut, reason)
}

// probe runs fn on a walk of its own for what a file the agent can write
// names outside the mounts (why): an include, a git folder. The agent
// cannot read such a file, but what the walk records is protected in the
// guest, where it can see it: so that walk records nothing (what it finds
// in a mount cuts w's project), and shares nothing with w (what it has
// read, counted or seen) but the deadline, so that what a host file holds
// changes nothing else w does.
func (w *gitWalk) probe(why string, fn func(p *gitWalk)) {
	p := newGitWalk(w.ctx, w.project, w.projects, w.roots, w.states, w.home, map[string]*gitFound{})
	p.probing = why
	fn(p)
	if f := p.out[w.project]; f != nil && f.cut != "" {
		for _, r := range strings.Split(f.cut, "; ") {
			w.cut(r)
		}
	}
}

// follow adds abs, and where the links on its way lead in a mount (the
// snapshot records a link's text only); it returns that place (within).
func (w *gitWalk) follow(abs string) string {
	w.add(abs)
	t := w.within(abs)
	if t != "" && t != abs {
		w.add(t)
	}
	return t
}

// foreign reports whether p is in an agent's state folder.
func (w *gitWalk) foreign(p string) bool {
	return w.below(p, w.states)
}

// name is path for a message: relative to the project when it is in it,
// printable and short.
func (w *gitWalk) name(path string) string {
	if rel, err := filepath.Rel(w.project, path); err == nil && filepath.IsLocal(rel) {
		path = rel
	}
	return quotePath(path)
}

// mount returns the writable mount that holds abs, if one does.
func (w *gitWalk) mount(abs string) (root, rel string, ok bool) {
	for _, r := range w.roots {
		rel, err := filepath.Rel(r, abs)
		if err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return r, rel, true
		}
	}
	return "", "", false
}

// add records abs as a host-run path of the mount that holds it, if one
// does (a path outside them is not the agent's to write). It says whether
// abs is in a mount.
func (w *gitWalk) add(abs string) bool {
	root, rel, ok := w.mount(abs)
	if !ok {
		return false
	}
	if w.probing != "" {
		w.cut(fmt.Sprintf("%s, outside the mounted folders and named by a git file the agent can write, leads git to %s", quotePath(w.probing), w.name(abs)))
		return true
	}
	if w.found >= gitMaxExtra {
		w.cut(fmt.Sprintf("git's configuration names more than %d host-run paths", gitMaxExtra))
		return true
	}
	if len(rel) > snapshotMaxPath {
		w.cut(fmt.Sprintf("git's configuration names a path longer than %d bytes", snapshotMaxPath))
		return true
	}
	w.found++
	f := w.of(root)
	if rel == "." {
		// Hooks at the project's root: each hook, not the project.
		f.rel = append(f.rel, gitHooks...)
	} else {
		f.rel = append(f.rel, rel)
	}
	return true
}

// resolve makes a configured path absolute as git does: ~/ is the home,
// anything else relative is relative to base.
func (w *gitWalk) resolve(base, p string) string {
	switch {
	case p == "~" || strings.HasPrefix(p, "~/"):
		if w.home == "" {
			return ""
		}
		return filepath.Join(w.home, strings.TrimPrefix(p, "~"))
	case strings.HasPrefix(p, "~"):
		return "" // another user's home: not one of the mounts
	case filepath.IsAbs(p):
		return filepath.Clean(p)
	}
	return filepath.Join(base, p)
}

// walk reads the configuration files from start and what they include,
// the user's own files before any in a mount, breadth first within the
// bounds: what the user configured is found before anything an included
// file (perhaps the agent's) adds. Hooks and programs are relative to
// worktree, a core.worktree relative to gitDir (the repository's git
// folder); start's files in a mount are the user's when trusted is set
// (a project's .git/config, which the agent cannot write), the agent's
// otherwise (a submodule's it made). A file is read once for each
// worktree: what it names relative to the worktree differs.
func (w *gitWalk) walk(start []string, worktree, gitDir string, trusted bool) {
	var mine, theirs []string // outside the mounts; in a mount
	// opened is the path git opens a file by, where a link made it
	// another: git takes a relative include from that path's folder,
	// not from where the link leads.
	opened := map[string]string{}
	// later are files outside the mounts that a file the agent can write
	// includes (a dotfiles gitconfig's include of a file in ~, whose
	// relative paths land in the worktree): each is probed once this
	// walk is done.
	var later []string
	push := func(p string, fromMine bool) {
		p = w.place(p, fromMine)
		switch _, _, in := w.mount(p); {
		case p == "":
		case !in && fromMine:
			mine = append(mine, p)
		case !in && w.probing == "":
			later = append(later, p)
		default:
			theirs = append(theirs, p)
		}
	}
	defer func() {
		for _, p := range later {
			w.probe(p, func(pw *gitWalk) { pw.walk([]string{p}, worktree, gitDir, false) })
		}
	}()
	for _, p := range start {
		if q := w.place(p, true); q != p && q != "" {
			// A file of the user's that a link takes into a mount
			// (~/.gitconfig in a dotfiles project): the agent's to
			// write, so a host-run path, and read as the agent's.
			if _, _, in := w.mount(q); in {
				w.add(q)
				theirs = append(theirs, q)
				opened[q] = p
				continue
			}
		}
		if _, _, in := w.mount(p); in && trusted {
			// .git/config and config.worktree: the user's (the agent
			// cannot write them), read first.
			mine = append(mine, p)
		} else {
			push(p, trusted)
		}
	}
	for len(mine)+len(theirs) > 0 {
		var path string
		fromMine := len(mine) > 0
		if fromMine {
			path, mine = mine[0], mine[1:]
		} else {
			path, theirs = theirs[0], theirs[1:]
		}
		if w.seen[path+"\x00"+worktree] {
			continue
		}
		if w.files >= gitMaxConfigs {
			w.cut(fmt.Sprintf("more than %d git configuration files (includes, submodules)", gitMaxConfigs))
			return
		}
		w.seen[path+"\x00"+worktree] = true
		c, ok := w.parse(path)
		if !ok {
			// There, and not looked into.
			w.cut(fmt.Sprintf("the git configuration file %s cannot be read within vibe's bounds (%d KiB, %s)", w.name(path), gitMaxConfig>>10, gitTimeout))
			continue
		}
		for _, f := range c.formats {
			if f != "sha1" {
				w.otherFormat[path] = true
			}
		}
		w.worktrees[path] = c.worktrees
		w.worktreeConfig[path] = c.worktreeConfig
		if !fromMine && c.opaque != "" {
			w.cut(fmt.Sprintf("the git configuration file %s sets a command whose files vibe cannot tell (%s)", w.name(path), quotePath(c.opaque)))
		}
		// A hooks folder and a command's program are relative to the
		// worktree, where git runs them.
		for i, p := range append(c.hooks, c.programs...) {
			if abs := w.locate(worktree, p, fromMine); abs != "" {
				w.follow(abs)
				if i < len(c.hooks) && worktree == w.project && w.probing == "" {
					w.hookDir(abs)
				}
			}
		}
		remotes := slices.Clone(c.remotes)
		for _, p := range c.remoteNames {
			if abs := w.locate(worktree, p, fromMine); abs != "" {
				if _, err := w.lstat(abs); err == nil {
					remotes = append(remotes, p)
				}
			}
		}
		for _, p := range remotes {
			if p == "." {
				continue // the repository itself: its hooks are walked
			}
			// A push runs the hooks of a repository on this machine, as
			// its own configuration says: one in the mounts is the
			// agent's. The user's own remote there is a host-run path.
			if abs := w.locate(worktree, p, fromMine); abs != "" {
				if _, _, in := w.mount(abs); in && fromMine {
					w.follow(abs)
				} else if in {
					w.cut(fmt.Sprintf("the git configuration file %s names a repository in the project as a remote (%s), whose hooks a push runs", w.name(path), quotePath(p)))
				}
			}
		}
		for _, p := range c.includes {
			// git before 2.46 reads ":(optional)x" as that name; later
			// ones as x, if it exists: both are followed.
			dir := filepath.Dir(path)
			if o, ok := opened[path]; ok {
				dir = o[:strings.LastIndex(o, "/")+1] // as git joins it, unresolved
			}
			for _, q := range []string{p, strings.TrimPrefix(p, ":(optional)")} {
				if abs := w.locate(dir, q, fromMine); abs != "" {
					if t := w.follow(abs); t != "" {
						if t != abs || dir != filepath.Dir(path) {
							opened[t] = q
							if !filepath.IsAbs(q) && !strings.HasPrefix(q, "~") {
								opened[t] = dir + "/" + q
							}
						}
						push(t, fromMine)
					}
				}
			}
		}
	}
}

// parse reads and parses one configuration file. The user's own, outside
// the mounts, are read once for all the worktrees they apply to.
func (w *gitWalk) parse(path string) (c gitConfig, ok bool) {
	_, _, in := w.mount(path)
	if p, hit := w.parsed[path]; hit && !in {
		return p.c, p.ok
	}
	data, ok := w.read(path)
	if len(data) > 0 || !ok {
		w.files++ // a file not there costs a look, not a read
	}
	if ok && len(data) > 0 {
		c, ok = parseGitConfig(w.ctx, data)
	}
	if !in {
		if w.parsed == nil {
			w.parsed = map[string]parsed{}
		}
		w.parsed[path] = parsed{c, ok}
	}
	return c, ok
}

// parsed is a configuration file's parse.
type parsed struct {
	c  gitConfig
	ok bool
}

// read returns a configuration file's content, at most gitMaxConfig
// bytes of a regular file: one in a mount read inside it (openSeen: no
// link followed, no FIFO opened), the user's own directly. ok is false
// when it is there but cannot be read so.
func (w *gitWalk) read(path string) (data []byte, ok bool) {
	if path == os.DevNull {
		return nil, true // GIT_CONFIG_GLOBAL=/dev/null: no configuration
	}
	f, err := w.openIfThere(path)
	if f == nil {
		return nil, err == nil
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, gitMaxConfig+1))
	return data, err == nil && len(data) <= gitMaxConfig
}

// openIfThere opens path as open does: a file that is not there is none
// (nil, and no error); one there that cannot be opened so is an error.
func (w *gitWalk) openIfThere(path string) (*os.File, error) {
	f, err := w.open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return f, err
}

func (w *gitWalk) open(path string) (*os.File, error) {
	if root, rel, err := w.rooted(path); err != errNoMount {
		if err != nil {
			return nil, err
		}
		defer root.Close()
		st, err := root.Lstat(rel)
		if err != nil {
			return nil, err
		}
		return openSeen(root, rel, st)
	}
	// The user's own, where a link is the user's: followed.
	st, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, errNotSeen
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	if fst, err := f.Stat(); err != nil || !os.SameFile(st, fst) {
		f.Close()
		return nil, errNotSeen
	}
	return f, nil
}

// limited keeps up to n bytes and ends the command when more come: a file
// made to blow up git's answer (one long name repeated on every line) costs
// no more than the bound.
type limited struct {
	buf    bytes.Buffer
	n      int
	over   bool
	cancel context.CancelFunc
}

func (l *limited) Write(p []byte) (int, error) {
	if l.buf.Len()+len(p) > l.n {
		l.over = true
		l.cancel()
		return 0, errors.New("git's answer is past its bound")
	}
	return l.buf.Write(p)
}

// gitConfig is what one configuration file sends git to.
type gitConfig struct {
	hooks    []string // core.hooksPath values
	includes []string // the paths its includes name
	programs []string // the programs its commands start by a path
	remotes  []string // the repositories on this machine it pushes to
	// remoteNames are remotes named by pushDefault or a branch: a path
	// where something is there.
	remoteNames []string
	worktrees   []string // core.worktree values
	formats     []string // extensions.objectFormat values
	// worktreeConfig is extensions.worktreeConfig: git then takes
	// core.worktree from a linked worktree's common configuration too.
	worktreeConfig bool
	// opaque is the key of a command whose files cannot be told: one
	// with arguments, or a shell's words (sh x.sh, 'x.sh', env x.sh).
	opaque string
}

// parseGitConfig has git parse one configuration file from its content,
// includes not followed (they are followed here, within bounds); ok is
// false when git could not say (past the bounds, or the time).
func parseGitConfig(ctx context.Context, data []byte) (c gitConfig, ok bool) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "config", "--no-includes", "--file", "-", "--null", "--get-regexp", gitKeys)
	cmd.Dir = "/"
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null")
	cmd.Stdin = bytes.NewReader(data)
	out := &limited{n: gitMaxOutput, cancel: cancel}
	cmd.Stdout = out
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if out.over || ctx.Err() != nil || !errors.As(err, &ee) {
			return c, false
		}
		// 1: no such key; another status: not a configuration git reads
		// (so git would stop on it too).
		return c, true
	}
	for _, entry := range strings.Split(out.buf.String(), "\x00") {
		key, value, ok := strings.Cut(entry, "\n")
		if key == "extensions.worktreeconfig" {
			// A boolean: set unless it plainly says false (a bare key is
			// true).
			c.worktreeConfig = !slices.Contains([]string{"false", "no", "off", "0"}, strings.ToLower(value)) || c.worktreeConfig
			continue
		}
		if strings.HasPrefix(key, "http.") && strings.HasSuffix(key, "savecookies") {
			// git writes the server's cookies to http.cookieFile, any
			// path (~/.bashrc), with text the server chooses. A bare key
			// is true.
			if !slices.Contains([]string{"false", "no", "off", "0"}, strings.ToLower(value)) && c.opaque == "" {
				c.opaque = key
			}
			continue
		}
		if !ok || value == "" {
			continue
		}
		switch {
		case key == "core.hookspath":
			c.hooks = append(c.hooks, value)
		case key == "core.worktree":
			c.worktrees = append(c.worktrees, value)
		case key == "extensions.objectformat":
			c.formats = append(c.formats, value)
		case key == "include.path" || strings.HasPrefix(key, "includeif."):
			c.includes = append(c.includes, value)
		case key == "remote.pushdefault" || strings.HasPrefix(key, "branch."):
			// A remote's name, or else a URL or a path: a path only
			// where something is there (origin is a name).
			if p, opaque := remoteRepo(key, value); p != "" {
				c.remoteNames = append(c.remoteNames, p)
			} else if opaque && c.opaque == "" {
				c.opaque = key
			}
		case strings.HasPrefix(key, "remote.") && (strings.HasSuffix(key, ".url") || strings.HasSuffix(key, ".pushurl")) || strings.HasPrefix(key, "url."):
			p, opaque := remoteRepo(key, value)
			if p != "" {
				c.remotes = append(c.remotes, p)
			}
			if opaque && c.opaque == "" {
				c.opaque = key
			}
		case gitCutKeys.MatchString(key):
			// A file git writes or a folder it copies hooks from (trace2's
			// target, format-patch's folder, init's templates), a hook or
			// server it runs: none is the agent's to choose.
			if c.opaque == "" {
				c.opaque = key
			}
		case key == "protocol.allow" || key == "protocol.ext.allow":
			// ext:: runs the command a remote's URL names (an insteadOf
			// can make any URL one); git allows it only when told.
			if !strings.EqualFold(value, "never") && c.opaque == "" {
				c.opaque = key
			}
		default:
			files, opaque := commandFiles(key, value)
			c.programs = append(c.programs, files...)
			if opaque && c.opaque == "" {
				c.opaque = key
			}
		}
	}
	return c, true
}
