package sandbox

// A seventh hostile review, of the parsed commands: values whose program
// vibe let pass on its name while an option, a word or git's own argument
// made it run or load a project file that vibe neither recorded nor cut.
// Most were run for real with git 2.39 and harmless marking scripts.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// recordsOrCuts fails unless commandFiles records runs, the project file
// that key = cmd runs, or is opaque.
func recordsOrCuts(t *testing.T, key, cmd, runs string) {
	t.Helper()
	if files, opaque := commandFiles(key, cmd); !opaque && !slices.Contains(files, runs) {
		t.Errorf("commandFiles(%q, %q) = %q, false; runs %q unrecorded", key, cmd, files, runs)
	}
}

// passes fails where an ordinary key = cmd cuts.
func passes(t *testing.T, key, cmd string) {
	t.Helper()
	if files, opaque := commandFiles(key, cmd); opaque {
		t.Errorf("commandFiles(%q, %q) = %q, opaque", key, cmd, files)
	}
}

// Each value makes the host's sh and program run or load runs (relative
// to where git runs it): commandFiles must record it or be opaque.
func TestCommandFilesReviewMissed(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	for _, tc := range []struct{ key, cmd, runs string }{
		// ssh's -o and -F run commands.
		{"core.sshcommand", `ssh "-oProxyCommand sh x"`, "x"},
		{"core.sshcommand", `ssh -o "ProxyCommand sh x"`, "x"},
		{"core.sshcommand", `ssh '-oProxyCommand=sh x'`, "x"},
		{"core.sshcommand", `ssh -Fcfg`, "cfg"}, // cfg: ProxyCommand ...
		{"core.sshcommand", `ssh -o UserKnownHostsFile=.git/hooks/pre-commit`, ".git/hooks/pre-commit"},
		// An option left last takes git's own argument: fsmonitor gets
		// "2" (then the token), so ./2 is the vimrc or the ssh config.
		{"core.fsmonitor", `vim -es -u`, "2"},
		{"core.fsmonitor", `ssh -F`, "2"},
		{"core.fsmonitor", `less -k`, "2"},
		{"core.pager", `vim -R -S`, "Session.vim"}, // -S alone: Session.vim
		// A variable that is not a file of git's.
		{"core.fsmonitor", `vim -es -S $0`, "vim"}, // $0 is the value itself
		{"core.fsmonitor", `ssh -F $1`, "2"},
		{"filter.x.clean", `ssh -F %f h`, "%f"},
		// Option values that are commands.
		{"core.editor", `vim -es '+so x.vim'`, "x.vim"},
		{"core.editor", `vim -es -c '!sh x'`, "x"},
		{"core.pager", `less -kkeys`, "keys"}, // lesskey's #env LESSOPEN=|-sh evil
		{"core.pager", `bat --pager 'sh x'`, "x"},
		{"diff.exif.textconv", `exiftool -if 'system("sh x")'`, "x"},
		{"core.fsmonitor", `emacs --batch --eval '(load "x")'`, "x"},
		{"core.fsmonitor", `emacs --batch -l ./mon`, "./mon.elc"}, // load adds .elc/.el
		{"mergetool.k.cmd", `kdiff3 "$LOCAL" "$REMOTE" -o .git/hooks/pre-commit`, ".git/hooks/pre-commit"},
		{"diff.x.textconv", `xxd -r x .git/hooks/pre-commit`, ".git/hooks/pre-commit"},
		// git subcommands and options that reach other files.
		{"alias.b", `!git --bare log`, "config"}, // GIT_DIR is the worktree: ./config, ./hooks
		{"core.fsmonitor", `git --bare status`, "config"},
		{"alias.c", `config core.fsmonitor 'sh x'`, "x"}, // persists into .git/config
		{"core.fsmonitor", `git config --global core.pager 'sh x'`, "x"},
		{"alias.s", `send-email --to-cmd='sh x' p`, "x"},
		{"alias.i", `instaweb --httpd='sh x'`, "x"},
		{"alias.d", `daemon --access-hook='sh x'`, "x"},
		{"alias.t", `clone --template=./t https://x.invalid/r`, "t/hooks/post-checkout"},
		// git splits an alias without ! itself: # is no comment there.
		{"alias.g", `grep -e # -O./evil`, "./evil"},
		{"alias.g", `grep -e |less "-Osh evil"`, "evil"},
		// No shell: git starts the value as it is, spaces and all.
		{"gpg.program", " ./x", " ./x"},
		{"gpg.program", "./x ", "./x "},
		{"difftool.meld.path", "./my tool", "./my tool"}, // "$merge_tool_path"
		// Editors that load a workspace's configuration by themselves.
		{"core.editor", `hx`, ".helix/languages.toml"},
		{"core.editor", `zed --wait`, ".zed/settings.json"},
		// Keys that were not walked.
		{"lfs.extension.x.clean", "sh x", "x"},
		{"lfs.customtransfer.x.args", "x.sh", "x.sh"}, // .path = sh
		{"sendemail.tocmd", "./x", "./x"},
		{"imap.tunnel", "sh x", "x"},
		{"delta.pager", "sh x", "x"},
	} {
		recordsOrCuts(t, tc.key, tc.cmd, tc.runs)
	}
}

