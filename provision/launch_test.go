package provision

import (
	"context"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The launcher starts as root with the sandbox user's environment, whose
// PATH leads with ~/.vibe/node-bin, a folder the user owns. Nothing it runs
// while root may be found there: a planted id, rm or setpriv would run as
// root. Here the planted programs write a mark; the launcher runs as an
// unprivileged user (it refuses to go on, since the real id says so).
func TestLaunchFindsNothingOnTheUsersPATH(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "node-bin")
	mark := filepath.Join(dir, "pwned")
	if err := os.Mkdir(bin, 0o777); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"id", "rm", "setpriv", "env"} {
		// The planted id answers 0, as root's would, so the launcher
		// would go on to the next planted program.
		script := "#!/bin/sh\necho \"$0 $*\" >>" + mark + "\n[ \"$1\" = -u ] && [ $# = 1 ] && echo 0\nexit 0\n"
		if err := os.WriteFile(filepath.Join(bin, p), []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The user the launcher runs as must reach the planted programs (the
	// test's own folders are private).
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o777); err != nil {
			t.Fatal(err)
		}
	}
	launch, err := filepath.Abs("launch")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("/bin/bash", launch, "nobody", "-", "--", "true")
	cmd.Env = []string{"HOME=" + dir, "PATH=" + bin + ":/usr/sbin:/usr/bin:/sbin:/bin", "VIBE_USER_PATH=" + bin + ":/usr/bin:/bin"}
	if os.Geteuid() == 0 {
		nobody, err := user.Lookup("nobody")
		if err != nil {
			t.Skip("no user nobody to run the launcher as")
		}
		uid, _ := strconv.Atoi(nobody.Uid)
		gid, _ := strconv.Atoi(nobody.Gid)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	out, err := cmd.CombinedOutput()
	t.Logf("launcher: %v: %s", err, out)
	if b, _ := os.ReadFile(mark); len(b) > 0 {
		t.Fatalf("the launcher ran programs from the user's PATH while it was root:\n%s", b)
	}
	if err == nil || !strings.Contains(string(out), "run as root") {
		t.Fatalf("an unprivileged launcher went on (%v): %s", err, out)
	}
}

// The secrets' entries join the environment only once the launcher is the
// user: exported while root, one the loader or the shell obeys (LD_PRELOAD,
// PATH) ran the user's programs as root. Here an entry names a PATH whose
// planted id would write a mark; the launcher runs as root of a user
// namespace of its own (with /run its own), where it cannot become the
// user in the end, so only its root part is looked at.
func TestLaunchKeepsSecretsFromRoot(t *testing.T) {
	if _, err := exec.LookPath("unshare"); err != nil {
		t.Skip("no unshare")
	}
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	mark := filepath.Join(dir, "pwned")
	os.Mkdir(bin, 0o755)
	for _, p := range []string{"id", "rm", "setpriv"} {
		os.WriteFile(filepath.Join(bin, p), []byte("#!/bin/sh\necho \"$0 $*\" >>"+mark+"\nexit 0\n"), 0o755)
	}
	launch, _ := filepath.Abs("launch")
	// (cgroupfs is root's, which this root is too: hidden, so the
	// launcher makes no cgroup of the machine's.)
	script := `mount -t tmpfs none /sys/fs/cgroup && mount -t tmpfs none /run && mkdir -p /run/vibe/secrets && printf 'PATH=%s\0' "$1" >/run/vibe/secrets/x && ` +
		`env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/bash "$2" nobody /run/vibe/secrets/x -- true; test ! -e /run/vibe/secrets/x`
	out, err := exec.Command("unshare", "-Urm", "bash", "-c", script, "sh", bin, launch).CombinedOutput()
	if b, _ := os.ReadFile(mark); len(b) > 0 {
		t.Fatalf("a secrets entry chose what the launcher ran as root:\n%s", b)
	}
	if strings.Contains(string(out), "unshare: ") {
		t.Skipf("no user namespace here: %s", out)
	}
	if err != nil {
		t.Fatalf("the secrets file was not removed (or the harness failed): %v\n%s", err, out)
	}
}

// While settle works on the mounts (it holds /run/vibe/settle.lock), a
// process of the user's that starts runs where every other is stopped: the
// launcher waits for it. And the user's command holds nothing of the lock,
// which would hold every later settle off.
func TestLaunchWaitsForSettle(t *testing.T) {
	needRoot(t, "the launcher's lock tests")
	launch, _ := filepath.Abs("launch")
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o777)
	order := filepath.Join(dir, "order")
	os.WriteFile(order, nil, 0o666)
	os.Chmod(order, 0o666)
	script := hideCgroup2 + `mount -t tmpfs none /run/vibe && chmod 700 /run/vibe || exit 1
flock -x /run/vibe/settle.lock sh -c 'sleep 1; echo settled >>"$1"' sh "$1" &
sleep 0.3
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/bash "$2" nobody - -- sh -c 'echo launched >>"$1"; ls -l /proc/$$/fd/ >>"$1"' sh "$1"
wait`
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "bash", "-c", "mkdir -p /run/vibe && "+script, "sh", order, launch).CombinedOutput()
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	b, _ := os.ReadFile(order)
	if !strings.HasPrefix(string(b), "settled\nlaunched\n") {
		t.Errorf("the user's command started while settle held the lock:\n%s\n%s", b, out)
	}
	if strings.Contains(string(b), "settle.lock") {
		t.Errorf("the user's command holds settle's lock:\n%s", b)
	}
}

