package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	got, err := Parse(`# credentials
ANTHROPIC_API_KEY=sk-ant-xyz
export ANTHROPIC_BASE_URL="https://gateway.example.com/v1"
QUOTED='a b $(not run) ` + "`nor this`" + `'
EMPTY=
SPACES =  padded  
WITH_EQUALS=a=b=c
`)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"ANTHROPIC_API_KEY":  "sk-ant-xyz",
		"ANTHROPIC_BASE_URL": "https://gateway.example.com/v1",
		"QUOTED":             "a b $(not run) `nor this`",
		"EMPTY":              "",
		"SPACES":             "padded",
		"WITH_EQUALS":        "a=b=c",
	}
	if len(got) != len(want) {
		t.Fatalf("got %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestParseRefuses(t *testing.T) {
	for in, want := range map[string]string{
		"NOEQUALS":             "expected KEY=VALUE",
		"1ABC=x":               "not a valid variable name",
		"A-B=x":                "not a valid variable name",
		"PATH=/evil":           "set by vibe itself",
		"LD_PRELOAD=/x.so":     "set by vibe itself",
		"HTTPS_PROXY=http://x": "set by vibe itself",
		"A=1\nA=2":             "line 2: A is set twice",
		"A=\x00":               "NUL",
		"A=" + strings.Repeat("x", MaxValueSize+1): "longer than",
	} {
		if _, err := Parse(in); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%.30q: %v, want %q", in, err, want)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "secrets.env")
	if m, err := Load(p); err != nil || len(m) != 0 {
		t.Errorf("missing file: %v %v", m, err)
	}
	os.WriteFile(p, []byte("K=v\n"), 0o644)
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("world-readable file: %v", err)
	}
	os.Chmod(p, 0o600)
	if m, err := Load(p); err != nil || m["K"] != "v" {
		t.Errorf("Load: %v %v", m, err)
	}
}

func TestGatewayHost(t *testing.T) {
	for in, want := range map[string]string{
		"":                                    "",
		"https://Gateway.Example.com:8443/v1": "gateway.example.com",
		"http://10.0.0.5/":                    "10.0.0.5",
	} {
		got, err := GatewayHost(map[string]string{"ANTHROPIC_BASE_URL": in})
		if err != nil || got != want {
			t.Errorf("%q: %q %v", in, got, err)
		}
	}
	if _, err := GatewayHost(map[string]string{"ANTHROPIC_BASE_URL": "ftp://x"}); err == nil {
		t.Error("ftp accepted")
	}
}

// FuzzParse: never panics; accepted keys are valid and not reserved, and
// values are bounded.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"A=b\n", "export X='y'\n# c\n", "=x", "A=\"unterminated", "PATH=x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := Parse(s)
		if err != nil {
			return
		}
		for k, v := range m {
			if !keyRE.MatchString(k) || reserved[k] || len(v) > MaxValueSize {
				t.Fatalf("%q: accepted %q=%q", s, k, v)
			}
		}
	})
}
