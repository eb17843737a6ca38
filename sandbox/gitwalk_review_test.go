package sandbox

// A sixth hostile review's attacks on configured commands and hook
// managers (each ran an agent-written file on the host's git while vibe
// neither recorded it nor cut), and ordinary settings that must not cut.

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/workspace"
)

// mark is a shell script that appends to ran and fails.
func mark(ran string) string { return "#!/bin/sh\necho pwned >>'" + ran + "'\nexit 1\n" }

func ranMark(t *testing.T, ran string) bool {
	t.Helper()
	b, _ := os.ReadFile(ran)
	return len(b) > 0
}

// teamConfig is a new repository whose configuration includes the
// worktree's team.gitconfig, which holds conf: a file the agent writes.
func teamConfig(t *testing.T, conf string) (app string) {
	t.Helper()
	gitEnv(t)
	app = t.TempDir()
	git(t, app, "init", "-q")
	git(t, app, "config", "include.path", "../team.gitconfig")
	writeFile(t, filepath.Join(app, "team.gitconfig"), conf)
	return app
}

// plant writes at p a script that, run, marks the file it returns.
func plant(t *testing.T, p string) (ran string) {
	t.Helper()
	ran = filepath.Join(t.TempDir(), "ran")
	writeFile(t, p, mark(ran))
	os.Chmod(p, 0o755)
	return ran
}

// ranAndCovered is each attack's verdict: what (a git command, with its
// output out) ran the project's file rel, or the attack proves nothing;
// then the walk of app must record rel or cut.
func ranAndCovered(t *testing.T, app, rel, ran string, out []byte, what string) {
	t.Helper()
	if !ranMark(t, ran) {
		t.Fatalf("control: %s did not run %s: %s", what, rel, out)
	}
	if rec, cut := coveredOrCut(t, app, rel); !rec && cut == "" {
		t.Errorf("%s runs %s; neither recorded nor cut", what, rel)
	}
}

// R1. A bare interpreter/build tool reads a worktree file no word names.
func TestGitWalkReviewBareInterpreterRunsWorktreeFile(t *testing.T) {
	cases := []struct {
		name, key, cmd, file, content string
	}{
		{"fsmonitor-sh", "core.fsmonitor", "sh", "2", ""},
		{"fsmonitor-bash", "core.fsmonitor", "bash", "2", ""},
		{"fsmonitor-make", "core.fsmonitor", "make", "Makefile", "%:\n\t@echo pwned >>'RAN'; false\n"},
		{"clean-sh-stdin", "filter.x.clean", "sh", "f", "echo pwned >>'RAN'\n"},
		{"clean-sh-percent-f", "filter.x.clean", "sh %f", "f", "echo pwned >>'RAN'\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gitEnv(t)
			app, sub := projectWithSubmodule(t)
			ran := filepath.Join(t.TempDir(), "ran")
			content := strings.ReplaceAll(tc.content, "RAN", ran)
			if content == "" {
				content = mark(ran)
			}
			writeFile(t, filepath.Join(sub, tc.file), content)
			os.Chmod(filepath.Join(sub, tc.file), 0o755)
			if tc.key == "filter.x.clean" {
				writeFile(t, filepath.Join(sub, ".gitattributes"), "f filter=x\n")
				git(t, sub, "add", "f", ".gitattributes")
				git(t, sub, "commit", "-q", "-m", "f")
				os.Chtimes(filepath.Join(sub, "f"), time.Now(), time.Now().Add(time.Hour))
			}
			git(t, sub, "config", tc.key, tc.cmd)
			out, _ := exec.Command("git", "-C", app, "status", "--short").CombinedOutput()
			ranAndCovered(t, app, "sub/"+tc.file, ran, out, "git status with "+tc.key+" = "+tc.cmd)
		})
	}
}

