package sandbox

import (
	"bytes"
	"context"
	"crypto/sha1"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir, "-c", "user.name=t", "-c", "user.email=t@t", "-c", "init.defaultBranch=main", "-c", "protocol.file.allow=always"}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

// repoAt makes dir a repository with one commit and returns the commit.
func repoAt(t *testing.T, dir string) string {
	t.Helper()
	os.MkdirAll(dir, 0o755)
	git(t, dir, "init", "-q")
	git(t, dir, "commit", "-q", "--allow-empty", "-m", "x")
	return git(t, dir, "rev-parse", "HEAD")
}

// projectWithSubmodule makes a project repository whose index holds a
// gitlink "sub" to a repository of its own there, as the agent can.
func projectWithSubmodule(t *testing.T) (app, sub string) {
	t.Helper()
	app = t.TempDir()
	git(t, app, "init", "-q")
	sub = filepath.Join(app, "sub")
	addGitlink(t, app, "sub", repoAt(t, sub))
	return app, sub
}

// addGitlink adds name to the index of the repository at repo as a
// gitlink to commit, as the agent can (no .gitmodules).
func addGitlink(t *testing.T, repo, name, commit string) {
	t.Helper()
	git(t, repo, "update-index", "--add", "--cacheinfo", "160000,"+commit+","+name)
}

// The agent makes a folder of the project a repository of its own, whose
// config runs a command (core.fsmonitor), and adds it to the index as a
// submodule, with no .gitmodules: the host's git status goes into it and
// runs the command. Each gitlink's git folder is a host-run path of the
// project: its config, hooks and the rest are protected and compared, and
// so is a gitfile that sends git elsewhere, and the folder it names; and
// the submodule's own submodules, and what its configuration names.
func TestGitHostRunFollowsGitlinks(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	sub := filepath.Join(app, "sub")
	id := repoAt(t, sub)
	addGitlink(t, sub, "inner", repoAt(t, filepath.Join(sub, "inner")))
	git(t, sub, "config", "core.hooksPath", "myhooks")
	addGitlink(t, app, "sub", id)
	// A second one whose .git is a file naming a folder elsewhere in the
	// project (as git worktree and absorbed submodules write).
	os.MkdirAll(filepath.Join(app, "lib/two"), 0o755)
	os.MkdirAll(filepath.Join(app, "stash"), 0o755)
	git(t, filepath.Join(app, "stash"), "init", "-q", "--bare", "g")
	writeFile(t, filepath.Join(app, "lib/two/.git"), "gitdir: ../../stash/g\n")
	addGitlink(t, app, "lib/two", id)
	// A gitlink whose folder is not checked out is not entered.
	addGitlink(t, app, "absent", id)

	got := hostRunPaths([]workspace.Mount{{Source: app}})[app]
	for _, want := range []string{
		"sub/.git/config", "sub/.git/hooks", "sub/.git/info", "sub/myhooks",
		"sub/inner/.git/config", "sub/inner/.git/hooks",
		"lib/two/.git", "stash/g/config", "stash/g/hooks",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("%s is not a host-run path: %v", want, got)
		}
	}
	for _, p := range got {
		if strings.HasPrefix(p, "absent") {
			t.Errorf("a gitlink not checked out gave %s", p)
		}
	}

	// And the snapshot compares them: a command set there is reported.
	mounts := []workspace.Mount{{Source: app}}
	before := TakeSnapshot(mounts, nil)
	git(t, sub, "config", "core.fsmonitor", "touch /tmp/pwned; false")
	changed := TakeSnapshot(mounts, nil).Changed(before)
	if !slices.Contains(changed, filepath.Join(sub, ".git", "config")) {
		t.Errorf("a command set in a gitlink's config is not reported: %v", changed)
	}
}