// With an empty or relative entry in PATH, git's own lookups reach the
// worktree too.
func TestCommandFilesReviewRelativePath(t *testing.T) {
	t.Setenv("PATH", ".:/usr/bin:/bin")
	for _, tc := range []struct{ key, cmd, runs string }{
		{"alias.x", "foo", "git-foo"}, // git runs git-foo from PATH
		{"alias.x", "!0", "0"},        // a "boolean" word is a program there
		{"core.pager", "no", "no"},
		{"gpg.program", "1", "1"},
		{"core.fsmonitor", "git foo", "git-foo"},
	} {
		recordsOrCuts(t, tc.key, tc.cmd, tc.runs)
	}
}

// Ordinary values of an included team .gitconfig or a submodule's
// configuration do not cut. (Still cut, by design: less -+$LESS, a
// variable; gitk and interactive-rebase-tool, programs vibe does not
// know; vim -c, which runs ex commands.)
func TestCommandFilesReviewOrdinary(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	for _, tc := range []struct{ key, cmd string }{
		{"gpg.ssh.program", "ssh-keygen"},
		{"gpg.ssh.defaultkeycommand", "ssh-add -L"},
		{"submodule.lib.update", "rebase"},
		{"submodule.lib.update", "none"},
		{"alias.sync", `!f() { git fetch && git rebase origin/main; }; f`},
		{"alias.l", `!f() { git log --oneline "$@"; }; f`},
		{"alias.ls", "!git ls-files | grep -i"},
		{"alias.lg", `log --graph --pretty=format:'%Cred%h%Creset -%C(yellow)%d%Creset %s %Cgreen(%cr) %C(bold blue)<%an>%Creset'`},
		{"core.sshcommand", "ssh -i ~/.ssh/id_work -o IdentitiesOnly=yes"},
		{"core.sshcommand", "ssh -oStrictHostKeyChecking=accept-new -p 2222"},
		{"core.pager", "diff-so-fancy | less --tabs=4 -RFX"},
		{"core.pager", "delta --side-by-side"},
		{"core.editor", "code --wait"},
		{"core.editor", "nvim -f"},
		{"core.editor", "emacsclient -t"},
		{"mergetool.meld.cmd", `meld "$LOCAL" "$MERGED" "$REMOTE" --output "$MERGED"`},
		{"mergetool.kdiff3.cmd", `kdiff3 --L1 base "$BASE" "$LOCAL" "$REMOTE" -o "$MERGED"`},
		{"diff.pdf.textconv", "pdftotext -layout -q"},
		{"diff.exif.textconv", "exiftool -s"},
		{"credential.helper", "cache --timeout=3600"},
		// The eighth review's false cuts.
		{"alias.pu", "push -u origin HEAD"},
		{"alias.cp", "cherry-pick -x"},
		{"alias.sc", "switch -c"},
		{"alias.fix", "commit --amend -C HEAD"},
		{"alias.aliases", `config --get-regexp ^alias\.`},
		{"alias.dt", "difftool --tool=meld"},
		{"core.sshcommand", "ssh -o UserKnownHostsFile=/dev/null"},
		{"diff.gpg.textconv", "gpg --no-tty --decrypt -q"},
		{"core.pager", "less -FRX -j5"},
		{"mergetool.smerge.cmd", `smerge mergetool "$BASE" "$LOCAL" "$REMOTE" -o "$MERGED"`},
		{"credential.https://github.com.helper", "!gh auth git-credential"},
	} {
		passes(t, tc.key, tc.cmd)
	}
}

// The first finding, for real: a submodule's core.sshCommand with a
// ProxyCommand runs the agent's x on the host's git ls-remote (the proxy
// replaces the connection: nothing leaves the machine).
func TestGitHostRunSSHProxyCommand(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		t.Skip("no ssh client here; TestCommandFilesReviewMissed holds the values")
	}
	gitEnv(t)
	app, sub := projectWithSubmodule(t)
	ran := plant(t, filepath.Join(sub, "x"))
	git(t, sub, "config", "core.sshCommand", `ssh -o "ProxyCommand sh x"`)
	out, _ := exec.Command("git", "-C", sub, "ls-remote", "ssh://example.invalid/r").CombinedOutput()
	ranAndCovered(t, app, "sub/x", ran, out, `git ls-remote with core.sshCommand = ssh -o "ProxyCommand sh x"`)
}

