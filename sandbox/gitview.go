package sandbox

// What git holds at a project's host-run paths besides the worktree: its
// index and HEAD's tree. The agent can commit a hook and put the
// worktree's file back as it was; the user's git reset --hard, restore,
// stash or checkout later writes the agent's version out. git reads both
// in a repository of vibe's own (no configuration of the project's): the
// index from a copy, HEAD's tree from the project's objects, with HEAD
// and the ref it names copied in.

import (
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
	"regexp"
	"slices"
	"strings"
)

// Where git holds a host-run path, as a snapshot's key says it.
const (
	inIndex = " (as git's index holds it)"
	inHEAD  = " (as git's HEAD holds it)"
)

// SinceLast is s made comparable with last, a snapshot an earlier vibe
// saved: where last holds nothing of git's index and HEAD (that vibe did
// not record them), neither does the answer, so that an upgrade does not
// report every host-run file git holds as new.
func (s Snapshot) SinceLast(last Snapshot) Snapshot {
	for k := range last {
		if strings.HasSuffix(k, inIndex) || strings.HasSuffix(k, inHEAD) {
			return s
		}
	}
	out := Snapshot{}
	for k, v := range s {
		if !strings.HasSuffix(k, inIndex) && !strings.HasSuffix(k, inHEAD) {
			out[k] = v
		}
	}
	return out
}

// gitHeadMax bounds HEAD and a loose ref (a name or an object id).
const gitHeadMax = 4096

// gitView records what the index and HEAD's tree of the repository at
// .git hold at or below each of rels (paths in the worktree): each
// entry's mode and object. What cannot be read so cuts the folder.
func (sn *snapper) gitView(rels []string) {
	if st, err := sn.root.Lstat(".git"); err != nil || !st.IsDir() {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), gitTimeout)
	defer cancel()
	hostRun := map[string]bool{}
	for _, r := range rels {
		if r != ".git" && !strings.HasPrefix(r, ".git/") {
			hostRun[filepath.ToSlash(r)] = true
		}
	}
	record := func(where string) func(mode uint32, oid, name string) {
		return func(mode uint32, oid, name string) {
			if !underAny(name, hostRun) {
				return
			}
			if sn.full() {
				sn.cut(fmt.Sprintf("more than %d files", snapshotMaxFiles))
				return
			}
			if len(name) > snapshotMaxPath {
				sn.cut(fmt.Sprintf("a path longer than %d bytes", snapshotMaxPath))
				return
			}
			sn.count++
			sum := sha256.Sum256(fmt.Appendf(nil, "%o %s", mode, oid))
			sn.snap[filepath.Join(sn.base, filepath.FromSlash(name))+where] = hex.EncodeToString(sum[:])
		}
	}
	if f, err := sn.openIfRegular(".git/index"); err != nil {
		sn.cut("git's index (.git/index) cannot be read: " + shortErr(err))
	} else if f != nil {
		err := indexEntries(ctx, f, record(inIndex))
		f.Close()
		if err != nil {
			sn.cut("git's index cannot be compared: " + shortErr(err))
		}
	}
	if err := sn.headTree(ctx, slices.Sorted(maps.Keys(hostRun)), record(inHEAD)); err != nil {
		sn.cut("git's HEAD cannot be compared: " + shortErr(err))
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

// headTree lists, through each, HEAD's tree at and below paths in the
// project's objects. A
// HEAD that names no commit yet (a new repository, a branch the agent
// deleted) has none.
func (sn *snapper) headTree(ctx context.Context, paths []string, each func(mode uint32, oid, name string)) error {
	head, ok, err := sn.readSmall(".git/HEAD", gitHeadMax)
	if err != nil || !ok {
		return err // without a HEAD, no repository to git
	}
	tmp, gitDir, err := emptyRepo()
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	text := strings.TrimRight(string(head), "\n")
	if ref, isRef := strings.CutPrefix(text, "ref: "); isRef {
		if !refName.MatchString(ref) || strings.Contains(ref, "..") || strings.Contains(ref, "//") || strings.HasSuffix(ref, "/") || strings.HasSuffix(ref, ".lock") {
			return fmt.Errorf("HEAD names %s", quotePath(ref))
		}
		// The ref, loose or packed, copied in as it is.
		for _, rel := range []string{ref, "packed-refs"} {
			max := int64(gitHeadMax)
			if rel == "packed-refs" {
				max = gitMaxIndex
			}
			data, ok, err := sn.readSmall(".git/"+rel, max)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			to := filepath.Join(gitDir, filepath.FromSlash(rel))
			if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
				return err
			}
			if err := os.WriteFile(to, data, 0o600); err != nil {
				return err
			}
		}
	}
	if err := os.WriteFile(filepath.Join(gitDir, "HEAD"), append([]byte(text), '\n'), 0o600); err != nil {
		return err
	}
	objects, err := sn.gitObjects()
	if err != nil {
		return err
	}
	// git maps packs in windows of up to 1 GiB, past the bound on its
	// memory: smaller ones for a big repository's.
	env := []string{"GIT_OBJECT_DIRECTORY=" + objects, "GIT_CONFIG_COUNT=2",
		"GIT_CONFIG_KEY_0=core.packedGitWindowSize", "GIT_CONFIG_VALUE_0=32m",
		"GIT_CONFIG_KEY_1=core.packedGitLimit", "GIT_CONFIG_VALUE_1=256m"}
	// -q: git's answer, without a word, for a HEAD that names no commit
	// (a new repository, a branch the agent deleted); that HEAD has no
	// tree. Whatever else git cannot resolve says why, and cuts.
	err = runGit(ctx, gitDir, env, []string{"rev-parse", "--verify", "-q", "HEAD"}, '\n', func([]byte) error { return nil })
	if exit := (*exec.ExitError)(nil); errors.As(err, &exit) && exit.ExitCode() == 1 {
		return nil
	}
	var tree string
	if err == nil {
		err = runGit(ctx, gitDir, env, []string{"rev-parse", "--verify", "HEAD^{tree}"}, '\n', func(rec []byte) error {
			tree = string(rec)
			return nil
		})
	}
	if err != nil {
		return err
	}
	// Only what is at or below paths, each a literal path.
	args := append([]string{"--literal-pathspecs", "ls-tree", "-r", "-z", "--full-tree", tree, "--"}, paths...)
	return runGit(ctx, gitDir, env, args, 0, func(rec []byte) error {
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
		each(mode, f[2], name)
		return nil
	})
}

// gitObjects is the project's object folder, for git to read: .git/objects
// as it is, a folder of the snapshot's (a link the agent made there would
// lead git anywhere).
func (sn *snapper) gitObjects() (string, error) {
	st, err := sn.root.Lstat(".git/objects")
	if err != nil {
		return "", err
	}
	if !st.IsDir() {
		return "", errors.New(".git/objects is not a folder")
	}
	return filepath.Join(sn.base, ".git", "objects"), nil
}
