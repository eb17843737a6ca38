package cloudinit

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"
	"text/template/parse"

	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/internal/e2e"
	"github.com/vibesandbox/vibe/provision"
	"github.com/vibesandbox/vibe/templates"
)

var update = flag.Bool("update", false, "rewrite golden files")

var host = config.Host{UID: 4242, GID: 4242}

func load(t testing.TB, file, instanceType string) *config.Config {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(file, data, host)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Override(config.Overrides{InstanceType: instanceType}); err != nil {
		t.Fatal(err)
	}
	// tls.ca's "~/" is the testdata folder here.
	home, _ := filepath.Abs(filepath.Dir(file))
	if err := c.ReadCAs(home); err != nil {
		t.Fatal(err)
	}
	return c
}

var goldens = []struct {
	name, config, instanceType string
}{
	{"default-vm", "testdata/default.yaml", "vm"},
	{"default-container", "testdata/default.yaml", "container"},
	{"all-toolchains-vm", "testdata/all-toolchains.yaml", "vm"},
}

func TestGolden(t *testing.T) {
	for _, g := range goldens {
		t.Run(g.name, func(t *testing.T) {
			got, err := Render(load(t, g.config, g.instanceType))
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", g.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test ./cloudinit -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("render differs from %s; if the change is intended, run go test ./cloudinit -update and review the diff", path)
			}
		})
	}
}

func TestSameInputsSameBytes(t *testing.T) {
	c := load(t, "testdata/all-toolchains.yaml", "vm")
	a, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		b, err := Render(load(t, "testdata/all-toolchains.yaml", "vm"))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Fatal("two renders of the same inputs differ")
		}
	}
}

// decoded is a rendered document read back as data.
type decoded struct {
	Bootcmd    []any            `yaml:"bootcmd"`
	Runcmd     []any            `yaml:"runcmd"`
	Packages   []string         `yaml:"packages"`
	Users      []map[string]any `yaml:"users"`
	WriteFiles []struct {
		Path        string `yaml:"path"`
		Content     string `yaml:"content"`
		Permissions string `yaml:"permissions"`
		Defer       bool   `yaml:"defer"`
		Append      bool   `yaml:"append"`
	} `yaml:"write_files"`
}

func decode(t testing.TB, doc []byte) decoded {
	t.Helper()
	var d decoded
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	dec.KnownFields(false)
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("rendered document does not parse back: %v", err)
	}
	return d
}

func (d decoded) file(t testing.TB, path string) string {
	t.Helper()
	for _, f := range d.WriteFiles {
		if f.Path == path {
			return f.Content
		}
	}
	t.Fatalf("no write_files entry for %s", path)
	return ""
}

func TestGuestScriptsAreShippedVerbatim(t *testing.T) {
	c := load(t, "testdata/all-toolchains.yaml", "vm")
	doc, err := Render(c)
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, doc)
	for guest, embedded := range map[string]string{
		"/usr/local/sbin/vibe-firewall":              "vibe-firewall",
		"/usr/local/sbin/vibe-selftest":              "vibe-selftest",
		"/usr/local/lib/vibe/firewall.nft":           "firewall.nft",
		"/usr/local/lib/vibe/lib.sh":                 "lib.sh",
		"/usr/local/lib/vibe/run":                    "run",
		"/usr/local/lib/vibe/provision.d/40-node.sh": "steps/40-node.sh",
		"/etc/profile.d/vibe-proxy.sh":               "proxy-env.sh",
	} {
		want, err := provision.File(embedded)
		if err != nil {
			t.Fatal(err)
		}
		if got := d.file(t, guest); got != want {
			t.Errorf("%s differs from provision/%s", guest, embedded)
		}
	}
	if len(d.Runcmd) != 1 {
		t.Errorf("runcmd = %v, want the one provisioning driver", d.Runcmd)
	}
}

