package provision

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// settleLib runs script in bash after sourcing settle's functions (for the
// user nobody, with subuid as its subordinate ids file), in a mount
// namespace of its own with a tmpfs at $T, and returns its output.
func settleLib(t *testing.T, subuid, script string) string {
	t.Helper()
	out, err := settleLibRun(t, subuid, script)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	return out
}

// needRoot skips a test that what needs root for, or fails it under
// VIBE_TEST_STRICT=1.
func needRoot(t *testing.T, what string) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("VIBE_TEST_STRICT") == "1" {
			t.Fatal(what + " need root (VIBE_TEST_STRICT=1)")
		}
		t.Skip(what + " need root")
	}
}

// settleLibRun is settleLib, with the script's failure returned. Its
// settle stops processes with SIGSTOP, as where the guest has no cgroup v2
// freezer; settleLibCgroup's use one.
func settleLibRun(t *testing.T, subuid, script string) (string, error) {
	t.Helper()
	return settleLibEnv(t, subuid, "none", script)
}

func settleLibEnv(t *testing.T, subuid, cgroup, script string) (string, error) {
	t.Helper()
	needRoot(t, "settle's functions")
	settle, _ := filepath.Abs("settle")
	T := t.TempDir()
	cmd := exec.Command("unshare", "-m", "--propagation", "private", "bash", "-c",
		`mount -t tmpfs tmpfs "$T" || exit 1; VIBE_SETTLE_LIBRARY=1 source "$SETTLE" - "" nobody - || exit 1; `+script)
	cmd.Env = append(os.Environ(), "T="+T, "SETTLE="+settle, "VIBE_SUBUID="+subuid, "VIBE_CGROUP="+cgroup)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// A process running as one of the user's subordinate ids (in a user
// namespace of its own, with its capabilities there) is the user's: settle
// stops it, ends it when it holds a protected path, and counts it. (From a
// review: only the user's own uid was looked at.)
func TestSettleSeesSubordinateIDs(t *testing.T) {
	// An id nothing on this machine runs as.
	sub := 0
	for u := 3_800_000_000 + os.Getpid()%1000; sub == 0; u++ {
		if out, _ := exec.Command("ps", "-L", "-U", strconv.Itoa(u), "-o", "pid=").Output(); len(strings.TrimSpace(string(out))) == 0 {
			sub = u
		}
	}
	c := exec.Command("sleep", "600")
	c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Credential: &syscall.Credential{Uid: uint32(sub), Gid: uint32(sub)}}
	if os.Geteuid() == 0 {
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		defer c.Wait()
		defer c.Process.Kill()
	}
	file := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(file, []byte("someone:100000:65536\nnobody:"+strconv.Itoa(sub)+":1\n"), 0o644)
	out := settleLib(t, file, `users`)
	if !strings.Contains("\n"+out, "\n"+strconv.Itoa(c.Process.Pid)+"\n") {
		t.Errorf("a process of the user's subordinate id %d is not among its processes:\n%s", sub, out)
	}
}

// renew: a host-run path inside a folder protected already (a submodule's
// hooks/config after its hooks) is left to that folder's copy, and a path
// past the bound stops everything, whatever its name holds. (From a review:
// the first failed every later session, the second passed a 100 MiB copy
// when the name held a newline.)
func TestSettleRenew(t *testing.T) {
	out := settleLib(t, "/nonexistent", `
ran_before=1 uid=65534 gid=65534
p="$T/proj"; mkdir -p "$p/.git/modules/x/hooks" "$p/.git/modules/a
b/hooks"; echo a >"$p/.git/modules/x/hooks/config"
truncate -s 100M "$p/.git/modules/a
b/hooks/big"
chown -R 65534:65534 "$p"
mount --bind "$p" "$p"; mount --make-rprivate "$p"
protect "$p/.git/modules/x/hooks"; echo "outer=$?"
protect "$p/.git/modules/x/hooks/config"; echo "inner=$?"
renew "$p/.git/modules/a
b/hooks" 2>/dev/null; echo "large=$?"
`)
	for _, want := range []string{"outer=0", "inner=0", "large=1"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %s:\n%s", want, out)
		}
	}
}

// A host-run path root cannot look at (a FUSE mount of the user's over it,
// which answers root with EACCES; here a loop of links on its way) stops
// everything, where before it went unprotected as if missing. A missing one
// is fine. (From a review.)
func TestSettleProtectsOrStops(t *testing.T) {
	out := settleLib(t, "/nonexistent", `
ln -s loop "$T/loop"; touch "$T/file"
protect "$T/none/hooks"; echo "missing=$?"
protect "$T/file/hooks"; echo "under a file=$?"
protect "$T/loop/hooks" 2>/dev/null; echo "unseen=$?"
`)
	for _, want := range []string{"missing=0", "under a file=0", "unseen=1"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %s:\n%s", want, out)
		}
	}
}

