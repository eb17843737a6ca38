package sandbox

// What the commits a user can name besides HEAD hold at a project's
// host-run paths: every ref, reflog entry and object id at the top of the
// git folder. The agent can point any of them at a commit of its own
// without touching the checkout, and the user's git checkout, reset,
// merge or stash pop writes it out.

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
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// gitMaxRefs bounds the commits one view compares besides HEAD (refs,
// reflog entries, object ids at the top of the git folder) and the loose
// refs it copies.
var gitMaxRefs = 1 << 16

// gitMaxRefData bounds what one view reads of reflogs and the files at
// the top of a git folder, together.
const gitMaxRefData = 32 << 20

// commitsKey starts the key under which a snapshot keeps, for each view,
// the commits every name pointed at (no path holds a NUL): the next
// snapshot compares what came since.
const commitsKey = "\x00commits\x00"

// graphKey starts the key under which a snapshot keeps, for each view,
// the identity of the commit-graph files it found to match the commits.
const graphKey = "\x00graph\x00"

// hiddenKey reports whether the snapshot key k is one of what a snapshot
// keeps for the next (commitsKey, graphKey), never a change to report.
func hiddenKey(k string) bool {
	return strings.HasPrefix(k, commitsKey) || strings.HasPrefix(k, graphKey)
}

// emptyTree is git's empty tree (SHA-1's), what a HEAD with no commit
// holds.
const emptyTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"

