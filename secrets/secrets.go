// Package secrets reads the secrets file ($XDG_CONFIG_HOME/vibe/secrets.env):
// KEY=VALUE lines that are parsed, never executed or expanded. The values go
// to the sandbox only as the environment of an exec request: never onto the
// guest's disk, never into an image, never into a host process's argv.
package secrets

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Limits keep a mistaken file (a binary, a log) from being sent along.
const (
	MaxFileSize  = 1 << 20
	MaxValueSize = 64 << 10
)

var keyRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,127}$`)

// reserved keys would change how the sandbox runs rather than carry a
// secret: the launcher sets them itself.
var reserved = map[string]bool{
	"PATH": true, "HOME": true, "USER": true, "LOGNAME": true, "SHELL": true, "TERM": true, "PWD": true,
	"LD_PRELOAD": true, "LD_LIBRARY_PATH": true, "LD_AUDIT": true, "BASH_ENV": true, "ENV": true,
	"http_proxy": true, "https_proxy": true, "HTTP_PROXY": true, "HTTPS_PROXY": true,
	"no_proxy": true, "NO_PROXY": true, "ALL_PROXY": true, "all_proxy": true,
	"NODE_OPTIONS": true, "NODE_USE_ENV_PROXY": true, "CLAUDE_CONFIG_DIR": true,
	"CODEX_HOME": true, "GEMINI_CLI_HOME": true, "XDG_DATA_HOME": true,
	"NODE_EXTRA_CA_CERTS": true, "REQUESTS_CA_BUNDLE": true, "SSL_CERT_FILE": true,
}

// Parse reads KEY=VALUE lines. Blank lines and # comments are skipped, an
// optional "export " prefix is allowed, and a value wrapped in matching
// single or double quotes loses them; nothing else is interpreted.
func Parse(content string) (map[string]string, error) {
	if len(content) > MaxFileSize {
		return nil, fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	if strings.ContainsRune(content, 0) {
		return nil, errors.New("contains NUL bytes: not a text file")
	}
	out := map[string]string{}
	for i, raw := range strings.Split(content, "\n") {
		line := strings.TrimSpace(strings.TrimSuffix(raw, "\r"))
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.TrimPrefix(line, "export ")
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			return nil, fmt.Errorf("line %d: expected KEY=VALUE", i+1)
		}
		key = strings.TrimSpace(key)
		if !keyRE.MatchString(key) {
			return nil, fmt.Errorf("line %d: %q is not a valid variable name (letters, digits and _, not starting with a digit)", i+1, key)
		}
		if reserved[key] {
			return nil, fmt.Errorf("line %d: %s is set by vibe itself and cannot come from the secrets file", i+1, key)
		}
		if _, dup := out[key]; dup {
			return nil, fmt.Errorf("line %d: %s is set twice", i+1, key)
		}
		value = strings.TrimSpace(value)
		if len(value) >= 2 && (value[0] == '"' || value[0] == '\'') && value[len(value)-1] == value[0] {
			value = value[1 : len(value)-1]
		}
		if len(value) > MaxValueSize {
			return nil, fmt.Errorf("line %d: the value of %s is longer than %d bytes", i+1, key, MaxValueSize)
		}
		out[key] = value
	}
	return out, nil
}

// Load reads and parses path; a missing file is an empty set. A file that
// others can read is refused: it holds credentials.
func Load(path string) (map[string]string, error) {
	st, err := os.Stat(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]string{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("secrets %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("secrets %s is readable by other users (mode %04o); run: chmod 600 %s", path, st.Mode().Perm(), path)
	}
	if st.Size() > MaxFileSize {
		return nil, fmt.Errorf("secrets %s: larger than %d bytes", path, MaxFileSize)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets %s: %w", path, err)
	}
	m, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("secrets %s: %w", path, err)
	}
	return m, nil
}

// GatewayHost returns the host of ANTHROPIC_BASE_URL, to be allowed out.
func GatewayHost(env map[string]string) (string, error) {
	raw, ok := env["ANTHROPIC_BASE_URL"]
	if !ok || raw == "" {
		return "", nil
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "https" && u.Scheme != "http" || u.Hostname() == "" {
		return "", fmt.Errorf("ANTHROPIC_BASE_URL %q is not an http(s) URL", raw)
	}
	return strings.ToLower(u.Hostname()), nil
}

// Keys returns the names, sorted: what may be shown of a secrets set.
func Keys(env map[string]string) []string {
	keys := make([]string, 0, len(env))
	for k := range env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