// missing reads the reason at the end of stat's message, which quotes the
// path first: a name holding "No such file or directory" once passed a loop
// of links or an over-long path as missing. (From a review.)
func TestSettleMissingIgnoresPathText(t *testing.T) {
	out := settleLib(t, "/nonexistent", `
mkdir "$T/No such file or directory"; ln -s x "$T/No such file or directory/x"
protect "$T/No such file or directory/x/hooks" 2>/dev/null; echo "loop=$?"
d="$T/No such file or directory/d"; mkdir "$d"; cd "$d"; n=$(printf 'a%.0s' {1..250})
for i in {1..20}; do mkdir "$n" && cd "$n"; done; mkdir hooks; p=$PWD/hooks; cd /
protect "$p" 2>/dev/null; echo "long=$?"
`)
	for _, want := range []string{"loop=1", "long=1"} {
		if !strings.Contains(out, want+"\n") {
			t.Errorf("want %s:\n%s", want, out)
		}
	}
}

// A project's host-run paths in one folder (.config/lefthook.yml and its
// nineteen siblings) are looked at through that folder once it is found
// missing; a folder that is there, or that cannot be looked at, leaves
// each path to its own look.
func TestSettleMissingBelowAMissingFolder(t *testing.T) {
	out := settleLib(t, "/nonexistent", `
ran_before=; mkdir "$T/app"
hostrun=$'.config/a.yml\n.config/b.yml\nloop/x\nthere/y'
mkdir "$T/app/there"; : >"$T/app/there/y"; ln -s loop "$T/app/loop"
protect_project "$T/app" 2>/dev/null; echo "project=$?"
echo "gone=${gone[$T/app/.config]+dir}${gone[$T/app/.config/a.yml]+a}${gone[$T/app/.config/b.yml]+b}${gone[$T/app/there]+there}"
hostrun=$'.config/a.yml\nthere/y'
protect_project "$T/app" 2>/dev/null; echo "again=$?"
findmnt -rn -o TARGET -T "$T/app/there/y"
`)
	for _, want := range []string{"project=1", "gone=dirab", "again=0", "/app/there/y"} {
		if !strings.Contains(out, want) {
			t.Errorf("want %s:\n%s", want, out)
		}
	}
}

// A project's host-run paths that are not there (most of them, in most
// projects) are looked at with one stat, not one each: a fork is about a
// millisecond in a guest, and every launch settles. One that is hidden
// rather than missing still stops everything, and one that is there is
// still protected.
func TestSettleLooksOnceForWhatIsMissing(t *testing.T) {
	out := settleLib(t, "/nonexistent", `
stat() { echo x >>"$T/stats"; command stat "$@"; }
ran_before=; mkdir "$T/app"
hostrun=$'.envrc\n.git/hooks\n.git/config\n.vscode/tasks.json\n.config/a.yml\n.config/b.yml\nMakefile\nthere/y'
mkdir "$T/app/there"; : >"$T/app/there/y"
protect_project "$T/app"; echo "project=$?"
echo "stats=$(wc -l <"$T/stats")"
echo "gone=${gone[$T/app/.envrc]+envrc}${gone[$T/app/.git/config]+config}${gone[$T/app/.config/b.yml]+b}${gone[$T/app/there/y]+y}"
findmnt -rn -o TARGET -T "$T/app/there/y"
mkdir "$T/app2"; ln -s loop "$T/app2/loop"
hostrun=$'.envrc\nloop/x\nMakefile'
protect_project "$T/app2" 2>/dev/null; echo "hidden=$?"
`)
	wantAll(t, out, "project=0", "stats=1\n", "gone=envrcconfigb\n", "/app/there/y", "hidden=1")
}

// A subordinate range settle reads otherwise than newuidmap does (a leading
// 0 is octal there) stops everything: processes in it would go unseen.
func TestSettleRefusesAnOddSubordinateRange(t *testing.T) {
	file := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(file, []byte("nobody:0100000:65536\n"), 0o644)
	out, err := settleLibRun(t, file, `echo sourced`)
	if err == nil || strings.Contains(out, "sourced") || !strings.Contains(out, "plain decimal") {
		t.Errorf("a range in octal was taken: %s", out)
	}
}

