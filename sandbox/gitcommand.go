package sandbox

import (
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
// nice or timeout start another program, none of which a word names.
//
// A boolean (core.fsmonitor = false) runs nothing. An alias without "!"
// is git's own words; the programs that git.program (gpg.program) names
// are started without a shell, so their value is one file. (git has taken
// the configuration's own quotes off the value already.)
func commandFiles(key, value string) (files []string, opaque bool) {
	v := strings.TrimSpace(value)
	bang := strings.HasPrefix(v, "!")
	v = strings.TrimSpace(strings.TrimPrefix(v, "!"))
	switch strings.ToLower(v) {
	case "true", "false", "yes", "no", "on", "off", "1", "0", "":
		return nil, false
	}
	if strings.ContainsAny(v, "\x00") {
		return nil, true // no configuration value git reads has one
	}
	c := &command{key: key}
	if strings.ContainsAny(v, "\n\r") || strings.IndexFunc(v, func(r rune) bool { return r != '\t' && (r < 0x20 || r > 0x7e) }) >= 0 {
		c.opaque = true
	}
	if noShell.MatchString(key) {
		c.program(v)
		return c.files, c.opaque
	}
	if strings.HasPrefix(key, "alias.") && !bang {
		v = "git " + v // git's own subcommand and options
	}
	f, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(v), "")
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
	syntax.Walk(f, c.visit)
	return c.files, c.opaque
}

