package sandbox

import (
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// commandFiles returns the files of the project a configured command may
// run or read, relative to where git runs it: its programs when named by
// a path (./tools/watch, !scripts/y), a bare program name where an empty
// or relative entry of PATH would find it in the worktree, and every other
// word that could be a file (sh mon.sh, --config=./x, 'x.sh', -- -x); a
// word that is an option, a variable or a placeholder (-R, $LOCAL, %f) is
// none. The command is parsed as POSIX sh parses it (git runs it with sh
// -c), so every command of a list or a pipe is looked at.
//
// opaque is set when the shell or a program could run other files than
// the words say: a substitution, a redirection, a glob, an escape, a
// variable inside a word, ~user, a newline, a byte that is no printable
// ASCII, an option with a path-like value attached (env -S./x, -C..), a
// shell with no script word (sh reads git's first argument, or its input,
// as its script), and a program outside the project (named bare, absolute
// or through "..") that is not known to run only its words: make reads
// its Makefile, npm its package.json and python3 . its __main__.py, and
// nice or timeout start another program, none of which a word names. A
// program vibe knows passes only with the options of its argRules (ssh
// -o ProxyCommand, vim -c and less -k cut), and git without the words
// that make it run more (gitWords).
//
// A boolean (core.fsmonitor = false) runs nothing. An alias without "!"
// is git's own words, split as git splits them; the programs that
// gpg.program or a tool's path names are started without a shell, so
// their value is one file. A remote on this machine is a repository whose
// hooks a push runs. (git has taken the configuration's own quotes off
// the value already.)
func commandFiles(key, value string) (files []string, opaque bool) {
	if strings.ContainsAny(value, "\x00") {
		return nil, true // no configuration value git reads has one
	}
	c := &command{}
	if strings.ContainsAny(value, "\n\r") || strings.IndexFunc(value, func(r rune) bool { return r != '\t' && (r < 0x20 || r > 0x7e) }) >= 0 {
		c.opaque = true
	}
	switch {
	case strings.TrimSpace(value) == "":
		return nil, false
	case noShell.MatchString(key) || strings.HasPrefix(key, "sendemail.") && strings.HasSuffix(key, ".smtpserver"):
		// Started as it is, spaces and all (an smtpserver with a "/" is
		// a sendmail program; else a host; a gitProxy's " for DOMAIN"
		// is no part of it).
		if !strings.HasSuffix(key, ".smtpserver") || strings.Contains(value, "/") {
			c.program(value)
		}
		if prog, _, ok := strings.Cut(value, " for "); ok && key == "core.gitproxy" {
			c.program(strings.TrimRight(prog, " \t"))
		}
		return c.files, c.opaque
	case key == "diff.tool" || key == "merge.tool" || key == "diff.guitool" || key == "merge.guitool" || strings.HasSuffix(key, ".vcs") ||
		key == "pull.twohead" || key == "pull.octopus":
		// A name git makes a file of: mergetool--lib sources tools/NAME,
		// a remote's vcs is git-remote-NAME and a strategy
		// git-merge-NAME, from PATH.
		v := strings.TrimSpace(value)
		switch {
		case strings.HasSuffix(key, ".vcs"):
			c.pathFiles("git-remote-" + v)
		case strings.HasPrefix(key, "pull."):
			for _, s := range strings.Fields(v) {
				c.opaque = c.opaque || !toolName.MatchString(s)
				c.pathFiles("git-merge-" + s)
			}
			return c.files, c.opaque
		}
		return c.files, c.opaque || !toolName.MatchString(v)
	case strings.HasPrefix(key, "lfs.customtransfer."):
		// .args: the words of .path's program, which may be a shell.
		return nil, true
	}
	v := strings.TrimSpace(value)
	bang := strings.HasPrefix(v, "!")
	v = strings.TrimSpace(strings.TrimPrefix(v, "!"))
	boolean := key == "core.fsmonitor" || strings.HasPrefix(key, "pager.")
	switch {
	case boolean && !bang && slices.Contains([]string{"true", "false", "yes", "no", "on", "off", "1", "0"}, strings.ToLower(v)):
		return nil, false
	case strings.HasPrefix(key, "submodule.") && !bang:
		return nil, false // checkout, rebase, merge, none: git's own
	case strings.HasPrefix(key, "alias.") && !bang || key == "gpg.ssh.defaultkeycommand":
		// git's own subcommand and options (or the key command's
		// program), split by git, not sh: a #, | or $ is a character of
		// a word.
		words, ok := splitAlias(v)
		if !ok {
			return nil, true
		}
		var args []arg
		if key != "gpg.ssh.defaultkeycommand" {
			args = append(args, arg{lit: "git", ok: true})
		}
		for _, w := range words {
			args = append(args, arg{lit: w, ok: true})
		}
		c.run(append(args, arg{variable: true})) // and git's arguments
		return c.files, c.opaque
	}
	// git runs sh -c 'VALUE "$@"' with its arguments (or the value as a
	// program with them, where it has no shell character): a trailing ;
	// or & makes the first argument the program.
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(v+` "$@"`), "")
	if err != nil {
		// Not sh that vibe can read: every word it can split is still
		// recorded, for the user's own files.
		for _, w := range strings.FieldsFunc(v, func(r rune) bool { return strings.ContainsRune(" \t\n;&|<>()`'\"$", r) }) {
			if !strings.HasPrefix(w, "-") && !strings.ContainsAny(w, "*?[]{}\\") {
				c.files = append(c.files, w)
			}
		}
		return c.files, true
	}
	c.credential = strings.HasPrefix(key, "credential.") && !bang
	for _, st := range f.Stmts {
		// A function is one only where its definition surely runs: a
		// statement of its own, at the top (not after && or in a pipe
		// or a subshell).
		if fd, ok := st.Cmd.(*syntax.FuncDecl); ok && !st.Negated && !st.Background && !st.Coprocess && len(st.Redirs) == 0 {
			c.top = append(c.top, fd)
		}
	}
	syntax.Walk(f, c.visit)
	return c.files, c.opaque
}