// freeID is a user id nothing on this machine runs as: the tests that stop
// the user's processes stop only their own.
func freeID(t *testing.T) string {
	t.Helper()
	for u := 3_700_000 + os.Getpid()%1000; ; u++ {
		if out, _ := exec.Command("ps", "-L", "-U", strconv.Itoa(u), "-o", "pid=").Output(); len(strings.TrimSpace(string(out))) == 0 {
			return strconv.Itoa(u)
		}
	}
}

// A process of the user's that starts while settle works (cron, at, a
// timer, a session's launcher that did not wait) runs while root resolves
// paths inside the mounts, where every other is stopped: settle names it,
// and only it. One stopped before is not named (unless it was resumed),
// nor is a process of another user's.
func TestSettleSeesWhatStartedDuringIt(t *testing.T) {
	out := settleLib(t, "/nonexistent", `U=`+freeID(t)+`; ids="$U:1"
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & before=$!
sleep 0.2
freeze || exit 1
note_users
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & during=$!
sleep 60 & other=$!
sleep 0.2
echo "before=$before during=$during"
echo "late=$(started_since | tr '\n' ' ')"
kill -CONT $before; sleep 0.2
echo "resumed=$(started_since | tr '\n' ' ')"
kill -9 $before $during $other
`)
	var before, during string
	for _, l := range strings.Split(out, "\n") {
		fmt.Sscanf(l, "before=%s during=%s", &before, &during)
	}
	if during == "" || !strings.Contains(out, "late="+during+" \n") {
		t.Errorf("want only %s (started during settle) named, not %s:\n%s", during, before, out)
	}
	// One stopped before and resumed since (by one that started) runs
	// too.
	if !strings.Contains(out, "resumed=") || !strings.Contains(out[strings.Index(out, "resumed="):], before+" ") {
		t.Errorf("%s, resumed, is not named:\n%s", before, out)
	}
}

// A settle that stopped nobody resumes nobody: one that gave up waiting
// for another's lock (or stopped before it took it) resumed the user in the
// middle of the other's work. (From a review.)
func TestSettleThawsOnlyWhatItFroze(t *testing.T) {
	out := settleLib(t, "/nonexistent", `U=`+freeID(t)+`; ids="$U:1"
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & p=$!
sleep 0.2; kill -STOP $p; sleep 0.1
thaw
sleep 0.1; echo "state=$(ps -o stat= -p $p)"
kill -9 $p
`)
	if !strings.Contains(out, "state=T") {
		t.Errorf("a settle that stopped nothing resumed the user:\n%s", out)
	}
}

// A stopped process runs again when the kernel resumes it (a child's
// PR_SET_PDEATHSIG as its parent is killed, an orphaned group) and may stop
// itself once done: settle names one whose threads ran since the note, and
// one that ended (unless end_holders ended it). (From a review.)
func TestSettleSeesWhatRanOrEndedDuringIt(t *testing.T) {
	out := settleLib(t, "/nonexistent", `U=`+freeID(t)+`; ids="$U:1"
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & ran=$!
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & gone=$!
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & held=$!
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & still=$!
trap 'kill -9 $ran $gone $held $still 2>/dev/null' EXIT
sleep 0.2
freeze || exit 1
note_users
kill -CONT $ran; sleep 0.05; kill -STOP $ran
kill -9 $gone $held; ended=($held)
sleep 0.2
echo "ran=$ran gone=$gone held=$held still=$still"
echo "late=$(started_since "${ended[@]}" | tr '\n' ' ')"
# One that end_holders ends, still on its way out (it runs), is not named.
kill -CONT $still; sleep 0.05
echo "dying=$(started_since "${ended[@]}" $still | tr '\n' ' ')"
kill -9 $ran $still
`)
	var ran, gone, held, still string
	for _, l := range strings.Split(out, "\n") {
		fmt.Sscanf(l, "ran=%s gone=%s held=%s still=%s", &ran, &gone, &held, &still)
	}
	i := strings.Index(out, "late=")
	if ran == "" || i < 0 {
		t.Fatalf("the harness failed:\n%s", out)
	}
	late := strings.Fields(strings.TrimPrefix(strings.SplitN(out[i:], "\n", 2)[0], "late="))
	if !slices.Contains(late, ran) || !slices.Contains(late, gone) || slices.Contains(late, held) || slices.Contains(late, still) {
		t.Errorf("want %s (ran) and %s (ended), not %s (ended by end_holders) or %s (stopped all along); named %v", ran, gone, held, still, late)
	}
	if i := strings.Index(out, "dying="); i < 0 || slices.Contains(strings.Fields(strings.SplitN(out[i+6:], "\n", 2)[0]), still) {
		t.Errorf("%s, ended by end_holders and running on its way out, is named:\n%s", still, out)
	}
}

