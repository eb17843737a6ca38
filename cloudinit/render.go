// Package cloudinit renders a validated configuration into one #cloud-config
// document. Each concern is a template under templates/cloud-config that
// yields a YAML fragment; fragments are parsed, merged as data (lists
// concatenate in fragment order, mappings merge, conflicting scalars are an
// error) and emitted deterministically: the same inputs give the same bytes.
// Values reach templates only through escaping helpers (yaml, xml), and guest
// scripts are static files that read their values from build.json.
package cloudinit

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
	"text/template"

	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/provision"
	"github.com/vibesandbox/vibe/templates"
)

// Header is the first line cloud-init requires of a cloud-config document.
const Header = "#cloud-config\n"

// Essential packages are always installed: the proxy, the firewall and
// what the guest scripts use.
var Essential = []string{"ca-certificates", "curl", "git", "nftables", "jq", "tinyproxy"}

// view is what templates see.
type view struct {
	C        *config.Config
	VM       bool
	User     userView
	Packages []string
	Steps    []stepView
}

type userView struct {
	Name, Home, Shell string
	UID, GID          int
}

type stepView struct {
	Path, Content string
}

// stepEnabled says which provisioning steps a configuration runs; a step
// not listed here is a programming error caught by a test.
func stepEnabled(c *config.Config, name string) (bool, bool) {
	t := c.Toolchains
	on, known := map[string]bool{
		"10-user":     true,
		"20-proxy":    true,
		"15-packages": !c.Packages.Update,
		"30-firewall": true,
		"40-node":     t.Node.Enabled,
		"42-java":     t.Java.Enabled,
		"44-python":   t.Python.Enabled,
		"45-go":       t.Go.Enabled,
		"46-chrome":   t.Chrome.Enabled,
		"47-opentofu": t.OpenTofu.Enabled,
		"48-helm":     t.Helm.Enabled,
		"49-docker":   t.Docker.Enabled,
		"50-time":     c.Instance.Type == config.VM,
		"90-selftest": true,
	}[name]
	return on, known
}

// packages lists what apt installs: essentials, toolchain needs, extras;
// each once, in that order.
func packages(c *config.Config) []string {
	list := append([]string{}, Essential...)
	if c.Instance.Type == config.VM {
		list = append(list, "chrony")
	}
	t := c.Toolchains
	if t.Node.Enabled && t.Node.Source == config.NodeDistro {
		list = append(list, "nodejs", "npm")
	}
	if t.Java.Enabled {
		list = append(list, "zip", "unzip")
	}
	if t.Chrome.Enabled {
		list = append(list, "gnupg")
	}
	if strings.HasSuffix(c.User.Shell, "zsh") {
		list = append(list, "zsh")
	}
	if strings.HasSuffix(c.User.Shell, "fish") {
		list = append(list, "fish")
	}
	list = append(list, c.Packages.Extra...)
	seen := map[string]bool{}
	out := list[:0]
	for _, p := range list {
		name, _, _ := strings.Cut(p, "=")
		if !seen[name] {
			seen[name] = true
			out = append(out, p)
		}
	}
	return out
}

func newView(c *config.Config) (*view, error) {
	v := &view{
		C:  c,
		VM: c.Instance.Type == config.VM,
		User: userView{
			Name: c.User.Name, Home: c.User.Home(), Shell: c.User.Shell,
			UID: c.User.UID, GID: c.User.GID,
		},
		Packages: packages(c),
	}
	for _, p := range provision.Steps() {
		name := provision.StepName(p)
		on, known := stepEnabled(c, name)
		if !known {
			return nil, fmt.Errorf("provision step %s has no rule saying when it runs", name)
		}
		if !on {
			continue
		}
		content, err := provision.File(p)
		if err != nil {
			return nil, err
		}
		v.Steps = append(v.Steps, stepView{Path: "/usr/local/lib/vibe/provision.d/" + path.Base(p), Content: content})
	}
	return v, nil
}

// Render returns the #cloud-config user-data for c.
func Render(c *config.Config) ([]byte, error) {
	if len(c.TLS.CA) > 0 && len(c.TLS.Certs) == 0 {
		return nil, errors.New("render: tls.ca is set but its files were not read (Config.ReadCAs)")
	}
	v, err := newView(c)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	names, err := fs.Glob(templates.FS, "cloud-config/*.yaml")
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	sort.Strings(names)
	var doc *yaml.Node
	for _, name := range names {
		frag, err := fragment(name, v)
		if err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
		if frag == nil {
			continue
		}
		if doc == nil {
			doc = &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		}
		if err := merge(doc, frag, ""); err != nil {
			return nil, fmt.Errorf("render %s: %w", name, err)
		}
	}
	out, err := emit(doc)
	if err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	if err := Check(out); err != nil {
		return nil, fmt.Errorf("render: %w", err)
	}
	return out, nil
}

