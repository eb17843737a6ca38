package config

// Agents are the agent CLIs that may be baked beside Claude Code (agent),
// each started with vibe --agent NAME. Their versions are pinned like the
// agent's; what vibe needs to know to run each one (its state folder, how
// its key reaches it) is in AgentPresets.
type Agents struct {
	Codex    Preset `yaml:"codex" json:"codex"`
	Gemini   Preset `yaml:"gemini" json:"gemini"`
	OpenCode Preset `yaml:"opencode" json:"opencode"`
}

// Preset is one more agent: the npm package and the auto-mode command.
type Preset struct {
	Enabled bool     `yaml:"enabled" json:"enabled"`
	Package string   `yaml:"package" json:"package"`
	Version string   `yaml:"version" json:"version"`
	Command []string `yaml:"command" json:"command"`
}

// AgentPreset is what vibe knows of an agent beyond its configuration.
type AgentPreset struct {
	Name string
	// StateEnv names the variable that moves the agent's state folder
	// (login, history) to the one vibe persists; StateAll says whether
	// every session gets it, or only the agent's own (it moves more than
	// the agent's state).
	StateEnv string
	StateAll bool
	// Keep are the entries of the state folder that survive vibe restore
	// (a login, the history); everything else is set aside, since it may
	// carry commands the agent wrote for its next start.
	Keep []string
	// Drop are entries of kept folders set aside all the same, as
	// PARENT/*/NAME.
	Drop []string
	// Steer are the entries of the state folder that run code or steer
	// the agent at its next start (settings with hooks and MCP servers,
	// instructions, plugins, downloaded tools): vibe reports a change to
	// them after every session.
	Steer []string
	// Keys are the secrets.env variables it authenticates with.
	Keys []string
	// Allow are the hosts it needs besides its API, which the gateway's
	// credential route reaches (a login, for one).
	Allow []string
	// Env is set in its own sessions: no self-update, no telemetry.
	Env map[string]string
	// Gateway says how its key reaches it behind the egress gateway.
	Gateway string
}

// AgentPresets lists every agent vibe can run, Claude Code first.
var AgentPresets = []AgentPreset{
	{
		Name: "claude", StateEnv: "CLAUDE_CONFIG_DIR", StateAll: true,
		Keep: []string{".credentials.json", "history.jsonl", "projects"},
		// Its auto-memory is read into every session: instructions the
		// agent wrote there would outlive the restore.
		Drop:  []string{"projects/*/memory"},
		Steer: []string{"settings.json", "settings.local.json", "hooks", "commands", "agents", "skills", "plugins", "output-styles", "CLAUDE.md"},
		// Those it authenticates with, or is told to use another provider's.
		Keys:    []string{"ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN", "CLAUDE_CODE_USE_BEDROCK", "CLAUDE_CODE_USE_VERTEX", "AWS_BEARER_TOKEN_BEDROCK"},
		Gateway: "ANTHROPIC_API_KEY and ANTHROPIC_AUTH_TOKEN stay in the gateway (ANTHROPIC_BASE_URL names its route); a claude login lives in the guest",
	},
	{
		Name: "codex", StateEnv: "CODEX_HOME", StateAll: true,
		Keep: []string{"auth.json", "history.jsonl", "sessions"},
		// config.toml names MCP servers, a notify command and providers.
		Steer: []string{"config.toml", "AGENTS.md", "AGENTS.override.md", "prompts", "rules", "skills"},
		Keys:  []string{"OPENAI_API_KEY"},
		// A ChatGPT login goes to these; the API key to the gateway's route.
		Allow:   []string{"=auth.openai.com", "=chatgpt.com"},
		Gateway: "OPENAI_API_KEY stays in the gateway: vibe starts codex with a model provider whose base URL is the gateway's route (codex reads no OPENAI_BASE_URL); a ChatGPT login lives in the guest",
	},
	{
		Name: "gemini", StateEnv: "GEMINI_CLI_HOME", StateAll: true,
		Keep:    []string{".gemini/oauth_creds.json", ".gemini/google_accounts.json", ".gemini/installation_id", ".gemini/tmp"},
		Steer:   []string{".gemini/settings.json", ".gemini/GEMINI.md", ".gemini/commands", ".gemini/extensions", ".gemini/trustedFolders.json"},
		Keys:    []string{"GEMINI_API_KEY"},
		Allow:   []string{"=cloudcode-pa.googleapis.com", "=oauth2.googleapis.com", "=accounts.google.com"},
		Env:     map[string]string{"GEMINI_TELEMETRY_ENABLED": "false"},
		Gateway: "GEMINI_API_KEY stays in the gateway (GOOGLE_GEMINI_BASE_URL names its route, and the image's system defaults select API-key sign-in); a Google login lives in the guest",
	},
	{
		// opencode keeps its login and sessions in its XDG data folder:
		// moving XDG_DATA_HOME for every session would move other tools'
		// (uv's tools) too, so only its own sessions get it.
		Name: "opencode", StateEnv: "XDG_DATA_HOME", StateAll: false,
		Keep: []string{"opencode/auth.json", "opencode/storage"},
		// Its configuration is in the guest's home; its data folder holds
		// the language servers it downloads and runs.
		Steer: []string{"opencode/bin"},
		Keys:  []string{"ANTHROPIC_API_KEY", "OPENAI_API_KEY"},
		// Language servers it would download land in its persisted state
		// and run at every start: the image's toolchains serve instead.
		Env:     map[string]string{"OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_MODELS_FETCH": "1", "OPENCODE_DISABLE_SHARE": "true", "OPENCODE_DISABLE_LSP_DOWNLOAD": "true"},
		Gateway: "ANTHROPIC_API_KEY and OPENAI_API_KEY stay in the gateway (the base URLs name its routes, with /v1 as opencode expects); a login (opencode auth) lives in the guest",
	},
}

// AgentPresetNamed returns the preset called name, or nil.
func AgentPresetNamed(name string) *AgentPreset {
	for i := range AgentPresets {
		if AgentPresets[i].Name == name {
			return &AgentPresets[i]
		}
	}
	return nil
}

// AgentNames are the names vibe --agent takes.
func AgentNames() []string {
	out := make([]string, len(AgentPresets))
	for i, p := range AgentPresets {
		out[i] = p.Name
	}
	return out
}

// Extra returns the configured preset of a name other than claude, or nil.
func (a *Agents) Extra(name string) *Preset {
	switch name {
	case "codex":
		return &a.Codex
	case "gemini":
		return &a.Gemini
	case "opencode":
		return &a.OpenCode
	}
	return nil
}

// Enabled lists the agents the configuration bakes and runs: claude
// (when agent.enabled), then each enabled preset, in AgentPresets' order.
func (c *Config) EnabledAgents() []string {
	var out []string
	for _, p := range AgentPresets {
		if p.Name == "claude" {
			if c.Agent.Enabled {
				out = append(out, p.Name)
			}
		} else if c.Agents.Extra(p.Name).Enabled {
			out = append(out, p.Name)
		}
	}
	return out
}

// AgentCommand is how vibe starts the agent name in auto mode.
func (c *Config) AgentCommand(name string) []string {
	if name == "" || name == "claude" {
		return c.Agent.Command
	}
	if p := c.Agents.Extra(name); p != nil {
		return p.Command
	}
	return nil
}