// A process gone between the list and the look is left out: its line was
// once the previous one's, a process that did not start. (From a review.)
func TestSettleKeysOfAProcessGone(t *testing.T) {
	out := settleLib(t, "/nonexistent", `U=`+freeID(t)+`; ids="$U:1"
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & p=$!
sleep 0.2
users() { echo $p; echo 2147483000; }
user_keys
kill -9 $p
`)
	key := regexp.MustCompile(`^[0-9]+:[0-9]+:[0-9]+:([0-9]+(,[0-9]+)*|-)$`)
	ls := strings.Split(strings.TrimSpace(out), "\n")
	for _, l := range ls {
		if !key.MatchString(l) || strings.HasPrefix(l, "2147483000") {
			t.Errorf("a line for a process gone, or not a key: %q\n%s", l, out)
		}
	}
	if len(ls) != 1 {
		t.Errorf("want one line, for the one thread there:\n%s", out)
	}
}

// The kernel resumes a stopped process with a signal it asked for when a
// file changes (inotify, O_ASYNC, F_SETSIG=SIGCONT): the agent's process
// wakes as settle copies .git/config, opens the copy for writing before
// the read-only bind and hands the descriptor to another process of the
// user's, stopped. Settle sees that it ran, and then resumes no one: every
// process of the user's ends, so the descriptor writes nothing. (From a
// review: it was resumed, or the process that ran was ended as a holder
// and not counted.)
func TestSettleEndsEveryoneWhenOneRan(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 for the agent's processes")
	}
	waker, _ := filepath.Abs("testdata/sigio-waker.py")
	out := settleLib(t, "/nonexistent", `U=`+freeID(t)+`; ids="$U:1" uid=$U gid=$U
trap 'p=$(ps -U $U -o pid=); [ -z "$p" ] || kill -9 $p' EXIT
chmod 755 "$(dirname "$T")"; cp "`+waker+`" "$T/w.py"; chmod 644 "$T/w.py"
P="$T/proj"; mkdir -p "$P/.git"; printf '[core]\n' >"$P/.git/config"; chown -R $U:$U "$P"
mount --bind "$P" "$P"; mount --make-rprivate "$P"
setpriv --reuid=$U --regid=$U --clear-groups /usr/bin/python3 "$T/w.py" y &
sleep 0.3
setpriv --reuid=$U --regid=$U --clear-groups /usr/bin/python3 "$T/w.py" x "$P/.git" >"$T/x.log" 2>&1 &
for _ in $(seq 1 50); do grep -q watching "$T/x.log" && break; sleep 0.1; done
grep -q watching "$T/x.log" || { echo "the waker did not start: $(cat "$T/x.log")"; exit 1; }
freeze && note_users || exit 1
ran_before=1
# (A descriptor for writing opened through the new bind, before it is
# made read-only, fails the remount: settle stops there, as it does here.)
if protect "$P/.git/config"; then
	echo "bound: $(findmnt -rn -o OPTIONS --mountpoint "$P/.git/config")"
else
	echo "protect: refused"
fi
ps -U $U -o pid=,stat=,args=
late=$(started_since)
if [ -z "$late" ]; then end_holders; late=$(started_since "${ended[@]}"); fi
echo "late=[$late]"
thaw
sleep 0.5
echo "config:"; cat "$P/.git/config"
echo "left: $(ps -U $U -o pid= | wc -l)"; cat "$T/x.log"
`)
	if !strings.Contains(out, "bound: ro") && !strings.Contains(out, "protect: refused") {
		t.Fatalf("the harness failed:\n%s", out)
	}
	if strings.Contains(out, "evil") {
		t.Errorf("a descriptor the agent opened while settle worked wrote the protected file:\n%s", out)
	}
	if strings.Contains(out, "late=[]") {
		t.Errorf("settle did not see the process that ran:\n%s", out)
	}
	t.Logf("%s", out)
}

// A verdict once given stands: the process that started (a cron job) may
// be gone by the time settle's exit looks again, and what it handed to a
// stopped one is still there. (From a third review: the exit looked again,
// found nothing and resumed everyone.)
func TestSettleVerdictStands(t *testing.T) {
	out := settleLib(t, "/nonexistent", `U=`+freeID(t)+`; ids="$U:1"
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & kept=$!
trap 'kill -9 $kept 2>/dev/null' EXIT
sleep 0.2
freeze && note_users || exit 1
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & job=$!
sleep 0.1
late=$(started_since)
exit() { return 0; }
refuse_late "$late" 2>/dev/null
unset -f exit
kill -9 $job; wait $job 2>/dev/null; sleep 0.1
thaw 2>/dev/null
sleep 0.2
echo "kept: $(ps -o stat= -p $kept || echo gone)"
`)
	if !strings.Contains(out, "kept: gone") {
		t.Errorf("a settle that named a process and then found it gone resumed the rest:\n%s", out)
	}
}

