// Command vibe launches disposable sandboxes from the image vibe-build bakes
// and starts the agent inside them, contained.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/alecthomas/kong"
	kongcompletion "github.com/jotaen/kong-completion"
	"github.com/posener/complete"

	"github.com/vibesandbox/vibe/internal/safetext"
	"github.com/vibesandbox/vibe/internal/version"
)

type cli struct {
	Config       string   `help:"Configuration file, used alone (default: $$XDG_CONFIG_HOME/vibe/vibe.yaml, plus ./vibe.yaml once you trust it)." type:"path" placeholder:"FILE"`
	Name         string   `help:"Sandbox name (default: name from the configuration)." placeholder:"NAME" completion-predictor:"sandbox"`
	Image        string   `help:"Image to create sandboxes from: an alias or fingerprint (default: image.alias), or REMOTE:NAME or an https:// simplestreams tree, imported verified first." placeholder:"IMAGE"`
	Trust        string   `help:"Allowed-signers file: an image fetched from a remote must be signed by a key it lists." placeholder:"FILE" type:"existingfile"`
	InstanceType string   `help:"vm or container (default: instance.type)." placeholder:"vm|container"`
	Network      string   `help:"Attach the sandbox to this incus network instead of the profile's." placeholder:"NAME"`
	Allow        []string `help:"Extra allowlist entry for this run (repeatable)." placeholder:"HOST"`
	Agent        string   `help:"Agent to start: claude (the default), or codex, gemini, opencode when agents.NAME is enabled and baked." placeholder:"NAME" enum:",claude,codex,gemini,opencode" default:""`
	Remote       string   `help:"incus remote or cluster from your incus client configuration." placeholder:"REMOTE"`

	Run        runCmd                    `cmd:"" default:"withargs" help:"Start the agent in PROJECT (default command): vibe [PROJECT] [-- AGENT ARGS]."`
	Up         upCmd                     `cmd:"" help:"Create or start the sandbox and apply the configuration, without attaching."`
	Shell      shellCmd                  `cmd:"" help:"Open a login shell in the sandbox as the sandbox user."`
	Exec       execCmd                   `cmd:"" help:"Run a command in the sandbox as the sandbox user, with the agent's environment."`
	Restore    restoreCmd                `cmd:"" help:"Delete the sandbox and relaunch it from the image. Host folders are untouched."`
	Stop       stopCmd                   `cmd:"" help:"Stop the sandbox."`
	Rm         rmCmd                     `cmd:"" help:"Delete the sandbox. Host folders are untouched."`
	Ls         lsCmd                     `cmd:"" help:"List sandboxes."`
	Status     statusCmd                 `cmd:"" help:"Show the sandbox's image, firewall, mounts and resources."`
	Firewall   firewallCmd               `cmd:"" help:"Switch the sandbox's egress firewall on or off (host operator only), or show it."`
	Configure  configCmd                 `cmd:"" name:"config" help:"Re-apply mounts and the allowlist to the running sandbox."`
	AllowHost  allowCmd                  `cmd:"" name:"allow" help:"Add an allowlist entry to this sandbox."`
	Port       portCmd                   `cmd:"" help:"Make a port of the sandbox reachable on this machine's 127.0.0.1 (a dev server), stop that, or list them. vibe restore ends them."`
	Setup      setupCmd                  `cmd:"" help:"Set this machine up for vibe (as root): incus, storage, networks, a local base image when needed, your group, completions and vibe.yaml. Idempotent; --dry-run shows the plan."`
	Doctor     doctorCmd                 `cmd:"" help:"Check the host and say what to fix."`
	Check      checkCmd                  `cmd:"" help:"Check an allowlist entry the way the sandbox's proxy will apply it."`
	TrustFile  trustCmd                  `cmd:"" name:"trust" help:"Trust this project's vibe.yaml as it is now (vibe and vibe-build ignore it until then)."`
	Version    versionCmd                `cmd:"" help:"Print the version."`
	Completion kongcompletion.Completion `cmd:"" help:"Print shell code that enables tab completion (bash, zsh, fish)."`
	Log        logCmd                    `cmd:"" help:"Show the sandbox's egress log: every request its gateway allowed or denied."`
	Gateway    gatewayServeCmd           `cmd:"" name:"gateway-serve" hidden:"" help:"Run the egress gateway's proxy (inside the gateway instance; vibe starts it there)."`
}

func main() {
	var c cli
	parser := kong.Must(&c,
		kong.Name("vibe"),
		kong.Description("Run an AI coding agent in auto mode inside a disposable, firewalled incus sandbox."),
		kong.UsageOnError(),
		kong.ConfigureHelp(kong.HelpOptions{Compact: true}),
	)
	registerCompletion(parser)
	ctx, err := parser.Parse(os.Args[1:])
	parser.FatalIfErrorf(err)
	if err := ctx.Run(&c); err != nil {
		var ex exitCode
		if errors.As(err, &ex) {
			os.Exit(int(ex))
		}
		fmt.Fprintf(os.Stderr, "vibe: %s\n", safetext.Text(err.Error()))
		os.Exit(1)
	}
}

// registerCompletion answers shell completion requests. It is
// kongcompletion.Register plus one thing kong-completion cannot see: the
// default command's PROJECT is typed at the top level (`vibe app`), so the
// top level completes project names too.
func registerCompletion(parser *kong.Kong) {
	cmd, err := kongcompletion.Command(parser,
		kongcompletion.WithPredictor("sandbox", complete.PredictFunc(predictSandboxes)),
		kongcompletion.WithPredictor("project", complete.PredictFunc(predictProjects)),
	)
	if err != nil {
		parser.Errorf("completion: %v", err)
		parser.Exit(1)
	}
	cmd.Args = complete.PredictFunc(predictProjects)
	c := complete.New(parser.Model.Name, cmd)
	c.Out = parser.Stdout
	if c.Complete() {
		parser.Exit(0)
	}
}

// exitCode passes a command's exit status through without a message.
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

type versionCmd struct{}

func (versionCmd) Run() error {
	fmt.Println("vibe", version.String())
	return nil
}