func TestStepsFollowTheConfiguration(t *testing.T) {
	steps := func(c *config.Config) string {
		doc, err := Render(c)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, f := range decode(t, doc).WriteFiles {
			if dir, name := filepath.Split(f.Path); dir == "/usr/local/lib/vibe/provision.d/" {
				names = append(names, strings.TrimSuffix(name, ".sh"))
			}
		}
		return strings.Join(names, " ")
	}
	if got, want := steps(load(t, "testdata/default.yaml", "vm")), "10-user 20-proxy 30-firewall 40-node 42-java 46-chrome 47-opentofu 48-helm 50-time 90-selftest"; got != want {
		t.Errorf("default vm steps:\n got  %s\n want %s", got, want)
	}
	if got, want := steps(load(t, "testdata/default.yaml", "container")), "10-user 20-proxy 30-firewall 40-node 42-java 46-chrome 47-opentofu 48-helm 90-selftest"; got != want {
		t.Errorf("default container steps:\n got  %s\n want %s", got, want)
	}
	if got := steps(load(t, "testdata/all-toolchains.yaml", "vm")); !strings.Contains(got, "44-python 45-go 46-chrome 47-opentofu 48-helm 49-docker") {
		t.Errorf("all toolchains: steps %s", got)
	}
	for _, p := range provision.Steps() {
		if _, known := stepEnabled(load(t, "testdata/default.yaml", "vm"), provision.StepName(p)); !known {
			t.Errorf("step %s has no rule", p)
		}
	}
}

func TestPackagesEssentialFirstNoDuplicates(t *testing.T) {
	c := load(t, "testdata/all-toolchains.yaml", "vm")
	c.Packages.Extra = append(c.Packages.Extra, "curl", "jq=1.7", "htop")
	got := packages(c)
	if strings.Join(got[:len(Essential)], " ") != strings.Join(Essential, " ") {
		t.Errorf("packages %v do not start with the essentials", got)
	}
	seen := map[string]bool{}
	for _, p := range got {
		name, _, _ := strings.Cut(p, "=")
		if seen[name] {
			t.Errorf("%s listed twice in %v", name, got)
		}
		seen[name] = true
	}
	for _, want := range []string{"chrony", "zip", "unzip", "gnupg", "zsh", "htop"} {
		if !seen[want] {
			t.Errorf("%s missing from %v", want, got)
		}
	}
}

// Every output action in every template must end in an escaping helper, so
// no value can be pasted into YAML or XML raw.
func TestTemplatesEscapeEveryValue(t *testing.T) {
	names, _ := templatesFiles()
	if len(names) < 8 {
		t.Fatalf("found only %d templates", len(names))
	}
	for _, name := range names {
		src, _ := templates.FS.ReadFile(name)
		tmpl, err := template.New(name).Funcs(funcs(&view{})).Parse(string(src))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, tt := range tmpl.Templates() {
			walk(tt.Tree.Root, func(a *parse.ActionNode) {
				if len(a.Pipe.Decl) > 0 {
					return // {{ $x := … }} prints nothing
				}
				cmds := a.Pipe.Cmds
				last := cmds[len(cmds)-1]
				id, ok := last.Args[0].(*parse.IdentifierNode)
				if !ok || !Escapers[id.Ident] {
					t.Errorf("%s:%d: output %s does not end in an escaping helper (| yaml or | xml)", name, a.Line, a)
				}
			})
		}
	}
}

func templatesFiles() ([]string, error) {
	var out []string
	for _, pattern := range []string{"cloud-config/*.yaml", "files/*"} {
		m, err := fsGlob(pattern)
		if err != nil {
			return nil, err
		}
		out = append(out, m...)
	}
	return out, nil
}

func walk(n parse.Node, fn func(*parse.ActionNode)) {
	switch n := n.(type) {
	case *parse.ListNode:
		if n == nil {
			return
		}
		for _, c := range n.Nodes {
			walk(c, fn)
		}
	case *parse.ActionNode:
		fn(n)
	case *parse.IfNode:
		walk(n.List, fn)
		walk(n.ElseList, fn)
	case *parse.RangeNode:
		walk(n.List, fn)
		walk(n.ElseList, fn)
	case *parse.WithNode:
		walk(n.List, fn)
		walk(n.ElseList, fn)
	}
}