// A look that fails (a fork refused: the user can fill the process limit)
// is no "nothing runs": freeze fails, and the check names "?". (From a
// third review: the user was never stopped, and settle went on.)
func TestSettleFailedLookIsNoVerdict(t *testing.T) {
	out := settleLib(t, "/nonexistent", `U=`+freeID(t)+`; ids="$U:1"
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & p=$!
trap 'kill -9 $p 2>/dev/null' EXIT
sleep 0.2
freeze && note_users || exit 1
ps() { return 1; }
echo "late=[$(started_since | tr '\n' ' ')]"
freeze; echo "freeze=$?"
`)
	if !strings.Contains(out, "late=[? ]") || !strings.Contains(out, "freeze=1") {
		t.Errorf("a failed look passed for nothing running:\n%s", out)
	}
}

// A settle cut off while it protected the projects (killed, its exit never
// ran) leaves its mark: the next one ends every process of the user's
// before it begins, since one may hold what the first was protecting.
// (From a third review: the next settle took the first's binds as its own.)
func TestSettleAfterOneCutOff(t *testing.T) {
	out := settleLib(t, "/nonexistent", `U=`+freeID(t)+`; ids="$U:1"
mkdir -p /run/vibe && mount -t tmpfs none /run/vibe || exit 1
setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & p=$!
trap 'kill -9 $p 2>/dev/null' EXIT
sleep 0.2
freeze && note_users && mark_settling || exit 1
echo "first: $(ps -o stat= -p $p || echo gone)"
freeze && note_users && mark_settling 2>&1 || exit 1
wait $p 2>/dev/null
echo "second: $(ps -o stat= -p $p || echo gone)"
echo "mark: $(ls /run/vibe)"
`)
	wantAll(t, out, "first: T", "second: gone", "cut off", "mark: settling")
}

// settleLibCgroup is settleLib with the cgroup v2 freezer, in a cgroup of
// the test's own (its processes are killed and it is removed afterwards);
// the script sees it as $CG.
func settleLibCgroup(t *testing.T, script string) string {
	t.Helper()
	needRoot(t, "settle's functions")
	_, cg := testCgroup(t)
	// inside CMD...: CMD (in a subshell, &: it becomes CMD), born in the
	// cgroup, as the launcher's are.
	out2, err := settleLibEnv(t, "/nonexistent", cg, `export CG=`+cg+`; [ "$cg" = "$CG" ] || { echo "settle did not take the cgroup $CG"; exit 1; }
inside() { exec bash -c '[ -d "$CG" ] && echo $$ >"$CG/cgroup.procs" && exec "$@"' inside "$@"; }
`+script)
	if err != nil {
		t.Fatalf("%v\n%s", err, out2)
	}
	return out2
}

// With the cgroup v2 freezer, nothing resumes a process of the user's that
// settle holds: not SIGCONT (the kernel sends it as a file changes, on a
// parent's death, to a terminal's group), and settle sees none of them run.
// One the user stopped itself stays stopped after the thaw; the others go
// on. (With SIGSTOP alone, the kernel's SIGCONT resumed one, which settle
// saw, and then ended every process of the user's.)
func TestSettleFreezerHoldsThroughSIGCONT(t *testing.T) {
	out := settleLibCgroup(t, `U=`+freeID(t)+`; ids="$U:1"
trap 'p=$(ps -U $U -o pid=); [ -z "$p" ] || kill -9 $p' EXIT
chmod 755 "$(dirname "$T")"; mkdir "$T/u"; chmod 777 "$T/u"
inside setpriv --reuid=$U --regid=$U --clear-groups bash -c 'i=0; while :; do i=$((i+1)); echo $i >"$1/ctr"; sleep 0.01; done' count "$T/u" & p=$!
inside setpriv --reuid=$U --regid=$U --clear-groups sleep 60 & s=$!
for _ in $(seq 1 100); do [ "$(ps -o comm= -p $s)" = sleep ] && break; sleep 0.05; done
kill -STOP $s
freeze && note_users || exit 1
a=$(cat "$T/u/ctr"); kill -CONT $p; sleep 0.3; b=$(cat "$T/u/ctr")
echo "held: $a -> $b"
echo "late=[$(started_since | tr '\n' ' ')]"
thaw; sleep 0.3; c=$(cat "$T/u/ctr")
echo "after: $((c > b))"
echo "self-stopped: $(ps -o stat= -p $s)"
`)
	checkHeld(t, out, "a held process ran on SIGCONT", "late=[]", "after: 1", "self-stopped: T")
}

