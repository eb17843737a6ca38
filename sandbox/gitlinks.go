package sandbox

import (
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/format/index"
)

// A gitlink in a project's index (a submodule, .gitmodules or not) sends
// the host's git status into that folder's own git: its config (whose
// core.fsmonitor runs), its hooks, its own submodules. The agent writes
// the index and can make any folder a repository, so each checked-out
// gitlink's git folder is a host-run path of the project, as .git/modules
// is: protected in the sandbox and compared by the snapshot.

const (
	gitMaxIndex     = 32 << 20 // bytes of an index read whole
	gitMaxLinkDepth = 4        // submodules of submodules, and so on
)

// gitDirFiles are what git reads or runs in a repository's git folder.
var gitDirFiles = []string{"config", "config.worktree", "commondir", "info", "hooks"}

// links records the git folders of the gitlinks in gitDir's index, whose
// worktree is worktree, and theirs in turn.
func (w *gitWalk) links(gitDir, worktree string, depth int) {
	names, ok := w.gitlinks(filepath.Join(gitDir, "index"))
	if !ok {
		w.of(w.project).cut = true // there, and not looked into
		return
	}
	for _, name := range names {
		if w.ctx.Err() != nil {
			w.of(w.project).cut = true
			return
		}
		if !filepath.IsLocal(name) {
			w.of(w.project).cut = true // git refuses such a path; never followed
			continue
		}
		sub := filepath.Join(worktree, name)
		dotGit := filepath.Join(sub, ".git")
		st, err := w.lstat(dotGit)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			// Not checked out: git does not go in.
		case err != nil:
			w.of(w.project).cut = true
		case st.IsDir():
			w.repo(dotGit, sub, depth)
		default:
			// A gitfile (or a link): recorded itself, and the folder a
			// gitfile names is the repository git uses.
			w.add(dotGit)
			if st.Mode().IsRegular() {
				if dir := w.gitfile(dotGit); dir != "" {
					w.repo(dir, sub, depth)
				}
			}
		}
	}
}

// repo records what git reads or runs in gitDir, a repository whose
// worktree is worktree, follows its configuration, and its gitlinks.
func (w *gitWalk) repo(gitDir, worktree string, depth int) {
	if _, _, in := w.mount(gitDir); !in {
		return // not the agent's to write
	}
	// Those below the project's .git/modules are protected and compared
	// as such; only their own gitlinks are looked at here.
	if !strings.HasPrefix(gitDir, filepath.Join(w.project, ".git", "modules")+"/") {
		for _, n := range gitDirFiles {
			w.add(filepath.Join(gitDir, n))
		}
	}
	w.walk([]string{filepath.Join(gitDir, "config"), filepath.Join(gitDir, "config.worktree")}, worktree, false)
	if depth+1 < gitMaxLinkDepth {
		w.links(gitDir, worktree, depth+1)
	} else {
		w.of(w.project).cut = true
	}
}

// gitlinks returns the paths of the gitlinks in the index at path (none
// when there is no index). An index that cannot be read whole (too big,
// one whose entries live in a shared index, not an index) is not ok.
func (w *gitWalk) gitlinks(path string) ([]string, bool) {
	f, err := w.open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, true
	}
	if err != nil {
		return nil, false
	}
	defer f.Close()
	names, err := indexGitlinks(io.LimitReader(f, gitMaxIndex))
	return names, err == nil
}

// indexGitlinks decodes an index (the agent's: it may be anything) and
// returns its gitlinks' paths. One cut short by the bound fails its
// checksum; a panic in the decoder is an error, never the host's vibe
// gone.
func indexGitlinks(r io.Reader) (names []string, err error) {
	defer func() {
		if recover() != nil {
			names, err = nil, errors.New("the index decoder failed")
		}
	}()
	var idx index.Index
	// Its checksum is not the point: git writes none with index.skipHash
	// (feature.manyFiles), and the entries are all read before it.
	if err := index.NewDecoder(r).Decode(&idx); err != nil && !errors.Is(err, index.ErrInvalidChecksum) {
		return nil, err
	}
	for _, e := range idx.Entries {
		if e.Mode == filemode.Submodule {
			names = append(names, filepath.FromSlash(e.Name))
		}
	}
	return names, nil
}

// gitfile returns the folder a gitfile ("gitdir: PATH") names, absolute,
// or "" when it names none.
func (w *gitWalk) gitfile(path string) string {
	data, ok := w.read(path)
	if !ok {
		w.of(w.project).cut = true
		return ""
	}
	line, _, _ := strings.Cut(string(data), "\n")
	dir, ok := strings.CutPrefix(strings.TrimSuffix(line, "\r"), "gitdir: ")
	if !ok || dir == "" {
		return ""
	}
	return w.resolve(filepath.Dir(path), dir)
}

// lstat looks at path inside the mount that holds it.
func (w *gitWalk) lstat(path string) (fs.FileInfo, error) {
	r, rel, in := w.mount(path)
	if !in {
		return nil, fs.ErrNotExist
	}
	root, err := os.OpenRoot(r)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	return root.Lstat(rel)
}
