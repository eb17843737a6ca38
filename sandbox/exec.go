package sandbox

import (
	"context"
	"os"

	"github.com/vibesandbox/vibe/daemon"
)

// Run executes e in the sandbox, on the process's own standard streams
// where e leaves them unset, and returns the command's exit code.
func (m *Manager) Run(ctx context.Context, name string, e daemon.Exec) (int, error) {
	if e.Stdin == nil {
		e.Stdin = os.Stdin
	}
	if e.Stdout == nil {
		e.Stdout = os.Stdout
	}
	if e.Stderr == nil {
		e.Stderr = os.Stderr
	}
	return daemon.Execute(ctx, m.C, name, e)
}