// splitAlias splits as git itself does: git's trace of the alias's
// expansion says the words it runs.
func TestSplitAliasAsGitDoes(t *testing.T) {
	gitEnv(t)
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	for _, v := range []string{
		`log -e # -O./evil`,
		`grep -e |less "-Osh evil"`,
		`log a\\b 'c d' "e\"f" g!h`,
		`log 'x'"y"z \ w`,
		`log "" x`,
		`log --pretty=format:'%C(yellow)%h %s <%an>'`,
	} {
		git(t, repo, "config", "alias.x", v)
		cmd := exec.Command("git", "-C", repo, "x")
		cmd.Env = append(os.Environ(), "GIT_TRACE=1")
		out, _ := cmd.CombinedOutput()
		_, expansion, ok := strings.Cut(string(out), "alias expansion: x => ")
		if !ok {
			t.Fatalf("no alias expansion traced for %q: %s", v, out)
		}
		expansion, _, _ = strings.Cut(expansion, "\n")
		got, ok := splitAlias(v)
		if want := sqWords(expansion); !ok || !slices.Equal(got, want) {
			t.Errorf("splitAlias(%q) = %q, %v; git runs %q", v, got, ok, want)
		}
	}
}

// sqWords reads git's trace of words, each quoted as git's sq_quote does:
// in single quotes, a quote or ! escaped outside them (g'\!'h is g!h).
func sqWords(s string) []string {
	var words []string
	var b strings.Builder
	in, quoted := false, false
	for i := 0; i < len(s); i++ {
		switch ch := s[i]; {
		case quoted && ch == '\'':
			quoted = false
		case quoted:
			b.WriteByte(ch)
		case ch == '\'':
			quoted, in = true, true
		case ch == '\\' && i+1 < len(s):
			i++
			b.WriteByte(s[i])
			in = true
		case ch == ' ':
			if in {
				words = append(words, b.String())
				b.Reset()
				in = false
			}
		default:
			b.WriteByte(ch)
			in = true
		}
	}
	if in {
		words = append(words, b.String())
	}
	return words
}

// Whatever an alias says, its words quoted again as git's trace quotes
// them split back to the same words.
func FuzzSplitAlias(f *testing.F) {
	for _, s := range []string{`log -e # x`, `a\\b 'c d' "e\"f"`, `"" x`, `'`, `\`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		words, ok := splitAlias(v)
		if !ok {
			return
		}
		var q []string
		for _, w := range words {
			if strings.ContainsAny(w, " \t\n\r\v\f") {
				return // a blank inside a quoted word: sqWords splits at spaces only
			}
			q = append(q, "'"+strings.ReplaceAll(w, "'", `'\''`)+"'")
		}
		if again := sqWords(strings.Join(q, " ")); !slices.Equal(again, words) {
			t.Errorf("splitAlias(%q) = %q; quoted again: %q", v, words, again)
		}
	})
}

// A push to a repository on this machine runs its hooks: remoteRepo says
// which one a remote or an insteadOf names, as git reads the URL.
func TestRemoteRepo(t *testing.T) {
	for _, tc := range []struct {
		key, value, path string
		opaque           bool
	}{
		{"remote.origin.url", "git@github.com:team/app.git", "", false},
		{"remote.origin.url", "https://example.invalid/team/app.git", "", false},
		{"url.git@github.com:.insteadof", "https://github.com/", "", false},
		{"remote.origin.pushurl", "./evil.git", "./evil.git", false},
		{"remote.origin.url", "../evil.git", "../evil.git", false},
		{"remote.origin.url", "/srv/git/app.git", "/srv/git/app.git", false},
		{"remote.origin.url", "file:///tmp/evil.git", "/tmp/evil.git", false},
		{"remote.origin.url", "file://localhost/tmp/evil.git", "/tmp/evil.git", false}, // git takes no host
		{"remote.origin.url", "file:///tmp/%65vil.git", "/tmp/evil.git", false},        // and decodes
		{"url../evil/.insteadof", "https://example.invalid/", "./evil/", false},
		{"url../ev.insteadof", "https://example.invalid/", "", true}, // ./ev + il.git
		{"remote.origin.url", "~/evil.git", "", true},
		{"remote.origin.url", "file:evil.git", "", true},
	} {
		path, opaque := remoteRepo(tc.key, tc.value)
		if path != tc.path || opaque != tc.opaque {
			t.Errorf("remoteRepo(%q, %q) = %q, %v; want %q, %v", tc.key, tc.value, path, opaque, tc.path, tc.opaque)
		}
	}
}