// Hostile values in every string field are either refused with a clear
// error, or carried through byte-exact as data: never into a command.
func TestHostileValues(t *testing.T) {
	hostile := []string{
		`'`, `"`, `$(id)`, "`id`", "a\nb", `; rm -rf /`, `a: b`, `- x`, `{a: b}`, `[x]`,
		`#x`, `&a`, `*a`, `!tag`, `|`, `>`, `%x`, `@x`, "\t", `\`, `${HOME}`, `</url><x>`,
		`https://m.example.com/$(id)`, "https://m.example.com/`id`", `https://m.example.com/;rm -rf /`,
		`https://m.example.com/a]]><!--`,
	}
	fields := []string{
		"name", "image.base", "image.alias", "instance.type", "instance.memory", "instance.disk",
		"user.name", "user.shell", "packages.extra", "toolchains.node.version", "toolchains.node.nvm",
		"toolchains.java.version", "toolchains.java.extra", "toolchains.maven.version",
		"toolchains.gradle.version", "toolchains.python.version", "toolchains.python.uv",
		"toolchains.go.version", "toolchains.chrome.lighthouse", "toolchains.opentofu.version",
		"toolchains.helm.version", "agent.package", "agent.version", "egress.allow",
		"mirrors.maven", "mirrors.docker",
	}
	list := map[string]bool{"packages.extra": true, "toolchains.java.extra": true, "egress.allow": true}
	accepted := 0
	for _, field := range fields {
		for _, h := range hostile {
			var value any = h
			if list[field] {
				value = []string{h}
			}
			doc := nest(field, value)
			if field == "mirrors.docker" {
				doc["toolchains"] = map[string]any{"docker": map[string]any{"enabled": true}}
			}
			if strings.HasPrefix(field, "toolchains.python") || strings.HasPrefix(field, "toolchains.go") {
				top := doc["toolchains"].(map[string]any)
				top[strings.Split(field, ".")[1]].(map[string]any)["enabled"] = true
			}
			data, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			c, err := config.Parse("vibe.yaml", data, host)
			if err != nil {
				var ce *config.Error
				if !strings.Contains(err.Error(), "vibe.yaml:") {
					t.Errorf("%s=%q refused without a place: %v (%T %v)", field, h, err, err, errorsAs(err, &ce))
				}
				continue
			}
			accepted++
			out, err := Render(c)
			if err != nil {
				t.Errorf("%s=%q accepted but render failed: %v", field, h, err)
				continue
			}
			d := decode(t, out)
			if len(d.Runcmd) != 1 || !strings.Contains(string(out), "runcmd:\n  - [/usr/local/lib/vibe/run]\n") {
				t.Errorf("%s=%q changed runcmd: %v", field, h, d.Runcmd)
			}
			for _, b := range d.Bootcmd {
				if strings.Contains(toString(b), h) && len(h) > 1 {
					t.Errorf("%s=%q reached bootcmd: %v", field, h, b)
				}
			}
			var build map[string]any
			if err := json.Unmarshal([]byte(d.file(t, "/etc/vibe/build.json")), &build); err != nil {
				t.Fatalf("build.json: %v", err)
			}
			if strings.HasPrefix(field, "mirrors.") && !containsString(build, h) {
				t.Errorf("%s=%q accepted but not carried byte-exact into build.json", field, h)
			}
			if field == "mirrors.maven" {
				settings := d.file(t, "/etc/skel/.m2/settings.xml")
				if strings.Contains(settings, "<x>") || strings.Contains(settings, "<!--") && strings.Count(settings, "<!--") > 1 {
					t.Errorf("mirror URL %q broke out of its XML element", h)
				}
			}
		}
	}
	if accepted == 0 {
		t.Error("no hostile value was accepted: the byte-exact path went untested")
	}
}

func errorsAs(err error, target **config.Error) bool {
	e, ok := err.(*config.Error)
	*target = e
	return ok
}

func toString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func containsString(v any, s string) bool {
	switch x := v.(type) {
	case string:
		return x == s
	case map[string]any:
		for _, e := range x {
			if containsString(e, s) {
				return true
			}
		}
	case []any:
		for _, e := range x {
			if containsString(e, s) {
				return true
			}
		}
	}
	return false
}

// nest turns "a.b.c" = v into {a: {b: {c: v}}}.
func nest(path string, v any) map[string]any {
	parts := strings.Split(path, ".")
	root := map[string]any{}
	m := root
	for _, p := range parts[:len(parts)-1] {
		next := map[string]any{}
		m[p] = next
		m = next
	}
	m[parts[len(parts)-1]] = v
	return root
}

