package setup

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	incus "github.com/lxc/incus/v6/client"

	"github.com/vibesandbox/vibe/daemon"
)

// subIDLine lets incus (root) map the sandbox user's id to the same host
// id: vibe maps exactly that id into the guest, so files in mounts keep the
// host user's ownership and nothing else reaches the host as itself.
func subIDLine(id int) string { return "root:" + strconv.Itoa(id) + ":1" }

// delegated reports whether root/etc/subuid and subgid hold the line.
func delegated(root string, uid, gid int) bool {
	return hasLine(filepath.Join(root, "etc/subuid"), subIDLine(uid)) && hasLine(filepath.Join(root, "etc/subgid"), subIDLine(gid))
}

func hasLine(path, line string) bool {
	b, _ := os.ReadFile(path)
	for _, l := range strings.Split(string(b), "\n") {
		if strings.TrimSpace(l) == line {
			return true
		}
	}
	return false
}

// delegate appends the lines that are missing.
func delegate(root string, uid, gid int) error {
	for path, id := range map[string]int{filepath.Join(root, "etc/subuid"): uid, filepath.Join(root, "etc/subgid"): gid} {
		if hasLine(path, subIDLine(id)) {
			continue
		}
		// Appended, never rewritten: the other users' ranges stay as
		// they are whatever happens to this write.
		b, _ := os.ReadFile(path)
		line := subIDLine(id) + "\n"
		if len(b) > 0 && b[len(b)-1] != '\n' {
			line = "\n" + line
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
		if err != nil {
			return err
		}
		if _, err := f.WriteString(line); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// connect is the local daemon, or nil when it does not answer.
func connect() incus.InstanceServer {
	c, err := daemon.Connect("")
	if err != nil {
		return nil
	}
	return c
}

// startDaemon starts incusd through systemd where systemd runs the host,
// otherwise by hand in its own session (it must outlive vibe), and waits
// until it answers.
func startDaemon(ctx context.Context, log func(string), restart bool) error {
	if Systemd("/") {
		verb := "start"
		if restart {
			verb = "restart"
		}
		if err := run(ctx, log, "systemctl", "enable", "incus.socket", "incus.service"); err != nil {
			return err
		}
		if err := run(ctx, log, "systemctl", verb, "incus.service"); err != nil {
			return err
		}
		return waitReady(ctx)
	}
	if restart && connect() != nil {
		// incusd reads the delegated ids when it starts.
		_ = run(ctx, log, "incus", "admin", "shutdown", "--timeout", "60")
	}
	bin := incusdPath()
	if bin == "" {
		return errors.New("incusd is not installed")
	}
	if err := os.MkdirAll("/var/log/incus", 0o755); err != nil {
		return err
	}
	if _, err := exec.LookPath("getent"); err == nil && exec.Command("getent", "group", "incus-admin").Run() != nil {
		if err := run(ctx, log, "groupadd", "--system", "incus-admin"); err != nil {
			return err
		}
	}
	cmd := exec.Command(bin, "--group", "incus-admin", "--logfile=/var/log/incus/incus.log")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start incusd: %w", err)
	}
	log(fmt.Sprintf("started %s (pid %d; no systemd here, so it stops with this machine's session)", bin, cmd.Process.Pid))
	_ = cmd.Process.Release()
	return waitReady(ctx)
}

func waitReady(ctx context.Context) error {
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if connect() != nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	return errors.New("incusd did not answer within 90 s; see /var/log/incus/incus.log (or journalctl -u incus)")
}