// R2. Aliases are never cut for: any word vibe cannot record bypasses.
func TestGitWalkReviewAliasNeverCut(t *testing.T) {
	for _, tc := range []struct{ alias, runs string }{
		{`"!./m''on"`, "mon"},
		{`"!$PWD/mon"`, "mon"},
		{`"!cd s* && ./mon"`, "sub/mon"},
		{`-c alias.x=!./mon x`, "mon"},
	} {
		t.Run(tc.alias, func(t *testing.T) {
			app := teamConfig(t, "[alias]\n\tst = "+tc.alias+"\n")
			ran := plant(t, filepath.Join(app, tc.runs))
			out, _ := exec.Command("git", "-C", app, "st").CombinedOutput()
			ranAndCovered(t, app, tc.runs, ran, out, "alias st = "+tc.alias)
		})
	}
}

// R3. gpg.program runs without a shell: a space is part of the name.
func TestGitWalkReviewNoShellProgramWithSpace(t *testing.T) {
	for _, prog := range []string{"evil dir/x", "./my tool"} {
		t.Run(prog, func(t *testing.T) {
			app := teamConfig(t, "[gpg]\n\tprogram = "+prog+"\n[commit]\n\tgpgSign = true\n")
			rel := strings.TrimPrefix(prog, "./")
			ran := plant(t, filepath.Join(app, rel))
			cmd := exec.Command("git", "-C", app, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "x")
			out, _ := cmd.CombinedOutput()
			ranAndCovered(t, app, rel, ran, out, "git commit with gpg.program = "+prog)
		})
	}
}

// R4. ext:: transport (protocol/url/remote keys are not in gitKeys).
func TestGitWalkReviewExtTransport(t *testing.T) {
	for _, tc := range []struct{ name, conf string }{
		{"insteadOf", "[protocol \"ext\"]\n\tallow = always\n[url \"ext::sh x.sh %S #\"]\n\tinsteadOf = https://example.invalid/\n"},
		{"remote-url-fetch-all", "[protocol \"ext\"]\n\tallow = always\n[remote \"upstream\"]\n\turl = ext::./x.sh %S\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			app := teamConfig(t, tc.conf)
			git(t, app, "remote", "add", "origin", "https://example.invalid/r.git")
			ran := plant(t, filepath.Join(app, "x.sh"))
			out, _ := exec.Command("git", "-C", app, "fetch", "-q", "--all").CombinedOutput()
			ranAndCovered(t, app, "x.sh", ran, out, "git fetch through ext::")
		})
	}
}

// R5. git >= 2.54 config-based hooks: hook.<name>.command (docs only).
func TestGitWalkReviewConfigBasedHook(t *testing.T) {
	app := teamConfig(t, "[hook \"lint\"]\n\tevent = pre-commit\n\tcommand = ./scripts/lint.sh\n")
	writeFile(t, filepath.Join(app, "scripts/lint.sh"), "#!/bin/sh\nexit 0\n")
	if rec, cut := coveredOrCut(t, app, "scripts/lint.sh"); !rec && cut == "" {
		t.Errorf("hook.lint.command (git >= 2.54 runs it on commit): neither recorded nor cut")
	}
}

// huskyH is husky 9's .husky/_/h.
const huskyH = `#!/usr/bin/env sh
[ "$HUSKY" = "2" ] && set -x
n=$(basename "$0")
s=$(dirname "$(dirname "$0")")/$n

[ ! -f "$s" ] && exit 0

i="${XDG_CONFIG_HOME:-$HOME/.config}/husky/init.sh"
[ -f "$i" ] && . "$i"

[ "${HUSKY-}" = "0" ] && exit 0

export PATH="node_modules/.bin:$PATH"
sh -e "$s" "$@"
c=$?
exit $c
`