// An index that cannot be read whole (too big, split, not an index) marks
// the project cut short rather than passing for one with no submodules.
func TestGitHostRunUnreadableIndexIsCut(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "commit", "-q", "--allow-empty", "-m", "x")
	writeFile(t, filepath.Join(app, "a"), "a")
	git(t, app, "add", "a")
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f != nil && f.cut != "" {
		t.Fatal("control: a project with a plain index is cut short")
	}
	// One written without a checksum (index.skipHash, which git 2.40
	// and later write for feature.manyFiles) is read.
	addGitlink(t, app, "sub", "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391")
	b, _ := os.ReadFile(filepath.Join(app, ".git/index"))
	copy(b[len(b)-20:], make([]byte, 20))
	if names, err := indexGitlinks(context.Background(), bytes.NewReader(b)); err != nil || !slices.Equal(names, []string{"sub"}) {
		t.Errorf("an index without a checksum: %v %v", names, err)
	}
	writeFile(t, filepath.Join(app, ".git/index"), "DIRC not an index")
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut == "" {
		t.Errorf("an unreadable index did not cut the project short: %+v", f)
	}
}

// How long reading a project's index for gitlinks takes, for an index of
// 20,000 files (the size of the mounted-workspace benchmark's tree).
func BenchmarkGitHostRunIndex(b *testing.B) {
	app := benchRepo(b)
	var lines strings.Builder
	for i := 0; i < 20000; i++ {
		lines.WriteString("100644 e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tsrc/d" + string(rune('a'+i%26)) + "/file" + strings.Repeat("x", i%7) + "-" + strconv.Itoa(i) + ".go\n")
	}
	cmd := exec.Command("git", "-C", app, "update-index", "--index-info")
	cmd.Stdin = strings.NewReader(lines.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	st, _ := os.Stat(filepath.Join(app, ".git", "index"))
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f != nil && f.cut != "" {
			b.Fatal("cut")
		}
	}
	b.ReportMetric(float64(st.Size())/1e6, "index-MB")
}

// benchRepo is a new repository for a benchmark, with no configuration of
// the machine's.
func benchRepo(b *testing.B) string {
	b.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("no git")
	}
	b.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	b.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	app := b.TempDir()
	if out, err := exec.Command("git", "init", "-q", app).CombinedOutput(); err != nil {
		b.Fatalf("%v %s", err, out)
	}
	return app
}