// The hostile agent of TestSettleEndsEveryoneWhenOneRan, with the freezer:
// the kernel's SIGCONT does not wake it, so it opens nothing while settle
// works, settle sees nothing run, and nobody needs to end.
func TestSettleFreezerHoldsTheWaker(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 for the agent's processes")
	}
	waker, _ := filepath.Abs("testdata/sigio-waker.py")
	out := settleLibCgroup(t, `U=`+freeID(t)+`; ids="$U:1" uid=$U gid=$U
trap 'p=$(ps -U $U -o pid=); [ -z "$p" ] || kill -9 $p' EXIT
chmod 755 "$(dirname "$T")"; cp "`+waker+`" "$T/w.py"; chmod 644 "$T/w.py"
P="$T/proj"; mkdir -p "$P/.git"; printf '[core]\n' >"$P/.git/config"; chown -R $U:$U "$P"
mount --bind "$P" "$P"; mount --make-rprivate "$P"
inside setpriv --reuid=$U --regid=$U --clear-groups /usr/bin/python3 "$T/w.py" y &
sleep 0.3
inside setpriv --reuid=$U --regid=$U --clear-groups /usr/bin/python3 "$T/w.py" x "$P/.git" >"$T/x.log" 2>&1 &
for _ in $(seq 1 50); do grep -q watching "$T/x.log" && break; sleep 0.1; done
grep -q watching "$T/x.log" || { echo "the waker did not start: $(cat "$T/x.log")"; exit 1; }
freeze && note_users || exit 1
ran_before=1
protect "$P/.git/config" && echo "bound: $(findmnt -rn -o OPTIONS --mountpoint "$P/.git/config")"
late=$(started_since)
if [ -z "$late" ]; then end_holders; late=$(started_since "${ended[@]}"); fi
echo "late=[$late] ended=[${ended[*]}]"
thaw
sleep 0.5
echo "config:"; cat "$P/.git/config"
echo "left: $(ps -U $U -o pid= | wc -l)"
`)
	wantAll(t, out, "bound: ro", "late=[] ended=[]", "left: 2")
	if strings.Contains(out, "evil") {
		t.Errorf("a descriptor the agent opened while settle worked wrote the protected file:\n%s", out)
	}
}

// With the freezer, a process that spawns in a loop (vfork: the parent
// waits until its child execs) is held with its child and resumed, never
// ended, and settle never sees it run.
func TestSettleFreezerEndsNoSpawner(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 for the spawn loop")
	}
	out := settleLibCgroup(t, `U=`+freeID(t)+`; ids="$U:1"
trap 'p=$(ps -U $U -o pid=); [ -z "$p" ] || kill -9 $p' EXIT
inside setpriv --reuid=$U --regid=$U --clear-groups /usr/bin/python3 -c '
import os
while True:
    os.waitpid(os.posix_spawn("/bin/true", ["true"], {}), 0)
' & p=$!
sleep 0.3
for i in $(seq 1 40); do
	freeze && note_users || { echo "round $i: freeze failed"; break; }
	[ -z "$(started_since)" ] || echo "round $i: one ran"
	thaw
	kill -0 $p 2>/dev/null || { echo "round $i: the spawner was ended"; break; }
	sleep 0.02
done
echo "rounds done"
`)
	if strings.Contains(out, "round ") || !strings.Contains(out, "rounds done") {
		t.Errorf("settle ended or saw run a process that spawns:\n%s", out)
	}
}

// hopper is a process of the user's that changes its pid without end: it
// forks, the parent exits, the child counts in FILE and forks again. No
// snapshot of pids holds it (each pid is gone before it is acted on), so
// only a whole cgroup, or kill -1 as the user, catches it.
const hopper = `/usr/bin/python3 -c '
import os, sys, time
n = 0
while True:
    n += 1
    with open(sys.argv[1] + ".new", "w") as f:
        f.write(str(n))
    os.replace(sys.argv[1] + ".new", sys.argv[1])
    time.sleep(0.001)
    if os.fork() > 0:
        os._exit(0)
' `

