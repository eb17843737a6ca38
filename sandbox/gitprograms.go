package sandbox

import (
	"regexp"
	"strings"
)

// argRules says which words a program outside the project may be given in
// an agent-written command and still run only what its words name. An
// option outside them cuts: most programs have one that runs a command or
// loads code (ssh -o ProxyCommand, -F; vim -c, -u, -S, +cmd; less -k;
// bat --pager; emacs -l, --eval; exiftool -if, -config; nano -s; gpg
// --options) or writes a file the host later runs (less -o, kdiff3 -o
// FILE, xxd -r IN OUT, ssh's known hosts).
type argRules struct {
	flags  *regexp.Regexp // options that take no value
	valued *regexp.Regexp // options whose value is the next word, or after =
	// value says whether a literal value of a valued option is harmless
	// (then it is recorded); nil takes any.
	value func(opt, val string) bool
	// gits are the valued options whose value may be a file of git's
	// ($MERGED, %A); no other option takes a variable (vim -u "$1" would
	// load git's first argument, ./2 for core.fsmonitor).
	gits *regexp.Regexp
	// sub, where set, is what its first word must be (git-lfs's
	// subcommands without merge-driver --program).
	sub   *regexp.Regexp
	words bool // its other words are files it only reads: recorded
	plus  bool // a +word is a command (vim, less): only +LINE passes
	// lead are the words it must start with (gh auth git-credential).
	lead []string
}

var (
	anyFlag   = regexp.MustCompile(`^--?[A-Za-z0-9][A-Za-z0-9-]*$`)
	noOption  = regexp.MustCompile(`^$`)
	lineWord  = regexp.MustCompile(`^\+[0-9]*$`)
	label     = regexp.MustCompile(`^(-L|--label|--L[123]|-title[123])$`)
	digits    = regexp.MustCompile(`^[0-9]+$`)
	anyLabel  = func(opt, _ string) bool { return label.MatchString(opt) }
	noneValue = func(_, val string) bool { return val == "NONE" }
	number    = func(_, val string) bool { return digits.MatchString(val) }
)

var (
	pager = &argRules{
		flags: regexp.MustCompile(`^-[FRXSeEiIKMmNnqQrsSwWXcdfgGJLu~]+$|^-x[0-9,]+$|^-[jbhyz]-?[0-9]+$` +
			`|^--(quit-if-one-screen|RAW-CONTROL-CHARS|raw-control-chars|no-init|chop-long-lines|ignore-case|IGNORE-CASE|quiet|QUIET|silent` +
			`|mouse|LONG-PROMPT|long-prompt|line-numbers|LINE-NUMBERS|squeeze-blank-lines|quit-at-eof|QUIT-AT-EOF|no-lessopen` +
			`|status-column|tabs=[0-9,]+|redraw-on-quit|wordwrap|use-color|quit-on-intr|no-keypad|incsearch)$`),
		words: true, plus: true,
	}
	vim = &argRules{
		flags:  regexp.MustCompile(`^-[RnNbdZMfAHpOo0-9]+$|^--(nofork|noplugin|clean|not-a-term)$`),
		valued: regexp.MustCompile(`^-[uUi]$`), value: noneValue,
		words: true, plus: true,
	}
	emacs = &argRules{
		flags: regexp.MustCompile(`^(-nw|-q|-Q|--no-init-file|--quick|-t|--tty|-c|--create-frame|-n|--no-wait` +
			`|--no-site-file|--no-splash|-r|--reuse-frame)$`),
		valued: regexp.MustCompile(`^(-a|--alternate-editor)$`),
		value:  func(_, val string) bool { return val == "" },
		words:  true, plus: true,
	}
	termEditor = &argRules{flags: regexp.MustCompile(`^-[wlLmxcKRUiIEv]+$`), words: true, plus: true}
	bareEditor = &argRules{flags: noOption, words: true, plus: true}
	guiEditor  = &argRules{
		flags: regexp.MustCompile(`^(-w|--wait|-n|--new-window|-r|--reuse-window|-g|--goto|-d|--diff|-m|--merge` +
			`|-s|--standalone|-b|--block|--background|--launch-or-new-window)$`),
		words: true, plus: true,
	}
	// A diff tool's files are git's ($LOCAL, $MERGED); a word of the
	// agent's would be read or, as the output, written.
	diffTool = &argRules{
		flags: regexp.MustCompile(`^(-[naMb]|--(auto-merge|newtab|diff|merge|auto|base|skip-unchanged|wait|ignore-comments` +
			`|display=[a-z-]+|color=[a-z]+|background=[a-z]+|syntax-highlight=[a-z]+|strip-cr=[a-z]+|tab-width=[0-9]+|width=[0-9]+|context=[0-9]+))$`),
		valued: regexp.MustCompile(`^(-L|--label|-o|--output|--L[123]|-title[123]|-merge|-mergeoutput|-base|-ancestor|-left|-right)$`),
		value:  anyLabel,
		gits:   regexp.MustCompile(`^(-o|--output|-merge|-mergeoutput|-base|-ancestor|-left|-right)$`),
	}
	anyWords  = &argRules{flags: anyFlag, words: true}
	dumpWords = &argRules{flags: regexp.MustCompile(`^-[A-Za-z0-9]+$|^--[a-z-]+(=[A-Za-z0-9-]+)?$`), words: true}
	signer    = &argRules{
		flags: regexp.MustCompile(`^-[absqvd]+$|^--(batch|no-tty|verify|decrypt|armor|detach-sign|sign|clearsign|quiet|with-colons|yes` +
			`|status-fd=[0-9]+|keyid-format=[a-z0-9]+|pinentry-mode=[a-z]+|local-user=[^/]+|default-key=[^/]+)$`),
		valued: regexp.MustCompile(`^(-u|--local-user|--status-fd|--keyid-format|--default-key)$`),
		value:  func(_, val string) bool { return !strings.Contains(val, "/") },
		words:  true,
	}
	credentialHelper = &argRules{flags: regexp.MustCompile(`^--timeout=[0-9]+$`)}
	ghCredential     = &argRules{flags: noOption, lead: []string{"auth", "git-credential"}}
)