// command gathers what one configured command runs.
type command struct {
	credential bool // a helper named bare is git-credential-NAME
	funcs      []string
	top        []*syntax.FuncDecl // the functions whose definition surely runs
	files      []string
	opaque     bool
}

// visit looks at one node of the parsed command: a simple command's
// words, and anything that makes the words say less than what runs.
func (c *command) visit(n syntax.Node) bool {
	switch n := n.(type) {
	case *syntax.File, *syntax.Stmt, *syntax.BinaryCmd, *syntax.Block, *syntax.Subshell:
		if st, ok := n.(*syntax.Stmt); ok && len(st.Redirs) > 0 {
			c.opaque = true // <x.sh feeds a file, >x writes one
			for _, r := range st.Redirs {
				if lit, ok := literal(r.Word); ok && lit != "" {
					c.files = append(c.files, lit)
				}
			}
		}
		return true
	case *syntax.CallExpr:
		c.call(n)
		return false
	case *syntax.FuncDecl:
		// f() { git fetch; }; f: the body is looked at here, and a
		// call of f is one of its body.
		if n.Name == nil || n.Name.Value == "" || !slices.Contains(c.top, n) {
			c.opaque = true
			return false
		}
		c.funcs = append(c.funcs, n.Name.Value)
		return true
	case nil:
		return true
	case syntax.Command:
		c.opaque = true // if, while, for, case, a function: not told
		return false
	}
	return true
}