// R6. husky 9 whose folder is not ./.husky: its hook scripts go unseen.
func TestGitWalkReviewHuskyNotAtRoot(t *testing.T) {
	for _, dir := range []string{"frontend/.husky", ".config/husky"} {
		t.Run(dir, func(t *testing.T) {
			gitEnv(t)
			app := t.TempDir()
			repoAt(t, app)
			git(t, app, "config", "core.hooksPath", dir+"/_")
			writeFile(t, filepath.Join(app, dir, "_/h"), huskyH)
			writeFile(t, filepath.Join(app, dir, "_/pre-commit"), "#!/usr/bin/env sh\n. \"$(dirname \"$0\")/h\"\n")
			os.Chmod(filepath.Join(app, dir, "_/pre-commit"), 0o755)
			writeFile(t, filepath.Join(app, dir, "pre-commit"), "npm test\n")
			m := []workspace.Mount{{Source: app}}
			before := TakeSnapshot(m, nil)
			ran := filepath.Join(t.TempDir(), "ran")
			writeFile(t, filepath.Join(app, dir, "pre-commit"), "echo pwned >>'"+ran+"'\n")
			after := TakeSnapshot(m, nil)
			out, _ := exec.Command("git", "-C", app, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "x").CombinedOutput()
			if !ranMark(t, ran) {
				t.Fatalf("control: commit did not run %s/pre-commit: %s", dir, out)
			}
			if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
				t.Errorf("%s/pre-commit changed (husky runs it on commit): no change reported, nothing cut", dir)
			}
		})
	}
}

// R7. Other hook managers run node_modules code; not cut.
func TestGitWalkReviewOtherHookManagers(t *testing.T) {
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("no node")
	}
	for _, tc := range []struct{ name, hook, runs string }{
		{"husky3", "#!/bin/sh\n# husky\n# Hook created by Husky\n#   Version: 3.1.0\nscriptPath=\"node_modules/husky/run.js\"\nhookName=`basename \"$0\"`\ngitParams=\"$*\"\nif [ -f \"$scriptPath\" ]; then\n  node \"$scriptPath\" $hookName \"$gitParams\"\nfi\n", "node_modules/husky/run.js"},
		{"yorkie", "#!/bin/sh\n#yorkie 2.0.0\ncd \".\"\nexport GIT_PARAMS=\"$*\"\nnode \"./node_modules/yorkie/src/runner.js\" pre-commit || exit 1\n", "node_modules/yorkie/src/runner.js"},
		{"simple-git-hooks", "#!/bin/sh\n\nnpx --no-install lint-staged\n", "node_modules/.bin/lint-staged"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gitEnv(t)
			app := t.TempDir()
			repoAt(t, app)
			writeFile(t, filepath.Join(app, ".git/hooks/pre-commit"), tc.hook)
			os.Chmod(filepath.Join(app, ".git/hooks/pre-commit"), 0o755)
			writeFile(t, filepath.Join(app, "package.json"), "{\"name\":\"x\",\"version\":\"1.0.0\"}\n")
			writeFile(t, filepath.Join(app, tc.runs), "#!/usr/bin/env node\n")
			os.Chmod(filepath.Join(app, tc.runs), 0o755)
			m := []workspace.Mount{{Source: app}}
			before := TakeSnapshot(m, nil)
			ran := filepath.Join(t.TempDir(), "ran")
			writeFile(t, filepath.Join(app, tc.runs), "#!/usr/bin/env node\nrequire('fs').appendFileSync('"+ran+"','pwned')\n")
			after := TakeSnapshot(m, nil)
			out, _ := exec.Command("git", "-C", app, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "x").CombinedOutput()
			if !ranMark(t, ran) {
				t.Skipf("control: commit did not run %s: %s", tc.runs, out)
			}
			if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
				t.Errorf("%s changed (%s's hook runs it on commit): no change reported, nothing cut", tc.runs, tc.name)
			}
		})
	}
}

