package setup

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/distro"
)

var bookwormHost = []distro.Source{
	{URI: "http://mirror.test/debian", Suites: []string{"bookworm", "bookworm-updates"}, Components: []string{"main"}, SignedBy: "/usr/share/keyrings/debian-archive-keyring.gpg"},
	{URI: "http://mirror.test/debian-security", Suites: []string{"bookworm-security"}, Components: []string{"main"}},
}

func TestPlanInstall(t *testing.T) {
	withBackports := append(slices.Clone(bookwormHost), distro.Source{URI: "http://mirror.test/debian", Suites: []string{"bookworm-backports"}, Components: []string{"main"}})
	for _, tc := range []struct {
		name   string
		os     distro.OSRelease
		host   []distro.Source
		kvm    bool
		source string // the apt source added; "" none
		target string
		pkgs   []string
		err    string
	}{
		{"debian 12 adds backports from the host's archive", distro.OSRelease{ID: "debian", Codename: "bookworm", Version: "12"}, bookwormHost, false,
			"Types: deb\nURIs: http://mirror.test/debian\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n",
			"bookworm-backports", []string{"incus"}, ""},
		{"debian 12 with backports already", distro.OSRelease{ID: "debian", Codename: "bookworm", Version: "12"}, withBackports, true, "", "bookworm-backports", []string{"incus", "virtiofsd"}, ""},
		{"debian 12 without a Debian archive", distro.OSRelease{ID: "debian", Codename: "bookworm", Version: "12"}, nil, false, "", "", nil, "no Debian archive"},
		{"debian 13 from the archive", distro.OSRelease{ID: "debian", Codename: "trixie", Version: "13"}, nil, false, "", "", []string{"incus"}, ""},
		{"ubuntu 24.04 from the archive", distro.OSRelease{ID: "ubuntu", Codename: "noble", Version: "24.04"}, nil, false, "", "", []string{"incus"}, ""},
		{"ubuntu 22.04 has none", distro.OSRelease{ID: "ubuntu", Codename: "jammy", Version: "22.04"}, nil, false, "", "", nil, "not packaged"},
		{"debian 11 has none", distro.OSRelease{ID: "debian", Codename: "bullseye", Version: "11"}, nil, false, "", "", nil, "no incus package"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := PlanInstall(tc.os, tc.host, tc.kvm)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p.Source != tc.source || p.Target != tc.target || !slices.Equal(p.Packages, tc.pkgs) {
				t.Errorf("plan %+v", p)
			}
			if p.Source != "" && p.SourcePath != backportsFile {
				t.Errorf("source written to %q", p.SourcePath)
			}
		})
	}
}

func TestChooseDriver(t *testing.T) {
	all := poolFacts{ZFS: true, BtrfsKernel: true, MkfsBtrfs: true}
	for _, tc := range []struct {
		want   string
		facts  poolFacts
		driver string
		pkgs   []string
		err    string
	}{
		{"auto", all, "zfs", nil, ""},
		{"auto", poolFacts{BtrfsKernel: true}, "btrfs", []string{"btrfs-progs"}, ""},
		{"auto", poolFacts{BtrfsKernel: true, MkfsBtrfs: true}, "btrfs", nil, ""},
		{"auto", poolFacts{}, "dir", nil, ""},
		{"dir", all, "dir", nil, ""},
		{"btrfs", all, "btrfs", nil, ""},
		{"btrfs", poolFacts{}, "", nil, "no btrfs"},
		{"zfs", poolFacts{BtrfsKernel: true}, "", nil, "zfs is not usable"},
		{"lvm", all, "", nil, "want auto"},
	} {
		d, why, pkgs, err := chooseDriver(tc.want, tc.facts)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s %+v: error %v, want %q", tc.want, tc.facts, err, tc.err)
			}
			continue
		}
		if err != nil || d != tc.driver || !slices.Equal(pkgs, tc.pkgs) || why == "" {
			t.Errorf("%s %+v: %s %v %v (%q)", tc.want, tc.facts, d, pkgs, err, why)
		}
	}
}

