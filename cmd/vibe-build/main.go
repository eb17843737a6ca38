// Command vibe-build renders the sandbox guest as cloud-init user-data and
// bakes it into a content-addressed incus image.
package main

import (
	"fmt"
	"os"

	"github.com/alecthomas/kong"
	kongcompletion "github.com/jotaen/kong-completion"

	"github.com/vibesandbox/vibe/internal/safetext"
	"github.com/vibesandbox/vibe/internal/version"
)

type cli struct {
	Config string `help:"Configuration file, used alone (default: $$XDG_CONFIG_HOME/vibe/vibe.yaml, plus ./vibe.yaml once trusted with vibe trust)." type:"path" placeholder:"FILE"`

	Render     renderCmd                 `cmd:"" help:"Print the cloud-init user-data for the sandbox guest."`
	Validate   validateCmd               `cmd:"" help:"Check the configuration and the rendered user-data."`
	Recipe     recipeCmd                 `cmd:"" help:"Print the recipe hash that identifies the image this configuration bakes."`
	Base       baseCmd                   `cmd:"" help:"Build a base image from the distribution's signed packages with mmdebstrap (no image server needed)."`
	Build      buildCmd                  `cmd:"" help:"Bake the configuration into a content-addressed incus image (a cache hit when the recipe is unchanged)."`
	List       listCmd                   `cmd:"" help:"List vibe images."`
	Inspect    inspectCmd                `cmd:"" help:"Show an image's manifest, signature status, or the exact user-data it was baked from."`
	Export     exportCmd                 `cmd:"" help:"Write an image's files, named by fingerprint, into a folder; --sign adds an SSH signature."`
	Verify     verifyCmd                 `cmd:"" help:"Check that an image is byte for byte what its fingerprint, manifest and signature say (exit 2 unreadable, 3 tampered, 4 unsigned or untrusted)."`
	Import     importCmd                 `cmd:"" name:"import" help:"Verify an image, then import it into incus and the local store."`
	Publish    publishCmd                `cmd:"" help:"Add an image to a static simplestreams tree that any HTTPS server can serve."`
	Diff       diffCmd                   `cmd:"" help:"Show how two images differ: a unified diff of their user-data and their manifests side by side (exit 1 when they differ)."`
	Gc         gcCmd                     `cmd:"" name:"gc" help:"Remove older vibe images and their store folders."`
	Defaults   defaultsCmd               `cmd:"" help:"Print the built-in default vibe.yaml, with comments."`
	Version    versionCmd                `cmd:"" help:"Print the version."`
	Completion kongcompletion.Completion `cmd:"" help:"Print shell code that enables tab completion (bash, zsh, fish)."`
}

func main() {
	var c cli
	parser := kong.Must(&c,
		kong.Name("vibe-build"),
		kong.Description("Render and bake the vibe sandbox image: a disposable incus VM in which an AI coding agent runs contained."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
		kong.Vars{"source_help": sourceHelp},
	)
	kongcompletion.Register(parser)
	ctx, err := parser.Parse(os.Args[1:])
	parser.FatalIfErrorf(err)
	if err := ctx.Run(&c); err != nil {
		if msg := err.Error(); msg != "" {
			// Errors carry text from outside (a builder's log, an image's
			// fields): no escape sequence of theirs reaches the terminal.
			fmt.Fprintf(os.Stderr, "vibe-build: %s\n", safetext.Text(msg))
		}
		os.Exit(exitCode(err))
	}
}

type versionCmd struct{}

func (versionCmd) Run() error {
	fmt.Println("vibe-build", version.String())
	return nil
}

type defaultsCmd struct{}

func (defaultsCmd) Run() error {
	_, err := os.Stdout.Write(defaultYAML())
	return err
}