// call looks at one simple command: its assignments, program and words.
func (c *command) call(call *syntax.CallExpr) {
	for _, a := range call.Assigns {
		// X=./m.sh sh: the program may take its files from there.
		c.opaque = true
		if lit, ok := literal(a.Value); ok && lit != "" {
			c.files = append(c.files, lit)
		}
	}
	args := make([]arg, len(call.Args))
	for i, w := range call.Args {
		lit, ok := literal(w)
		args[i] = arg{lit: lit, ok: ok, variable: !ok && gitVariable(w)}
	}
	c.run(args)
}

// arg is one word of a simple command as vibe reads it.
type arg struct {
	lit      string // its value, where sh reads it as it is written (ok)
	ok       bool
	variable bool // else a variable that git sets ($LOCAL, "$@") or a placeholder (%f)
}

func (a arg) gits() bool { return a.variable || a.ok && placeholder.MatchString(a.lit) }

// run looks at one command's program and words.
func (c *command) run(args []arg) {
	if len(args) == 0 {
		return
	}
	if !args[0].ok || args[0].lit == "" {
		c.opaque = true
		return
	}
	prog := args[0].lit
	if c.credential {
		c.credential = false
		if !filepath.IsAbs(prog) {
			// git credential-NAME: git's own helpers (cache, store),
			// and ./x is the file git-credential-./x.
			prog = "git-credential-" + prog
		}
	}
	if slices.Contains(c.funcs, prog) {
		// A function of the command's own: its body was looked at with
		// git's arguments for "$@" and $1, so the call may pass only
		// those (f "$@"), never words of its own (f --upload-pack=x).
		for _, a := range args[1:] {
			c.opaque = c.opaque || !a.gits()
		}
		return
	}
	base, outside := c.program(prog)
	switch {
	case shellProgram.MatchString(base):
		c.shellWords(args[1:])
	case base == "git":
		c.gitWords(args[1:])
	default:
		var r *argRules
		if outside {
			r, _ = rulesFor(base)
		}
		c.words(r, args[1:])
	}
}

// shellWords looks at a shell's words: its options, its script, and the
// script's arguments.
func (c *command) shellWords(args []arg) {
	script, options := false, true
	for _, a := range args {
		switch {
		case !a.ok:
			// sh $LOCAL runs git's file; sh "$x"y, or an argument
			// before the script, is not told.
			c.opaque = c.opaque || !a.variable || !script
			script = true
		case options && a.lit == "--":
			options = false
		case options && !script && strings.HasPrefix(a.lit, "-") && len(a.lit) > 1:
			// -l reads a profile, -i $ENV, -s its input, -c a script.
			c.opaque = c.opaque || !shellOption.MatchString(a.lit)
		case a.gits():
			c.opaque = c.opaque || !script // sh %f runs git's file
			script = true
		default:
			c.word(a.lit)
			script = true
		}
	}
	if !script {
		c.opaque = true // sh reads git's first argument, or its input
	}
}