func TestDelegate(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.WriteFile(filepath.Join(root, "etc/subuid"), []byte("root:100000:65536"), 0o644) // no final newline
	if delegated(root, 1000, 1001) {
		t.Fatal("delegated before")
	}
	for range 2 {
		if err := delegate(root, 1000, 1001); err != nil {
			t.Fatal(err)
		}
	}
	uid, _ := os.ReadFile(filepath.Join(root, "etc/subuid"))
	gid, _ := os.ReadFile(filepath.Join(root, "etc/subgid"))
	if string(uid) != "root:100000:65536\nroot:1000:1\n" || string(gid) != "root:1001:1\n" {
		t.Errorf("subuid %q subgid %q", uid, gid)
	}
	if !delegated(root, 1000, 1001) {
		t.Error("not delegated after")
	}
}

// The vibe.yaml setup writes is valid and says what it found, and why.
func TestUserConfig(t *testing.T) {
	d := Decisions{InstanceType: "container", TypeWhy: "no usable /dev/kvm here", Base: "vibe-base-bookworm", Uplink: Uplink}
	b := UserConfig(d)
	c, err := config.Parse("vibe.yaml", b, config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if c.Instance.Type != "container" || c.Image.Base != "vibe-base-bookworm" || !c.Egress.Gateway.Enabled || c.Egress.Gateway.Uplink != Uplink {
		t.Errorf("parsed %+v %+v %+v", c.Instance, c.Image, c.Egress.Gateway)
	}
	for _, want := range []string{"# no usable /dev/kvm here", "vibe-build base", "never\n# overwrites it"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("no %q in\n%s", want, b)
		}
	}
	// A VM host with a reachable base: only what differs from the defaults.
	b = UserConfig(Decisions{InstanceType: "vm", TypeWhy: "KVM works here"})
	if strings.Contains(string(b), "base:") || strings.Contains(string(b), "uplink:") {
		t.Errorf("wrote a base or an uplink it did not decide:\n%s", b)
	}
}

// Run checks every step, does only what is not done, and a dry run does
// nothing; the first failure stops the run and names its step.
func TestRun(t *testing.T) {
	var did []string
	step := func(name string, done bool, fail error) Step {
		return Step{
			Name:  name,
			Check: func(context.Context) (State, error) { return State{Done: done, Detail: name}, nil },
			Do:    func(context.Context) error { did = append(did, name); return fail },
		}
	}
	steps := []Step{step("a", true, nil), step("b", false, nil), step("c", false, errors.New("boom")), step("d", false, nil)}
	r, err := Run(context.Background(), steps, true, nil)
	if err != nil || len(did) != 0 || len(r) != 4 || r[1].Done || r[1].Changed {
		t.Fatalf("dry run: %v did %v reports %+v", err, did, r)
	}
	r, err = Run(context.Background(), steps, false, nil)
	if err == nil || !strings.HasPrefix(err.Error(), "c: boom") {
		t.Errorf("error %v, want c: boom", err)
	}
	if !slices.Equal(did, []string{"b", "c"}) || len(r) != 2 || !r[0].Done || !r[1].Changed {
		t.Errorf("did %v reports %+v", did, r)
	}
}

// The user's vibe.yaml is written with the user's own file-system
// identity: a folder the user cannot write (such as one a symlink in the
// user's home points to) refuses it, and what is made is the user's.
func TestWriteAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to take another identity")
	}
	home := t.TempDir()
	os.Chmod(filepath.Dir(home), 0o755) // the test's own folder: traversable
	os.Chown(home, 1000, 1000)
	p := filepath.Join(home, ".config", "vibe", "vibe.yaml")
	if err := writeAsUser(p, []byte("x: 1\n"), 1000, 1000); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{p, filepath.Dir(p), filepath.Dir(filepath.Dir(p))} {
		st, _ := os.Stat(q)
		if s := st.Sys().(*syscall.Stat_t); s.Uid != 1000 || s.Gid != 1000 {
			t.Errorf("%s belongs to %d:%d", q, s.Uid, s.Gid)
		}
	}
	// The attack: ~/.config/vibe points at a folder only root may write.
	rootOnly := t.TempDir()
	os.Chmod(rootOnly, 0o755)
	home2 := t.TempDir()
	os.Chown(home2, 1000, 1000)
	os.MkdirAll(filepath.Join(home2, ".config"), 0o755)
	os.Symlink(rootOnly, filepath.Join(home2, ".config", "vibe"))
	if err := writeAsUser(filepath.Join(home2, ".config", "vibe", "vibe.yaml"), []byte("x: 1\n"), 1000, 1000); err == nil {
		t.Error("wrote through a symlink into a folder the user cannot write")
	}
	if _, err := os.Stat(filepath.Join(rootOnly, "vibe.yaml")); err == nil {
		t.Error("the file is in the root-only folder")
	}
	// Nor is an existing file replaced.
	if err := writeAsUser(p, []byte("y: 2\n"), 1000, 1000); err == nil {
		t.Error("an existing vibe.yaml was replaced")
	}
}