// A process of the user's that changes its pid all the time, started
// outside vibe's cgroup (by cron, at, or an older vibe's session): settle
// cannot hold it, so freeze fails, says why, and every process of the
// user's ends, the hopper too. (Before, settle moved each pid it saw into
// the cgroup; the hopper's were gone by then, and it wrote on while root
// worked.)
func TestSettleFreezerEndsAHopperBornOutside(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 for the hopper")
	}
	out := settleLibCgroup(t, `U=`+freeID(t)+`; ids="$U:1" gid=$U
trap 'setpriv --reuid=$U --regid=$U --clear-groups kill -KILL -1 2>/dev/null' EXIT
chmod 755 "$(dirname "$T")"; mkdir "$T/u"; chmod 777 "$T/u"
inside setpriv --reuid=$U --regid=$U --clear-groups sleep 60 &
setpriv --reuid=$U --regid=$U --clear-groups `+hopper+` "$T/u/ctr" &
for _ in $(seq 1 100); do [ -s "$T/u/ctr" ] && break; sleep 0.05; done; sleep 0.1
if freeze 2>"$T/err"; then echo "freeze: held"; else echo "freeze: failed"; fi
cat "$T/err"
sleep 0.3; a=$(cat "$T/u/ctr"); sleep 0.3; b=$(cat "$T/u/ctr")
echo "counting: $a -> $b"
echo "left: $(ps -U $U -o stat= | grep -vc '^Z')"
`)
	wantAll(t, out, "freeze: failed", "outside vibe's cgroup", "left: 0")
	var a, b int
	for _, l := range strings.Split(out, "\n") {
		fmt.Sscanf(l, "counting: %d -> %d", &a, &b)
	}
	if a == 0 || a != b {
		t.Errorf("the hopper went on (%d -> %d):\n%s", a, b, out)
	}
}

// The same hopper born in vibe's cgroup, as everything a session starts
// is: held whole while settle works, and it goes on after the thaw.
func TestSettleFreezerHoldsAHopperBornInside(t *testing.T) {
	holdsAHopper(t, func(script string) string { return settleLibCgroup(t, script) }, "inside ")
}

// Without the freezer, the hopper is stopped too: SIGSTOP reaches every
// process of the user's own id at one moment. (Before, settle stopped the
// pids it saw, and the hopper's were always new.)
func TestSettleStopsAHopper(t *testing.T) {
	holdsAHopper(t, func(script string) string { return settleLib(t, "/nonexistent", script) }, "")
}

// holdsAHopper starts the hopper as the user (after prefix: "inside ", or
// nothing), and checks that while settle holds the user it counts no
// further and settle sees nothing run, and that it goes on after the thaw.
func holdsAHopper(t *testing.T, run func(script string) string, prefix string) {
	t.Helper()
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 for the hopper")
	}
	out := run(`U=` + freeID(t) + `; ids="$U:1" gid=$U
trap 'setpriv --reuid=$U --regid=$U --clear-groups kill -KILL -1 2>/dev/null' EXIT
chmod 755 "$(dirname "$T")"; mkdir "$T/u"; chmod 777 "$T/u"
` + prefix + `setpriv --reuid=$U --regid=$U --clear-groups ` + hopper + ` "$T/u/ctr" &
for _ in $(seq 1 100); do [ -s "$T/u/ctr" ] && break; sleep 0.05; done; sleep 0.1
freeze && note_users || exit 1
a=$(cat "$T/u/ctr"); sleep 0.5; b=$(cat "$T/u/ctr")
echo "held: $a -> $b"
echo "late=[$(started_since | tr '\n' ' ')]"
thaw; sleep 0.3; c=$(cat "$T/u/ctr")
echo "after: $((c > b))"
`)
	checkHeld(t, out, "a held hopper ran", "late=[]", "after: 1")
}

// checkHeld: out's line "held: A -> B" shows a count that went no further
// while settle held the user (else "what ran"), and out holds each want.
func checkHeld(t *testing.T, out, what string, want ...string) {
	t.Helper()
	var a, b int
	for _, l := range strings.Split(out, "\n") {
		fmt.Sscanf(l, "held: %d -> %d", &a, &b)
	}
	if a == 0 || a != b {
		t.Errorf("%s (%d -> %d):\n%s", what, a, b, out)
	}
	wantAll(t, out, want...)
}

// wantAll: out holds each of want.
func wantAll(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w) {
			t.Errorf("want %q:\n%s", w, out)
		}
	}
}

