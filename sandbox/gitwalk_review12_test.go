package sandbox

// A twelfth hostile review, of the eleventh's two changes: the probing of files
// outside the mounts that an agent's file includes (walk, probed), and the
// look for repositories nested in a project's worktree (nested). Each
// test that claims git runs the agent's file runs real git first.

import (
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/workspace"
	"golang.org/x/sys/unix"
)

// review12Walk is the walk gitHostRun makes for project app (the only mount),
// with ctx as its deadline.
func review12Walk(ctx context.Context, app string) *gitWalk {
	home, _ := os.UserHomeDir()
	return newGitWalk(ctx, app, []string{app}, []string{app}, nil, home, map[string]*gitFound{})
}

// 1. A folder of the project that the agent turns into a bare repository
// (HEAD, objects, refs and a config, no .git) is the repository git finds
// when it runs in that folder: git looks for folder/.git, then takes the
// folder itself. A shell prompt that runs git status on cd, an editor, or
// the user running git there runs its core.fsmonitor (core.worktree = .
// gives it a worktree). nested looks for .git entries only: the config
// is neither recorded nor cut, and no snapshot compares it.
func TestGitHostRunReview12BareRepoInSubfolder(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	docs := filepath.Join(app, "docs")
	writeFile(t, filepath.Join(docs, "readme"), "hi\n")
	// What the agent writes.
	os.MkdirAll(filepath.Join(docs, "objects"), 0o755)
	os.MkdirAll(filepath.Join(docs, "refs", "heads"), 0o755)
	writeFile(t, filepath.Join(docs, "HEAD"), "ref: refs/heads/main\n")
	writeFile(t, filepath.Join(docs, "config"), "[core]\n\trepositoryformatversion = 0\n\tbare = false\n\tworktree = .\n\tfsmonitor = ./x\n")
	ran := plant(t, filepath.Join(docs, "x"))
	cmd := exec.Command("git", "status", "--short")
	cmd.Dir = docs
	out, _ := cmd.CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: git status in docs did not run docs/x: %s", out)
	}
	os.Remove(ran)
	if rec, cut := coveredOrCut(t, app, "docs/config"); !rec && cut == "" {
		t.Errorf("docs/ made a bare repository (git status run in docs runs its core.fsmonitor): docs/config neither recorded nor cut")
	}
	// And a session that makes it goes unreported.
	app2 := t.TempDir()
	repoAt(t, app2)
	mounts := []workspace.Mount{{Name: "p", Source: app2}}
	before := TakeSnapshot(mounts, nil)
	for _, n := range []string{"objects", "refs/heads"} {
		os.MkdirAll(filepath.Join(app2, "lib", n), 0o755)
	}
	writeFile(t, filepath.Join(app2, "lib", "HEAD"), "ref: refs/heads/main\n")
	writeFile(t, filepath.Join(app2, "lib", "config"), "[core]\n\tbare = false\n\tworktree = .\n\tfsmonitor = ./x\n")
	after := TakeSnapshot(mounts, nil)
	if ch := after.Changed(before); len(ch) == 0 && len(after.Truncated()) == 0 {
		t.Errorf("a bare repository made in the project during a session: nothing reported")
	}
}

