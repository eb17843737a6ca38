package sandbox

import (
	"io"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"
	"golang.org/x/sys/unix"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/workspace"
)

const guestTable = `26 1 254:0 / / rw,relatime - ext4 /dev/vda rw
90 26 0:5 / /dev rw,nosuid - tmpfs none rw
99 26 254:0 /tmp/proj /workspace/app rw,nosuid,nodev,relatime shared:74 - ext4 /dev/vda rw
100 26 254:0 /tmp/state /var/lib/vibe/state/claude rw,nosuid,nodev,relatime - ext4 /dev/vda rw
101 99 254:0 /tmp/proj/.git/hooks /workspace/app/.git/hooks ro,nosuid,nodev,relatime - ext4 /dev/vda rw
`

func want(paths ...string) map[string]map[string]string {
	w := map[string]map[string]string{}
	for i, p := range paths {
		w[string(rune('a'+i))] = map[string]string{"path": p, "source": "/unused"}
	}
	return w
}

func TestCheckMounts(t *testing.T) {
	for _, tc := range []struct {
		name, table, problem string
		want                 map[string]map[string]string
		missing              bool
	}{
		{"in place", guestTable, "", want("/workspace/app", "/var/lib/vibe/state/claude"), false},
		{"not mounted", guestTable, "nothing is mounted at /workspace/web", want("/workspace/web"), true},
		{"mounted elsewhere (through a symlink)", strings.ReplaceAll(guestTable, " /workspace/app ", " /usr/local/lib/vibe "), "nothing is mounted at /workspace/app", want("/workspace/app"), true},
		{"hidden by a later mount on it", guestTable + "120 99 0:40 / /workspace/app rw,nosuid,nodev - tmpfs t rw\n", "", want("/workspace/app"), false},
		{"hidden by a later mount above it", guestTable + "120 26 0:40 / /workspace rw,nosuid,nodev - tmpfs t rw\n", "nothing is mounted at /workspace/app", want("/workspace/app"), true},
		{"without nosuid", strings.Replace(guestTable, "rw,nosuid,nodev,relatime shared:74", "rw,relatime shared:74", 1), "lacks nosuid,nodev", want("/workspace/app"), false},
		{"a read-only mount made writable", guestTable, "is writable", map[string]map[string]string{"x": {"path": "/workspace/app", "readonly": "true"}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			entries, err := parseMountinfo(tc.table)
			if err != nil {
				t.Fatal(err)
			}
			problem, missing := checkMounts(entries, nil, false, tc.want)
			if tc.problem == "" && problem != "" || !strings.Contains(problem, tc.problem) || missing != tc.missing {
				t.Errorf("got %q (missing %v), want %q (missing %v)", problem, missing, tc.problem, tc.missing)
			}
		})
	}
}

// The host's view: the mount must show the host folder vibe gave it.
func TestCheckMountsAgainstHost(t *testing.T) {
	host, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Skip("no /proc/self/mountinfo")
	}
	hostTable, err := parseMountinfo(string(host))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	root, major, minor, err := hostRoot(hostTable, dir)
	if err != nil {
		t.Fatal(err)
	}
	line := func(r string) string {
		return "26 1 254:0 / / rw - ext4 /dev/vda rw\n99 26 " + strconv.Itoa(int(major)) + ":" + strconv.Itoa(int(minor)) + " " + r + " /workspace/app rw,nosuid,nodev - ext4 x rw\n"
	}
	w := map[string]map[string]string{"p": {"path": "/workspace/app", "source": dir}}
	entries, _ := parseMountinfo(line(root))
	if problem, _ := checkMounts(entries, hostTable, true, w); problem != "" {
		t.Errorf("the right folder: %s", problem)
	}
	entries, _ = parseMountinfo(line(filepath.Join(root, "..")))
	if problem, _ := checkMounts(entries, hostTable, true, w); !strings.Contains(problem, "not the host folder") {
		t.Errorf("another folder on the same device: %q", problem)
	}
}

