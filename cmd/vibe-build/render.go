package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"

	"github.com/vibesandbox/vibe/cloudinit"
	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/internal/atomicfile"
	"github.com/vibesandbox/vibe/internal/safetext"
)

// target holds the flags that choose what is rendered, shared by commands.
type target struct {
	InstanceType string `help:"Instance type to render for: vm or container (default from the configuration)." placeholder:"vm|container"`
	Base         string `help:"Base image, [remote:]alias or fingerprint (default from the configuration)." placeholder:"IMAGE"`
}

// load reads the configuration and applies the command-line overrides.
func (t target) load(root *cli) (*config.Config, error) {
	c, err := config.Load(root.Config, config.CurrentHost())
	if err != nil {
		return nil, err
	}
	if n := c.Notice(); n != "" {
		fmt.Fprintf(os.Stderr, "vibe-build: %s\n", n)
	}
	if err := c.Override(config.Overrides{InstanceType: t.InstanceType, Base: t.Base}); err != nil {
		return nil, err
	}
	home, _ := os.UserHomeDir()
	if err := c.ReadCAs(home); err != nil {
		return nil, err
	}
	return c, nil
}

func defaultYAML() []byte { return config.DefaultYAML }

type renderCmd struct {
	target
	Output string `short:"o" help:"Write to FILE instead of standard output (atomically: a failed render leaves FILE as it was)." type:"path" placeholder:"FILE"`
}

func (r *renderCmd) Run(root *cli) error {
	c, err := r.load(root)
	if err != nil {
		return err
	}
	for _, w := range c.Warnings() {
		fmt.Fprintf(os.Stderr, "vibe-build: warning: %s\n", w)
	}
	doc, err := cloudinit.Render(c)
	if err != nil {
		return err
	}
	if r.Output == "" || r.Output == "-" {
		_, err = os.Stdout.Write(doc)
		return err
	}
	return atomicfile.Write(r.Output, doc, 0o644)
}

// writeFileAtomic writes through a temporary file in the same folder and
// renames it into place, so readers never see a partial file.

type recipeCmd struct {
	target
	JSON bool `help:"Print the recipe's inputs and hash as JSON."`
}

func (r *recipeCmd) Run(root *cli) error {
	c, err := r.load(root)
	if err != nil {
		return err
	}
	doc, err := cloudinit.Render(c)
	if err != nil {
		return err
	}
	rec := cloudinit.NewRecipe(c.Image.Base, c.Instance.Type, c.Instance.Disk, doc)
	if !r.JSON {
		fmt.Println(rec.Hash())
		return nil
	}
	return printJSON(struct {
		cloudinit.Recipe
		Hash string `json:"hash"`
	}{rec, rec.Hash()})
}

// printJSON prints v in printable ASCII: its strings may be a guest's,
// an image's or a repository's.
func printJSON(v any) error {
	enc := json.NewEncoder(safetext.JSON(os.Stdout))
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}

type validateCmd struct {
	target
	JSON bool `help:"Print the result as JSON."`
}

type check struct {
	Name   string `json:"name"`
	OK     bool   `json:"ok"`
	Detail string `json:"detail,omitempty"`
}

type validateResult struct {
	Config   string   `json:"config"`
	Valid    bool     `json:"valid"`
	Recipe   string   `json:"recipe,omitempty"`
	Warnings []string `json:"warnings"`
	Checks   []check  `json:"checks"`
}

func (v *validateCmd) Run(root *cli) error {
	res := validateResult{Config: "(defaults)", Warnings: []string{}}
	add := func(name string, err error, detail string) bool {
		ck := check{Name: name, OK: err == nil, Detail: detail}
		if err != nil {
			ck.Detail = err.Error()
		}
		res.Checks = append(res.Checks, ck)
		return err == nil
	}
	c, err := v.load(root)
	if add("configuration", err, "") {
		res.Config = c.Source
		res.Warnings = append(res.Warnings, c.Warnings()...)
		res.Checks[0].Detail = fmt.Sprintf("%s; instance type %s; user %s uid %d gid %d (%s); %d allowlist entries",
			c.Source, c.Instance.Type, c.User.Name, c.User.UID, c.User.GID, c.UIDSource, len(c.Allowlist))
		doc, err := cloudinit.Render(c)
		if add("render", err, fmt.Sprintf("%d bytes, structure and secret checks passed", len(doc))) {
			res.Recipe = cloudinit.NewRecipe(c.Image.Base, c.Instance.Type, c.Instance.Disk, doc).Hash()
			detail, err := cloudInitSchema(doc)
			add("cloud-init schema", err, detail)
		}
	}
	res.Valid = true
	for _, ck := range res.Checks {
		res.Valid = res.Valid && ck.OK
	}
	if v.JSON {
		if err := printJSON(res); err != nil {
			return err
		}
	} else {
		for _, ck := range res.Checks {
			mark := "ok  "
			if !ck.OK {
				mark = "FAIL"
			}
			fmt.Printf("%s %s: %s\n", mark, ck.Name, ck.Detail)
		}
		for _, w := range res.Warnings {
			fmt.Printf("warn %s\n", w)
		}
		if res.Recipe != "" {
			fmt.Printf("recipe %s\n", res.Recipe)
		}
	}
	if !res.Valid {
		return exitError{code: 1, err: errors.New("validation failed")}
	}
	return nil
}

// cloudInitSchema runs `cloud-init schema` on doc when cloud-init is installed.
func cloudInitSchema(doc []byte) (string, error) {
	bin, err := exec.LookPath("cloud-init")
	if err != nil {
		return "skipped: cloud-init is not installed (apt-get install cloud-init)", nil
	}
	f, err := os.CreateTemp("", "vibe-user-data-*.yaml")
	if err != nil {
		return "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(doc); err != nil {
		f.Close()
		return "", err
	}
	f.Close()
	var out bytes.Buffer
	cmd := exec.Command(bin, "schema", "--config-file", f.Name())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("cloud-init schema: %s", strings.TrimSpace(out.String()))
	}
	return strings.TrimSpace(strings.ReplaceAll(out.String(), f.Name(), "user-data")), nil
}

// exitError carries an exit code; its message is printed unless empty.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string {
	if e.err == nil {
		return ""
	}
	return e.err.Error()
}
func (e exitError) Unwrap() error { return e.err }

func exitCode(err error) int {
	var e exitError
	if errors.As(err, &e) {
		return e.code
	}
	if k := images.KindOf(err); k != 0 {
		return kindExit(k)
	}
	return 1
}