// 2. nested walks every repository it found with no regard to the walk's
// deadline (the loop over found has no ctx check; repo and links copy a
// nested repository's index to a temporary file, up to 32 MiB, and read
// it back, before anything looks at the deadline). The agent hard-links
// one index into each of up to half a million nested repositories (two
// entries each within gitMaxScan): every walk (settle, and both
// snapshots) copies 32 MiB per repository, hours in all. Here a walk with
// a 100 ms deadline and 400 repositories sharing a 1 MiB index.
func TestGitHostRunReview12NestedIgnoresDeadline(t *testing.T) {
	gitEnv(t)
	t.Setenv("TMPDIR", t.TempDir())
	app := t.TempDir()
	repoAt(t, app)
	big := filepath.Join(app, "blob")
	writeFile(t, big, strings.Repeat("x", 1<<20))
	const n = 400
	for i := 0; i < n; i++ {
		g := filepath.Join(app, "r", fmt.Sprint(i), ".git")
		if err := os.MkdirAll(g, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(big, filepath.Join(g, "index")); err != nil {
			t.Fatal(err)
		}
	}
	const deadline = 100 * time.Millisecond
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	w := review12Walk(ctx, app)
	start := time.Now()
	w.nested()
	took := time.Since(start)
	f := w.out[app]
	t.Logf("nested() took %s with a %s deadline; repos walked %d; cut=%q", took, deadline, len(w.repos), f.cut)
	if took > 5*deadline {
		perRepo := took / time.Duration(len(w.repos))
		t.Errorf("nested() went on %s past its deadline (%s a repository with a 1 MiB index; at 32 MiB and 2^19 repositories, hours)", took-deadline, perRepo)
	}
}

// 3. A nested repository's own configuration (the agent's) is walked
// before the user's global files for that worktree, and the seen key is
// path+worktree whatever the probing: when the agent's config includes
// the user's global file, that file is read first with probing set (cut,
// nothing recorded) and then skipped when the user's walk reaches it. A
// relative global core.hooksPath (sub/.githooks, which git runs on commit
// in sub) is no longer protected in the guest, only cut: before change 1
// it was recorded.
func TestGitHostRunReview12ProbeSkipsUsersOwnWalk(t *testing.T) {
	home := gitEnv(t)
	global := filepath.Join(home, "global.gitconfig")
	writeFile(t, global, "[core]\n\thooksPath = .githooks\n")
	t.Setenv("GIT_CONFIG_GLOBAL", global)
	app := t.TempDir()
	repoAt(t, app)
	sub := filepath.Join(app, "sub")
	repoAt(t, sub)
	ran := plant(t, filepath.Join(sub, ".githooks", "pre-commit"))
	out, _ := exec.Command("git", "-C", sub, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "y").CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: git commit in sub did not run sub/.githooks/pre-commit: %s", out)
	}
	rec, _ := coveredOrCut(t, app, "sub/.githooks")
	if !rec {
		t.Fatalf("baseline: sub/.githooks not recorded")
	}
	// The agent adds one line to its nested repository's config.
	git(t, sub, "config", "include.path", global)
	rec, cut := coveredOrCut(t, app, "sub/.githooks")
	if !rec {
		t.Errorf("sub/.git/config including the user's global file: sub/.githooks (the user's own hooks path, protected a moment ago) is only cut now: %q", cut)
	}
}

// 4. The count of configuration files read (gitMaxConfigs) includes the
// probed ones: whether a host file (any path the user can read) exists and
// is not empty decides whether a later file of the agent's is read, and so
// whether the path it names is recorded (bound read-only in the guest,
// and listed in the settle script's arguments). A one-bit oracle on host
// files per project per session, which probing was meant to rule out.
// (The agent's files are in a git folder it made under .git/modules, which
// record exempts, and are included as x and ":(optional)x", both of which
// the walk reads: a file costs one recorded path, under gitMaxExtra.)
func TestGitHostRunReview12ProbeCountsOracle(t *testing.T) {
	home := gitEnv(t)
	secret := filepath.Join(home, ".ssh", "id_ed25519")
	probe := func() []string {
		app := t.TempDir()
		repoAt(t, app)
		mod := filepath.Join(app, ".git", "modules", "sub")
		writeFile(t, filepath.Join(app, "sub", ".git"), "gitdir: ../.git/modules/sub\n")
		var conf strings.Builder
		conf.WriteString("[include]\n\tpath = " + secret + "\n")
		for i := 0; i < 63; i++ {
			fmt.Fprintf(&conf, "\tpath = :(optional)l%d\n", i)
			writeFile(t, filepath.Join(mod, fmt.Sprintf(":(optional)l%d", i)), fmt.Sprintf("[core]\n\thooksPath = h%da\n", i))
			writeFile(t, filepath.Join(mod, fmt.Sprintf("l%d", i)), fmt.Sprintf("[core]\n\thooksPath = h%db\n", i))
		}
		writeFile(t, filepath.Join(mod, "config"), conf.String())
		got := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
		t.Logf("n=%d cut=%q", len(got.rel), got.cut)
		var marks []string
		for _, r := range got.rel {
			if strings.HasPrefix(r, "sub/h") {
				marks = append(marks, r)
			}
		}
		return marks
	}
	absent := probe()
	writeFile(t, secret, "-----BEGIN OPENSSH PRIVATE KEY-----\n")
	present := probe()
	t.Logf("recorded with the host file absent: %d, present: %d", len(absent), len(present))
	if len(absent) != len(present) {
		extra := ""
		for _, m := range absent {
			if !slices.Contains(present, m) {
				extra = m
			}
		}
		t.Errorf("whether %s exists decides whether sub/%s (a path the agent made) is recorded, protected in the guest", secret, strings.TrimPrefix(extra, "sub/"))
	}
}

// 5. A nested repository whose .git (a gitfile, or a link) names a git
// folder outside the mounts is walked as the user's own (trusted): its
// configuration is read with no probing, and what it names relative to
// the worktree (the agent's) is recorded, and listed in the settle
// script's arguments (hr:...), which a process of the sandbox user can
// read from /proc before settle freezes it. The agent reads the hooks
// path (any worktree-relative value) of any repository of the user's.
// (Through the index this was there before; nested makes a gitfile enough.)
func TestGitHostRunReview12NestedGitfileOutsideLeaks(t *testing.T) {
	home := gitEnv(t)
	other := filepath.Join(home, "work", "secret-project")
	repoAt(t, other)
	git(t, other, "config", "core.hooksPath", "tools/hooks-of-acme-corp")
	app := t.TempDir()
	repoAt(t, app)
	writeFile(t, filepath.Join(app, "sub", ".git"), "gitdir: "+filepath.Join(other, ".git")+"\n")
	f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
	t.Logf("rel=%q cut=%q", f.rel, f.cut)
	if slices.Contains(f.rel, "sub/tools/hooks-of-acme-corp") {
		t.Errorf("a host repository's core.hooksPath, outside every mount, named by the agent's gitfile: recorded (shown to the guest)")
	}
}

