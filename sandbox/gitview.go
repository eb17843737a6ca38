package sandbox

// What git holds at a project's host-run paths besides the worktree: its
// index, HEAD's tree, the stash's and every other ref's. The agent can
// commit a hook and put the worktree's file back as it was, or move a
// branch it never checks out; the user's git reset --hard, restore, stash
// or checkout later writes the agent's version out. git reads them in a
// repository of vibe's own (no configuration of the project's): the index
// from a copy, the trees from the project's objects, with the refs copied
// in.

import (
	"bytes"
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
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"

	"github.com/vibesandbox/vibe/workspace"
)

// Where git holds a host-run path, as a snapshot's key says it: the
// project's own repository's, or (inRepo) a submodule's or another's.
const (
	inIndex = " (as git's index holds it)"
	inHEAD  = " (as git's HEAD holds it)"
	// inRefs keys each version that branches, remote-tracking branches,
	// tags or ORIG_HEAD hold where it is not HEAD's (", version" and its
	// digest's start are added): once, whichever refs hold it.
	inRefs = " (as git's refs hold it)"
)

// inRepo is where, for the repository at gitDir (named so in the key: two
// repositories can hold one path).
func inRepo(where, gitDir string) string {
	if gitDir == "" {
		return where
	}
	return strings.Replace(where, " hold", " in "+gitDir+" hold", 1)
}

// viewedKey matches the keys of git's view; refsKey those of other refs.
var (
	viewedKey = regexp.MustCompile(` \(as git's (index|HEAD|stash|refs)( in [^()]*)? holds? it(, stage [0-3]|, version [0-9a-f]{16})?\)$`)
	refsKey   = regexp.MustCompile(` \(as git's refs( in [^()]*)? hold it, version [0-9a-f]{16}\)$`)
	stashKey  = regexp.MustCompile(` \(as git's stash( in [^()]*)? holds it\)$`)
)

// gitViewKey marks a snapshot taken by a vibe that records git's view
// (no path holds a NUL: no file can be named so), with what it records:
// "1" the index, HEAD and the stash; "2" the index, HEAD, and every other
// commit a user can name (the stash among them, keyed as refs).
const (
	gitViewKey  = "\x00git's index, HEAD and stash"
	gitViewRefs = "2"
)

// gitViewed reports whether the snapshot key k is one of git's view.
func gitViewed(k string) bool {
	return k == gitViewKey || viewedKey.MatchString(k)
}

// SinceLast is s made comparable with last, a snapshot an earlier vibe
// saved: what last's vibe did not record of git's view (the index, HEAD
// and stash; other refs), neither does the answer, so that an upgrade
// does not report every host-run file git holds as new.
func (s Snapshot) SinceLast(last Snapshot) Snapshot {
	if last[gitViewKey] == s[gitViewKey] {
		return s
	}
	drop := gitViewed
	if last[gitViewKey] == "1" {
		drop = refsKey.MatchString
	}
	out := Snapshot{}
	for k, v := range s {
		if !drop(k) {
			out[k] = v
		}
	}
	if last[gitViewKey] == "1" {
		// The stash is among the other refs now: its keys of then are
		// no change.
		for k, v := range last {
			if stashKey.MatchString(k) {
				out[k] = v
			}
		}
	}
	if v, ok := last[gitViewKey]; ok {
		out[gitViewKey] = v
	}
	return out
}

// gitHeadMax bounds HEAD and a loose ref (a name or an object id).
const gitHeadMax = 4096