func TestParseMountinfoEscapes(t *testing.T) {
	entries, err := parseMountinfo(`36 35 98:0 /my\040dir /mnt/a\134b rw,nosuid,nodev - ext3 /dev/root rw` + "\n")
	if err != nil || len(entries) != 1 || entries[0].Root != "/my dir" || entries[0].Point != `/mnt/a\b` {
		t.Errorf("got %+v %v", entries, err)
	}
	if _, err := parseMountinfo("x 1 2:3 / / rw\n"); err == nil {
		t.Error("a malformed id was accepted")
	}
}

func FuzzParseMountinfo(f *testing.F) {
	f.Add(guestTable)
	f.Add(`36 35 98:0 /my\040dir /mnt/a\134b rw - ext3 /dev/root rw`)
	f.Fuzz(func(t *testing.T, s string) {
		entries, err := parseMountinfo(s)
		if err != nil {
			return
		}
		for _, e := range entries {
			visible(entries, e.Point)
		}
		checkMounts(entries, nil, false, want("/workspace/app"))
	})
}

func TestDelegated(t *testing.T) {
	f := filepath.Join(t.TempDir(), "subuid")
	os.WriteFile(f, []byte("root:1000000:1000000000\nalice:100000:65536\nroot:1000:1\n"), 0o644)
	for id, ok := range map[int]bool{1000: true, 1001: false, 1000000: true, 100000: false} {
		if got, err := delegated(f, id); err != nil || got != ok {
			t.Errorf("id %d: %v %v, want %v", id, got, err, ok)
		}
	}
}

func TestIdmapMapsOnlyTheUser(t *testing.T) {
	if got := idmap(&Spec{UID: 1000, GID: 1001}); got != "uid 1000 1000\ngid 1001 1001" {
		t.Errorf("idmap: %q", got)
	}
	m := &Manager{}
	if err := m.needIdmap(&Spec{UID: 0, GID: 0, User: "x"}); err == nil {
		t.Error("a root sandbox user was accepted")
	}
}

func TestMountSpecs(t *testing.T) {
	s := &Spec{Mounts: []workspace.Mount{{Name: "app", Source: "/src/app"}, {Name: "doc", Source: "/src/doc", ReadOnly: true}, {Name: "hooks", Source: "/src/hooks", HostRunWritable: true}}}
	got := mountSpecs(s, map[string]map[string]string{
		mountDevice("app"):   {"path": "/workspace/app"},
		mountDevice("doc"):   {"path": "/workspace/doc", "readonly": "true"},
		mountDevice("hooks"): {"path": "/workspace/hooks"},
		stateDevice:          {"path": StatePath},
	}, map[string]*gitFound{"/src/app": {rel: []string{".githooks", "conf/git"}}, "/src/hooks": {rel: []string{"x"}}, "/src/doc": {rel: []string{"y"}}})
	// A project's own host-run paths come last (after its remount), and
	// only for a project whose host-run files are protected.
	if strings.Join(got, " ") != "pj:/workspace/app ro:/workspace/doc rw:/var/lib/vibe/state/claude rw:/workspace/hooks hr:/workspace/app/.githooks hr:/workspace/app/conf/git" {
		t.Errorf("mountSpecs: %v", got)
	}
}