// gitWords looks at git's words: its options before the subcommand (only
// gitGlobal's pass: -c, -C, --git-dir, --exec-path or --attr-source make
// it take configuration or programs from elsewhere), the subcommand (only
// gitSub's pass: git-NAME from PATH, config, clone, apply...), and its
// words, where an option that is, or abbreviates, one of gitRunsLong, or
// a cluster with a letter of gitRunsShort's, cuts (rebase -fx, grep -iO,
// fetch --upload=).
func (c *command) gitWords(args []arg) {
	sub := ""   // the subcommand, once it has come
	named := "" // the option whose value the next word is (gitNamed)
	positional := 0
	for i, a := range args {
		if named != "" {
			c.named(sub, named, a)
			named = ""
			continue
		}
		if !a.ok {
			// git's files as its words ($LOCAL, "$@"); nothing else, and
			// never before the subcommand.
			c.opaque = c.opaque || !a.variable || sub == ""
			continue
		}
		word := a.lit
		switch {
		case sub == "" && strings.HasPrefix(word, "-"):
			c.opaque = c.opaque || !gitGlobal.MatchString(word)
		case sub == "":
			sub = word
			c.pathFiles("git-" + word) // what PATH finds, for a NAME git lacks
			// config only reads with a read action first (git takes one
			// action, and --no-get undoes one).
			read := word == "config" && i+1 < len(args) && args[i+1].ok && gitConfigRead.MatchString(args[i+1].lit) &&
				!slices.ContainsFunc(args[i+1:], func(a arg) bool { return a.ok && strings.HasPrefix(a.lit, "--no") })
			if !gitSub.MatchString(word) && !read {
				c.opaque = true
			}
			if word == "lfs" {
				r, _ := rulesFor("git-lfs")
				c.words(r, args[i+1:])
				return
			}
		// -- ends nothing here: an option that takes the next word takes
		// -- too (fetch -o -- --upload-pack=x).
		case strings.HasPrefix(word, "--") && len(word) > 2:
			name, val, hasVal := strings.Cut(word[2:], "=")
			if !slices.Contains(gitExact, name) {
				for _, long := range gitRunsLong {
					if strings.HasPrefix(long, name) {
						c.opaque = true // --exec, --exe, --upload=
					}
				}
			}
			for opt := range gitNamed[sub] {
				if strings.HasPrefix(opt, "--"+name) {
					if hasVal {
						c.named(sub, opt, arg{lit: val, ok: true})
					} else {
						named = opt
					}
				}
			}
			if hasVal {
				c.word(val)
			}
		case strings.HasPrefix(word, "-") && len(word) > 1:
			if short := gitRunsShort[sub]; short != "" && strings.ContainsAny(word[1:], short) {
				c.opaque = true // rebase -fx, grep -iO
			}
			if _, ok := gitNamed[sub][word[:2]]; ok {
				if len(word) > 2 {
					c.named(sub, word[:2], arg{lit: word[2:], ok: true})
				} else {
					named = word[:2]
				}
			}
		case a.gits() || word == "":
		default:
			c.word(word)
			// push ./evil.git, remote add x ../r: a repository on this
			// machine, whose hooks a push runs as its own configuration
			// says.
			if gitRepoWords[sub] > positional && localURL(word) && strings.ContainsAny(word, "/.") {
				c.opaque = true
			}
			positional++
		}
	}
	if sub == "" || named != "" {
		c.opaque = true // git's first argument would be the subcommand, or the value
	}
}

// named looks at the value of an option that names a program git runs: a
// merge strategy (git-merge-NAME, from PATH) or a diff or merge tool (a
// script of git's own that git sources by that name).
func (c *command) named(sub, opt string, a arg) {
	if !a.ok || !toolName.MatchString(a.lit) {
		c.opaque = true
		return
	}
	if prefix := gitNamed[sub][opt]; prefix != "" {
		c.pathFiles(prefix + a.lit)
	}
}