// programArgs are the programs outside the project that an agent-written
// command may name, by their words (see plainProgram).
var programArgs = map[string]*argRules{
	"less": pager, "more": pager,
	"cat": anyWords, "echo": anyWords, "true": anyWords, "false": anyWords,
	"printf":        {flags: noOption, words: true}, // bash's printf -v 'a[$(x)]' runs x
	"grep":          anyWords,                       // GNU grep runs nothing (ripgrep's --pre would)
	"bat":           {flags: regexp.MustCompile(`^-[pPnAu]+$|^--(plain|number|diff|paging=(never|always|auto)|style=[a-z,-]+|color=(always|never|auto)|decorations=(always|never|auto)|language=[A-Za-z0-9+#._-]+|theme=[A-Za-z0-9 _.-]+|wrap=(auto|never|character)|tabs=[0-9]+)$`), valued: regexp.MustCompile(`^(-l|--language|--file-name)$`), words: true},
	"delta":         {flags: regexp.MustCompile(`^-[nsw]+$|^--(side-by-side|line-numbers|dark|light|navigate|color-only|hyperlinks|keep-plus-minus-markers|relative-paths|raw|no-gitconfig|diff-so-fancy|paging=(never|always|auto)|features=[A-Za-z0-9 _-]*|syntax-theme=[A-Za-z0-9 _.-]+|width=[0-9a-z-]+|tabs=[0-9]+)$`), words: true},
	"diff-so-fancy": {flags: regexp.MustCompile(`^--(patch|colors)$`), words: true},
	"vi":            vim, "vim": vim, "nvim": vim, "gvim": vim, "view": vim, "vimdiff": vim, "nvimdiff": vim,
	"emacs": emacs, "emacsclient": emacs,
	"nano": termEditor, "pico": termEditor,
	"micro": bareEditor, "joe": bareEditor, "ne": bareEditor, "kak": bareEditor,
	"gedit": guiEditor, "kate": guiEditor, "code": guiEditor, "code-insiders": guiEditor, "codium": guiEditor,
	"cursor": guiEditor, "subl": guiEditor, "mate": guiEditor,
	"meld": diffTool, "kdiff3": diffTool, "opendiff": diffTool, "bcompare": diffTool, "bcomp": diffTool,
	"p4merge": diffTool, "smerge": {valued: diffTool.valued, value: anyLabel, gits: diffTool.gits, flags: noOption, sub: regexp.MustCompile(`^mergetool$`)}, "tkdiff": diffTool, "kompare": diffTool, "difft": diffTool,
	"gpg": signer, "gpg2": signer, "gpgsm": signer,
	"ssh": {
		flags:  regexp.MustCompile(`^-[46aCfGgkMNnqsTtVvx]+$`), // not -A, -X, -Y: the user's agent or display
		valued: regexp.MustCompile(`^-[iplo]$`),
		value: func(opt, val string) bool {
			return opt != "-o" || sshOption.MatchString(val)
		},
	},
	"ssh-keygen":  {flags: regexp.MustCompile(`^-[lLqv]+$`), valued: regexp.MustCompile(`^-[YfnIsOE]$`), words: true},
	"ssh-add":     {flags: regexp.MustCompile(`^-[lLqv]+$`)},
	"op-ssh-sign": {flags: noOption, words: true},
	"git-lfs": {flags: anyFlag, words: true, sub: regexp.MustCompile(`^(filter-process|smudge|clean|pre-push|post-checkout|post-commit` +
		`|post-merge|reference-transaction|pull|push|fetch|checkout|status|ls-files|track|untrack|lock|unlock|locks|env|version|prune|logs|fsck|pointer)$`)},
	"git-crypt":            anyWords,
	"gh":                   ghCredential,
	"glab":                 ghCredential,
	"exiftool":             {flags: regexp.MustCompile(`^-(s+|S|G[0-9:]*|a|u|n|b|e|x|q+|j|X|h|H|D|g[0-9:]*|l|m|L|E|sort|short)$`), words: true},
	"xxd":                  {flags: regexp.MustCompile(`^-[pubiEeC]+$|^-(c|g|l|s|o)[0-9]+$`), valued: regexp.MustCompile(`^-[cglso]$`), value: number},
	"hexdump":              {flags: regexp.MustCompile(`^-[bcCdovx]+$|^-[ns][0-9]+$`), valued: regexp.MustCompile(`^-[ns]$`), value: number, words: true},
	"od":                   dumpWords,
	"strings":              dumpWords,
	"pdftotext":            {flags: regexp.MustCompile(`^-(layout|raw|q|nopgbrk|htmlmeta|bbox|nodiag|cropbox|simple|table|lineprinter|tsv|bbox-layout)$`), valued: regexp.MustCompile(`^-(enc|f|l|eol|fixed|r|x|y|W|H)$`)},
	"sh":                   nil, // shellProgram's words
	"bash":                 nil,
	"dash":                 nil,
	"git":                  nil, // gitWords
	"git-credential-cache": credentialHelper, "git-credential-store": credentialHelper,
	"git-credential-osxkeychain": credentialHelper, "git-credential-libsecret": credentialHelper,
	"git-credential-wincred": credentialHelper, "git-credential-gnome-keyring": credentialHelper,
}