func TestStepsOnly(t *testing.T) {
	s := New(Options{Type: "container"})
	all, _ := s.Steps()
	var names []string
	for _, st := range all {
		names = append(names, st.Name)
	}
	if want := []string{"incus", "ids", "daemon", "storage", "uplink", "base", "group", "completion", "vibe.yaml"}; !slices.Equal(names, want) {
		t.Errorf("steps %v, want %v", names, want)
	}
	// Chosen steps keep the set-up's order, whatever order they are named in.
	some, err := s.Steps("storage", "incus")
	if err != nil || len(some) != 2 || some[0].Name != "incus" || some[1].Name != "storage" {
		t.Errorf("only storage, incus: %v %v", some, err)
	}
	if _, err := s.Steps("incus", "kernel"); err == nil || !strings.Contains(err.Error(), `no step "kernel"`) {
		t.Errorf("an unknown step: %v", err)
	}
}

// --mirrors-from-host: the host's servers and added authorities land in
// the vibe.yaml, which validates and points every client at them.
func TestUserConfigHostMirrors(t *testing.T) {
	home := t.TempDir()
	ca, _ := os.ReadFile("../cloudinit/testdata/ca.pem")
	caFile := filepath.Join(home, "corp.crt")
	os.WriteFile(caFile, ca, 0o644)
	d := Decisions{InstanceType: "container", TypeWhy: "x", Host: &HostMirrors{
		Mirrors: config.Mirrors{Apt: "http://apt.test/debian", AptSecurity: "http://apt.test/debian-security", NPM: "https://npm.test/", Go: "https://go.test"},
	}, CA: []string{caFile}}
	b := UserConfig(d)
	c, err := config.Parse("vibe.yaml", b, config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	if c.Mirrors != d.Host.Mirrors || !slices.Equal(c.TLS.CA, []string{caFile}) {
		t.Errorf("mirrors %+v ca %v\n%s", c.Mirrors, c.TLS.CA, b)
	}
	if err := c.ReadCAs(home); err != nil || len(c.TLS.Certs) != 1 {
		t.Errorf("the CA does not read back: %v", err)
	}
}

func TestHostConfigReaders(t *testing.T) {
	for in, want := range map[string]string{
		"https://goproxy.test,direct": "https://goproxy.test",
		"off":                         "",
		"direct|https://b.test":       "https://b.test",
		"https://registry.test/\n":    "https://registry.test/",
	} {
		if got := firstURL(in); got != want {
			t.Errorf("firstURL(%q) = %q, want %q", in, got, want)
		}
	}
	p := filepath.Join(t.TempDir(), "pip.conf")
	os.WriteFile(p, []byte("[install]\nindex-url = https://wrong.test\n# c\n[global]\ncert = /x\nindex-url = https://pypi.test/simple/\n"), 0o644)
	if got := iniGet(p, "global", "index-url"); got != "https://pypi.test/simple/" {
		t.Errorf("iniGet = %q", got)
	}
}

// The attack: a Go env file in the user's home names a toolchain, which a
// go command would download and run. Reading the user's GOPROXY must not
// switch toolchains (nor run from a project folder's go.mod).
func TestReadGoProxyRunsNoToolchain(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("no go here")
	}
	home := t.TempDir()
	os.MkdirAll(filepath.Join(home, ".config", "go"), 0o755)
	os.WriteFile(filepath.Join(home, ".config", "go", "env"), []byte("GOTOOLCHAIN=go1.99.0\nGOPROXY=https://goproxy.test\nGOSUMDB=off\n"), 0o644)
	if got := command(context.Background(), nil, home, "go", "env", "GOPROXY"); got != "https://goproxy.test" {
		t.Errorf("go env GOPROXY = %q: the toolchain switch was attempted", got)
	}
}