// fragment executes one template and parses its output; an empty fragment
// (a concern that does not apply) yields nil.
func fragment(name string, v *view) (*yaml.Node, error) {
	var buf bytes.Buffer
	if err := execute(name, v, &buf); err != nil {
		return nil, err
	}
	var n yaml.Node
	if err := yaml.Unmarshal(buf.Bytes(), &n); err != nil {
		return nil, fmt.Errorf("fragment is not YAML: %w", err)
	}
	if n.Kind == 0 || len(n.Content) == 0 || n.Content[0].Tag == "!!null" {
		return nil, nil
	}
	root := n.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("fragment must be a mapping, got %v", root.Tag)
	}
	return root, nil
}

func execute(name string, v *view, w *bytes.Buffer) error {
	src, err := templates.FS.ReadFile(name)
	if err != nil {
		return err
	}
	t, err := template.New(name).Option("missingkey=error").Funcs(funcs(v)).Parse(string(src))
	if err != nil {
		return err
	}
	return t.Execute(w, v)
}

// Escapers are the template functions allowed to end an output action; a
// test walks every template and fails on any action that ends otherwise.
var Escapers = map[string]bool{"yaml": true, "xml": true, "ini": true, "toml": true}

func funcs(v *view) template.FuncMap {
	return template.FuncMap{
		"yaml": yamlQuote,
		"xml":  xmlEscape,
		"ini":  iniValue,
		"toml": tomlQuote,
		"provision": func(name string) (string, error) {
			return provision.File(name)
		},
		"file": func(name string) (string, error) {
			b, err := templates.FS.ReadFile(name)
			return string(b), err
		},
		"tmpl": func(name string) (string, error) {
			var buf bytes.Buffer
			err := execute(name, v, &buf)
			return buf.String(), err
		},
		"allowlist":        func() string { return v.C.Allowlist.FilterFile() },
		"buildJSON":        func() (string, error) { return buildJSON(v) },
		"dockerDaemonJSON": func() (string, error) { return dockerDaemonJSON(v.C) },
	}
}

// BuildData is /etc/vibe/build.json: every value the guest scripts read.
type BuildData struct {
	Format       int               `json:"format"`
	InstanceType string            `json:"instance_type"`
	User         BuildUser         `json:"user"`
	Toolchains   config.Toolchains `json:"toolchains"`
	Agent        BuildAgent        `json:"agent"`
	// Agents are the more agents baked beside it (omitted when none, so
	// that recipes from before them keep their hash).
	Agents   []BuildAgent   `json:"agents,omitempty"`
	Mirrors  config.Mirrors `json:"mirrors"`
	Packages []string       `json:"packages"`
}

// BuildAgent is what the guest needs of the agent: what to install. How the
// launcher starts it is not baked, so changing it needs no new image.
type BuildAgent struct {
	Name    string `json:"name,omitempty"`
	Enabled bool   `json:"enabled"`
	Package string `json:"package"`
	Version string `json:"version"`
}

type BuildUser struct {
	Name  string `json:"name"`
	UID   int    `json:"uid"`
	GID   int    `json:"gid"`
	Home  string `json:"home"`
	Shell string `json:"shell"`
}

// BuildFormat versions build.json and, through the recipe, the image layout.
const BuildFormat = 1

func buildJSON(v *view) (string, error) {
	d := BuildData{
		Format:       BuildFormat,
		InstanceType: v.C.Instance.Type,
		User:         BuildUser{Name: v.User.Name, UID: v.User.UID, GID: v.User.GID, Home: v.User.Home, Shell: v.User.Shell},
		Toolchains:   v.C.Toolchains,
		Agent:        BuildAgent{Enabled: v.C.Agent.Enabled, Package: v.C.Agent.Package, Version: v.C.Agent.Version},
		Mirrors:      v.C.Mirrors,
		Packages:     v.Packages,
	}
	for _, name := range config.AgentNames()[1:] {
		if p := v.C.Agents.Extra(name); p.Enabled {
			d.Agents = append(d.Agents, BuildAgent{Name: name, Enabled: true, Package: p.Package, Version: p.Version})
		}
	}
	return marshalJSON(d)
}

func dockerDaemonJSON(c *config.Config) (string, error) {
	d := map[string]any{}
	if c.Mirrors.Docker != "" {
		d["registry-mirrors"] = []string{c.Mirrors.Docker}
	}
	return marshalJSON(d)
}

func marshalJSON(v any) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return "", err
	}
	return buf.String(), nil
}