// sshOption is an ssh -o that runs and writes nothing more (no
// ProxyCommand, LocalCommand, KnownHostsCommand, UserKnownHostsFile,
// ControlPath, Include, ForwardAgent).
var sshOption = regexp.MustCompile(`(?i)^(IdentitiesOnly|IdentityFile|Port|User|StrictHostKeyChecking|BatchMode|ConnectTimeout` +
	`|ConnectionAttempts|ServerAliveInterval|ServerAliveCountMax|LogLevel|PreferredAuthentications|PubkeyAuthentication` +
	`|PasswordAuthentication|HostKeyAlgorithms|PubkeyAcceptedKeyTypes|PubkeyAcceptedAlgorithms|Compression|AddKeysToAgent` +
	`|TCPKeepAlive|CheckHostIP|IPQoS|RequestTTY)(=|\s+)[^\s=]+$|^(?i:UserKnownHostsFile)(=|\s+)/dev/null$`)

// rulesFor returns a program's rules and whether vibe knows it.
func rulesFor(base string) (*argRules, bool) {
	r, ok := programArgs[base]
	return r, ok
}

// splitAlias splits an alias without "!" as git does (split_cmdline):
// at blanks, with quotes and backslashes, and nothing else special (no
// comment, pipe or variable). ok is false where git refuses it.
func splitAlias(v string) (words []string, ok bool) {
	var b strings.Builder
	var quote byte
	in := false
	for i := 0; i < len(v); i++ {
		ch := v[i]
		switch {
		case quote == 0 && (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\v' || ch == '\f'):
			if in {
				words = append(words, b.String())
				b.Reset()
				in = false
			}
		case quote == 0 && (ch == '\'' || ch == '"'):
			quote, in = ch, true
		case ch == quote:
			quote = 0
		default:
			if ch == '\\' && quote != '\'' {
				i++
				if i == len(v) {
					return nil, false
				}
				ch = v[i]
			}
			b.WriteByte(ch)
			in = true
		}
	}
	if quote != 0 {
		return nil, false
	}
	if in {
		words = append(words, b.String())
	}
	return words, true
}
