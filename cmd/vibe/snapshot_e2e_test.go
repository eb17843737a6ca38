package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vibesandbox/vibe/sandbox"
)

// swapper is a process the agent leaves running: it swaps the folders
// named by its arguments (one holding a nested repository, the other a
// link to an empty folder) back and forth, for ever.
const swapper = `import ctypes, sys, time
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
while True:
    for _ in range(200):
        libc.renameat2(-100, a, -100, b, 2)  # RENAME_EXCHANGE
    time.sleep(0.0001)
`

// A repository the agent makes in the project during a session, while a
// process it leaves running swaps the folder that holds it with a link:
// the snapshot after the session lists the worktree with the sandbox held
// still (frozen), so it finds the repository every time. A listing the
// swapper raced missed it, uncut, about one time in six.
func TestE2ESnapshotHoldsTheSandbox(t *testing.T) {
	w := newWorld(t)
	w.must("up")
	w.must("exec", "-p", "app", "--", "bash", "-c", "for i in $(seq 0 599); do mkdir -p a/$i/x; done; mkdir empty")
	snapPath := filepath.Join(w.dir, "data", "vibe", "state", w.name, "host-run.json")
	const rounds = 12
	missed := 0
	var took []time.Duration
	for i := 0; i < rounds; i++ {
		d, e := fmt.Sprintf("d%d", i), fmt.Sprintf("e%d", i)
		// The last round's swapper goes first: only one runs at a time.
		script := fmt.Sprintf(`pkill -f 'libc[.]renameat2' || true
set -e
mkdir -p %[1]s/sub/.git/hooks
printf '[core]\n\tfsmonitor = ./x\n' >%[1]s/sub/.git/config
ln -s empty %[2]s
setsid python3 -c "$(cat)" %[1]s %[2]s </dev/null >/dev/null 2>&1 &
sleep 0.3`, d, e)
		start := time.Now()
		w.vibeIn(w.dir, swapper, "exec", "-p", "app", "--", "bash", "-c", script)
		took = append(took, time.Since(start).Round(time.Millisecond))
		b, err := os.ReadFile(snapPath)
		if err != nil {
			t.Fatalf("the snapshot vibe keeps: %v", err)
		}
		var snap sandbox.Snapshot
		if err := json.Unmarshal(b, &snap); err != nil {
			t.Fatal(err)
		}
		found := false
		for k := range snap {
			for _, top := range []string{d, e} {
				if strings.HasSuffix(k, "/"+top+"/sub/.git/config") {
					found = true
				}
			}
		}
		if !found && len(snap.Truncated()) == 0 {
			missed++
		}
	}
	// A sandbox left frozen (a vibe that ended while it held it) is
	// thawed by the next command.
	if out, err := exec.Command("incus", "pause", w.instance()).CombinedOutput(); err != nil {
		t.Fatalf("incus pause: %v %s", err, out)
	}
	if out := w.must("exec", "--", "echo", "thawed"); !strings.Contains(out, "thawed") {
		t.Errorf("exec in a sandbox left frozen: %q", out)
	}
	// The swappers go with the sandbox (the world's clean-up).
	t.Logf("missed, uncut, in %d of %d sessions; each session took %v", missed, rounds, took)
	if missed > 0 {
		t.Errorf("a nested repository made while a left-running process swapped its folder: missed by %d of %d snapshots", missed, rounds)
	}
}