// toolName is the name of a merge strategy or a tool: no path.
var toolName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.+-]*$`)

// gitNamed are, by subcommand, the options whose value names a program,
// and the prefix of its file name in PATH.
var gitNamed = func() map[string]map[string]string {
	strategy := map[string]string{"-s": "git-merge-", "--strategy": "git-merge-"}
	tool := map[string]string{"-t": "", "--tool": ""}
	return map[string]map[string]string{"merge": strategy, "pull": strategy, "rebase": strategy, "cherry-pick": strategy,
		"revert": strategy, "difftool": tool, "mergetool": tool}
}()

// gitRepoWords are, by subcommand, how many of its first words may name a
// repository (push's, fetch's; remote add's name and URL).
var gitRepoWords = map[string]int{"push": 1, "fetch": 1, "pull": 1, "ls-remote": 1, "remote": 3}

// gitExact are long options of git's that are not abbreviations of
// gitRunsLong's, though they look so (log --cc, format-patch --to).
var gitExact = []string{"cc", "to"}

// words looks at the words of any other program: by its rules where vibe
// knows it (r), else each word that could be a file is recorded.
func (c *command) words(r *argRules, args []arg) {
	options := true // until --
	valued := ""    // the option whose value the next word is
	lead := 0       // how many of r.lead have come
	subbed := false // r.sub's word has come
	for _, a := range args {
		if valued != "" {
			if a.gits() {
				c.opaque = c.opaque || r.gits == nil || !r.gits.MatchString(valued)
			} else if !a.ok {
				c.opaque = true
			} else {
				c.opaque = c.opaque || r.value != nil && !r.value(valued, a.lit)
				c.word(a.lit)
			}
			valued = ""
			continue
		}
		if !a.ok {
			// A variable as the whole word ($LOCAL, ${REMOTE}) is git's
			// file; anything else is not told.
			c.opaque = c.opaque || !a.variable || r != nil && lead < len(r.lead)
			continue
		}
		word := a.lit
		if r != nil && lead < len(r.lead) {
			c.opaque = c.opaque || word != r.lead[lead]
			lead++
			continue
		}
		switch {
		case options && word == "--":
			options = false
		case options && strings.HasPrefix(word, "-") && len(word) > 1:
			if r != nil {
				valued = c.option(r, word)
				continue
			}
			// An option; one with a value (--config=./x) names it.
			name, val, hasVal := strings.Cut(word, "=")
			if !hasVal {
				if !strings.HasPrefix(name, "--") && len(name) > 2 && strings.ContainsAny(name, "./") {
					c.opaque = true // a value attached: -S./mon
				}
				continue
			}
			c.word(val)
		case r != nil && r.plus && strings.HasPrefix(word, "+"):
			// vim +cmd and less +cmd run a command: only +LINE passes.
			c.opaque = c.opaque || !lineWord.MatchString(word)
		case a.gits() || word == "":
		case r != nil && r.sub != nil && !subbed:
			c.opaque = c.opaque || !r.sub.MatchString(word)
			subbed = true
		case r != nil && !r.words && word != "-":
			c.opaque = true // ssh's host, xxd's output file: not the agent's
		default:
			c.word(word)
		}
	}
	if valued != "" || r != nil && (lead < len(r.lead) || r.sub != nil && !subbed) {
		c.opaque = true // the option would take git's own argument
	}
}

// option looks at an option of a program vibe knows, and returns the
// option whose value the next word is, or "".
func (c *command) option(r *argRules, word string) string {
	if r.flags.MatchString(word) {
		return ""
	}
	if r.valued != nil {
		if r.valued.MatchString(word) {
			return word
		}
		name, val, hasVal := strings.Cut(word, "=")
		if !strings.HasPrefix(word, "--") && len(word) > 2 && r.valued.MatchString(word[:2]) {
			name, val, hasVal = word[:2], word[2:], true // -oPort=22, -i./key
		}
		if hasVal && r.valued.MatchString(name) {
			c.opaque = c.opaque || r.value != nil && !r.value(name, val)
			c.word(val)
			return ""
		}
	}
	c.opaque = true // an option that may run or load more than its words
	return ""
}

// word records a word that could be a file, and an assignment's value
// (-c core.fsmonitor=./x.sh).
func (c *command) word(word string) {
	if word == "" {
		return // no file: git -C "" stays where it is
	}
	c.files = append(c.files, word)
	if _, val, ok := strings.Cut(word, "="); ok && val != "" {
		c.files = append(c.files, val)
	}
}

// program records a command's program and says its name.
// outside is whether it may be outside the project (named bare, absolute
// or through ".."): then it is taken at its words only if vibe knows it
// runs just them (programArgs).
func (c *command) program(prog string) (base string, outside bool) {
	base = filepath.Base(prog)
	if !strings.Contains(prog, "/") {
		c.pathFiles(prog)
		outside = true
	} else {
		c.files = append(c.files, prog)
		outside = filepath.IsAbs(prog) || slices.Contains(strings.Split(prog, "/"), "..")
	}
	if _, known := rulesFor(base); outside && !known {
		c.opaque = true
	}
	return base, outside
}

// pathFiles records where PATH finds a bare program name in the worktree:
// through an entry that is empty or relative.
func (c *command) pathFiles(name string) {
	for _, e := range filepath.SplitList(os.Getenv("PATH")) {
		if !filepath.IsAbs(e) {
			c.files = append(c.files, filepath.Join(e, name))
		}
	}
}

// literal is a word's value when the shell reads it as it is written:
// plain text and quotes, with no expansion, glob, escape or ~.
func literal(w *syntax.Word) (string, bool) {
	if w == nil {
		return "", false
	}
	var b strings.Builder
	for i, p := range w.Parts {
		switch p := p.(type) {
		case *syntax.Lit:
			if strings.ContainsAny(p.Value, "\\*?[]{}$") || i == 0 && strings.HasPrefix(p.Value, "~") && p.Value != "~" && !strings.HasPrefix(p.Value, "~/") {
				return "", false // an escape, a glob, braces, ~user
			}
			b.WriteString(p.Value)
		case *syntax.SglQuoted:
			if p.Dollar {
				return "", false
			}
			b.WriteString(p.Value)
		case *syntax.DblQuoted:
			if p.Dollar {
				return "", false
			}
			for _, q := range p.Parts {
				lit, ok := q.(*syntax.Lit)
				if !ok || strings.Contains(lit.Value, "\\") {
					return "", false
				}
				b.WriteString(lit.Value)
			}
		default:
			return "", false
		}
	}
	if strings.Contains(b.String(), "\n") {
		return "", false // a quoted newline: a name no one means
	}
	return b.String(), true
}

// gitVariable reports whether a word is one variable that git sets and
// nothing else: a tool's file ($LOCAL, ${REMOTE}, "$MERGED") or git's
// arguments ("$@", $1). $0 is the command itself; any other variable (a
// home, $PWD) is the host's.
func gitVariable(w *syntax.Word) bool {
	if len(w.Parts) != 1 {
		return false
	}
	p := w.Parts[0]
	if q, ok := p.(*syntax.DblQuoted); ok && len(q.Parts) == 1 {
		p = q.Parts[0]
	}
	pe, ok := p.(*syntax.ParamExp)
	return ok && pe.Param != nil && gitVariables.MatchString(pe.Param.Value) && pe.Exp == nil && pe.Repl == nil && pe.Index == nil && pe.Slice == nil && !pe.Excl && !pe.Length && !pe.Width && pe.Names == 0
}

// gitVariables are the variables git sets for a command: a merge or diff
// tool's files, and the arguments.
var gitVariables = regexp.MustCompile(`^(LOCAL|REMOTE|MERGED|BASE|BACKUP|[1-9@*])$`)

// noShell is a key whose program git starts without a shell: its whole
// value names one file, spaces and all.
var noShell = regexp.MustCompile(`^(gpg\.program|gpg\.[a-z0-9]+\.program|core\.askpass|core\.gitproxy|(diff|merge)tool\..*\.path|(man|browser)\..*\.path|lfs\.customtransfer\..*\.path)$`)

// placeholder is a word git replaces before the command runs (%f, %A).
var placeholder = regexp.MustCompile(`^%[A-Za-z]$`)

// gitGlobal is an option of git's before the subcommand that takes
// nothing from elsewhere.
var gitGlobal = regexp.MustCompile(`^(-p|--paginate|-P|--no-pager|--no-replace-objects|--literal-pathspecs|--glob-pathspecs` +
	`|--noglob-pathspecs|--icase-pathspecs|--no-optional-locks|--no-advice|--no-lazy-fetch)$`)

// gitSub is a subcommand of git's that runs no program but those the
// walked keys name, and writes no file outside the worktree: not config,
// clone, init, apply or am (a pager's input), checkout-index --prefix,
// archive -o, bundle, send-email, instaweb, daemon, help, submodule,
// bisect, difftool, for-each-repo, filter-branch, nor git-NAME from PATH.
var gitSub = regexp.MustCompile(`^(status|log|diff|show|fetch|pull|push|commit|add|rm|mv|restore|switch|checkout|branch|tag` +
	`|merge|rebase|cherry-pick|revert|reset|stash|remote|ls-files|ls-tree|ls-remote|rev-parse|rev-list|grep|blame|annotate` +
	`|shortlog|describe|reflog|show-ref|for-each-ref|cat-file|diff-tree|diff-index|diff-files|format-patch|range-diff` +
	`|whatchanged|notes|sparse-checkout|gc|prune|fsck|count-objects|var|version|cherry|check-ignore|check-attr|hash-object` +
	`|symbolic-ref|merge-base|name-rev|interpret-trailers|credential|lfs|show-branch|verify-commit|verify-tag|column|difftool|mergetool|clean|update-index)$`)

// gitConfigRead is an action of git config's that only reads (git takes
// one action at a time): the aliases alias, config --get-regexp ^alias.
var gitConfigRead = regexp.MustCompile(`^(--get|--get-all|--get-regexp|--get-urlmatch|--list|-l)$`)

// gitRunsLong are the long options of git's subcommands that run a
// command they are given, take configuration, or write a file they name;
// git takes any abbreviation of one (--exe, --upload=).
var gitRunsLong = []string{"exec", "extcmd", "open-files-in-pager", "upload-pack", "receive-pack", "config", "config-env",
	"output", "to-cmd", "cc-cmd", "header-cmd", "sendmail-cmd", "smtp-server", "httpd", "access-hook",
	"browser", "prefix", "git-dir", "work-tree", "exec-path", "attr-source"}

// gitRunsShort are, by subcommand, the short options that do so.
var gitRunsShort = map[string]string{"rebase": "x", "grep": "O", "ls-remote": "u", "difftool": "x"}

// shellProgram is a shell, whose options may make it read more than its
// words (-l a profile, -i $ENV, -s its input): only shellOption's pass.
var shellProgram = regexp.MustCompile(`^(sh|bash|dash)$`)

// shellOption is a shell option that reads nothing more.
var shellOption = regexp.MustCompile(`^-[euxv]+$`)

// localURL reports whether git takes u for a repository on this machine:
// file://, or a path (no scheme, and no host: before the first "/").
func localURL(u string) bool {
	if fileURL(u) {
		return true
	}
	if strings.Contains(u, "://") {
		return false
	}
	colon, slash := strings.Index(u, ":"), strings.Index(u, "/")
	return colon < 0 || slash >= 0 && slash < colon
}

// fileURL reports whether u is a file: URL, in any case.
func fileURL(u string) bool { return len(u) >= 5 && strings.EqualFold(u[:5], "file:") }

// remoteRepo returns the repository on this machine that a remote's URL
// (remote.NAME.url, .pushurl) or an insteadOf's base names, or "": a push
// there runs its hooks, as its own configuration says. opaque is one that
// cannot be told (a base that is the start of a name, ./ev + il.git).
func remoteRepo(key, value string) (path string, opaque bool) {
	u := value
	if strings.HasPrefix(key, "url.") {
		u = strings.TrimSuffix(strings.TrimSuffix(strings.TrimPrefix(key, "url."), ".insteadof"), ".pushinsteadof")
		if localURL(u) && !strings.HasSuffix(u, "/") {
			return "", true
		}
	}
	if !localURL(u) {
		return "", false
	}
	if fileURL(u) {
		// git takes no host from a file URL, and decodes %XX.
		pu, err := url.Parse(u)
		if err != nil || pu.Path == "" || pu.RawQuery != "" || pu.Fragment != "" {
			return "", true
		}
		u = pu.Path
	}
	if u == "" || strings.ContainsAny(u, "~$\x00\n") {
		return "", true // a home or a variable: not told
	}
	return u, false
}
