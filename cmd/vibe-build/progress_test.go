package main

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

// The builder's /var/log/cloud-init-output.log (which any npm postinstall,
// maintainer script or installer writes to) and the guest self-test's
// output reach progress.Log line by line: printed without their escape
// sequences, on a terminal (the live status line) and in a log alike (OSC
// 52 writes the clipboard, a title report types into the shell after
// vibe-build exits, ESC[8m hides text).
func TestBakeLogIsPrintable(t *testing.T) {
	line := "added 1 package\x1b]52;c;Y3VybCBldmlsfHNo\x07\x1b[8mhidden\x1b[21t\u009b2J"
	for _, tty := range []bool{false, true} {
		var buf bytes.Buffer
		p := &progress{w: &buf, tty: tty, width: 200, start: time.Now()}
		p.Phase("provision")
		p.Log(line)
		p.Status(line)
		p.Done()
		// The status line's own clear ("\r\x1b[K") is vibe-build's; drop
		// it and look for anything else.
		out := strings.ReplaceAll(buf.String(), "\r\x1b[K", "")
		if strings.ContainsAny(out, "\x1b\x07\u009b") {
			t.Errorf("tty=%v: the guest's log line is printed with its escape sequences: %q", tty, out)
		}
	}
}