// A process of the user's that waits in the kernel for a FUSE server of
// the user's own that never answers can be neither frozen nor killed, so
// freeze gives up. Every process of the user's ends then, the server too,
// which ends the wait: the next settle holds the user again. (Before, the
// server went on and every later session failed the same way: from a
// hostile review.)
func TestSettleFreezerEndsWhatWouldNotStop(t *testing.T) {
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("no /usr/bin/python3 for the FUSE server")
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	server, _ := filepath.Abs("testdata/fuse-silent.py")
	out := settleLibCgroup(t, `U=`+freeID(t)+`; ids="$U:1" gid=$U
trap 'setpriv --reuid=$U --regid=$U --clear-groups kill -KILL -1 2>/dev/null; echo 1 >"$CG/cgroup.kill"; sleep 0.3; umount -l "$M" 2>/dev/null' EXIT
chmod 755 "$(dirname "$T")"; M=$T/m; mkdir "$M"; chmod 755 "$M"
# (Root's here, with allow_other: /dev/fuse is root's on a test machine.)
inside /usr/bin/python3 `+server+` "$M" >"$T/server.log" 2>&1 &
for _ in $(seq 1 50); do grep -q init "$T/server.log" && break; sleep 0.1; done
grep -q init "$T/server.log" || { echo "the server did not start: $(cat "$T/server.log")"; exit 1; }
inside setpriv --reuid=$U --regid=$U --clear-groups stat "$M/x" >/dev/null 2>&1 &
sleep 0.3
for n in 1 2; do
	if freeze 2>"$T/err"; then echo "settle $n: held"; else echo "settle $n: failed: $(cat "$T/err")"; fi
	thaw
done
`)
	wantAll(t, out, "settle 1: failed", "would not stop", "ends", "settle 2: held")
}

// testCgroup names a cgroup v2 of the test's own, below the machine's
// hierarchy (mnt): whoever makes it, it is thawed, its processes (and its
// vibe-user's) are killed and it is removed when the test ends.
func testCgroup(t *testing.T) (mnt, cg string) {
	t.Helper()
	out, _ := exec.Command("findmnt", "-rn", "-t", "cgroup2", "-o", "TARGET").Output()
	mnt, _, _ = strings.Cut(strings.TrimSpace(string(out)), "\n")
	if mnt == "" {
		if os.Getenv("VIBE_TEST_STRICT") == "1" {
			t.Fatal("no cgroup v2 hierarchy mounted (VIBE_TEST_STRICT=1)")
		}
		t.Skip("no cgroup v2 hierarchy mounted")
	}
	cg = filepath.Join(mnt, fmt.Sprintf("vibe-test-%d-%s", os.Getpid(), strings.ReplaceAll(t.Name(), "/", "-")))
	t.Cleanup(func() {
		for _, c := range []string{filepath.Join(cg, "vibe-user"), cg} {
			os.WriteFile(filepath.Join(c, "cgroup.freeze"), []byte("0"), 0)
			os.WriteFile(filepath.Join(c, "cgroup.kill"), []byte("1"), 0)
		}
		for i := 0; i < 50; i++ {
			os.Remove(filepath.Join(cg, "vibe-user"))
			if err := os.Remove(cg); err == nil || os.IsNotExist(err) {
				return
			}
			syscall.Nanosleep(&syscall.Timespec{Nsec: 100_000_000}, nil)
		}
		t.Errorf("could not remove the test's cgroup %s", cg)
	})
	return mnt, cg
}

// /dev/fuse is root's alone once settle has run: a FUSE server of the
// user's (in a user namespace of its own) that never answers holds a
// process that waits on it in the kernel, unkillable, and one that waits
// on itself outlives every kill, so that no later settle could hold the
// user. (Debian makes /dev/fuse 0666, and a container shows the host's.
// From a hostile review.) Here a node open to all stands in for it.
func TestSettleClosesFuse(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse to stand in for")
	}
	// (As nobody, settle's user in its tests: the user's own groups count.)
	out := settleLib(t, "/nonexistent", `
mknod "$T/fuse" c 10 229 && chmod 666 "$T/fuse" && mount --bind "$T/fuse" /dev/fuse || exit 1
mkdir -p /run/vibe && mount -t tmpfs -o mode=700 none /run/vibe || exit 1
can() { if setpriv --reuid=nobody --regid=nogroup --init-groups /usr/bin/test -w /dev/fuse; then echo open; else echo closed; fi; }
echo "before: $(can)"
close_fuse || echo "close_fuse failed"
echo "after: $(can)"
close_fuse || echo "close_fuse failed again"
echo "mounts: $(findmnt -rn --mountpoint /dev/fuse | wc -l)"
`)
	wantAll(t, out, "before: open", "after: closed", "mounts: 2")
	if strings.Contains(out, "failed") {
		t.Errorf("close_fuse failed:\n%s", out)
	}
}