// 7. nested opens each folder it lists with os.Root's OpenRoot, whose
// open of the last name has neither O_DIRECTORY nor O_NONBLOCK: a folder
// swapped for a FIFO (RENAME_EXCHANGE, by a process of the agent's left
// running) between the listing and the open makes the host's vibe block
// in open(2) for ever, past every deadline: at settle (gitHostRun runs on
// the host before the settle script freezes the sandbox user) and in
// TakeSnapshot. Everywhere else the walk opens with O_NONBLOCK.
func TestGitHostRunReview12NestedFifoSwapHangs(t *testing.T) {
	app := wideProject(t)
	os.MkdirAll(filepath.Join(app, "d"), 0o755)
	q := filepath.Join(app, "q")
	if err := unix.Mkfifo(q, 0o644); err != nil {
		t.Fatal(err)
	}
	stop := startSwapper(t, app, "q")
	defer stop()
	for i := 0; i < 30; i++ {
		done := make(chan struct{})
		start := time.Now()
		go func() { gitHostRun([]workspace.Mount{{Source: app}}, nil); close(done) }()
		select {
		case <-done:
			continue
		case <-time.After(gitTimeout + 5*time.Second):
		}
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		for _, l := range strings.Split(string(buf), "\n") {
			if strings.Contains(l, "openRootInRoot") || strings.Contains(l, "sandbox.(*gitWalk).nested") || strings.Contains(l, "unix.Openat") {
				t.Logf("blocked in: %s", strings.TrimSpace(l))
			}
		}
		stop()
		// Unblock it: a writer on whichever name is the FIFO now.
		for _, n := range []string{"d", "q"} {
			if f, err := os.OpenFile(filepath.Join(app, n), os.O_WRONLY|unix.O_NONBLOCK, 0); err == nil {
				f.Close()
			}
		}
		<-done
		t.Fatalf("walk %d blocked for %s (past its %s deadline) in the open of a folder swapped for a FIFO", i, time.Since(start).Round(time.Second), gitTimeout)
	}
}

// 6. nested lists a folder, then opens each folder in it by name with
// os.Root's OpenRoot, which follows a link (inside the root): a process
// of the agent's left running swaps d (holding a nested repository) with
// e, a link to an empty folder (RENAME_EXCHANGE, back and forth). One
// listing always shows one of them as a folder (getdents and rename
// exclude each other), but the open after it finds the link: the
// repository is missed, with no cut, by the walk that a snapshot makes
// while the agent's process runs (settle freezes the sandbox user's
// processes; TakeSnapshot does not). Then the host's git add -A and git
// status run it.
func TestGitHostRunReview12NestedSwapRace(t *testing.T) {
	if os.Getenv("VIBE_REVIEW12_SWAP") != "" {
		return
	}
	app := wideProject(t) // many folders listed before d: a wide window
	sub, ran := nestedRepo(t, filepath.Join(app, "d"))
	os.MkdirAll(filepath.Join(app, "empty"), 0o755)
	if err := os.Symlink("empty", filepath.Join(app, "e")); err != nil {
		t.Fatal(err)
	}
	// The swapper: another process, as the agent's would be.
	stopSwapper := startSwapper(t, app, "e")
	missed := 0
	const tries = 40
	for i := 0; i < tries; i++ {
		f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
		if f == nil || f.cut == "" && !f.unsteady && !slices.ContainsFunc(f.rel, func(r string) bool { return strings.HasSuffix(r, "sub/.git/config") }) {
			missed++
		}
	}
	stopSwapper()
	// Settle where the agent wants it: d the folder.
	if st, err := os.Lstat(filepath.Join(app, "d")); err != nil || !st.IsDir() {
		if err := unix.Renameat2(unix.AT_FDCWD, filepath.Join(app, "d"), unix.AT_FDCWD, filepath.Join(app, "e"), unix.RENAME_EXCHANGE); err != nil {
			t.Fatal(err)
		}
	}
	git(t, app, "add", "-A")
	out, _ := exec.Command("git", "-C", app, "status").CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: git status after git add -A did not run %s/x: %s", sub, out)
	}
	t.Logf("the nested repository missed with no cut in %d of %d walks", missed, tries)
	if missed > 0 {
		t.Errorf("a folder swapped with a link while the walk runs: its nested repository missed, uncut, in %d of %d walks", missed, tries)
	}
}

