package config

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/vibesandbox/vibe/internal/atomicfile"
	"github.com/vibesandbox/vibe/internal/regular"
)

// A project's vibe.yaml (./vibe.yaml, shipped in a repository someone else
// wrote) is read only once the user trusted it, the way direnv treats an
// .envrc: its path and SHA-256 are recorded by `vibe trust`, and any change
// needs trusting again. Even trusted, it may set only what a project needs
// (ProjectKeys), and it gets a sandbox and an image of its own, so it can
// never take over the user's main sandbox, its agent state or the user's
// image alias.

// ProjectKeys are the keys a trusted project file may set: what the
// project needs installed and reached, and the sandbox's size. Never
// mounts, secrets handling, the agent command, the user, the image or the
// sandbox name.
var ProjectKeys = []string{"packages", "toolchains", "egress.allow", "mirrors", "instance.type", "instance.cpu", "instance.memory", "instance.disk"}

// Project describes the project file found in the current directory.
type Project struct {
	Path    string `json:"path"`
	SHA256  string `json:"sha256"`
	Trusted bool   `json:"trusted"`
	// Suffix is added to the sandbox name and image alias of a
	// configuration that a trusted project file is part of.
	Suffix string `json:"suffix,omitempty"`
}

// TrustFile is where trusted project files are recorded:
// $XDG_CONFIG_HOME/vibe/trusted-projects.json.
func TrustFile() (string, error) {
	dir, err := configHome()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "vibe", "trusted-projects.json"), nil
}

// readProject reads a project file: a regular file (a symlink is followed
// only to a regular file), bounded. It returns nil when there is none.
func readProject(name string) (*Project, []byte, error) {
	abs, err := filepath.Abs(name)
	if err != nil {
		return nil, nil, err
	}
	// The folder is anyone's (a cloned repository): what its vibe.yaml
	// names is looked at before it is opened (an open of a FIFO waits for
	// a writer, a device's may act), and opened without waiting.
	if st, err := os.Stat(abs); errors.Is(err, fs.ErrNotExist) {
		return nil, nil, nil
	} else if err == nil && !st.Mode().IsRegular() {
		return nil, nil, fmt.Errorf("config %s: not a regular file", abs)
	}
	data, err := regular.Read(abs, 0, maxFileSize)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil, nil
	case errors.Is(err, regular.ErrNotRegular):
		return nil, nil, fmt.Errorf("config %s: not a regular file", abs)
	case errors.Is(err, regular.ErrTooLarge):
		return nil, nil, fmt.Errorf("config %s: larger than %d bytes", abs, maxFileSize)
	case err != nil:
		return nil, nil, fmt.Errorf("config %s: %w", abs, err)
	}
	sum := sha256.Sum256(data)
	return &Project{Path: abs, SHA256: hex.EncodeToString(sum[:]), Suffix: projectSuffix(abs)}, data, nil
}

var nonName = regexp.MustCompile(`[^a-z0-9]+`)

// projectSuffix names a project's own sandbox and image: its folder's name
// and a short hash of its path, e.g. "-myrepo-3fa2c1".
func projectSuffix(path string) string {
	dir := filepath.Dir(path)
	slug := strings.Trim(nonName.ReplaceAllString(strings.ToLower(filepath.Base(dir)), "-"), "-")
	if len(slug) > 20 {
		slug = strings.Trim(slug[:20], "-")
	}
	sum := sha256.Sum256([]byte(dir))
	if slug == "" {
		return "-" + hex.EncodeToString(sum[:3])
	}
	return "-" + slug + "-" + hex.EncodeToString(sum[:3])
}

// trusted reads the trust file: project path -> SHA-256.
func trusted() (map[string]string, error) {
	path, err := TrustFile()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("trusted projects: %w", err)
	}
	m := map[string]string{}
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, fmt.Errorf("trusted projects %s: %w (remove it and trust the projects again)", path, err)
	}
	return m, nil
}

// Trust records the project file at name, as it is now, as trusted (or,
// with remove, forgets it). It returns what it recorded.
func Trust(name string, remove bool) (*Project, error) {
	p, data, err := readProject(name)
	if err != nil {
		return nil, err
	}
	if p == nil {
		return nil, fmt.Errorf("no %s here to trust", name)
	}
	if !remove {
		// Refuse what could never be used: a file that does not parse or
		// sets keys a project may not.
		if err := checkProjectKeys(p.Path, data); err != nil {
			return nil, err
		}
	}
	m, err := trusted()
	if err != nil {
		return nil, err
	}
	if remove {
		delete(m, p.Path)
	} else {
		m[p.Path] = p.SHA256
		p.Trusted = true
	}
	path, _ := TrustFile()
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("trusted projects: %w", err)
	}
	return p, atomicfile.Write(path, append(b, '\n'), 0o600)
}

// checkProjectKeys refuses keys a project file may not set, naming the
// place and where such a key belongs.
func checkProjectKeys(file string, data []byte) error {
	var doc yaml.Node
	if err := yaml.NewDecoder(bytes.NewReader(data)).Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return &Error{Pos: &Pos{File: file}, Msg: "not valid YAML: " + err.Error()}
	}
	if len(doc.Content) == 0 {
		return nil
	}
	return walkKeys(file, doc.Content[0], "")
}

func walkKeys(file string, n *yaml.Node, path string) error {
	if n.Kind == yaml.AliasNode {
		return &Error{Pos: &Pos{File: file, Line: n.Line, Column: n.Column}, Path: path, Msg: "YAML aliases are not supported in vibe.yaml; write the value out"}
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := join(path, n.Content[i].Value)
		allowed, below := false, false
		for _, ok := range ProjectKeys {
			allowed = allowed || k == ok || strings.HasPrefix(k, ok+".")
			below = below || strings.HasPrefix(ok, k+".")
		}
		switch {
		case allowed:
		case below:
			if err := walkKeys(file, n.Content[i+1], k); err != nil {
				return err
			}
		default:
			keys := append([]string{}, ProjectKeys...)
			sort.Strings(keys)
			return &Error{Pos: &Pos{File: file, Line: n.Content[i].Line, Column: n.Content[i].Column}, Path: k,
				Msg: "a project's vibe.yaml may not set this (it may set " + strings.Join(keys, ", ") + "); mounts, secrets, the agent command, the user, the image and the sandbox name belong in your own configuration"}
		}
	}
	return nil
}

// Notice is the one line every command prints when the configuration in
// effect is not only the user's own: a project file ignored for want of
// trust, or one that is part of it. "" otherwise.
func (c *Config) Notice() string {
	switch p := c.Project; {
	case p == nil:
		return ""
	case !p.Trusted:
		return fmt.Sprintf("%s is ignored: a project's configuration is used only once you trust it (read it, then run `vibe trust`)", p.Path)
	}
	return fmt.Sprintf("configuration: %s; this project has its own sandbox %s and image %s", c.Source, c.Name, c.Image.Alias)
}