// Completion files make root's shells run the binary they name: only a
// binary root alone can change is named.
func TestRootOnly(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root-owned files")
	}
	dir := t.TempDir()
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "vibe")
	os.WriteFile(bin, []byte("#!/bin/sh\n"), 0o755)
	if why := rootOnly(bin); why != "" {
		t.Errorf("a root-owned binary in root's folders: %s", why)
	}
	// The attack: a folder others can write, or a binary a user owns.
	os.Chmod(dir, 0o777)
	if rootOnly(bin) == "" {
		t.Error("a binary in a world-writable folder was accepted")
	}
	os.Chmod(dir, 0o755)
	os.Chown(bin, 1000, 1000)
	if rootOnly(bin) == "" {
		t.Error("a user's binary was accepted")
	}
	if rootOnly("/usr/bin/a b") == "" || rootOnly("/usr/bin/a;b") == "" {
		t.Error("a path that needs quoting was accepted")
	}
}

// A local base keeps the archive it was built from: its hosts must be in
// the allowlist, so setup writes them as mirrors.apt.
func TestUserConfigLocalBaseArchive(t *testing.T) {
	d := Decisions{InstanceType: "container", TypeWhy: "x", Base: "vibe-base-bookworm", Archive: "http://mirror.test/debian", Security: "http://mirror.test/debian-security"}
	c, err := config.Parse("vibe.yaml", UserConfig(d), config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if c.Mirrors.Apt != d.Archive || c.Mirrors.AptSecurity != d.Security || !c.Allowlist.Allows("mirror.test") {
		t.Errorf("mirrors %+v", c.Mirrors)
	}
}

// Root reads the user's files with the user's permissions: a symlink to a
// file only root may read yields nothing.
func TestReadAsUser(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to take another identity")
	}
	u := &user.User{Uid: "1000", Gid: "1000"}
	secret := filepath.Join(t.TempDir(), "root-only")
	os.WriteFile(secret, []byte("index-url = https://internal.test/\n"), 0o600)
	home := t.TempDir()
	os.Chmod(filepath.Dir(home), 0o755)
	os.Chmod(home, 0o755)
	link := filepath.Join(home, "pip.conf")
	os.Symlink(secret, link)
	if b, err := ReadAsUser(link, u); err == nil {
		t.Errorf("read a root-only file through the user's symlink: %q", b)
	}
	mine := filepath.Join(home, "mine.yaml")
	os.WriteFile(mine, []byte("name: x\n"), 0o644)
	if b, err := ReadAsUser(mine, u); err != nil || string(b) != "name: x\n" {
		t.Errorf("the user's own file: %q %v", b, err)
	}
}