// wideProject is a repository with 200 folders below a/, which a
// listing takes time to go through.
func wideProject(t *testing.T) string {
	t.Helper()
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	for i := 0; i < 200; i++ {
		os.MkdirAll(filepath.Join(app, "a", fmt.Sprint(i), "x"), 0o755)
	}
	return app
}

// startSwapper starts TestGitHostRunReview12Swapper, a process of its
// own as the agent's would be, swapping app/d and app/other; it returns
// what stops it (once, however often called).
func startSwapper(t *testing.T, app, other string) (stop func()) {
	t.Helper()
	mark := filepath.Join(t.TempDir(), "stop")
	cmd := exec.Command(os.Args[0], "-test.run=^TestGitHostRunReview12Swapper$")
	cmd.Env = append(os.Environ(), "VIBE_REVIEW12_SWAP="+app, "VIBE_REVIEW12_OTHER="+other, "VIBE_REVIEW12_STOP="+mark)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	return func() {
		once.Do(func() {
			writeFile(t, mark, "")
			cmd.Wait()
		})
	}
}

// TestGitHostRunReview12Swapper is the swapping process of TestGitHostRunReview12NestedSwapRace.
func TestGitHostRunReview12Swapper(t *testing.T) {
	app := os.Getenv("VIBE_REVIEW12_SWAP")
	if app == "" {
		t.Skip("helper")
	}
	d, e := filepath.Join(app, "d"), filepath.Join(app, cmp.Or(os.Getenv("VIBE_REVIEW12_OTHER"), "e"))
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); {
		for i := 0; i < 200; i++ {
			unix.Renameat2(unix.AT_FDCWD, d, unix.AT_FDCWD, e, unix.RENAME_EXCHANGE)
			time.Sleep(50 * time.Microsecond)
		}
		if _, err := os.Stat(os.Getenv("VIBE_REVIEW12_STOP")); err == nil {
			return
		}
	}
}

// A process of the agent's moves a nested repository back and forth
// between a folder the walk lists early and one it lists late (a swap of
// two folders in different places): a listing can miss it in both. Every
// walk finds it, or says the project changed while it was listed
// (Unsteady: the snapshot is then taken again with the sandbox held).
func TestGitHostRunReview12NestedMovedWhileListed(t *testing.T) {
	if os.Getenv("VIBE_REVIEW12_SWAP") != "" {
		return
	}
	app := wideProject(t)
	nestedRepo(t, filepath.Join(app, "d"))
	defer startSwapper(t, app, "a/100/x")()
	missed, unsteady := 0, 0
	for i := 0; i < 40; i++ {
		f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
		found := f != nil && slices.ContainsFunc(f.rel, func(r string) bool { return strings.HasSuffix(r, "sub/.git/config") })
		switch {
		case f != nil && f.unsteady:
			unsteady++
		case !found && (f == nil || f.cut == ""):
			missed++
		}
	}
	t.Logf("of 40 walks: %d said unsteady, %d missed the repository silently", unsteady, missed)
	if missed > 0 {
		t.Errorf("a nested repository moved while the walk listed: missed, uncut and not unsteady, %d of 40 times", missed)
	}
}

// Unsteady is read from a folder's mark, never from a file the agent
// names as one.
func TestSnapshotUnsteadyMark(t *testing.T) {
	app := t.TempDir()
	s := Snapshot{filepath.Join(app, tooMany): "x; " + Unsteady}
	if !s.Unsteady() {
		t.Error("a mark naming Unsteady: not Unsteady")
	}
	digest := strings.Repeat("ab", 32) // what a file of that name is recorded as
	if (Snapshot{filepath.Join(app, ".claude", tooMany): digest}).Unsteady() {
		t.Error("a file named as the mark (a digest): Unsteady")
	}
}

// Past gitMaxStamps folders the listing cannot be looked at again: the
// snapshot says so (Unsteady), and the one taken with the sandbox held
// is whole.
func TestSnapshotUnsteadyPastStampsHeldWhole(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	repoAt(t, app)
	for _, d := range []string{"a", "b", "c", "d"} {
		os.MkdirAll(filepath.Join(app, d), 0o755)
	}
	defer func(n int) { gitMaxStamps = n }(gitMaxStamps)
	gitMaxStamps = 2
	mounts := []workspace.Mount{{Name: "p", Source: app}}
	if s := TakeSnapshot(mounts, nil); !s.Unsteady() {
		t.Errorf("more folders than are looked at again: not Unsteady (%q)", s.Truncated())
	}
	if s := TakeSnapshotHeld(mounts, nil); s.Unsteady() || len(s.Truncated()) > 0 {
		t.Errorf("held: cut %q", s.Truncated())
	}
}