// gitView records what the index, HEAD's tree and the stash's of the
// repository at gitDir (a folder of the snapshot's) hold at or below each
// of rels (paths in its worktree, top): each entry's mode and object (and
// an unmerged entry's stage). A linked worktree's refs and objects are in
// its common folder. What cannot be read so cuts the folder. name is the
// repository in the keys ("" for the project's own).
func (sn *snapper) gitView(gitDir, top, name string, rels []string) {
	if st, err := sn.root.Lstat(gitDir); err != nil || !st.IsDir() {
		return
	}
	if _, err := sn.root.Lstat(gitDir + "/reftable"); err == nil {
		sn.cut("git's refs are a reftable, which vibe does not read: HEAD is not compared")
		return
	}
	ctx := sn.ctx
	hostRun := map[string]bool{}
	for _, r := range rels {
		if r != ".git" && !strings.HasPrefix(r, ".git/") {
			hostRun[filepath.ToSlash(r)] = true
		}
	}
	errFull := fmt.Errorf("more than %d files", snapshotMaxFiles)
	record := func(where string) func(mode uint32, oid, stage, path string) error {
		versions := where == inRefs
		where = inRepo(where, name)
		return func(mode uint32, oid, stage, path string) error {
			if !underAny(path, hostRun) {
				return nil
			}
			if sn.full() {
				return errFull // and git is stopped: a tree can expand for ever
			}
			if len(path) > snapshotMaxPath {
				sn.cut(fmt.Sprintf("a path longer than %d bytes", snapshotMaxPath))
				return nil
			}
			sum := sha256.Sum256(fmt.Appendf(nil, "%o %s", mode, oid))
			digest := hex.EncodeToString(sum[:])
			key := filepath.Join(top, filepath.FromSlash(path)) + where
			if stage != "0" {
				// Unmerged: each stage its own (git checkout --ours
				// takes one).
				key = strings.TrimSuffix(key, ")") + ", stage " + stage + ")"
			}
			if versions {
				// Keyed by what is held, not by the refs that hold it:
				// branches come and go by the dozen with no change
				// to a host-run file, and a version new to all of
				// them is what the agent could have written.
				key = strings.TrimSuffix(key, ")") + ", version " + digest[:16] + ")"
				if sn.snap[key] == digest {
					return nil // another ref's, the same
				}
			}
			if _, dup := sn.snap[key]; dup {
				// A file named so, or one repository's entry twice: one
				// would hide the other.
				sn.cut(fmt.Sprintf("two entries are named %s", quotePath(key)))
				return nil
			}
			sn.count++
			sn.snap[key] = digest
			return nil
		}
	}
	if f, err := sn.openIfRegular(gitDir + "/index"); err != nil {
		sn.cut(fmt.Sprintf("git's index (%s) cannot be read: %s", quotePath(gitDir+"/index"), shortErr(err)))
	} else if f != nil {
		err := indexEntries(ctx, f, record(inIndex))
		f.Close()
		if err != nil {
			sn.cut("git's index cannot be compared: " + shortErr(err))
		}
	}
	paths := slices.Sorted(maps.Keys(hostRun))
	// A linked worktree's refs and objects: read once for HEAD and the
	// other refs.
	common, err := sn.commonDir(gitDir)
	headTree := ""
	var head []byte
	ok := false
	if err == nil {
		head, ok, err = sn.readSmall(gitDir+"/HEAD", gitHeadMax)
	}
	if err == nil && ok {
		headTree, err = sn.refTree(ctx, gitDir, common, string(head), paths, record(inHEAD))
	}
	if err != nil {
		sn.cut("git's HEAD cannot be compared: " + shortErr(err))
		return
	}
	// Branches, tags, reflogs, the stash, ORIG_HEAD: git checkout, reset
	// or stash pop writes what they hold out.
	// The commits known are known for these paths: others (a hooks
	// path the user set since) compare them all again.
	pathsSum := sha256.Sum256([]byte(strings.Join(paths, "\x00")))
	key := top + "\x00" + name + "\x00" + hex.EncodeToString(pathsSum[:8])
	if err := sn.otherRefs(ctx, gitDir, common, headTree, key, paths, record(inRefs)); err != nil {
		sn.cut("git's branches, tags, reflogs and stash cannot be compared: " + shortErr(err))
	}
}