// On a machine that reaches only its mirrors, the vibe.yaml setup writes
// asks for no site that does not resolve there: Node.js from the
// distribution, the toolchains that download from elsewhere off, each with
// why; the agent stays.
func TestUserConfigSwitchesUnreachableDownloads(t *testing.T) {
	resolves := map[string]bool{}
	resolve, asked := recordingResolver(resolves)
	s := New(Options{Type: "container", Resolve: resolve})
	defaults, err := config.Parse("", nil, config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	s.Decided.Switched = s.checkDownloads(context.Background(), defaults)
	b := UserConfig(s.Decided)
	c, err := config.Parse("vibe.yaml", b, config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatalf("%v\n%s", err, b)
	}
	tc := c.Toolchains
	if tc.Node.Source != config.NodeDistro || !tc.Node.Enabled || tc.Java.Enabled || tc.Maven.Enabled || tc.Gradle.Enabled || tc.Chrome.Enabled || tc.OpenTofu.Enabled || tc.Helm.Enabled || !c.Agent.Enabled {
		t.Errorf("toolchains %+v agent %v\n%s", tc, c.Agent.Enabled, b)
	}
	for _, d := range c.Downloads() {
		for _, h := range d.Hosts {
			if !resolves[h] {
				t.Errorf("the written configuration still downloads from %s (%s)", h, d.Key)
			}
		}
	}
	for _, want := range []string{"# get.sdkman.io, api.sdkman.io did not resolve when vibe setup ran:\n  # off until", "source: distro", "  # get.helm.sh did not resolve when vibe setup ran:\n  # off until the machine reaches it.\n  helm:\n    enabled: false"} {
		if !strings.Contains(string(b), want) {
			t.Errorf("vibe.yaml lacks %q:\n%s", want, b)
		}
	}
	names := slices.Sorted(slices.Values(*asked))
	if len(slices.Compact(names)) != len(*asked) {
		t.Errorf("a name was looked up twice: %v", *asked)
	}
	// Where everything resolves, nothing is switched.
	s.o.Resolve = func(context.Context, string) error { return nil }
	if sw := s.checkDownloads(context.Background(), defaults); sw != nil {
		t.Errorf("switched with every site resolving: %+v", sw)
	}
}

// The sites checked are those of the file setup writes: with the host's
// npm registry copied into it, that registry's name.
func TestDownloadsCheckedAreTheWrittenConfigs(t *testing.T) {
	resolve, asked := recordingResolver(nil)
	s := New(Options{Type: "container", Resolve: resolve})
	s.decidedUplink, s.decidedBase = true, true
	s.Decided.Host = &HostMirrors{Mirrors: config.Mirrors{NPM: "https://npm.test/"}}
	if _, err := s.configStep(filepath.Join(t.TempDir(), "vibe.yaml")).Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(*asked, "npm.test") {
		t.Errorf("looked up %v, want the copied registry npm.test among them", *asked)
	}
}

// recordingResolver resolves the names in resolves (every name when nil)
// and records each it is asked.
func recordingResolver(resolves map[string]bool) (func(context.Context, string) error, *[]string) {
	var asked []string
	var mu sync.Mutex
	return func(_ context.Context, host string) error {
		mu.Lock()
		defer mu.Unlock()
		asked = append(asked, host)
		if resolves == nil || resolves[host] {
			return nil
		}
		return errors.New("no such host")
	}, &asked
}

// VMs need a /dev/kvm that opens and, on x86, VT-x or AMD-V behind it: a
// /dev/kvm of PVM's (kvm_pvm, no vmx or svm flag) boots only guest kernels
// built for it, so sandboxes there are containers.
func TestKVMWhy(t *testing.T) {
	dir := t.TempDir()
	dev := filepath.Join(dir, "kvm")
	if err := os.WriteFile(dev, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cpu := func(flags string) string {
		p := filepath.Join(t.TempDir(), "cpuinfo")
		os.WriteFile(p, []byte("processor\t: 0\nmodel name\t: x\nflags\t\t: "+flags+"\n\nprocessor\t: 1\nflags\t\t: "+flags+"\n"), 0o644)
		return p
	}
	for _, tc := range []struct {
		name, dev, cpuinfo, arch string
		ok                       bool
	}{
		{"intel", dev, cpu("fpu vme de pse vmx sse"), "amd64", true},
		{"amd", dev, cpu("fpu svm lm"), "amd64", true},
		{"pvm: /dev/kvm with no vmx or svm", dev, cpu("fpu vme hypervisor lm"), "amd64", false},
		{"no /dev/kvm", filepath.Join(dir, "none"), cpu("vmx"), "amd64", false},
		{"no cpuinfo", dev, filepath.Join(dir, "none"), "amd64", false},
		{"a flag's name inside another", dev, cpu("vmxnot svmx"), "amd64", false},
		{"arm64 takes /dev/kvm as it is", dev, cpu(""), "arm64", true},
	} {
		why := kvmWhy(tc.dev, tc.cpuinfo, tc.arch)
		if (why == "") != tc.ok {
			t.Errorf("%s: kvmWhy = %q, want usable %v", tc.name, why, tc.ok)
		}
	}
}
