package sandbox

import (
	"maps"
	"path/filepath"
	"slices"
	"strings"
)

// agentSession adapts argv and the session's variables to the agent the
// session starts, once the credentials are bound: env is the exec's
// environment (placeholders and the gateway's routes live there), secrets
// what goes to the guest in the secrets file. It returns new values; the
// maps given are not changed.
func agentSession(agent string, argv []string, env, secrets map[string]string) ([]string, map[string]string, map[string]string) {
	env, secrets = maps.Clone(env), maps.Clone(secrets)
	lookup := func(k string) (string, bool) {
		if v, ok := secrets[k]; ok {
			return v, true
		}
		v, ok := env[k]
		return v, ok
	}
	switch agent {
	case "codex":
		// codex reads neither OPENAI_BASE_URL nor, for the API,
		// OPENAI_API_KEY: a model provider of vibe's names both, for
		// this run only (-c goes before any subcommand).
		// Only codex itself takes them, not a command configured in its
		// place.
		if _, ok := lookup("OPENAI_API_KEY"); !ok || len(argv) == 0 || filepath.Base(argv[0]) != "codex" {
			break
		}
		base, _ := lookup("OPENAI_BASE_URL")
		if base == "" {
			base = "https://api.openai.com/v1"
		}
		provider := "{name=" + tomlString("OpenAI (vibe)") + ",base_url=" + tomlString(base) +
			`,env_key="OPENAI_API_KEY",wire_api="responses",supports_websockets=false}`
		argv = slices.Concat(argv[:1], []string{"-c", `model_provider="vibe"`, "-c", "model_providers.vibe=" + provider}, argv[1:])
	case "opencode":
		// Its flags (--auto) belong to a subcommand: `opencode --auto run
		// MSG` is refused where `opencode run --auto MSG` works, so a run
		// asked for after the preset's flags goes first.
		if len(argv) > 1 && filepath.Base(argv[0]) == "opencode" {
			// Only past flags that take no value: "--prompt run" is a
			// prompt, and "--" ends the flags.
			bare := func(a string) bool { return slices.Contains([]string{"--auto", "--pure", "--print-logs", "--mini"}, a) }
			if i := slices.IndexFunc(argv[1:], func(a string) bool { return !bare(a) }); i > 0 && argv[1+i] == "run" {
				argv = slices.Concat(argv[:1], []string{"run"}, argv[1:1+i], argv[2+i:])
			}
		}
		// opencode's Anthropic client wants the base URL with /v1, which
		// Claude Code's ANTHROPIC_BASE_URL leaves out.
		for _, m := range []map[string]string{env, secrets} {
			if v, ok := m["ANTHROPIC_BASE_URL"]; ok && v != "" && !strings.HasSuffix(strings.TrimSuffix(v, "/"), "/v1") {
				m["ANTHROPIC_BASE_URL"] = strings.TrimSuffix(v, "/") + "/v1"
			}
		}
	}
	return argv, env, secrets
}

// tomlString quotes s as a TOML basic string: codex parses each -c value
// as TOML, and a base URL from secrets.env must stay one string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			b.WriteString(`\u00`)
			b.WriteByte("0123456789abcdef"[r>>4])
			b.WriteByte("0123456789abcdef"[r&0xf])
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