// gitMaxViews bounds the submodules and nested repositories whose index,
// HEAD and stash one snapshot compares.
const gitMaxViews = 32

// repoViews records git's view (gitView) of each submodule and nested
// repository of the project that holds a host-run path: the agent can
// commit its hook there too, and git -C sub reset --hard writes it out.
func (sn *snapper) repoViews(f *gitFound) {
	n := 0
	for _, r := range f.repos {
		var rels []string
		for _, p := range f.rel {
			if rest, ok := strings.CutPrefix(p, r.worktree+"/"); ok {
				rels = append(rels, rest)
			}
		}
		if len(rels) == 0 {
			continue // nothing host-run there
		}
		if n++; n > gitMaxViews {
			sn.cut(fmt.Sprintf("more than %d submodules or nested repositories hold host-run files: the index and HEAD of the others are not compared", gitMaxViews))
			return
		}
		sn.gitView(r.gitDir, filepath.Join(sn.base, r.worktree), r.gitDir, rels)
	}
}

// underAny reports whether the path name (slashes) is one of set or below
// one.
func underAny(name string, set map[string]bool) bool {
	for p := name; ; {
		if set[p] {
			return true
		}
		i := strings.LastIndexByte(p, '/')
		if i < 0 {
			return false
		}
		p = p[:i]
	}
}

// openIfRegular opens rel in the snapshot's folder if it is a regular file
// there (no link followed, nothing that could block); nil if it is not
// there.
func (sn *snapper) openIfRegular(rel string) (*os.File, error) {
	st, err := sn.root.Lstat(rel)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return openSeen(sn.root, rel, st)
}

// readSmall reads rel in the snapshot's folder, a regular file of at most
// max bytes; ok is false when it is not there.
func (sn *snapper) readSmall(rel string, max int64) (data []byte, ok bool, err error) {
	f, err := sn.openIfRegular(rel)
	if f == nil || err != nil {
		return nil, false, err
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, max+1))
	if err == nil && int64(len(data)) > max {
		err = fmt.Errorf("%s is larger than %d bytes", quotePath(rel), max)
	}
	return data, err == nil, err
}

// refName is a branch or other ref HEAD may name: what git's
// check-ref-format allows, and nothing that climbs.
var refName = regexp.MustCompile(`^refs/[A-Za-z0-9._/+@-]{1,200}$`)

// objectID is a detached HEAD: a SHA-1 or SHA-256 object id.
var objectID = regexp.MustCompile(`^([0-9a-f]{40}|[0-9a-f]{64})$`)