// R8. pre-commit hooks of a linked-worktree project are not looked at.
func TestGitWalkReviewPreCommitInLinkedWorktree(t *testing.T) {
	py, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("no python3")
	}
	gitEnv(t)
	main := t.TempDir()
	repoAt(t, main)
	app := filepath.Join(t.TempDir(), "app")
	git(t, main, "worktree", "add", "-q", "-b", "w", app)
	writeFile(t, filepath.Join(main, ".git/hooks/pre-commit"), "#!/usr/bin/env bash\n# File generated by pre-commit: https://pre-commit.com\nINSTALL_PYTHON="+py+"\nARGS=(hook-impl --config=.pre-commit-config.yaml --hook-type=pre-commit)\nHERE=\"$(cd \"$(dirname \"$0\")\" && pwd)\"\nARGS+=(--hook-dir \"$HERE\" -- \"$@\")\nexec \"$INSTALL_PYTHON\" -mpre_commit \"${ARGS[@]}\"\n")
	os.Chmod(filepath.Join(main, ".git/hooks/pre-commit"), 0o755)
	m := []workspace.Mount{{Source: app}}
	before := TakeSnapshot(m, nil)
	ran := filepath.Join(t.TempDir(), "ran")
	writeFile(t, filepath.Join(app, "pre_commit/__main__.py"), "open('"+ran+"','a').write('pwned')\n")
	after := TakeSnapshot(m, nil)
	out, _ := exec.Command("git", "-C", app, "-c", "user.name=x", "-c", "user.email=x@x", "commit", "-q", "--allow-empty", "-m", "x").CombinedOutput()
	if !ranMark(t, ran) {
		t.Fatalf("control: commit did not run pre_commit/__main__.py: %s", out)
	}
	if len(after.Changed(before)) == 0 && len(after.Truncated()) == 0 {
		t.Errorf("pre_commit/__main__.py runs on commit: no change reported, nothing cut")
	}
}

// R9. False cuts of ordinary settings.
func TestGitWalkReviewOrdinaryNotCut(t *testing.T) {
	t.Run("submodule-sshcommand", func(t *testing.T) {
		app, sub := projectWithLib(t)
		git(t, sub, "config", "core.sshCommand", "ssh -i ~/.ssh/id_work -o IdentitiesOnly=yes")
		if c := cutOf(t, app); c != "" {
			t.Errorf("cut: %q", c)
		}
	})
	t.Run("team-pager-diff-so-fancy", func(t *testing.T) {
		app, _ := projectWithLib(t)
		writeFile(t, filepath.Join(app, ".gitconfig"), "[core]\n\tpager = diff-so-fancy | less --tabs=4 -RFX\n")
		git(t, app, "config", "include.path", "../.gitconfig")
		if c := cutOf(t, app); c != "" {
			t.Errorf("cut: %q", c)
		}
	})
	t.Run("submodule-editor-nvim", func(t *testing.T) {
		app, sub := projectWithLib(t)
		git(t, sub, "config", "core.editor", "nvim -f")
		if c := cutOf(t, app); c != "" {
			t.Errorf("cut: %q", c)
		}
	})
}

// R10. commandFiles: want is the file git runs ("": none nameable).
func TestGitWalkReviewCommandFilesUnit(t *testing.T) {
	t.Setenv("PATH", "/usr/bin:/bin")
	for _, tc := range []struct{ key, cmd, want, why string }{
		{"merge.x.driver", "sh %A", "", "runs the ours side of the merged file"},
		{"merge.x.driver", "sh %P", "", "runs the worktree file being merged, by its path"},
		{"mergetool.x.cmd", "sh $MERGED", "", "runs the merged worktree file"},
		{"difftool.x.cmd", "sh $REMOTE", "", "runs the worktree file"},
		{"diff.external", "sh", "", "runs each changed file, by its path"},
		{"diff.x.textconv", "bash", "", "runs the diffed file"},
		{"filter.x.clean", "sh", "", "runs the file's content from stdin"},
		{"core.fsmonitor", "npm test", "package.json", "runs package.json's scripts.test"},
		{"core.fsmonitor", "busybox sh", "2", "runs ./2 (fsmonitor's first argument)"},
		{"core.fsmonitor", "make", "Makefile", "reads ./Makefile"},
		{"gpg.program", "evil dir/x", "evil dir/x", "no shell: one file name"},
	} {
		files, opaque := commandFiles(tc.key, tc.cmd)
		if !opaque && (tc.want == "" || !slices.Contains(files, tc.want)) {
			t.Errorf("commandFiles(%q, %q) = %q, %v; git %s", tc.key, tc.cmd, files, opaque, tc.why)
		}
	}
}
