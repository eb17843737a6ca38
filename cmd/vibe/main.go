// Command vibe launches disposable sandboxes from the image vibe-build bakes
// and starts the agent inside them, contained.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kong"
	kongcompletion "github.com/jotaen/kong-completion"

	"github.com/vibesandbox/vibe/allowlist"
	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/internal/version"
)

type cli struct {
	Config string `help:"Configuration file (default: ./vibe.yaml, else $$XDG_CONFIG_HOME/vibe/vibe.yaml, else built-in defaults)." type:"path" placeholder:"FILE"`

	Check      checkCmd                  `cmd:"" help:"Check an allowlist entry the way the sandbox's proxy will apply it."`
	Version    versionCmd                `cmd:"" help:"Print the version."`
	Completion kongcompletion.Completion `cmd:"" help:"Print shell code that enables tab completion (bash, zsh, fish)."`
}

func main() {
	var c cli
	parser := kong.Must(&c,
		kong.Name("vibe"),
		kong.Description("Run an AI coding agent in auto mode inside a disposable, firewalled incus sandbox."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	kongcompletion.Register(parser)
	ctx, err := parser.Parse(os.Args[1:])
	parser.FatalIfErrorf(err)
	if err := ctx.Run(&c); err != nil {
		fmt.Fprintf(os.Stderr, "vibe: %v\n", err)
		os.Exit(1)
	}
}

type versionCmd struct{}

func (versionCmd) Run() error {
	fmt.Println("vibe", version.String())
	return nil
}

// checkCmd answers "would the sandbox reach HOST?" without a sandbox: the
// configured allowlist, the entry's validity and its compiled pattern.
type checkCmd struct {
	Entry string   `arg:"" help:"An allowlist entry to validate (example.com, =host.example.com, re:^…$)."`
	Hosts []string `arg:"" optional:"" help:"Host names to test against the entry and against the configured allowlist."`
}

func (k *checkCmd) Run(root *cli) error {
	e, err := allowlist.Parse(k.Entry)
	if err != nil {
		return err
	}
	c, err := config.Load(root.Config, config.CurrentHost())
	if err != nil {
		return err
	}
	fmt.Printf("entry    %s (%s)\npattern  %s\n", e.String(), e.Kind, e.Pattern)
	for _, h := range k.Hosts {
		fmt.Printf("host     %-40s entry:%-5v configured allowlist:%v\n", h, e.Match(h), c.Allowlist.Allows(h))
	}
	return nil
}