// refTree lists, through each, the tree at and below paths of the commit
// head names, as HEAD holds it ("ref: NAME", or an object id), in the
// project's objects (in common, gitDir's common folder). A ref that names no commit yet (a new repository, a
// branch the agent deleted, no stash) has none; anything else git cannot
// resolve is an error.
func (sn *snapper) refTree(ctx context.Context, gitDir, common, head string, paths []string, each func(mode uint32, oid, stage, name string) error) (tree string, err error) {
	text := strings.TrimRight(head, "\n")
	tmp, tmpGit, err := emptyRepo()
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	if rest, isRef := strings.CutPrefix(text, "ref:"); isRef {
		ref := strings.TrimLeft(rest, " \t") // as git reads it
		if !refName.MatchString(ref) || strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".lock") {
			return "", fmt.Errorf("HEAD names %s", quotePath(ref))
		}
		refsDir := common
		if !sharedRef(ref) {
			refsDir = gitDir
		}
		loose, isLoose, err := sn.readSmall(refsDir+"/"+ref, gitHeadMax)
		if err != nil {
			return "", err
		}
		if isLoose && bytes.HasPrefix(loose, []byte("ref:")) {
			// git follows it on (loose before packed, each step): not
			// followed here.
			return "", fmt.Errorf("%s names another ref", quotePath(ref))
		}
		packed, isPacked, err := sn.readSmall(common+"/packed-refs", gitMaxIndex)
		if err != nil {
			return "", err
		}
		if !isLoose && !packedHas(packed, ref) {
			return "", nil // no commit yet
		}
		// The ref, loose or packed (with any replace refs), copied in.
		for _, f := range []struct {
			rel  string
			data []byte
			ok   bool
		}{{ref, loose, isLoose}, {"packed-refs", packed, isPacked}} {
			if !f.ok {
				continue
			}
			to := filepath.Join(tmpGit, filepath.FromSlash(f.rel))
			if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
				return "", err
			}
			if err := os.WriteFile(to, f.data, 0o600); err != nil {
				return "", err
			}
		}
		text = "ref: " + ref
	} else if !objectID.MatchString(text) {
		return "", errors.New("HEAD is neither a ref nor an object id")
	}
	if err := os.WriteFile(filepath.Join(tmpGit, "HEAD"), []byte(text+"\n"), 0o600); err != nil {
		return "", err
	}
	env, err := sn.objectsEnv(common, tmpGit)
	if err != nil {
		return "", err
	}
	err = runGit(ctx, tmpGit, env, []string{"rev-parse", "--verify", "HEAD^{tree}"}, '\n', func(rec []byte) error {
		tree = string(rec)
		return nil
	})
	if err != nil {
		return "", err
	}
	// Only what is at or below paths, each a literal path.
	args := append([]string{"--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", tree, "--"}, paths...)
	return tree, runGit(ctx, tmpGit, env, args, 0, func(rec []byte) error {
		// "MODE TYPE OID\tNAME"
		meta, name, ok := strings.Cut(string(rec), "\t")
		f := strings.Fields(meta)
		if !ok || len(f) != 3 {
			return errors.New("git's listing is not one of entries")
		}
		var mode uint32
		if _, err := fmt.Sscanf(f[0], "%o", &mode); err != nil {
			return errors.New("git's listing is not one of entries")
		}
		return each(mode, f[2], "0", name)
	})
}

// objectsEnv is git's environment for reading the objects of the
// repository whose common folder is common from tmpGit, a repository of
// vibe's, with the replace refs the user's git honours copied in.
func (sn *snapper) objectsEnv(common, tmpGit string) ([]string, error) {
	if err := sn.copyReplaceRefs(common, tmpGit); err != nil {
		return nil, err
	}
	objects, err := sn.gitObjects(common)
	if err != nil {
		return nil, err
	}
	// git maps packs in windows of up to 1 GiB, past the bound on its
	// memory: smaller ones for a big repository's.
	return []string{"GIT_OBJECT_DIRECTORY=" + objects, "GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=core.packedGitWindowSize", "GIT_CONFIG_VALUE_0=32m",
		"GIT_CONFIG_KEY_1=core.packedGitLimit", "GIT_CONFIG_VALUE_1=256m"}, nil
}

// sharedRef reports whether a linked worktree keeps ref in the common
// folder (branches, tags, the stash) rather than its own.
func sharedRef(ref string) bool {
	return !strings.HasPrefix(ref, "refs/bisect/") && !strings.HasPrefix(ref, "refs/worktree/") && !strings.HasPrefix(ref, "refs/rewritten/")
}

// commonDir is the common folder of the repository at gitDir (itself but
// for a linked worktree's, whose commondir names it), a folder of the
// snapshot's.
func (sn *snapper) commonDir(gitDir string) (string, error) {
	data, ok, err := sn.readSmall(gitDir+"/commondir", gitHeadMax)
	if err != nil || !ok {
		return gitDir, err
	}
	c := gitPath(data)
	if filepath.IsAbs(c) {
		rel, err := filepath.Rel(sn.base, c)
		if err != nil || !filepath.IsLocal(rel) {
			return "", fmt.Errorf("%s leads out of the folder", quotePath(gitDir+"/commondir"))
		}
		return rel, nil
	}
	c = filepath.Join(gitDir, c)
	if !filepath.IsLocal(c) {
		return "", fmt.Errorf("%s leads out of the folder", quotePath(gitDir+"/commondir"))
	}
	return c, nil
}

