package sandbox

import (
	"strings"
	"testing"
)

func TestAgentSessionCodexGetsAProviderNamingTheGateway(t *testing.T) {
	env := map[string]string{"OPENAI_API_KEY": "placeholder", "OPENAI_BASE_URL": "http://10.0.0.2:3128/credential/OPENAI_API_KEY"}
	argv, gotEnv, _ := agentSession("codex", []string{"codex", "--dangerously-bypass-approvals-and-sandbox", "exec", "hi"}, env, nil)
	want := []string{"codex", "-c", `model_provider="vibe"`, "-c",
		`model_providers.vibe={name="OpenAI (vibe)",base_url="http://10.0.0.2:3128/credential/OPENAI_API_KEY",env_key="OPENAI_API_KEY",wire_api="responses",supports_websockets=false}`,
		"--dangerously-bypass-approvals-and-sandbox", "exec", "hi"}
	if strings.Join(argv, "\x00") != strings.Join(want, "\x00") {
		t.Errorf("argv\n got %q\nwant %q", argv, want)
	}
	if gotEnv["OPENAI_BASE_URL"] != env["OPENAI_BASE_URL"] {
		t.Error("the environment changed")
	}
	// Without the gateway the key is a secret; a base URL from secrets.env
	// stays one TOML string, whatever it holds.
	argv, _, _ = agentSession("codex", []string{"codex"}, nil, map[string]string{"OPENAI_API_KEY": "sk", "OPENAI_BASE_URL": "https://x.test/v1\",env_key=\"HOME\\\n"})
	if !strings.Contains(argv[4], `base_url="https://x.test/v1\",env_key=\"HOME\\\u000a"`) {
		t.Errorf("the base URL escaped its string: %s", argv[4])
	}
	// A command in codex's place takes no codex options.
	if argv, _, _ = agentSession("codex", []string{"bash", "-c", "echo"}, env, nil); len(argv) != 3 {
		t.Errorf("a script in codex's place: %q", argv)
	}
	// No key, nothing to change.
	if argv, _, _ = agentSession("codex", []string{"codex"}, nil, nil); len(argv) != 1 {
		t.Errorf("codex without a key: %q", argv)
	}
}

func TestAgentSessionOpencodeWantsV1(t *testing.T) {
	env := map[string]string{"ANTHROPIC_BASE_URL": "http://10.0.0.2:3128/credential/ANTHROPIC_API_KEY"}
	sec := map[string]string{"ANTHROPIC_BASE_URL": "https://llm.example/v1/"}
	_, e, s := agentSession("opencode", []string{"opencode"}, env, sec)
	if e["ANTHROPIC_BASE_URL"] != env["ANTHROPIC_BASE_URL"]+"/v1" || s["ANTHROPIC_BASE_URL"] != sec["ANTHROPIC_BASE_URL"] {
		t.Errorf("opencode's base URLs: %q %q", e["ANTHROPIC_BASE_URL"], s["ANTHROPIC_BASE_URL"])
	}
	if env["ANTHROPIC_BASE_URL"] != "http://10.0.0.2:3128/credential/ANTHROPIC_API_KEY" {
		t.Error("agentSession changed its caller's map")
	}
	// Claude Code's sessions keep the URL as it is.
	if _, e, _ := agentSession("", nil, env, nil); e["ANTHROPIC_BASE_URL"] != env["ANTHROPIC_BASE_URL"] {
		t.Error("a session of no agent changed")
	}
}

// opencode takes --auto after its subcommand: a run asked for after the
// preset's flags goes first, and nothing else moves.
func TestAgentSessionOpencodeRunGoesFirst(t *testing.T) {
	for in, want := range map[string]string{
		"opencode --auto run say hi":    "opencode run --auto say hi",
		"opencode --auto":               "opencode --auto",
		"opencode --auto auth login":    "opencode --auto auth login",
		"opencode run --auto x":         "opencode run --auto x",
		"opencode --auto --pure run x":  "opencode run --auto --pure x",
		"opencode --auto --prompt run":  "opencode --auto --prompt run",
		"opencode --auto -- run":        "opencode --auto -- run",
		"opencode --auto --agent run x": "opencode --auto --agent run x",
	} {
		got, _, _ := agentSession("opencode", strings.Fields(in), map[string]string{}, map[string]string{})
		if strings.Join(got, " ") != want {
			t.Errorf("%q: %q, want %q", in, strings.Join(got, " "), want)
		}
	}
}