// fillTree writes 20,000 small files in 1,000 folders below app/src.
func fillTree(b *testing.B, app string) {
	b.Helper()
	for d := 0; d < 1000; d++ {
		dir := filepath.Join(app, "src", strconv.Itoa(d%40), strconv.Itoa(d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 20; f++ {
			if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(f)+".go"), []byte(strconv.Itoa(d*20+f)), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
}

// An index is the agent's to write: whatever it holds, reading it returns
// paths or an error, never a panic, and every path is one git could have
// stored (no NUL).
func FuzzIndexGitlinks(f *testing.F) {
	if _, err := exec.LookPath("git"); err == nil {
		dir := f.TempDir()
		exec.Command("git", "init", "-q", dir).Run()
		cmd := exec.Command("git", "-C", dir, "update-index", "--index-info")
		cmd.Stdin = strings.NewReader("160000 e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tsub\n100644 e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\ta/b\n")
		cmd.Run()
		if b, err := os.ReadFile(filepath.Join(dir, ".git", "index")); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x00"))
	f.Add([]byte("DIRC\x00\x00\x00\x04\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		names, err := indexGitlinks(context.Background(), bytes.NewReader(b))
		if err != nil {
			return
		}
		for _, n := range names {
			if strings.ContainsRune(n, 0) {
				t.Fatalf("a name with a NUL: %q", n)
			}
		}
	})
}

// What a hostile review found git goes into and the first reading of the
// index missed: a gitlink whose mode has other bits set (git looks at the
// type only), a .git that is a link, a gitfile read as git reads it (only
// trailing CRs and LFs taken off), and the common folder a commondir
// names; a git folder reached through a linked folder cuts the project
// short, since it can be pointed elsewhere at any time.
func TestGitHostRunGitlinkVariants(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	addGitlink(t, app, "odd", repoAt(t, filepath.Join(app, "odd")))
	// Mode 160755 for the only entry: patched in place, checksum anew.
	idx := filepath.Join(app, ".git", "index")
	b, _ := os.ReadFile(idx)
	if m := uint32(b[36])<<24 | uint32(b[37])<<16 | uint32(b[38])<<8 | uint32(b[39]); m != 0o160000 {
		t.Fatalf("control: the first entry's mode is %o", m)
	}
	b[38], b[39] = 0xE1, 0xED // 0o160755
	sum := sha1.Sum(b[:len(b)-20])
	copy(b[len(b)-20:], sum[:])
	os.WriteFile(idx, b, 0o644)
	if out := git(t, app, "ls-files", "--stage"); !strings.HasPrefix(out, "160755") {
		t.Fatalf("control: git does not read the patched mode: %s", out)
	}

	// A .git that is a link to a repository elsewhere in the project.
	id := repoAt(t, filepath.Join(app, "store"))
	os.MkdirAll(filepath.Join(app, "lnk"), 0o755)
	os.Symlink("../store/.git", filepath.Join(app, "lnk", ".git"))
	// A gitfile with CRs before its newline, and one whose repository's
	// commondir names another folder.
	os.MkdirAll(filepath.Join(app, "crlf"), 0o755)
	git(t, app, "init", "-q", "--bare", filepath.Join(app, "stash", "g"))
	writeFile(t, filepath.Join(app, "crlf/.git"), "gitdir: ../stash/g\r\r\n")
	os.MkdirAll(filepath.Join(app, "wt"), 0o755)
	writeFile(t, filepath.Join(app, "wt/.git"), "gitdir: ../wtgit\n")
	writeFile(t, filepath.Join(app, "wtgit/HEAD"), "ref: refs/heads/main\n")
	writeFile(t, filepath.Join(app, "wtgit/commondir"), "../common\n")
	git(t, app, "init", "-q", "--bare", filepath.Join(app, "common"))
	for _, name := range []string{"lnk", "crlf", "wt"} {
		addGitlink(t, app, name, id)
	}
	got := hostRunPaths([]workspace.Mount{{Source: app}})[app]
	for _, want := range []string{
		"odd/.git/config",
		"lnk/.git", "store/.git/config", "store/.git/hooks",
		"crlf/.git", "stash/g/config",
		"wt/.git", "wtgit/config", "wtgit/commondir", "common/config", "common/hooks",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("%s is not a host-run path: %v", want, got)
		}
	}

	// A gitfile that names a folder through a link in the project.
	os.Symlink("stash", filepath.Join(app, "via"))
	os.MkdirAll(filepath.Join(app, "through"), 0o755)
	writeFile(t, filepath.Join(app, "through/.git"), "gitdir: ../via/g\n")
	addGitlink(t, app, "through", id)
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut == "" {
		t.Errorf("a git folder reached through a link did not cut the project short")
	}
}

// An index git would read from an entry offset table (IEOT) with threads
// is not read (its blocks may list other entries than those in order, and
// git does not check their offsets); one that only records where its
// extensions start (EOIE, as index.threads writes) is; a sparse index,
// whose folder entries git expands from objects it may hold gitlinks in,
// is not.
func TestIndexGitlinksRefusesWhatGitReadsElsewhere(t *testing.T) {
	needGit(t)
	t.Setenv("GIT_CONFIG_GLOBAL", "/dev/null")
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	index := func(lines string, cfg ...string) []byte {
		dir := t.TempDir()
		git(t, dir, "init", "-q")
		cmd := exec.Command("git", append(append([]string{"-C", dir}, cfg...), "update-index", "--index-info")...)
		cmd.Stdin = strings.NewReader(lines)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%v %s", err, out)
		}
		b, _ := os.ReadFile(filepath.Join(dir, ".git", "index"))
		return b
	}
	const entries = "100644 e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\ta\n160000 e69de29bb2d1d6434b8b29ae775ad8c2e48c5391\tsub\n"
	eoie := index(entries, "-c", "index.recordEndOfIndexEntries=true")
	if !bytes.Contains(eoie, []byte("EOIE")) {
		t.Fatal("control: no EOIE written")
	}
	if names, err := indexGitlinks(context.Background(), bytes.NewReader(eoie)); err != nil || !slices.Equal(names, []string{"sub"}) {
		t.Errorf("an index with EOIE only: %v %v", names, err)
	}
	ieot := index(entries, "-c", "index.recordEndOfIndexEntries=true", "-c", "index.recordOffsetTable=true", "-c", "index.threads=4")
	if !bytes.Contains(ieot, []byte("IEOT")) {
		t.Fatal("control: no IEOT written")
	}
	if names, err := indexGitlinks(context.Background(), bytes.NewReader(ieot)); err == nil {
		t.Errorf("an index with an offset table was read: %v", names)
	}
	sparse := index("040000 4b825dc642cb6eb9a060e54bf8d69288fbee4904\ts/\n")
	if names, err := indexGitlinks(context.Background(), bytes.NewReader(sparse)); err == nil {
		t.Errorf("a sparse index was read: %v", names)
	}
}

// A submodule's configuration, the agent's, that moves its worktree
// (core.worktree) sends git's hooks and commands elsewhere: not followed,
// so the project is cut short.
func TestGitHostRunSubmoduleWorktreeMovedIsCut(t *testing.T) {
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut != "" {
		t.Fatalf("control: %+v", f)
	}
	// An ordinary submodule, whose repository git keeps in .git/modules
	// with core.worktree naming its folder, is not cut short.
	lib := filepath.Join(t.TempDir(), "lib")
	repoAt(t, lib)
	git(t, app, "-c", "protocol.file.allow=always", "submodule", "add", "-q", lib, "vendor/lib")
	if b, _ := os.ReadFile(filepath.Join(app, ".git/modules/vendor/lib/config")); !strings.Contains(string(b), "worktree") {
		t.Fatalf("control: git wrote no core.worktree for the submodule: %s", b)
	}
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut != "" {
		t.Fatalf("an ordinary submodule cut the project short: %+v", f)
	}
	git(t, sub, "config", "core.worktree", "../elsewhere")
	if f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]; f == nil || f.cut == "" {
		t.Errorf("a moved worktree did not cut the project short: %+v", f)
	}
}

// hasOffsetTable walks the agent's bytes by lengths they give: it never
// panics or loops, and says no only for data git would not read an offset
// table from (no EOIE at the end, or extensions that end where it says).
func FuzzHasOffsetTable(f *testing.F) {
	f.Add([]byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x00"))
	eoie := append([]byte("DIRC\x00\x00\x00\x02\x00\x00\x00\x00"), "TREE\x00\x00\x00\x00"...)
	eoie = append(eoie, "EOIE\x00\x00\x00\x18\x00\x00\x00\x0c"...)
	eoie = append(eoie, make([]byte, 40)...)
	f.Add(eoie)
	f.Fuzz(func(t *testing.T, b []byte) {
		if hasOffsetTable(b) {
			return
		}
		if i := bytes.Index(b, []byte("IEOT")); i >= 0 && len(b) >= 64 && string(b[len(b)-52:len(b)-48]) == "EOIE" {
			// An IEOT after the offset EOIE gives would have been found.
			pos := int(uint32(b[len(b)-44])<<24 | uint32(b[len(b)-43])<<16 | uint32(b[len(b)-42])<<8 | uint32(b[len(b)-41]))
			if pos == i {
				t.Fatalf("an offset table at the start of the extensions was not seen")
			}
		}
	})
}