// gitMaxReplace bounds the loose replace refs copied in.
const gitMaxReplace = 64

// copyReplaceRefs copies the loose replace refs of the repository whose
// common folder is common into vibe's (packed ones come with
// packed-refs): the user's git reads a replaced commit or tree for the
// original, and so does vibe's.
func (sn *snapper) copyReplaceRefs(common, tmpGit string) error {
	dir := common + "/refs/replace"
	st, err := sn.root.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil || !st.IsDir() {
		return fmt.Errorf("%s is not a folder", quotePath(dir))
	}
	f, err := sn.root.OpenFile(dir, os.O_RDONLY|syscall.O_DIRECTORY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK, 0)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(gitMaxReplace + 1)
	f.Close()
	if err != nil && err != io.EOF {
		return err
	}
	if len(names) > gitMaxReplace {
		return fmt.Errorf("more than %d replace refs", gitMaxReplace)
	}
	if err := os.MkdirAll(filepath.Join(tmpGit, "refs", "replace"), 0o700); err != nil {
		return err
	}
	for _, n := range names {
		if !objectID.MatchString(n) {
			return fmt.Errorf("a replace ref named %s", quotePath(n))
		}
		data, ok, err := sn.readSmall(dir+"/"+n, gitHeadMax)
		if err != nil || !ok {
			return cmp.Or(err, fmt.Errorf("the replace ref %s cannot be read", quotePath(n)))
		}
		if err := os.WriteFile(filepath.Join(tmpGit, "refs", "replace", n), data, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// packedHas reports whether packed-refs data lists ref.
func packedHas(data []byte, ref string) bool {
	for line := range strings.Lines(string(data)) {
		if f := strings.Fields(line); len(f) == 2 && f[1] == ref {
			return true
		}
	}
	return false
}

// gitObjects is the object folder of the repository at gitDir, for git to
// read: gitDir/objects as it is, a folder of the snapshot's (a link the
// agent made there would lead git anywhere).
func (sn *snapper) gitObjects(gitDir string) (string, error) {
	st, err := sn.root.Lstat(gitDir + "/objects")
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", fmt.Errorf("%s is not a folder", quotePath(gitDir+"/objects"))
	}
	return filepath.Join(sn.base, gitDir, "objects"), nil
}

// sibling is a project whose .git is a gitfile naming a git folder in a
// writable mount (a linked worktree of another project, mounted as a
// project of its own): gitDir in the mount in, viewed for top.
type sibling struct {
	in, gitDir, top string
	rels            []string
}

// siblingWorktrees finds the projects among mounts whose git folder is in
// a writable mount, named by their .git file.
func siblingWorktrees(mounts []workspace.Mount, extra map[string]*gitFound) []sibling {
	var out []sibling
	for _, p := range mounts {
		if p.ReadOnly {
			continue
		}
		root, err := os.OpenRoot(p.Source)
		if err != nil {
			continue
		}
		data, ok, err := (&snapper{root: root}).readSmall(".git", gitHeadMax)
		root.Close()
		if err != nil || !ok {
			continue
		}
		target := gitfileTarget(data)
		if target == "" {
			continue
		}
		top := filepath.Clean(p.Source)
		if !filepath.IsAbs(target) {
			target = filepath.Join(top, target)
		}
		for _, m := range mounts {
			in := filepath.Clean(m.Source)
			if rel, err := filepath.Rel(in, filepath.Clean(target)); !m.ReadOnly && err == nil && filepath.IsLocal(rel) {
				var rels []string
				if f := extra[top]; f != nil {
					rels = f.rel
				}
				out = append(out, sibling{in: in, gitDir: rel, top: top, rels: rels})
				break
			}
		}
	}
	return out
}