func TestSnapshotSeesChangesAndIsBounded(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".git", "hooks"), 0o755)
	os.MkdirAll(filepath.Join(dir, ".git", "modules", "sub", "hooks"), 0o755)
	os.WriteFile(filepath.Join(dir, ".git", "modules", "sub", "config"), []byte("[core]\n"), 0o644)
	mounts := []workspace.Mount{{Name: "p", Source: dir}}
	before := TakeSnapshot(mounts, nil)
	os.WriteFile(filepath.Join(dir, ".git", "modules", "sub", "config"), []byte("[core]\nfsmonitor = evil\n"), 0o644)
	os.WriteFile(filepath.Join(dir, ".git", "hooks", "pre-commit"), []byte("#!/bin/sh\n"), 0o755)
	os.Symlink("/etc/passwd", filepath.Join(dir, ".envrc"))
	changed := TakeSnapshot(mounts, nil).Changed(before)
	if len(changed) != 3 {
		t.Errorf("changed: %v", changed)
	}
	for i := 0; i < snapshotMaxFiles+10; i++ {
		os.WriteFile(filepath.Join(dir, ".git", "hooks", "h"+strconv.Itoa(i)), nil, 0o644)
	}
	full := TakeSnapshot(mounts, nil)
	// The files, the folder's cut-short mark and the mark of git's view.
	if n := len(full); n > snapshotMaxFiles+2 || len(full.Truncated()) != 1 {
		t.Errorf("snapshot of %d files, bound %d, truncated: %v", n, snapshotMaxFiles, full.Truncated())
	}
}

// The host's snapshot sees a change past its read limit (the size is in
// the digest), and never follows a symlink the agent made out of the
// project.
func TestSnapshotSizeAndSymlinks(t *testing.T) {
	dir, outside := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".git"), 0o755)
	big := make([]byte, snapshotMaxRead+10)
	os.WriteFile(filepath.Join(dir, ".git", "config"), big, 0o644)
	mounts := []workspace.Mount{{Name: "p", Source: dir}}
	before := TakeSnapshot(mounts, nil)
	os.WriteFile(filepath.Join(dir, ".git", "config"), append(big, []byte("\n[core]\nfsmonitor = evil\n")...), 0o644)
	if changed := TakeSnapshot(mounts, nil).Changed(before); len(changed) != 1 {
		t.Errorf("a change past the read limit: %v", changed)
	}
	os.WriteFile(filepath.Join(outside, "config"), []byte("secret"), 0o644)
	os.RemoveAll(filepath.Join(dir, ".git"))
	os.Symlink(outside, filepath.Join(dir, ".git"))
	for p, v := range TakeSnapshot(mounts, nil) {
		if p != filepath.Join(dir, ".git") && p != gitViewKey && !isMark(p, v) {
			t.Errorf("the snapshot followed .git out of the project: %s", p)
		}
	}
}