func TestMerge(t *testing.T) {
	tests := []struct {
		a, b, want, err string
	}{
		{"x: [1]", "x: [2]", "x: [1, 2]", ""},
		{"m: {a: 1}", "m: {b: 2}", "m: {a: 1, b: 2}", ""},
		{"s: 1", "s: 1", "s: 1", ""},
		{"s: 1", "s: 2", "", `s: set to "1" and to "2"`},
		{"s: [1]", "s: {a: 1}", "", "cannot merge a mapping into a list"},
		{"a: 1", "b: [x]", "a: 1\nb: [x]", ""},
	}
	for _, tt := range tests {
		var a, b, want yaml.Node
		yaml.Unmarshal([]byte(tt.a), &a)
		yaml.Unmarshal([]byte(tt.b), &b)
		err := merge(a.Content[0], b.Content[0], "")
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("merge(%s, %s) error %v, want %q", tt.a, tt.b, err, tt.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("merge(%s, %s): %v", tt.a, tt.b, err)
			continue
		}
		var got, exp any
		out, _ := yaml.Marshal(a.Content[0])
		yaml.Unmarshal(out, &got)
		yaml.Unmarshal([]byte(tt.want), &want)
		want.Decode(&exp)
		if toString(got) != toString(exp) {
			t.Errorf("merge(%s, %s) = %s, want %s", tt.a, tt.b, toString(got), toString(exp))
		}
	}
}

func TestCheckRefuses(t *testing.T) {
	for doc, want := range map[string]string{
		"packages: []\n":          "does not start with",
		"#cloud-config\nfoo: 1\n": "unknown top-level keys: foo",
		"#cloud-config\nruncmd: [echo sk-ant-api03-abcdefghijklmnop]\n": "looks like an Anthropic API key",
		"#cloud-config\n: [\n": "not valid YAML",
		// A certificate block passes only its base64 lines.
		"#cloud-config\nca_certs:\n  trusted:\n    - |\n      -----BEGIN CERTIFICATE-----\n      token sk-ant-api03-abcdefghijklmnop\n      -----END CERTIFICATE-----\n": "looks like an Anthropic API key",
		"#cloud-config\nruncmd: [echo Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5MEFCQ0RFRkdISUo=]\n":                                                                                   "looks like a random token",
	} {
		if err := Check([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check(%q) = %v, want %q", doc, err, want)
		}
	}
}

// A certificate's base64 lines (tls.ca) are not taken for a secret.
func TestCheckPassesCertificates(t *testing.T) {
	c := load(t, "testdata/all-toolchains.yaml", "vm")
	if len(c.TLS.Certs) == 0 {
		t.Fatal("the test configuration has no tls.ca")
	}
	if _, err := Render(c); err != nil {
		t.Fatal(err)
	}
}

func TestRecipeHash(t *testing.T) {
	ud := []byte("#cloud-config\n")
	a := NewRecipe("images:ubuntu/26.04/cloud", "vm", "", ud)
	if a.Hash() != NewRecipe("images:ubuntu/26.04/cloud", "vm", "", ud).Hash() {
		t.Error("recipe hash is not stable")
	}
	for _, b := range []Recipe{
		NewRecipe("images:debian/13/cloud", "vm", "", ud),
		NewRecipe("images:ubuntu/26.04/cloud", "container", "", ud),
		NewRecipe("images:ubuntu/26.04/cloud", "vm", "", []byte("#cloud-config\n\n")),
		NewRecipe("images:ubuntu/26.04/cloud", "vm", "40GiB", ud),
	} {
		if a.Hash() == b.Hash() {
			t.Errorf("recipes %+v and %+v share a hash", a, b)
		}
	}
	// A VM's disk size is its builder's, so it is in the recipe; a
	// container's root has no size of its own, so it is not.
	if NewRecipe("b", "container", "40GiB", ud).Hash() != NewRecipe("b", "container", "", ud).Hash() {
		t.Error("a container's recipe depends on a disk size")
	}
	if got := NewRecipe("b", "vm", "40GiB", ud).Canonical(); !strings.HasSuffix(got, "disk: 40GiB\n") {
		t.Errorf("a VM's canonical recipe lacks its disk:\n%s", got)
	}
	// Pinned: the canonical text, and so the hash, is a compatibility promise.
	if got, want := a.Canonical(), "vibe-recipe-format: 1\nbase: images:ubuntu/26.04/cloud\ninstance-type: vm\nuser-data-sha256: 88c95955b024402aa9572b663f7eeb134f01343bb92af27b50e97e72b22c565f\n"; got != want {
		t.Errorf("canonical recipe:\n%s", got)
	}
}

func TestCloudInitSchema(t *testing.T) {
	bin := e2e.Tool(t, "cloud-init", "")
	for _, g := range goldens {
		doc, err := Render(load(t, g.config, g.instanceType))
		if err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(t.TempDir(), "user-data")
		os.WriteFile(f, doc, 0o644)
		out, err := exec.Command(bin, "schema", "--config-file", f).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "Valid cloud-config") {
			t.Errorf("%s: cloud-init schema: %v\n%s", g.name, err, out)
		}
	}
	// The validator can fail: a wrong type must be caught.
	bad := filepath.Join(t.TempDir(), "bad")
	os.WriteFile(bad, []byte("#cloud-config\npackage_update: [1]\n"), 0o644)
	if out, err := exec.Command(bin, "schema", "--config-file", bad).CombinedOutput(); err == nil {
		t.Errorf("cloud-init schema accepted a wrong type:\n%s", out)
	}
}