// command gathers what one configured command runs.
type command struct {
	key        string
	credential bool // a helper named bare is git-credential-NAME
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
	if len(call.Args) == 0 {
		return
	}
	prog, ok := literal(call.Args[0])
	if !ok || prog == "" {
		c.opaque = true
		return
	}
	if c.credential {
		c.credential = false
		if !strings.Contains(prog, "/") {
			prog = "git-credential-" + prog // git's own helpers: cache, store
		}
	}
	base := c.program(prog)
	shell, script := shellProgram.MatchString(base), false
	sub := base == "git" // git's first word is a subcommand, no file
	value := false       // the next word is the value of git's option
	options := true      // until --
	for _, w := range call.Args[1:] {
		word, ok := literal(w)
		if !ok {
			// A variable as the whole word ($LOCAL, ${REMOTE}) is git's
			// temporary file; anything else is not told.
			c.opaque = c.opaque || !wholeVariable(w) || shell && !script
			script = true
			continue
		}
		if base == "git" && gitRuns.MatchString(word) {
			c.opaque = true // git submodule foreach, rebase --exec, ...
		}
		if options && word == "--" {
			options = false
			continue
		}
		if value {
			// The value of git's -c, -C, --git-dir...: a word, no
			// subcommand.
			value = false
			c.word(word)
			continue
		}
		if options && strings.HasPrefix(word, "-") && len(word) > 1 {
			// An option; one with a value (--config=./x) names it. A
			// shell's options other than shellOption's may make it read
			// more (-l a profile, -i $ENV, -s its input, -c a script).
			name, val, hasVal := strings.Cut(word, "=")
			if shell && !shellOption.MatchString(word) {
				c.opaque = true
			}
			if !hasVal {
				value = sub && gitValued.MatchString(name)
				if !strings.HasPrefix(name, "--") && len(name) > 2 && strings.ContainsAny(name, "./") {
					c.opaque = true // a value attached: -S./mon, -C..
				}
				continue
			}
			word = val
		}
		switch {
		case word == "":
		case placeholder.MatchString(word):
			// git's placeholder (%f, %A): a file of git's choosing,
			// which a shell would run.
			c.opaque = c.opaque || shell && !script
		case sub:
			sub = false
		default:
			c.word(word)
		}
		script = true
	}
	if shell && !script {
		c.opaque = true // sh reads git's first argument, or its input
	}
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
func (c *command) program(prog string) string {
	base := filepath.Base(prog)
	if !strings.Contains(prog, "/") {
		// Looked up in PATH: in the worktree through an entry that is
		// empty or relative.
		for _, e := range filepath.SplitList(os.Getenv("PATH")) {
			if !filepath.IsAbs(e) {
				c.files = append(c.files, filepath.Join(e, prog))
			}
		}
		c.opaque = c.opaque || !plainProgram.MatchString(prog)
		return base
	}
	if filepath.IsAbs(prog) || slices.Contains(strings.Split(prog, "/"), "..") {
		// Perhaps outside the project: taken at its words only if it
		// runs just them.
		c.opaque = c.opaque || !plainProgram.MatchString(base)
	}
	c.files = append(c.files, prog)
	return base
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

// wholeVariable reports whether a word is one variable and nothing else
// ($LOCAL, ${REMOTE}, "$MERGED"): git's tools name their files so.
func wholeVariable(w *syntax.Word) bool {
	if len(w.Parts) != 1 {
		return false
	}
	p := w.Parts[0]
	if q, ok := p.(*syntax.DblQuoted); ok && len(q.Parts) == 1 {
		p = q.Parts[0]
	}
	pe, ok := p.(*syntax.ParamExp)
	return ok && pe.Param != nil && pe.Exp == nil && pe.Repl == nil && pe.Index == nil && pe.Slice == nil && !pe.Excl && !pe.Length && !pe.Width && pe.Names == 0
}

// noShell is a key whose program git starts without a shell: its whole
// value names one file, spaces and all.
var noShell = regexp.MustCompile(`^(gpg\.program|gpg\.[a-z0-9]+\.program|core\.askpass)$`)

// placeholder is a word git replaces before the command runs (%f, %A).
var placeholder = regexp.MustCompile(`^%[A-Za-z]$`)

// plainProgram is a program that runs no file of the folder git runs it
// in other than those its words name: the shells (shellProgram), git
// (but for gitRuns), and the pagers, editors, diff tools, signers and
// credential helpers that configurations name. Any other program outside
// the project may (make, npm, cargo, pytest, nice make), so an
// agent-written command naming one is cut. Their own configuration is in
// the home, not the project: vim's exrc and emacs's unsafe local
// variables are off or asked for.
var plainProgram = regexp.MustCompile(`^(sh|bash|dash|git|git-lfs|git-crypt|git-credential-[a-z0-9-]+|gh|glab` +
	`|less|more|most|cat|bat|batcat|delta|diff-so-fancy|lv|echo|printf|true|false` +
	`|vi|vim|nvim|gvim|view|nano|pico|emacs|emacsclient|code|code-insiders|codium|cursor|subl|mate|micro|hx|kak|gedit|kate|zed|joe|ne` +
	`|meld|kdiff3|vimdiff|nvimdiff|opendiff|bcompare|bcomp|p4merge|tkdiff|kompare|difft` +
	`|gpg|gpg2|gpgsm|ssh|op-ssh-sign|exiftool|xxd|hexdump|od|strings|pdftotext)$`)

// gitRuns is a word that makes git run a command it names, or take
// configuration of its own (-c alias.x=!./mon) or another repository's
// (-C nested): what no key walked here says.
var gitRuns = regexp.MustCompile(`^(foreach|run|filter-branch|-x|--exec(=.*)?|--extcmd(=.*)?|-O.*|--open-files-in-pager(=.*)?|--upload-pack(=.*)?|--receive-pack(=.*)?|-u|--exec-path(=.*)?|-c.*|--config-env(=.*)?|-C.*|--git-dir(=.*)?|--work-tree(=.*)?|--namespace(=.*)?)$`)

// gitValued is an option of git's that takes the next word as its value.
var gitValued = regexp.MustCompile(`^(-c|-C|--git-dir|--work-tree|--namespace|--config-env)$`)

// shellProgram is a shell, whose options may make it read more than its
// words (-l a profile, -i $ENV, -s its input): only shellOption's pass.
var shellProgram = regexp.MustCompile(`^(sh|bash|dash)$`)

// shellOption is a shell option that reads nothing more.
var shellOption = regexp.MustCompile(`^-[euxv]+$`)
