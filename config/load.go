package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxFileSize bounds what Parse reads; a configuration is a few KiB.
const maxFileSize = 1 << 20

// UserFile is the user's own configuration: $XDG_CONFIG_HOME/vibe/vibe.yaml.
func UserFile() (string, error) {
	dir, err := configHome()
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, "vibe", FileName), nil
}

func configHome() (string, error) {
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".config"), nil
}

// readFile reads a configuration file, bounded; ok is false when there is
// none.
func readFile(path string) (data []byte, ok bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	data, err = io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, false, fmt.Errorf("config %s: %w", path, err)
	}
	if len(data) > maxFileSize {
		return nil, false, fmt.Errorf("config %s: larger than %d bytes", path, maxFileSize)
	}
	return data, true, nil
}

// Load reads the configuration and validates it for the host. With
// explicit (--config FILE, the user's own choice), that file alone is laid
// over the defaults. Otherwise the user's own file is, then a project file
// in the current directory (./vibe.yaml) only if the user trusted it (see
// Trust): an untrusted one is ignored and reported in Config.Project.
func Load(explicit string, host Host) (*Config, error) {
	if explicit != "" {
		data, ok, err := readFile(explicit)
		if err != nil {
			return nil, err
		}
		if !ok {
			return nil, fmt.Errorf("config: %s does not exist", explicit)
		}
		return Parse(explicit, data, host)
	}
	var layers []layer
	user, err := UserFile()
	if err == nil {
		data, ok, err := readFile(user)
		if err != nil {
			return nil, err
		}
		if ok {
			layers = append(layers, layer{name: user, data: data})
		}
	}
	proj, data, err := readProject(FileName)
	if err != nil {
		return nil, err
	}
	if proj != nil && user != "" && sameFile(proj.Path, user) {
		proj = nil // run from the user's own config folder
	}
	if proj != nil {
		m, err := trusted()
		if err != nil {
			return nil, err
		}
		proj.Trusted = m[proj.Path] == proj.SHA256
		if proj.Trusted {
			layers = append(layers, layer{name: proj.Path, data: data, project: proj})
		}
	}
	c, err := parse(layers, host)
	if err != nil {
		return nil, err
	}
	c.Project = proj
	return c, nil
}

func sameFile(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

// layer is one file laid over the defaults.
type layer struct {
	name    string
	data    []byte
	project *Project // set for a trusted project file
}

// Parse overlays data (a vibe.yaml named name; nil for none) on the
// embedded defaults and validates the result.
func Parse(name string, data []byte, host Host) (*Config, error) {
	if name == "" {
		return parse(nil, host)
	}
	return parse([]layer{{name: name, data: data}}, host)
}

func parse(layers []layer, host Host) (*Config, error) {
	c := &Config{Source: "(defaults)", pos: positions{}}
	if err := decodeInto(c, "(defaults)", DefaultYAML, nil); err != nil {
		return nil, fmt.Errorf("embedded defaults: %w", err)
	}
	var sources []string
	for i, l := range layers {
		if i == 0 {
			c.pos = positions{}
		}
		if l.project == nil {
			if err := decodeInto(c, l.name, l.data, c.pos); err != nil {
				return nil, err
			}
			sources = append(sources, l.name)
			continue
		}
		if err := checkProjectKeys(l.name, l.data); err != nil {
			return nil, err
		}
		// A project adds hosts to the allowlist; it does not drop the
		// user's.
		allow := append([]string{}, c.Egress.Allow...)
		c.Egress.Allow = nil
		if err := decodeInto(c, l.name, l.data, c.pos); err != nil {
			return nil, err
		}
		if c.Egress.Allow == nil {
			c.Egress.Allow = allow
		} else {
			c.Egress.Allow = append(allow, c.Egress.Allow...)
		}
		// Its own sandbox and image: never the user's main ones.
		c.Name = suffixed(c.Name, l.project.Suffix, 63)
		c.Image.Alias = suffixed(c.Image.Alias, l.project.Suffix, 200)
		sources = append(sources, l.name+" (trusted project)")
	}
	if len(sources) > 0 {
		c.Source = strings.Join(sources, " + ")
	}
	if err := c.validate(host); err != nil {
		return nil, err
	}
	return c, nil
}

// suffixed adds suffix to name, shortening name so the result fits max.
func suffixed(name, suffix string, max int) string {
	if len(name)+len(suffix) > max {
		name = strings.TrimRight(name[:max-len(suffix)], "-")
	}
	return name + suffix
}

// Pos is a place in a configuration file.
type Pos struct {
	File         string
	Line, Column int
}

func (p Pos) String() string {
	switch {
	case p.Line == 0:
		return p.File
	case p.Column == 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Column)
}

// yamlLine finds the line number yaml.v3 puts in its syntax errors.
var yamlLine = regexp.MustCompile(`^yaml: line ([0-9]+): `)

// positions maps a key path (toolchains.node.version, egress.allow[2]) to
// where the user wrote it; paths the user did not write are defaults.
type positions map[string]Pos

// Error is a configuration error at a place.
type Error struct {
	Pos  *Pos // nil when the value is a default
	Path string
	Msg  string
}

func (e *Error) Error() string {
	where := "(defaults)"
	if e.Pos != nil {
		where = e.Pos.String()
	}
	if e.Path == "" {
		return where + ": " + e.Msg
	}
	return where + ": " + e.Path + ": " + e.Msg
}

func decodeInto(c *Config, file string, data []byte, pos positions) error {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil // an empty file is all defaults
		}
		pos := Pos{File: file}
		msg := err.Error()
		if m := yamlLine.FindStringSubmatch(msg); m != nil {
			pos.Line, _ = strconv.Atoi(m[1])
			msg = msg[len(m[0]):]
		}
		return &Error{Pos: &pos, Msg: "not valid YAML: " + strings.TrimPrefix(msg, "yaml: ")}
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); err == nil {
		return &Error{Pos: &Pos{File: file, Line: extra.Line, Column: extra.Column}, Msg: "more than one YAML document; vibe.yaml holds exactly one"}
	}
	d := decoder{file: file, pos: pos}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil
		}
		root = root.Content[0]
	}
	if root.Kind == yaml.ScalarNode && root.Tag == "!!null" {
		return nil
	}
	return d.decode(root, reflect.ValueOf(c).Elem(), "")
}