func BenchmarkRender(b *testing.B) {
	c := load(b, "testdata/all-toolchains.yaml", "vm")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(c); err != nil {
			b.Fatal(err)
		}
	}
}

// Every client's proxy setting names the proxy by the name settle points
// at the guest's proxy or the gateway: no address, so that an image baked
// on one host runs on another.
func TestProxySettingsNameNoAddress(t *testing.T) {
	doc, err := Render(load(t, "testdata/all-toolchains.yaml", "vm"))
	if err != nil {
		t.Fatal(err)
	}
	d := decode(t, doc)
	withPort := regexp.MustCompile(`\b\d{1,3}(\.\d{1,3}){3}:\d+`)
	for _, f := range d.WriteFiles {
		if m := withPort.FindString(f.Content); m != "" {
			t.Errorf("%s names an address: %s", f.Path, m)
		}
	}
	for path, want := range map[string]string{
		"/etc/apt/apt.conf.d/90vibe-proxy":                     `Acquire::https::Proxy "http://vibe-proxy:3128";`,
		"/etc/profile.d/vibe-proxy.sh":                         "https_proxy=http://vibe-proxy:3128",
		"/etc/pip.conf":                                        "proxy = http://vibe-proxy:3128",
		"/etc/gitconfig":                                       "proxy = http://vibe-proxy:3128",
		"/etc/skel/.npmrc":                                     "https-proxy=http://vibe-proxy:3128",
		"/etc/skel/.m2/settings.xml":                           "<host>vibe-proxy</host>",
		"/etc/skel/.gradle/gradle.properties":                  "systemProp.https.proxyHost=vibe-proxy",
		"/etc/systemd/system/docker.service.d/http-proxy.conf": "HTTPS_PROXY=http://vibe-proxy:3128",
		"/etc/tinyproxy/tinyproxy.conf":                        "Port 3128",
	} {
		if got := d.file(t, path); !strings.Contains(got, want) {
			t.Errorf("%s lacks %q:\n%s", path, want, got)
		}
	}
}

// Node from the distribution comes with the packages (and npm with it);
// through nvm it does not.
func TestNodeSource(t *testing.T) {
	for source, want := range map[string]bool{"distro": true, "nvm": false} {
		c, err := config.Parse("vibe.yaml", []byte("toolchains:\n  node:\n    source: "+source+"\n"), host)
		if err != nil {
			t.Fatal(err)
		}
		p := packages(c)
		if slices.Contains(p, "nodejs") != want || slices.Contains(p, "npm") != want {
			t.Errorf("source %s: packages %v", source, p)
		}
		out, _ := Render(c)
		if !strings.Contains(string(out), `"source": "`+source+`"`) {
			t.Errorf("build.json does not carry the source %s", source)
		}
	}
	if _, err := config.Parse("vibe.yaml", []byte("toolchains:\n  node:\n    source: brew\n"), host); err == nil || !strings.Contains(err.Error(), "toolchains.node.source") {
		t.Errorf("an unknown source: %v", err)
	}
}

// A value in a file without quoting (npmrc, pip.conf, Go's env) cannot
// start another line, a comment or a section.
func TestIniValue(t *testing.T) {
	if v, err := iniValue("https://npm.test/"); err != nil || v != "https://npm.test/" {
		t.Errorf("a plain URL: %q %v", v, err)
	}
	for _, bad := range []string{"", "a\nproxy=http://evil", "a;b", "a#b", " a", "[global]", `a"b`} {
		if _, err := iniValue(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