// /run is in memory: after the guest reboots, a port relay's connection
// may come before any settle. The launcher makes settle's lock itself, and
// only root may open it (a user that held it would hold every settle off).
// (From a review.)
func TestLaunchAfterAReboot(t *testing.T) {
	needRoot(t, "the launcher's lock tests")
	launch, _ := filepath.Abs("launch")
	script := hideCgroup2 + `mount -t tmpfs none /run || exit 1
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/bash "$1" nobody - -- true || exit 1
stat -c '%a %U %n' /run/vibe /run/vibe/settle.lock`
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "bash", "-c", script, "sh", launch).CombinedOutput()
	if err != nil {
		t.Fatalf("the launcher failed with no /run/vibe: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "700 root /run/vibe\n") || !strings.Contains(string(out), "600 root /run/vibe/settle.lock\n") {
		t.Errorf("want /run/vibe 700 and its lock 600, root's:\n%s", out)
	}
}

// hideCgroup2, at the head of a script run in a mount namespace of its
// own: the machine's cgroup v2 hierarchy is out of sight, so the launcher
// makes and joins no cgroup of the machine's (and works without one).
const hideCgroup2 = `for m in $(findmnt -rn -t cgroup2 -o TARGET); do umount -l "$m" || exit 1; done
`

// launchInCgroup runs script (the launcher is $1) as root, in a mount and
// a cgroup namespace of its own whose cgroup v2 root is a cgroup of the
// test's, mounted where the guest's would be; /run is its own. It returns
// the output and the test's cgroup.
func launchInCgroup(t *testing.T, script string) (string, string, error) {
	t.Helper()
	needRoot(t, "the launcher's cgroup tests")
	mnt, cg := testCgroup(t)
	if err := os.Mkdir(cg, 0o755); err != nil {
		t.Fatal(err)
	}
	launch, _ := filepath.Abs("launch")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	inner := hideCgroup2 + `mount -t cgroup2 none "$2" && mount -t tmpfs none /run || exit 1
` + script
	cmd := exec.CommandContext(ctx, "bash", "-c", `echo $$ >"$3/cgroup.procs" && exec unshare -C -m --propagation private bash -c "$4" sh "$1" "$2"`, "sh", launch, mnt, cg, inner)
	b, err := cmd.CombinedOutput()
	return string(b), cg, err
}

// Every process of the user's is born in settle's cgroup, vibe-user, which
// the launcher makes when no settle has yet (after a reboot a port relay's
// connection may come first): settle freezes it whole, and one that forks
// and exits to change its pid is held with the rest.
func TestLaunchJoinsSettlesCgroup(t *testing.T) {
	out, cg, err := launchInCgroup(t, `env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/bash "$1" nobody - -- cat /proc/self/cgroup`)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "0::/vibe-user\n") {
		t.Errorf("the user's command is not in settle's cgroup:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(cg, "vibe-user", "cgroup.procs")); err != nil {
		t.Errorf("the launcher did not make settle's cgroup: %v", err)
	}
}

// A settle cut off while it held the user leaves vibe-user frozen: the
// launcher starts nothing into it (the command would hang, frozen) and
// says to start again (the next settle thaws it or ends what it held).
func TestLaunchRefusesAFrozenCgroup(t *testing.T) {
	out, _, err := launchInCgroup(t, `mkdir -p "$2/vibe-user" && echo 1 >"$2/vibe-user/cgroup.freeze" || exit 1
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/bash "$1" nobody - -- echo ran`)
	if err == nil || strings.Contains(out, "ran") || !strings.Contains(out, "cut off") || !strings.Contains(out, "start again") {
		t.Errorf("the launcher started a command into a frozen cgroup, or did not say why: %v\n%s", err, out)
	}
}

// Where the guest has no cgroup v2 (settle stops the user with SIGSTOP
// there), the launcher starts the command as before. (Before, it died
// without a word: findmnt's failure ended it.)
func TestLaunchWithoutCgroup2(t *testing.T) {
	needRoot(t, "the launcher's cgroup tests")
	launch, _ := filepath.Abs("launch")
	script := hideCgroup2 + `mount -t tmpfs none /run || exit 1
env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin /bin/bash "$1" nobody - -- echo ran`
	out, err := exec.Command("unshare", "-m", "--propagation", "private", "bash", "-c", script, "sh", launch).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ran") {
		t.Errorf("the launcher did not start the command without cgroup v2: %v\n%s", err, out)
	}
}
