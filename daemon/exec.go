package daemon

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
	"golang.org/x/term"

	"github.com/vibesandbox/vibe/internal/capped"
)

// Exec is a command to run in an instance.
type Exec struct {
	Command  []string
	UID, GID uint32 // 0 is root
	Cwd      string
	// Env travels in the exec request's body: never in a process's argv,
	// never on the guest's disk.
	Env            map[string]string
	Stdin          io.Reader // nil: an empty stdin
	Stdout, Stderr io.Writer // nil: discarded
	// Terminal allocates a pseudo-terminal in the guest and, when stdin is
	// a terminal, puts it in raw mode and forwards window size changes.
	Terminal bool
}

// Result is what a finished non-interactive command printed and returned.
type Result struct {
	Stdout, Stderr string
	Code           int
}

// RunLimit bounds what Run keeps of each stream (the rest is drained and
// dropped): the guest may print without end, and the host's memory is not
// its to fill.
const RunLimit = 4 << 20

// Run executes e without a terminal, collecting its output (e's own
// Stdout and Stderr are replaced).
func Run(ctx context.Context, c incus.InstanceServer, name string, e Exec) (Result, error) {
	out, errb := &capped.Buffer{Limit: RunLimit}, &capped.Buffer{Limit: RunLimit}
	e.Stdout, e.Stderr, e.Terminal = out, errb, false
	code, err := Execute(ctx, c, name, e)
	return Result{Stdout: out.String(), Stderr: errb.String(), Code: code}, err
}

// drainLimit bounds the wait for a finished command's output streams to
// close: the command has exited, so only buffered output is left.
const drainLimit = 30 * time.Second

// Execute runs e in the instance, streaming its input and output, and
// returns the command's exit code.
func Execute(ctx context.Context, c incus.InstanceServer, name string, e Exec) (int, error) {
	if len(e.Command) == 0 {
		return -1, fmt.Errorf("exec in %s: no command", name)
	}
	if e.Stdin == nil {
		e.Stdin = bytes.NewReader(nil)
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	req := api.InstanceExecPost{
		Command:     e.Command,
		WaitForWS:   true,
		Interactive: e.Terminal,
		Environment: e.Env,
		User:        e.UID,
		Group:       e.GID,
		Cwd:         e.Cwd,
	}
	args := &incus.InstanceExecArgs{Stdin: e.Stdin, Stdout: e.Stdout, Stderr: e.Stderr, DataDone: make(chan bool)}
	if e.Terminal {
		if f, ok := e.Stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			state, err := term.MakeRaw(int(f.Fd()))
			if err != nil {
				return -1, fmt.Errorf("terminal: %w", err)
			}
			defer term.Restore(int(f.Fd()), state)
		}
		if f, ok := e.Stdout.(*os.File); ok {
			if w, h, err := term.GetSize(int(f.Fd())); err == nil {
				req.Width, req.Height = w, h
			}
			args.Control = controlHandler(f)
		}
	}
	op, err := c.ExecInstance(name, req, args)
	if err != nil {
		return -1, fmt.Errorf("exec %s in %s: %w", e.Command[0], name, err)
	}
	if err := op.WaitContext(ctx); err != nil {
		return -1, fmt.Errorf("exec %s in %s: %w", e.Command[0], name, err)
	}
	select {
	case <-args.DataDone:
	case <-ctx.Done():
		return -1, ctx.Err()
	case <-time.After(drainLimit):
		return -1, fmt.Errorf("exec %s in %s: its output streams did not close within %s of its exit", e.Command[0], name, drainLimit)
	}
	code := -1
	if v, ok := op.Get().Metadata["return"].(float64); ok {
		code = int(v)
	}
	return code, nil
}

// controlHandler forwards window resizes and termination signals to the
// command in the guest, as the incus CLI does.
func controlHandler(out *os.File) func(*websocket.Conn) {
	return func(conn *websocket.Conn) {
		ch := make(chan os.Signal, 8)
		signal.Notify(ch, syscall.SIGWINCH, syscall.SIGTERM, syscall.SIGHUP)
		defer signal.Stop(ch)
		defer conn.WriteMessage(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""))
		// The server closes the control socket when the command ends.
		closed := make(chan struct{})
		go func() {
			for {
				if _, _, err := conn.NextReader(); err != nil {
					close(closed)
					return
				}
			}
		}()
		for {
			var sig os.Signal
			select {
			case <-closed:
				return
			case sig = <-ch:
			}
			var msg api.InstanceExecControl
			if sig == syscall.SIGWINCH {
				w, h, err := term.GetSize(int(out.Fd()))
				if err != nil {
					continue
				}
				msg = api.InstanceExecControl{Command: "window-resize", Args: map[string]string{"width": strconv.Itoa(w), "height": strconv.Itoa(h)}}
			} else {
				msg = api.InstanceExecControl{Command: "signal", Signal: int(sig.(syscall.Signal))}
			}
			if err := conn.WriteJSON(msg); err != nil {
				return
			}
		}
	}
}

// SyncWriter serialises writes: incus copies a command's stdout and stderr
// from two goroutines, so one buffer for both needs a lock.
type SyncWriter struct {
	mu sync.Mutex
	W  io.Writer
}

func (s *SyncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.W.Write(p)
}