// otherRefs lists, through each, what every commit a user can name to git
// checkout, switch, reset, merge or stash pop holds at and below paths
// where that is not what headTree (HEAD's tree, or "" for none) holds, in the
// repository at gitDir whose common folder is common. The
// agent can point any of them at a commit of its own without touching the
// checkout: every ref (branches, remote-tracking branches, tags, the
// stash, replace refs, and refs/NAME, which git checkout NAME finds
// first); every reflog entry (git checkout -, HEAD@{1}, stash@{1}); each
// object id that starts a line of a file at the top of the git folder
// (ORIG_HEAD, every line of FETCH_HEAD, MERGE_AUTOSTASH, BISECT_START, or
// a file named as git reset --hard NAME looks for it); and a stash's
// index and untracked files (its second and third parents). A version
// many commits hold is listed once for each tree that holds it; a file a
// commit lacks is not listed (checking it out removes the file).
func (sn *snapper) otherRefs(ctx context.Context, gitDir, common, headTree, key string, paths []string, each func(mode uint32, oid, stage, name string) error) (err error) {
	defer func() {
		// Not compared whole (a cut): the commits known stay those of
		// the snapshot before, so that the next compares what came
		// since then, not since this one.
		if prev, ok := sn.prev[commitsKey+key]; err != nil && ok {
			sn.snap[commitsKey+key] = prev
		} else if err != nil {
			delete(sn.snap, commitsKey+key)
		}
	}()
	tmp, tmpGit, err := emptyRepo()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	// A linked worktree's own refs (refs/bisect, …) are in its git folder.
	folders := slices.Compact([]string{common, gitDir})
	// Loose refs that name an object go into one packed-refs, over the
	// project's: thousands of files made and removed again for each
	// snapshot cost seconds.
	loose := map[string]string{}
	copied := 0
	for _, f := range folders {
		if err := sn.copyLooseRefs(ctx, f, "refs", tmpGit, loose, &copied); err != nil {
			return err
		}
	}
	packed, isPacked, err := sn.readSmall(common+"/packed-refs", gitMaxIndex)
	if err != nil {
		return err
	}
	if isPacked || len(loose) > 0 {
		merged, err := mergePacked(packed, loose)
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(tmpGit, "packed-refs"), merged, 0o600); err != nil {
			return err
		}
	}
	var names bytes.Buffer
	n := 0
	add := func(name string) error {
		if n++; n > gitMaxRefs {
			return fmt.Errorf("more than %d refs, reflog entries and object ids to compare", gitMaxRefs)
		}
		names.WriteString(name + "^{}\n") // a tag peeled, however deep
		return nil
	}
	ids := &refIDs{budget: gitMaxRefData}
	if err := sn.topIDs(ctx, gitDir, ids); err != nil {
		return err
	}
	// Every reflog: HEAD's, each ref's, and a ref's at the top of the git
	// folder (git reset --hard NAME@{1} reads logs/NAME).
	if err := sn.reflogIDs(ctx, gitDir, "logs", ids); err != nil {
		return err
	}
	if common != gitDir {
		if err := sn.reflogIDs(ctx, common, "logs/refs", ids); err != nil {
			return err
		}
	}
	if copied == 0 && !isPacked && len(ids.ids) == 0 {
		return nil // nothing to check out but HEAD
	}
	for _, id := range ids.ids {
		if err := add(id); err != nil {
			return err
		}
	}
	env, err := sn.objectsEnv(common, tmpGit)
	if err != nil {
		return err
	}
	if err := sn.checkGraph(ctx, common, tmpGit, env, key); err != nil {
		return err
	}
	// Each commit as it is, not as a replace ref shows it: the agent can
	// pack one that makes a known commit look like the child of its own
	// (which would then count as known); the replacing commits are refs
	// (refs/replace/…), compared in their own right.
	env = append(env, "GIT_NO_REPLACE_OBJECTS=1")
	err = runGit(ctx, tmpGit, env, []string{"for-each-ref", "--format=%(refname)"}, '\n', func(rec []byte) error {
		return add(string(rec))
	})
	if err != nil {
		return err
	}
	for _, name := range []string{"refs/stash^2", "refs/stash^3"} {
		if err := add(name); err != nil {
			return err
		}
	}
	// What each names, peeled: a commit or a tree is compared; a blob
	// (git.git tags its signing key) or nothing ("NAME missing") cannot
	// be checked out.
	base := cmp.Or(headTree, emptyTree)
	trees, commits := map[string]bool{}, map[string]bool{}
	err = runGitInput(ctx, tmpGit, env, []string{"cat-file", "--batch-check=%(objecttype) %(objectname)"}, names.Bytes(), '\n', func(rec []byte) error {
		typ, id, _ := strings.Cut(string(rec), " ")
		switch {
		case !objectID.MatchString(id):
		case typ == "commit":
			commits[id] = true
		case typ == "tree":
			trees[id] = true
		}
		return nil
	})
	if err != nil {
		return err
	}
	tips := slices.Sorted(maps.Keys(commits))
	sn.snap[commitsKey+key] = strings.Join(tips, " ")
	if prev, ok := sn.prev[commitsKey+key]; ok {
		// Since the snapshot this one follows: the commits that came,
		// down to those it knew (which the user's history holds).
		if commits, err = sn.newCommits(ctx, tmpGit, env, tips, strings.Fields(prev)); err != nil {
			return err
		}
	}
	if len(commits) > 0 {
		var in bytes.Buffer
		for _, c := range slices.Sorted(maps.Keys(commits)) {
			in.WriteString(c + "^{tree}\n")
		}
		err = runGitInput(ctx, tmpGit, env, []string{"cat-file", "--batch-check=%(objectname)"}, in.Bytes(), '\n', func(rec []byte) error {
			if t := string(rec); objectID.MatchString(t) {
				trees[t] = true
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	delete(trees, base)
	if len(trees) == 0 {
		return nil
	}
	var pairs bytes.Buffer
	for _, t := range slices.Sorted(maps.Keys(trees)) {
		pairs.WriteString(base + " " + t + "\n")
	}
	// Each pair's line echoed (whether or not they differ), then
	// ":OLDMODE NEWMODE OLDOID NEWOID STATUS\tPATH" for each difference at
	// paths, the path quoted as Go quotes (git's C style) when it holds
	// anything but printable ASCII.
	args := append([]string{"--literal-pathspecs", "diff-tree", "-r", "--no-renames", "--stdin", "--"}, paths...)
	return runGitInput(ctx, tmpGit, env, args, pairs.Bytes(), '\n', func(rec []byte) error {
		meta, name, ok := strings.Cut(string(rec), "\t")
		if !ok && !strings.HasPrefix(meta, ":") {
			return nil // a pair's line
		}
		f := strings.Fields(strings.TrimPrefix(meta, ":"))
		if !ok || !strings.HasPrefix(meta, ":") || len(f) != 5 {
			return errors.New("git's listing is not one of differences")
		}
		if strings.HasPrefix(name, `"`) {
			var err error
			if name, err = strconv.Unquote(name); err != nil {
				return errors.New("git's listing is not one of differences")
			}
		}
		if f[4] == "D" {
			return nil
		}
		var mode uint32
		if _, err := fmt.Sscanf(f[1], "%o", &mode); err != nil {
			return errors.New("git's listing is not one of differences")
		}
		return each(mode, f[3], "0", name)
	})
}

// checkGraph has git verify the commit-graph of the objects in common
// against the commits, unless the snapshot before found these same
// files (name, inode, size, times: a write changes the change time,
// which no one can set) to match. git revert and cherry-pick take a
// commit's tree from the graph, which the agent can write, while vibe
// reads the commit's own.
func (sn *snapper) checkGraph(ctx context.Context, common, tmpGit string, env []string, key string) error {
	var stamp strings.Builder
	info := common + "/objects/info"
	if _, err := sn.root.Lstat(info + "/alternates"); !errors.Is(err, fs.ErrNotExist) {
		// Objects, and a commit-graph git takes trees from, from
		// folders vibe does not verify.
		return errors.New("objects/info/alternates lends objects and a commit-graph from other folders, which vibe does not verify")
	}
	for _, rel := range []string{"commit-graph", "commit-graphs"} {
		st, err := sn.root.Lstat(info + "/" + rel)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		stamps := []os.FileInfo{st}
		if st.IsDir() {
			entries, err := sn.listRefs(ctx, info+"/"+rel)
			if err != nil {
				return err
			}
			for _, e := range entries {
				est, err := sn.root.Lstat(info + "/" + rel + "/" + e.Name())
				if err != nil {
					return err
				}
				stamps = append(stamps, est)
			}
		}
		for _, st := range stamps {
			sys, _ := st.Sys().(*syscall.Stat_t)
			if sys == nil {
				return errors.New("the commit-graph's files cannot be told apart")
			}
			fmt.Fprintf(&stamp, "%s %d %d %d %d.%d %d.%d\n", st.Name(), sys.Dev, sys.Ino, st.Size(), sys.Mtim.Sec, sys.Mtim.Nsec, sys.Ctim.Sec, sys.Ctim.Nsec)
		}
	}
	if stamp.Len() == 0 {
		return nil // no graph: git reads the commits
	}
	if sn.prev[graphKey+key] != stamp.String() {
		if err := runGit(ctx, tmpGit, env, []string{"commit-graph", "verify"}, '\n', func([]byte) error { return nil }); err != nil {
			return fmt.Errorf("the commit-graph does not match the commits (git revert and cherry-pick would read trees from it): remove .git/objects/info/commit-graph and commit-graphs on the host, git gc makes them again (%s)", shortErr(err))
		}
	}
	sn.snap[graphKey+key] = stamp.String()
	return nil
}

// newCommits returns the commits reachable from tips and not from known,
// as git rev-list lists them (which honours replace refs as the user's
// git does). Known commits that are gone (pruned) are left out.
func (sn *snapper) newCommits(ctx context.Context, tmpGit string, env, tips, known []string) (map[string]bool, error) {
	var in bytes.Buffer
	for _, k := range known {
		if objectID.MatchString(k) {
			in.WriteString(k + "\n")
		}
	}
	var have []string
	err := runGitInput(ctx, tmpGit, env, []string{"cat-file", "--batch-check=%(objecttype) %(objectname)"}, in.Bytes(), '\n', func(rec []byte) error {
		if typ, id, _ := strings.Cut(string(rec), " "); typ == "commit" {
			have = append(have, id)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	in.Reset()
	for _, t := range tips {
		in.WriteString(t + "\n")
	}
	for _, k := range have {
		in.WriteString("^" + k + "\n")
	}
	out := map[string]bool{}
	err = runGitInput(ctx, tmpGit, env, []string{"rev-list", "--stdin"}, in.Bytes(), '\n', func(rec []byte) error {
		if len(out) >= gitMaxRefs {
			return fmt.Errorf("more than %d new commits", gitMaxRefs)
		}
		if c := string(rec); objectID.MatchString(c) {
			out[c] = true
		}
		return nil
	})
	return out, err
}

// badRefRune is a character git's check-ref-format refuses in any ref
// name: control characters, space and ~^:?*[\.
func badRefRune(r rune) bool {
	return r < 0x21 || r == 0x7f || strings.ContainsRune("~^:?*[\\", r)
}

// looseID is a loose ref that names an object, as git reads one: the id,
// then the end or white space.
var looseID = regexp.MustCompile(`^([0-9a-fA-F]{64}|[0-9a-fA-F]{40})(\s|$)`)

// mergePacked is packed-refs data with the refs of loose (name → id) put
// in, each over a packed one of its name (git takes the loose one): the
// packed lines kept as they are but those, and the peeled lines ("^id")
// left out (git peels for itself), sorted by name as git wants them. A
// name packed twice is an error.
func mergePacked(packed []byte, loose map[string]string) ([]byte, error) {
	lines := map[string]string{}
	for line := range bytes.Lines(packed) {
		l := strings.TrimRight(string(line), "\n")
		if l == "" || l[0] == '#' || l[0] == '^' {
			continue
		}
		_, name, _ := strings.Cut(l, " ")
		if _, twice := lines[name]; twice {
			// Which git takes depends on how it searches.
			return nil, fmt.Errorf("packed-refs names %s twice", quotePath(name))
		}
		lines[name] = l // what git would make of a broken line, it makes of it here
	}
	for name, id := range loose {
		lines[name] = id + " " + name
	}
	var out bytes.Buffer
	out.WriteString("# pack-refs with: sorted \n")
	for _, name := range slices.Sorted(maps.Keys(lines)) {
		out.WriteString(lines[name] + "\n")
	}
	return out.Bytes(), nil
}

// refIDs gathers object ids from reflogs and the top of a git folder,
// each once, within budget bytes read.
type refIDs struct {
	ids    []string
	seen   map[string]bool
	budget int64
}

// add adds id if it is an object id, and with suffix after it (a parent:
// "^2") if one is given.
func (r *refIDs) add(id string, suffixes ...string) {
	id = strings.ToLower(id) // as git reads an id
	if !objectID.MatchString(id) {
		return
	}
	for _, suf := range append([]string{""}, suffixes...) {
		r.addName(id + suf)
	}
}

func (r *refIDs) addName(id string) {
	if r.seen[id] {
		return
	}
	if r.seen == nil {
		r.seen = map[string]bool{}
	}
	r.seen[id] = true
	r.ids = append(r.ids, id)
}

// read reads rel, a regular file of the snapshot's folder, within what is
// left of the budget.
func (r *refIDs) read(sn *snapper, rel string) ([]byte, error) {
	data, _, err := sn.readSmall(rel, r.budget)
	if err != nil {
		return nil, fmt.Errorf("reflogs and the files at the top of the git folder hold more than %d bytes, or %s cannot be read: %s", gitMaxRefData, quotePath(rel), shortErr(err))
	}
	r.budget -= int64(len(data))
	return data, nil
}

// topIDs gathers the object id at the start of each line of every file at
// the top of gitDir (but the index and packed-refs): git takes any such
// file for a ref by its name (git reset --hard NAME looks there first),
// FETCH_HEAD and MERGE_HEAD hold one a line.
func (sn *snapper) topIDs(ctx context.Context, gitDir string, ids *refIDs) error {
	entries, err := sn.listRefs(ctx, gitDir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if e.Type()&fs.ModeSymlink != 0 {
			// git reads the file it leads to as a ref: not followed.
			return fmt.Errorf("%s is a link", quotePath(gitDir+"/"+e.Name()))
		}
		if !e.Type().IsRegular() || e.Name() == "index" || e.Name() == "packed-refs" || strings.HasPrefix(e.Name(), "sharedindex.") {
			continue
		}
		data, err := ids.read(sn, gitDir+"/"+e.Name())
		if err != nil {
			return err
		}
		ids.topLines(data)
	}
	return nil
}

// topLines adds the object id that starts each line of data, a file at the
// top of a git folder.
func (r *refIDs) topLines(data []byte) {
	for line := range bytes.Lines(data) {
		if f := bytes.Fields(line); len(f) > 0 {
			r.add(string(f[0]))
		}
	}
}

// reflogIDs gathers the old and new object id of every entry of the reflog
// rel in gitDir (a file, or a folder of them), and the commit a checkout
// moved from (git checkout - goes back to it); for the stash's, each
// entry's index and untracked files too.
func (sn *snapper) reflogIDs(ctx context.Context, gitDir, rel string, ids *refIDs) error {
	st, err := sn.root.Lstat(gitDir + "/" + rel)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		return err
	case st.IsDir():
		entries, err := sn.listRefs(ctx, gitDir+"/"+rel)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if err := sn.reflogIDs(ctx, gitDir, rel+"/"+e.Name(), ids); err != nil {
				return err
			}
		}
		return nil
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a file", quotePath(rel))
	}
	if len(rel) > snapshotMaxPath {
		return fmt.Errorf("a reflog path longer than %d bytes", snapshotMaxPath)
	}
	data, err := ids.read(sn, gitDir+"/"+rel)
	if err != nil {
		return err
	}
	ids.reflogLines(data, rel == "logs/refs/stash")
	return nil
}

// reflogLines adds the ids of each entry of data, a reflog ("OLD NEW
// WHO WHEN\tMESSAGE" a line): old and new, with their index and
// untracked parents for the stash's, and the commit a checkout moved from.
func (r *refIDs) reflogLines(data []byte, stash bool) {
	for line := range bytes.Lines(data) {
		f := bytes.Fields(line)
		for _, id := range f[:min(2, len(f))] {
			if stash {
				r.add(string(id), "^2", "^3")
			} else {
				r.add(string(id))
			}
		}
		// Wherever it is on the line: git starts the message after the
		// time zone, with or without a tab.
		if _, rest, ok := bytes.Cut(line, []byte("checkout: moving from ")); ok {
			if from, _, ok := bytes.Cut(rest, []byte(" to ")); ok {
				r.add(string(from))
			}
		}
	}
}

// listRefs lists the folder rel (a git folder, or one of its refs or
// logs) within gitMaxRefs entries, opened without following a link or
// blocking, and checked to be the folder Lstat saw.
func (sn *snapper) listRefs(ctx context.Context, rel string) ([]os.DirEntry, error) {
	if ctx.Err() != nil {
		return nil, fmt.Errorf("reading refs took more than %s", gitTimeout)
	}
	st, err := sn.root.Lstat(rel)
	if err != nil {
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a folder", quotePath(rel))
	}
	d, err := sn.root.OpenFile(rel, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	if dst, err := d.Stat(); err != nil || !os.SameFile(st, dst) {
		return nil, fmt.Errorf("%s was swapped while it was looked at", quotePath(rel))
	}
	entries, err := d.ReadDir(gitMaxRefs + 1)
	if err != nil && err != io.EOF {
		return nil, err
	}
	if len(entries) > gitMaxRefs {
		return nil, fmt.Errorf("more than %d entries in %s", gitMaxRefs, quotePath(rel))
	}
	return entries, nil
}

// copyLooseRefs reads the loose refs below dir (refs, then its folders)
// of the git folder gitDir, counting them in copied: one that names an
// object goes into ids (name → id), any other (a symbolic ref, or what git
// would find broken) is copied into tmpGit as it is. A ref that is a link
// (git reads it as one naming another) or anything but a file or a folder
// is an error.
func (sn *snapper) copyLooseRefs(ctx context.Context, gitDir, dir, tmpGit string, ids map[string]string, copied *int) error {
	if _, err := sn.root.Lstat(gitDir + "/" + dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	entries, err := sn.listRefs(ctx, gitDir+"/"+dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		rel := dir + "/" + e.Name()
		if len(rel) > snapshotMaxPath {
			return fmt.Errorf("a ref longer than %d bytes", snapshotMaxPath)
		}
		if strings.ContainsFunc(e.Name(), badRefRune) {
			// git ignores it; in vibe's packed-refs a newline would
			// make a record of its own.
			return fmt.Errorf("a ref named %s, which git refuses", quotePath(rel))
		}
		switch t := e.Type(); {
		case t.IsDir():
			if err := sn.copyLooseRefs(ctx, gitDir, rel, tmpGit, ids, copied); err != nil {
				return err
			}
			continue
		case !t.IsRegular():
			return fmt.Errorf("%s is not a file", quotePath(rel))
		}
		if *copied++; *copied > gitMaxRefs {
			return fmt.Errorf("more than %d refs", gitMaxRefs)
		}
		data, ok, err := sn.readSmall(gitDir+"/"+rel, gitHeadMax)
		if err != nil {
			return err
		}
		if !ok {
			continue // gone since the listing: git would not find it either
		}
		if id := looseID.FindSubmatch(data); id != nil {
			ids[rel] = strings.ToLower(string(id[1])) // as git reads it
			continue
		}
		to := filepath.Join(tmpGit, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
			return err
		}
		if err := os.WriteFile(to, data, 0o600); err != nil {
			return err
		}
	}
	return nil
}
