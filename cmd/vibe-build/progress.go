package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"golang.org/x/term"

	"github.com/vibesandbox/vibe/internal/safetext"
)

// progress prints a bake's phases and the builder's log: on a terminal the
// log runs through one live status line; elsewhere every line is printed.
type progress struct {
	mu      sync.Mutex
	w       io.Writer
	tty     bool
	width   int
	start   time.Time
	phase   string
	pending bool // a status line is on screen
}

func newProgress(w *os.File) *progress {
	p := &progress{w: w, start: time.Now()}
	if term.IsTerminal(int(w.Fd())) {
		p.tty = true
		if width, _, err := term.GetSize(int(w.Fd())); err == nil && width > 20 {
			p.width = width
		} else {
			p.width = 80
		}
	}
	return p
}

func (p *progress) elapsed() string {
	return fmt.Sprintf("%5.1fs", time.Since(p.start).Seconds())
}

func (p *progress) clear() {
	if p.pending {
		fmt.Fprint(p.w, "\r\x1b[K")
		p.pending = false
	}
}

func (p *progress) Phase(name string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
	p.phase = name
	fmt.Fprintf(p.w, "%s ▸ %s\n", p.elapsed(), name)
}

func (p *progress) Log(line string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	// The builder's log is anyone's text (every package script writes it).
	line = safetext.Text(strings.TrimRight(line, "\r"))
	if !p.tty {
		fmt.Fprintf(p.w, "        | %s\n", line)
		return
	}
	p.status(line)
}

func (p *progress) Status(text string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.tty {
		return // transfer percentages are noise in a log
	}
	p.status(text)
}

func (p *progress) status(text string) {
	line := fmt.Sprintf("%s   %s: %s", p.elapsed(), p.phase, safetext.Line(strings.ReplaceAll(text, "\t", " ")))
	if r := []rune(line); len(r) > p.width-1 {
		line = string(r[:p.width-2]) + "…"
	}
	fmt.Fprint(p.w, "\r\x1b[K"+line)
	p.pending = true
}

func (p *progress) Done() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.clear()
}