// What an agent writes into its persisted state to run code or steer its
// next start is reported, whichever agent it is; its bookkeeping is not.
func TestSnapshotCoversAgentState(t *testing.T) {
	for _, tc := range []struct{ agent, noise, steer string }{
		{"claude", ".claude.json", "settings.json"},
		{"claude", "history.jsonl", "plugins/evil/hooks/hooks.json"},
		{"codex", "history.jsonl", "config.toml"},
		{"codex", "sessions/one.jsonl", "rules/default.rules"},
		{"gemini", ".gemini/tmp/log.json", ".gemini/settings.json"},
		{"gemini", ".gemini/installation_id", ".gemini/extensions/x/gemini-extension.json"},
		{"opencode", "opencode/storage/session.json", "opencode/bin/typescript-language-server"},
	} {
		t.Run(tc.agent+"/"+tc.steer, func(t *testing.T) {
			state := t.TempDir()
			write := func(rel, body string) {
				os.MkdirAll(filepath.Dir(filepath.Join(state, rel)), 0o755)
				if err := os.WriteFile(filepath.Join(state, rel), []byte(body), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			write(tc.noise, "{}")
			states := map[string]string{tc.agent: state}
			before := TakeSnapshot(nil, states)
			write(tc.noise, `{"numStartups":2}`)
			write(tc.steer, `{"hooks":{}}`)
			changed := TakeSnapshot(nil, states).Changed(before)
			if len(changed) == 0 || !slices.Contains(changed, filepath.Join(state, tc.steer)) {
				t.Errorf("%s's %s changed, but the report has %v", tc.agent, tc.steer, changed)
			}
			for _, c := range changed {
				if strings.HasSuffix(c, tc.noise) {
					t.Errorf("%s's %s is bookkeeping, but the report has it", tc.agent, tc.noise)
				}
			}
		})
	}
}

// Every agent has a Steer list: an agent added without one would be
// missing from the report.
func TestEveryAgentSaysWhatSteersIt(t *testing.T) {
	for _, p := range config.AgentPresets {
		if len(p.Steer) == 0 {
			t.Errorf("agent %s lists no Steer entries", p.Name)
		}
	}
}

// A mount's device name is short whatever the project's name (on a VM it
// becomes the virtiofs tag, which incus limits), and distinct projects get
// distinct devices.
func TestMountDeviceNamesAreShort(t *testing.T) {
	long := strings.Repeat("a", 64)
	seen := map[string]string{}
	for _, name := range []string{"app", long, long[:63] + "b", "x.y-z_1"} {
		dev := mountDevice(name)
		if len(dev) > 20 || !isProjectDevice(dev) {
			t.Errorf("device of %q: %q", name, dev)
		}
		if other, dup := seen[dev]; dup {
			t.Errorf("%q and %q share device %s", name, other, dev)
		}
		seen[dev] = name
	}
	if len(stateDevice) > 20 {
		t.Errorf("state device name %q is too long", stateDevice)
	}
}

// The request that makes a sandbox, as incus's API types carry it: both
// kinds map only the sandbox user's ids (a VM's virtiofs mounts would
// otherwise pass guest root through as host root); a container's cloud-init
// is off from its kernel command line; neither starts with the daemon.
func TestCreateRequest(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	for _, typ := range []string{"container", "vm"} {
		s := &Spec{Name: "vibe", Image: "vibe-img", InstanceType: typ, CPU: 2, Memory: "4GiB", UID: 1000, GID: 1000}
		devices := map[string]map[string]string{mountDevice("app"): {"type": "disk", "source": "/src/app", "path": "/workspace/app"}}
		post := createRequest(s, "abc", devices, now)
		want := api.InstancesPost{
			Name:   "vibe",
			Type:   api.InstanceType(map[string]string{"container": "container", "vm": "virtual-machine"}[typ]),
			Source: api.InstanceSource{Type: "image", Fingerprint: "abc"},
			InstancePut: api.InstancePut{
				Config: map[string]string{
					KeySandbox: "true", KeyName: "vibe", KeyImage: "vibe-img", KeyStarted: "2026-12-01T00:00:00Z",
					"limits.cpu": "2", "limits.memory": "4GiB", "boot.autostart": "false",
					"raw.idmap": "uid 1000 1000\ngid 1000 1000",
				},
				Devices: devices,
			},
			Start: true,
		}
		if typ == "container" {
			want.Config["environment.KERNEL_CMDLINE"] = "cloud-init=disabled"
		}
		if !reflect.DeepEqual(post, want) {
			t.Errorf("%s: create request\n got %+v\nwant %+v", typ, post, want)
		}
	}
}

// A VM made before its ids were mapped is refused, as a container is.
func TestCheckIdmapRefusesUnmappedVMs(t *testing.T) {
	s := &Spec{Name: "vibe", UID: 1000, GID: 1000}
	m := &Manager{}
	if err := m.checkIdmap(&api.Instance{Type: "virtual-machine", InstancePut: api.InstancePut{Config: map[string]string{}}}, s); err == nil {
		t.Error("a VM without vibe's id map was accepted")
	}
	if err := m.checkIdmap(&api.Instance{Type: "virtual-machine", InstancePut: api.InstancePut{Config: map[string]string{"raw.idmap": idmap(s)}}}, s); err != nil {
		t.Error(err)
	}
}

// How each kind of sandbox gets its mounts: a container never starts with
// them (LXC would follow the guest's symlinks on the host's side); a VM
// never has one hot-plugged (incus allows 8 per boot), so it takes them
// while stopped and restarts when they change.
func TestPlanMounts(t *testing.T) {
	app := map[string]map[string]string{mountDevice("app"): {"type": "disk", "source": "/a", "path": "/workspace/app"}}
	doc := map[string]map[string]string{mountDevice("doc"): {"type": "disk", "source": "/d", "path": "/workspace/doc"}}
	withNIC := map[string]map[string]string{"eth0": {"type": "nic"}, mountDevice("app"): app[mountDevice("app")]}
	for _, c := range []struct {
		name        string
		vm, running bool
		have, want  map[string]map[string]string
		step        mountStep
	}{
		{"stopped container", false, false, app, app, detachStartPlug},
		{"running container, same mounts", false, true, withNIC, app, mountsInPlace},
		{"running container, other mounts", false, true, app, doc, plugRunning},
		{"stopped VM", true, false, app, doc, attachStart},
		{"stopped VM, same mounts", true, false, app, app, attachStart},
		{"running VM, same mounts", true, true, withNIC, app, mountsInPlace},
		{"running VM, other mounts", true, true, app, doc, restartVM},
		{"running VM, a mount fewer", true, true, app, nil, restartVM},
	} {
		if got := planMounts(c.vm, c.running, c.have, c.want); got != c.step {
			t.Errorf("%s: step %d, want %d", c.name, got, c.step)
		}
	}
}

// An agent that fills its own state folder past the snapshot's bound
// cannot blind the report for the project: each folder has its own bound,
// and a folder cut short is said again after every session.
func TestSnapshotFloodedStateHidesNothing(t *testing.T) {
	dir, state := t.TempDir(), t.TempDir()
	os.MkdirAll(filepath.Join(dir, ".git", "hooks"), 0o755)
	flood := filepath.Join(state, "plugins", "flood")
	os.MkdirAll(flood, 0o755)
	for i := 0; i < snapshotMaxFiles+10; i++ {
		os.WriteFile(filepath.Join(flood, "f"+strconv.Itoa(i)), nil, 0o644)
	}
	mounts := []workspace.Mount{{Name: "p", Source: dir}}
	states := map[string]string{"claude": state}
	before := TakeSnapshot(mounts, states)
	os.WriteFile(filepath.Join(dir, ".git", "hooks", "pre-commit"), []byte("#!/bin/sh\nevil\n"), 0o755)
	after := TakeSnapshot(mounts, states)
	if changed := after.Changed(before); !slices.Contains(changed, filepath.Join(dir, ".git", "hooks", "pre-commit")) {
		t.Errorf("with the agent's state flooded, a new git hook went unreported: %v", changed)
	}
	if cut := after.Truncated(); len(cut) != 1 || cut[0] != state {
		t.Errorf("folders cut short: %v, want the state folder", cut)
	}
}

// Claude Code keeps an installed plugin's hooks deep in its state folder.
func TestSnapshotSeesDeepPluginHooks(t *testing.T) {
	state := t.TempDir()
	hooks := filepath.Join(state, "plugins", "cache", "market", "plugin", "1.0.0", "hooks", "hooks.json")
	os.MkdirAll(filepath.Dir(hooks), 0o755)
	os.WriteFile(hooks, []byte(`{}`), 0o644)
	states := map[string]string{"claude": state}
	before := TakeSnapshot(nil, states)
	os.WriteFile(hooks, []byte(`{"hooks":{"SessionStart":[{"command":"evil"}]}}`), 0o644)
	if changed := TakeSnapshot(nil, states).Changed(before); !slices.Contains(changed, hooks) {
		t.Errorf("an installed plugin's hooks changed unreported: %v", changed)
	}
}

// A folder of many large files is read only up to a total per folder; what
// went unread is said (sizes are still compared).
func TestSnapshotReadsBoundedPerFolder(t *testing.T) {
	dir := t.TempDir()
	hooks := filepath.Join(dir, ".git", "hooks")
	os.MkdirAll(hooks, 0o755)
	for i := 0; i <= snapshotMaxTotal/snapshotMaxRead; i++ {
		f, _ := os.Create(filepath.Join(hooks, "big"+strconv.Itoa(i)))
		f.Truncate(snapshotMaxRead) // sparse: no disk used
		f.Close()
	}
	snap := TakeSnapshot([]workspace.Mount{{Name: "p", Source: dir}}, nil)
	if cut := snap.Truncated(); len(cut) != 1 || cut[0] != dir {
		t.Errorf("folders cut short: %v, want %s", cut, dir)
	}
}

// A FIFO the agent swaps in for a file or a folder between the host's
// look and its open is never waited on: it is noted, not read.
func TestSnapshotNeverWaitsOnAFIFO(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	// A writer holds it open, so that a read would wait for data.
	w, err := os.OpenFile(fifo, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	root, _ := os.OpenRoot(dir)
	defer root.Close()
	os.WriteFile(filepath.Join(dir, "file"), []byte("x"), 0o644)
	sawFile, _ := root.Lstat("file") // what the host saw before the swap
	sn := &snapper{root: root, base: dir, snap: Snapshot{}}
	done := make(chan struct{})
	go func() {
		sn.content(io.Discard, "fifo", sawFile)
		if got := sn.list("fifo", sawFile); got != nil {
			t.Errorf("a FIFO listed as a folder: %v", got)
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("the snapshot waits on a FIFO")
	}
	if len(sn.snap.Truncated()) != 1 {
		t.Error("a folder that turned into a FIFO is not marked cut short")
	}
}

// What the bounds leave uncompared marks the folder: a tree deeper than
// compared, a file past the read bound. A submodule's objects are not
// walked (a big repository is not cut short); a flood of folders is.
func TestSnapshotCutsWhatItDoesNotCompare(t *testing.T) {
	deep := t.TempDir()
	p := filepath.Join(deep, ".claude")
	for i := 0; i <= snapshotMaxDepth; i++ {
		p = filepath.Join(p, "d")
	}
	os.MkdirAll(p, 0o755)
	os.WriteFile(filepath.Join(p, "hook.sh"), []byte("evil"), 0o755)
	if cut := TakeSnapshot([]workspace.Mount{{Name: "p", Source: deep}}, nil).Truncated(); len(cut) != 1 {
		t.Errorf("a hook deeper than compared: cut %v", cut)
	}

	big := t.TempDir()
	f, _ := os.Create(filepath.Join(big, "settings.json"))
	f.Truncate(snapshotMaxRead + 1)
	f.Close()
	if cut := TakeSnapshot(nil, map[string]string{"claude": big}).Truncated(); len(cut) != 1 {
		t.Errorf("settings past the read bound: cut %v", cut)
	}

	repo := t.TempDir()
	sub := filepath.Join(repo, ".git", "modules", "lib", "foo")
	os.MkdirAll(filepath.Join(sub, "objects", "ab"), 0o755)
	os.MkdirAll(filepath.Join(sub, "hooks"), 0o755)
	os.WriteFile(filepath.Join(sub, "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
	os.WriteFile(filepath.Join(sub, "config"), []byte("[core]\n"), 0o644)
	for i := 0; i < snapshotMaxFiles+10; i++ {
		os.WriteFile(filepath.Join(sub, "objects", "ab", strconv.Itoa(i)), nil, 0o444)
	}
	mounts := []workspace.Mount{{Name: "p", Source: repo}}
	before := TakeSnapshot(mounts, nil)
	if cut := before.Truncated(); len(cut) != 0 {
		t.Errorf("a submodule with many objects is cut short: %v", cut)
	}
	os.WriteFile(filepath.Join(sub, "hooks", "post-checkout"), []byte("evil"), 0o755)
	if changed := TakeSnapshot(mounts, nil).Changed(before); !slices.Contains(changed, filepath.Join(sub, "hooks", "post-checkout")) {
		t.Errorf("a hook of submodule lib/foo changed unreported: %v", changed)
	}
	for i := 0; i < snapshotMaxFiles+10; i++ {
		os.Mkdir(filepath.Join(repo, ".git", "modules", "m"+strconv.Itoa(i)), 0o755)
	}
	if cut := TakeSnapshot(mounts, nil).Truncated(); len(cut) != 1 {
		t.Errorf("a flood of submodule folders: cut %v", cut)
	}
}

// A folder swapped for a link to a decoy between the host's look and its
// listing is not listed: os.Root follows a link that stays inside.
func TestSnapshotListsOnlyTheFolderItSaw(t *testing.T) {
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "hooks"), 0o755)
	os.MkdirAll(filepath.Join(dir, "decoy"), 0o755)
	os.WriteFile(filepath.Join(dir, "decoy", "old"), nil, 0o644)
	root, _ := os.OpenRoot(dir)
	defer root.Close()
	saw, _ := root.Lstat("hooks")
	os.Remove(filepath.Join(dir, "hooks"))
	os.Symlink("decoy", filepath.Join(dir, "hooks"))
	sn := &snapper{root: root, base: dir, snap: Snapshot{}}
	if got := sn.list("hooks", saw); got != nil || len(sn.snap.Truncated()) != 1 {
		t.Errorf("listed %v through a swapped-in link; cut %v", got, sn.snap.Truncated())
	}
}

// A file the agent holds a lease on cannot be opened without waiting: it
// is not compared, so its folder is cut, never passed over in silence.
func TestSnapshotLeasedFileCuts(t *testing.T) {
	state := t.TempDir()
	p := filepath.Join(state, "settings.json")
	os.WriteFile(p, []byte(`{"hooks":"good"}`), 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Skip("no leases here:", err)
	}
	defer unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_UNLCK)
	if cut := TakeSnapshot(nil, map[string]string{"claude": state}).Truncated(); len(cut) != 1 {
		t.Errorf("a leased settings.json: cut %v", cut)
	}
}

// Submodules: a linked .git/modules or submodule folder is recorded (git
// follows it), and so is a commondir that sends git elsewhere.
func TestSnapshotSubmoduleLinksAndCommondir(t *testing.T) {
	repo := t.TempDir()
	os.MkdirAll(filepath.Join(repo, ".git", "hooks"), 0o755)
	mounts := []workspace.Mount{{Name: "p", Source: repo}}
	before := TakeSnapshot(mounts, nil)
	os.MkdirAll(filepath.Join(repo, "x", "foo"), 0o755)
	os.Symlink("../x", filepath.Join(repo, ".git", "modules"))
	if changed := TakeSnapshot(mounts, nil).Changed(before); !slices.Contains(changed, filepath.Join(repo, ".git", "modules")) {
		t.Errorf(".git/modules linked elsewhere, unreported: %v", changed)
	}
	os.Remove(filepath.Join(repo, ".git", "modules"))
	sub := filepath.Join(repo, ".git", "modules", "foo")
	os.MkdirAll(sub, 0o755)
	os.WriteFile(filepath.Join(sub, "HEAD"), []byte("ref: refs/heads/main\n"), 0o644)
	os.WriteFile(filepath.Join(sub, "config"), []byte("[core]\n"), 0o644)
	before = TakeSnapshot(mounts, nil)
	os.Symlink("../../x/foo", filepath.Join(repo, ".git", "modules", "bar"))
	os.WriteFile(filepath.Join(sub, "commondir"), []byte("../../../x\n"), 0o644)
	changed := TakeSnapshot(mounts, nil).Changed(before)
	for _, want := range []string{filepath.Join(repo, ".git", "modules", "bar"), filepath.Join(sub, "commondir")} {
		if !slices.Contains(changed, want) {
			t.Errorf("%s unreported: %v", want, changed)
		}
	}
}