type decoder struct {
	file string
	pos  positions
}

func (d *decoder) at(n *yaml.Node) *Pos {
	return &Pos{File: d.file, Line: n.Line, Column: n.Column}
}

func (d *decoder) fail(n *yaml.Node, path, format string, args ...any) error {
	return &Error{Pos: d.at(n), Path: path, Msg: fmt.Sprintf(format, args...)}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// decode walks n into v strictly: mappings only into structs with exactly
// the known keys, sequences only into slices, scalars of the right YAML type.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) error {
	if n.Kind == yaml.AliasNode {
		return d.fail(n, path, "YAML aliases are not supported in vibe.yaml; write the value out")
	}
	if d.pos != nil && path != "" {
		d.pos[path] = *d.at(n)
	}
	switch v.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return d.fail(n, path, "expected a mapping of keys (%s), got %s", strings.Join(fieldNames(v.Type()), ", "), describe(n))
		}
		fields := fieldIndex(v.Type())
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return d.fail(k, path, "keys must be plain words")
			}
			idx, ok := fields[k.Value]
			if !ok {
				where := "at the top level"
				if path != "" {
					where = "in " + path
				}
				return d.fail(k, "", "unknown key %q %s; allowed: %s", k.Value, where, strings.Join(fieldNames(v.Type()), ", "))
			}
			if err := d.decode(val, v.Field(idx), join(path, k.Value)); err != nil {
				return err
			}
		}
		return nil
	case reflect.Map:
		// Maps of strings (toolchains.go.sums): a file's keys add to the
		// defaults' and replace the same keys.
		if v.Type().Key().Kind() != reflect.String || v.Type().Elem().Kind() != reflect.String {
			break
		}
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return nil
		}
		if n.Kind != yaml.MappingNode {
			return d.fail(n, path, "expected a mapping, got %s", describe(n))
		}
		if v.IsNil() {
			v.Set(reflect.MakeMap(v.Type()))
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			if k.Kind != yaml.ScalarNode {
				return d.fail(k, path, "keys must be plain words")
			}
			e := reflect.New(v.Type().Elem()).Elem()
			if err := d.decode(val, e, path+"["+k.Value+"]"); err != nil {
				return err
			}
			v.SetMapIndex(reflect.ValueOf(k.Value), e)
		}
		return nil
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			v.Set(reflect.MakeSlice(v.Type(), 0, 0))
			return nil
		}
		if n.Kind != yaml.SequenceNode {
			return d.fail(n, path, "expected a list, got %s", describe(n))
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			if err := d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return d.fail(n, path, "expected a string, got %s", describe(n))
		}
		switch n.Tag {
		case "!!str", "!!int", "!!float":
			// Versions like 24 or 3.13 are written unquoted; keep their text.
			v.SetString(n.Value)
			return nil
		case "!!null":
			v.SetString("")
			return nil
		}
		return d.fail(n, path, "expected a string, got %s (quote it)", describe(n))
	case reflect.Int:
		var i int
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			return d.fail(n, path, "expected a whole number, got %s", describe(n))
		}
		v.SetInt(int64(i))
		return nil
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			return d.fail(n, path, "expected true or false, got %s", describe(n))
		}
		v.SetBool(b)
		return nil
	}
	return d.fail(n, path, "internal: unsupported type %s", v.Type())
}

func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case "!!null":
			return "nothing"
		case "!!bool":
			return "the boolean " + n.Value
		case "!!int", "!!float":
			return "the number " + n.Value
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Sprintf("%q", v)
	}
	return "an unsupported YAML node"
}

func fieldIndex(t reflect.Type) map[string]int {
	m := map[string]int{}
	for i := 0; i < t.NumField(); i++ {
		tag := t.Field(i).Tag.Get("yaml")
		if tag == "" || tag == "-" {
			continue
		}
		m[tag] = i
	}
	return m
}

func fieldNames(t reflect.Type) []string {
	var names []string
	for k := range fieldIndex(t) {
		names = append(names, k)
	}
	sort.Strings(names)
	return names
}
