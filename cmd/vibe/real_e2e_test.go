package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/distro"
	"github.com/vibesandbox/vibe/egress"
	"github.com/vibesandbox/vibe/internal/e2e"
	"github.com/vibesandbox/vibe/sbom"
)

// Real package servers through the real egress path: the builder, behind
// the gateway (whose uplink is a NAT bridge to the registries this machine
// reaches), installs Node.js and npm from the distribution's mirror
// (toolchains.node.source: distro), the real agent CLI from the npm
// registry and Go from the module proxy, trusting the machine's own
// certificate authorities (tls.ca). A sandbox from that image then runs
// the agent CLI and go, root installs a package with apt through the
// gateway, and an unlisted host is still refused. Every host name is read
// from the machine at run time.
func TestE2ERealAgentFromRegistries(t *testing.T) {
	w := newWorld(t)
	const (
		alias = "vibe-e2e-real"
		net   = "vibe-e2e-rsb"
		gw    = "vibe-e2e-rgw"
		nat   = "vibe-e2e-nat"
	)
	removeGateway := func() {
		e2e.ForceDelete(w.c, gw)
		_ = w.c.DeleteNetwork(net)
		_ = w.c.DeleteNetworkACL(net)
	}
	removeGateway()
	_ = w.c.DeleteNetwork(nat)
	subnet, err := egress.FreeSubnet(w.c, 79)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.c.CreateNetwork(api.NetworksPost{Name: nat, Type: "bridge", NetworkPut: api.NetworkPut{
		Config: map[string]string{"ipv4.address": subnet, "ipv4.nat": "true", "ipv6.address": "none"},
	}}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = w.c.DeleteNetwork(nat) })
	t.Cleanup(removeGateway)
	// The image is over 2 GiB: a machine that runs the suite again must
	// not collect one per run.
	t.Cleanup(func() {
		if a, _, err := w.c.GetImageAlias(alias); err == nil {
			_ = w.c.DeleteImageAlias(alias)
			if op, err := w.c.DeleteImage(a.Target); err == nil {
				_ = op.Wait()
			}
		}
	})
	t.Cleanup(func() { w.vibe("rm") })

	// The machine's own Debian mirror and certificate authorities.
	host, err := distro.HostSources("/")
	if err != nil {
		t.Fatal(err)
	}
	archive, security := distro.HostArchives("debian", host)
	if archive == nil {
		t.Fatal("no Debian archive in this machine's apt sources")
	}
	// The registry npm uses here, and the archives apt uses.
	regOut, err := exec.Command("npm", "config", "get", "registry").Output()
	if err != nil {
		t.Fatalf("npm config get registry: %v", err)
	}
	reg, err := url.Parse(strings.TrimSpace(string(regOut)))
	if err != nil || reg.Hostname() == "" {
		t.Fatalf("npm's registry %q", regOut)
	}
	allow := []string{"=" + reg.Hostname()}
	for _, s := range []*distro.Source{archive, security} {
		if s != nil {
			u, err := url.Parse(s.URI)
			if err != nil {
				t.Fatal(err)
			}
			allow = append(allow, "="+u.Hostname())
		}
	}
	// The Go module proxy the go command uses here: Go comes from it.
	goproxy := ""
	if out, err := exec.Command("go", "env", "GOPROXY").Output(); err == nil {
		for _, p := range strings.FieldsFunc(strings.TrimSpace(string(out)), func(r rune) bool { return r == ',' || r == '|' }) {
			if strings.HasPrefix(p, "https://") {
				goproxy = p
				break
			}
		}
	}
	if goproxy == "" {
		t.Fatal("go env GOPROXY names no https module proxy on this machine")
	}
	cas, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	mirrors := fmt.Sprintf("mirrors:\n  go: %s\n", goproxy)
	gateway := fmt.Sprintf("egress:\n  allow: [%s]\n  gateway:\n    enabled: true\n    uplink: %s\n    image: vibe-test-base\n    network: %s\n    instance: %s\n",
		strings.Join(allow, ", "), nat, net, gw)
	if len(cas) > 0 {
		gateway += "tls:\n  ca: [" + strings.Join(cas, ", ") + "]\n"
	}
	offline, err := os.ReadFile("../../examples/offline.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(offline)
	for old, repl := range map[string]string{
		"alias: vibe-offline":    "alias: " + alias,
		"node: {enabled: false}": "node: {enabled: true, source: distro}",
		"update: false":          "update: true",
		"helm: {enabled: false}": "helm: {enabled: false}\n  go: {enabled: true}",
		// Two more agents, pinned like Claude Code. Gemini CLI needs
		// Node.js 20, newer than bookworm's (the bake would refuse it).
		"agent:\n  enabled: false\n": "agent:\n  enabled: true\nagents:\n  codex: {enabled: true}\n  opencode: {enabled: true}\n",
	} {
		if !strings.Contains(cfg, old) {
			t.Fatalf("examples/offline.yaml has no %q", old)
		}
		cfg = strings.Replace(cfg, old, repl, 1)
	}
	path := filepath.Join(w.dir, "real.yaml")
	os.WriteFile(path, []byte(withEgress(t, cfg, gateway+mirrors)), 0o644)
	cmd := exec.Command(vibeBuildBin, "build", "--config", path, "--json")
	cmd.Env = append(os.Environ(), "XDG_DATA_HOME="+filepath.Join(w.dir, "data"))
	out, errOut, code := e2e.Run(t, cmd)
	if code != 0 {
		log, _ := e2e.Exec(t, w.c, gw, "sh", "-c", "tail -n 40 /var/log/vibe-gateway/*.jsonl")
		t.Fatalf("bake from the real registries: exit %d\n%s%s\ngateway log:\n%s", code, out, errOut, log)
	}
	t.Logf("bake: %s", out)
	man, _, _ := e2e.Run(t, exec.Command(vibeBuildBin, "inspect", alias, "--manifest"))
	if !strings.Contains(man, `"agent": "2.`) || !strings.Contains(man, `"node": "v`) {
		t.Errorf("the manifest does not record the agent and node versions:\n%s", man)
	}
	// The SBOM names the agent CLI at the version npm installed, and the
	// distribution's Node.js.
	doc, _, _ := e2e.Run(t, exec.Command(vibeBuildBin, "inspect", alias, "--sbom"))
	pkgs, err := sbom.Parse([]byte(doc))
	if err != nil {
		t.Fatalf("the image's SBOM: %v", err)
	}
	found := map[string]string{}
	for _, p := range pkgs {
		found[p.Type+" "+p.Name] = p.Version
	}
	for a, pkg := range map[string]string{"codex": "@openai/codex", "opencode": "opencode-ai"} {
		if v := found["npm "+pkg]; v == "" || found["tool agent-"+a] != v {
			t.Errorf("the SBOM: %s %q (recorded %q)", pkg, v, found["tool agent-"+a])
		}
	}
	if v := found["npm @anthropic-ai/claude-code"]; !strings.HasPrefix(v, "2.") || found["deb nodejs"] == "" || found["tool agent"] != v || !strings.HasPrefix(found["tool go"], "go1.") {
		t.Errorf("the SBOM: agent %q (recorded %q), nodejs %q, go %q", v, found["tool agent"], found["deb nodejs"], found["tool go"])
	}

	// A sandbox from it, behind the same gateway, runs the real agent CLI.
	mine, _ := os.ReadFile(filepath.Join(w.dir, "vibe.yaml"))
	my := strings.Replace(string(mine), "alias: vibe-offline\n", "alias: "+alias+"\n", 1)
	my = strings.Replace(strings.Replace(my, "node: {enabled: false}", "node: {enabled: true}", 1), "sandbox:\n", "agents:\n  codex: {enabled: true}\n  opencode: {enabled: true}\nsandbox:\n", 1)
	my = withEgress(t, my, gateway)
	os.WriteFile(filepath.Join(w.dir, "vibe.yaml"), []byte(my), 0o644)
	w.must("up")
	stdout, stderr, code := w.vibe("exec", "--", "claude", "--version")
	if code != 0 || !strings.Contains(stdout, "Claude Code") {
		t.Errorf("claude --version in the sandbox: exit %d %q %s", code, stdout, stderr)
	}
	// vibe --agent NAME starts the preset's own command, in its auto mode.
	for a, want := range map[string]string{"codex": "codex-cli 0.", "opencode": "1.18."} {
		stdout, stderr, code = w.vibe("--agent", a, "app", "--", "--version")
		if code != 0 || !strings.Contains(stdout, want) {
			t.Errorf("vibe --agent %s -- --version: exit %d %q %s", a, code, stdout, stderr)
		}
	}
	// Each agent's real CLI calls its model API through the gateway's
	// credential route, and the key that arrives is the real one, which
	// the guest never held: the base URL each is given (and codex's
	// model provider) is the one the CLI really uses.
	model := startFakeModelAPI(t, w.c, nat)
	os.WriteFile(filepath.Join(w.dir, "config", "vibe", "secrets.env"), []byte(
		"ANTHROPIC_API_KEY="+realAnthropicKey+"\nANTHROPIC_BASE_URL="+model.url+
			"\nOPENAI_API_KEY="+realOpenAIKey+"\nOPENAI_BASE_URL="+model.url+"/v1\n"), 0o600)
	for _, run := range []struct {
		agent string
		args  []string
		path  string
		key   string
	}{
		{"claude", []string{"-p", "say hi"}, "/v1/messages", "x-api-key: " + realAnthropicKey},
		{"codex", []string{"exec", "--skip-git-repo-check", "say hi"}, "/v1/responses", "authorization: Bearer " + realOpenAIKey},
		// opencode picks its model among the providers it has a key for.
		{"opencode", []string{"run", "say hi"}, "", ""},
	} {
		// This world's own agent command is a stand-in: Claude Code runs
		// through exec, the others as their presets start them.
		args := append([]string{"--agent", run.agent, "app", "--"}, run.args...)
		if run.agent == "claude" {
			args = append([]string{"exec", "--", "claude"}, run.args...)
		}
		model.reset()
		stdout, stderr, code := w.vibeFor(3*time.Minute, args...)
		got := model.requests()
		ok := false
		for _, r := range got {
			if run.path == "" {
				ok = ok || (r.Path == "/v1/messages" && r.Key == "x-api-key: "+realAnthropicKey) || (r.Path == "/v1/chat/completions" || r.Path == "/v1/responses") && r.Key == "authorization: Bearer "+realOpenAIKey
			} else {
				ok = ok || (r.Path == run.path && r.Key == run.key)
			}
			if strings.Contains(r.Key, egress.Placeholder) {
				t.Errorf("%s: the placeholder reached the model API: %+v", run.agent, r)
			}
		}
		if !ok {
			t.Errorf("%s: no model API call with the real key arrived (exit %d): %+v\n%s%s", run.agent, code, got, stdout, stderr)
		}
	}
	// The bake's npm (bookworm's, with --engine-strict as 40-node.sh runs
	// it) refuses Gemini CLI, which needs Node.js 20: a bake with it
	// enabled stops there instead of every session failing.
	defaults, err := config.Parse("", nil, config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	g := defaults.Agents.Gemini
	stdout, stderr, code = w.vibe("exec", "--", "npm", "install", "-g", "--engine-strict", g.Package+"@"+g.Version)
	if code == 0 || !strings.Contains(stdout+stderr, "EBADENGINE") {
		t.Errorf("npm --engine-strict installed Gemini CLI on bookworm's Node.js: exit %d\n%s%s", code, stdout, stderr)
	}
	// Gemini CLI itself, on a Node.js 22 that npm serves (the node
	// package), sends its call to the gateway's route with the real key:
	// GOOGLE_GEMINI_BASE_URL and x-goog-api-key are what it really uses.
	os.WriteFile(filepath.Join(w.dir, "config", "vibe", "secrets.env"), []byte(
		"GEMINI_API_KEY="+realGeminiKey+"\nGOOGLE_GEMINI_BASE_URL="+model.url+"\n"), 0o600)
	model.reset()
	stdout, stderr, code = w.vibeFor(6*time.Minute, "exec", "--", "sh", "-c", `set -e
cd "$(mktemp -d)"
npm install --no-fund --no-audit --loglevel=error node@22 "$1" >/dev/null
PATH=$PWD/node_modules/.bin:$PATH
# What the image's system defaults say when Gemini CLI is baked.
export GEMINI_CLI_HOME=$PWD
mkdir -p .gemini && echo '{"security":{"auth":{"selectedType":"gemini-api-key"}}}' >.gemini/settings.json
node --version
gemini --skip-trust -p 'say hi'`, "sh", g.Package+"@"+g.Version)
	ok := false
	for _, r := range model.requests() {
		ok = ok || (strings.HasPrefix(r.Path, "/v1beta/models/") && r.Key == "x-goog-api-key: "+realGeminiKey)
	}
	if !ok || !strings.Contains(stdout, "v22.") {
		t.Errorf("gemini: no model API call with the real key arrived (exit %d): %+v\n%s%s", code, model.requests(), stdout, stderr)
	}
	// Go, from the module proxy, checked against its pinned checksum.
	stdout, stderr, code = w.vibe("exec", "--", "go", "version")
	if code != 0 || !strings.Contains(stdout, "go version go1.") {
		t.Errorf("go version in the sandbox: exit %d %q %s", code, stdout, stderr)
	}
	// Root installs a small package from the mirror with apt's own proxy
	// setting, which names the gateway.
	if out, code := w.guest("sh", "-c", "apt-get update -qq && apt-get install -y -qq hello >/dev/null && hello"); code != 0 || !strings.Contains(out, "Hello, world!") {
		t.Errorf("apt-get install through the gateway: exit %d\n%s", code, out)
	}
	// A host that is not listed is still refused, by the gateway, before
	// any name is looked up (.example never resolves anyway).
	stdout, _, code = w.vibe("exec", "--", "curl", "-sS", "-o", "/dev/null", "-w", "%{http_connect}", "https://unlisted.example/")
	if code == 0 || strings.TrimSpace(stdout) != "403" {
		t.Errorf("an unlisted host through the gateway: exit %d, CONNECT answered %q, want 403", code, stdout)
	}
}

// Keys only the fake model API and the gateway ever see.
const (
	realAnthropicKey = "sk-ant-vibe-e2e-real-key-5d21"
	realOpenAIKey    = "sk-openai-vibe-e2e-real-key-93c4"
	realGeminiKey    = "AIza-vibe-e2e-real-key-0b7e"
)

type apiRequest struct {
	Path string `json:"path"`
	Key  string `json:"key"`
}

// fakeModelAPI is an instance on the test's NAT bridge (the gateway's
// uplink; the gateway never connects to the host's own address there)
// that logs the path and credential header of each call and answers a
// client error, which no agent retries.
type fakeModelAPI struct {
	t    *testing.T
	c    incus.InstanceServer
	name string
	url  string
}

const modelAPILog = "/root/model-api.jsonl"

func (f *fakeModelAPI) reset() { e2e.Exec(f.t, f.c, f.name, "sh", "-c", ": >"+modelAPILog) }

func (f *fakeModelAPI) requests() []apiRequest {
	out, _ := e2e.Exec(f.t, f.c, f.name, "cat", modelAPILog)
	var got []apiRequest
	for _, line := range strings.Split(out, "\n") {
		var r apiRequest
		if json.Unmarshal([]byte(line), &r) == nil {
			got = append(got, r)
		}
	}
	return got
}

func startFakeModelAPI(t *testing.T, c incus.InstanceServer, network string) *fakeModelAPI {
	t.Helper()
	f := &fakeModelAPI{t: t, c: c, name: "vibe-e2e-rapi"}
	e2e.ForceDelete(c, f.name)
	op, err := c.CreateInstance(api.InstancesPost{
		Name:   f.name,
		Source: api.InstanceSource{Type: "image", Alias: "vibe-test-base"},
		InstancePut: api.InstancePut{
			Devices: map[string]map[string]string{"eth0": {"type": "nic", "network": network, "name": "eth0"}},
		},
		Start: true,
	})
	if err == nil {
		err = op.Wait()
	}
	if err != nil {
		t.Fatalf("create the model API instance: %v", err)
	}
	t.Cleanup(func() { e2e.ForceDelete(c, f.name) })
	script, err := os.ReadFile("testdata/model-api.py")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CreateInstanceFile(f.name, "/root/model-api.py", incus.InstanceFileArgs{Content: strings.NewReader(string(script)), Mode: 0o755, Type: "file", WriteMode: "overwrite"}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(time.Minute)
	for {
		out, _ := e2e.Exec(t, c, f.name, "sh", "-c", "ip -4 -o addr show dev eth0 scope global | awk '{print $4}' | cut -d/ -f1")
		if a, err := netip.ParseAddr(strings.TrimSpace(out)); err == nil {
			f.url = "http://" + a.String() + ":8080"
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the model API instance has no address: %q", out)
		}
		time.Sleep(500 * time.Millisecond)
	}
	e2e.Exec(t, c, f.name, "sh", "-c", "setsid python3 /root/model-api.py 8080 "+modelAPILog+" >/root/model-api.out 2>&1 </dev/null &")
	return f
}

// vibeFor is w.vibe, killed after d: an agent that retries without end
// fails the test instead of holding it.
func (w *world) vibeFor(d time.Duration, args ...string) (string, string, int) {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	cmd := w.command(ctx, w.dir, "", args...)
	cmd.WaitDelay = 10 * time.Second
	var o, e strings.Builder
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		w.t.Fatal(err)
	}
	if ctx.Err() != nil {
		return o.String(), e.String() + "\n(killed after " + d.String() + ")", -1
	}
	return o.String(), e.String(), cmd.ProcessState.ExitCode()
}
