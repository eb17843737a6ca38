package egress

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/internal/e2e"
)

func info() *Info {
	return &Info{Network: "vibe-sandbox", Prefix: netip.MustParsePrefix("10.77.0.0/24"), Host: netip.MustParseAddr("10.77.0.1"), Addr: netip.MustParseAddr("10.77.0.2"), Port: 3128}
}

func TestBind(t *testing.T) {
	for _, tc := range []struct {
		name    string
		secrets map[string]string
		creds   []string // name upstream header prefix+value
		guest   []string // keys left for the guest
		env     map[string]string
		extra   []Binding
		err     string
	}{
		{
			name:    "a binding of the user's own",
			secrets: map[string]string{"MISTRAL_API_KEY": "m-1"},
			extra:   []Binding{{Key: "MISTRAL_API_KEY", Upstream: "https://api.mistral.ai", Header: "Authorization", Prefix: "Bearer ", BaseURLEnv: "MISTRAL_BASE_URL"}},
			creds:   []string{"MISTRAL_API_KEY https://api.mistral.ai Authorization Bearer m-1"},
			env: map[string]string{"MISTRAL_API_KEY": Placeholder,
				"MISTRAL_BASE_URL": "http://10.77.0.2:3128/vibe-credential/MISTRAL_API_KEY"},
		},
		{
			name:    "the API key stays in the gateway",
			secrets: map[string]string{"ANTHROPIC_API_KEY": "sk-1", "GH_TOKEN": "gh-1"},
			creds:   []string{"ANTHROPIC_API_KEY https://api.anthropic.com X-Api-Key sk-1"},
			guest:   []string{"GH_TOKEN"},
			env: map[string]string{"ANTHROPIC_API_KEY": Placeholder,
				"ANTHROPIC_BASE_URL": "http://10.77.0.2:3128/vibe-credential/ANTHROPIC_API_KEY"},
		},
		{
			name:    "the user's own base URL becomes the upstream",
			secrets: map[string]string{"ANTHROPIC_AUTH_TOKEN": "t-1", "ANTHROPIC_BASE_URL": "https://llm.example.com/anthropic/"},
			creds:   []string{"ANTHROPIC_AUTH_TOKEN https://llm.example.com/anthropic Authorization Bearer t-1"},
			env: map[string]string{"ANTHROPIC_AUTH_TOKEN": Placeholder,
				"ANTHROPIC_BASE_URL": "http://10.77.0.2:3128/vibe-credential/ANTHROPIC_AUTH_TOKEN"},
		},
		{
			name:    "two keys for one base URL: the first takes the route",
			secrets: map[string]string{"ANTHROPIC_API_KEY": "sk-1", "ANTHROPIC_AUTH_TOKEN": "t-1"},
			creds:   []string{"ANTHROPIC_API_KEY https://api.anthropic.com X-Api-Key sk-1", "ANTHROPIC_AUTH_TOKEN https://api.anthropic.com Authorization Bearer t-1"},
			env: map[string]string{"ANTHROPIC_API_KEY": Placeholder, "ANTHROPIC_AUTH_TOKEN": Placeholder,
				"ANTHROPIC_BASE_URL": "http://10.77.0.2:3128/vibe-credential/ANTHROPIC_API_KEY"},
		},
		{
			name:    "a base URL with credentials in it is refused",
			secrets: map[string]string{"OPENAI_API_KEY": "sk-1", "OPENAI_BASE_URL": "https://u:p@example.com"},
			err:     "OPENAI_BASE_URL",
		},
		{
			name:    "nothing bound: all secrets stay as they were",
			secrets: map[string]string{"NPM_TOKEN": "n"},
			guest:   []string{"NPM_TOKEN"},
			env:     map[string]string{},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := Bind(tc.secrets, info(), tc.extra...)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one naming %s", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var creds []string
			for _, c := range b.Credentials {
				creds = append(creds, strings.TrimSpace(c.Name+" "+c.Upstream+" "+c.Header+" "+c.Prefix+c.Value))
			}
			if strings.Join(creds, "\n") != strings.Join(tc.creds, "\n") {
				t.Errorf("credentials:\n%s\nwant:\n%s", strings.Join(creds, "\n"), strings.Join(tc.creds, "\n"))
			}
			if len(b.Guest) != len(tc.guest) {
				t.Errorf("guest secrets %v, want %v", b.Guest, tc.guest)
			}
			for _, k := range tc.guest {
				if b.Guest[k] != tc.secrets[k] {
					t.Errorf("guest secret %s = %q", k, b.Guest[k])
				}
			}
			for k, v := range b.Guest {
				for _, c := range b.Credentials {
					if v == c.Value {
						t.Errorf("the credential %s reaches the guest as %s", c.Name, k)
					}
				}
			}
			if len(b.Env) != len(tc.env) {
				t.Errorf("env %v, want %v", b.Env, tc.env)
			}
			for k, v := range tc.env {
				if b.Env[k] != v {
					t.Errorf("env %s = %q, want %q", k, b.Env[k], v)
				}
			}
		})
	}
}

func TestUnit(t *testing.T) {
	u, err := (&Gateway{Private: []netip.Prefix{netip.MustParsePrefix("10.20.0.0/16")}}).unit(info())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"ExecStartPre=+/usr/sbin/ip address replace 10.77.0.2/24 dev eth1",
		"--listen 10.77.0.2:3128 --bridge 10.77.0.0/24",
		"--ranges /etc/vibe-gateway/ranges.json",
		"User=vibe-gateway", "RuntimeDirectoryMode=0700", "NoNewPrivileges=yes",
	} {
		if !strings.Contains(u, want) {
			t.Errorf("the unit lacks %q:\n%s", want, u)
		}
	}
	// What changes while the gateway runs is in its ranges file: a change
	// of the unit restarts the gateway, which cuts every connection.
	if strings.Contains(u, "10.20.0.0") {
		t.Errorf("the unit names the user's private ranges:\n%s", u)
	}
}

// The gateway's ruleset is valid nftables (checked in a scratch network
// namespace, as root; a missing nft or root is a failure under
// VIBE_TEST_STRICT=1).
func TestRulesetChecks(t *testing.T) {
	u, err := (&Gateway{}).unit(info())
	if err != nil {
		t.Fatal(err)
	}
	_, rules, ok := strings.Cut(u, rulesMarker)
	if !ok || !strings.Contains(rules, "ip daddr 10.77.0.2 tcp dport 3128 accept") || !strings.Contains(rules, "policy drop") {
		t.Fatalf("the ruleset:\n%s", rules)
	}
	if os.Geteuid() != 0 {
		if os.Getenv("VIBE_TEST_STRICT") == "1" {
			t.Fatal("nft -c needs root (VIBE_TEST_STRICT=1)")
		}
		t.Skip("nft -c needs root")
	}
	e2e.Tool(t, "nft", "apt-get install nftables")
	p := filepath.Join(t.TempDir(), "rules.nft")
	os.WriteFile(p, []byte(rules), 0o644)
	if out, err := exec.Command("unshare", "-n", "nft", "-c", "-f", p).CombinedOutput(); err != nil {
		t.Fatalf("nft -c: %v\n%s", err, out)
	}
}

func TestNetworkConfig(t *testing.T) {
	c := networkConfig()
	for k, v := range map[string]string{
		"ipv4.nat": "false", "ipv6.address": "none",
		"security.acls.default.egress.action": "drop", "security.acls.default.ingress.action": "drop",
	} {
		if c[k] != v {
			t.Errorf("%s = %q, want %q", k, c[k], v)
		}
	}
	if !strings.Contains(c["raw.dnsmasq"], "no-resolv") || !strings.Contains(c["raw.dnsmasq"], "dhcp-option=3") {
		t.Errorf("dnsmasq may forward names or offer a router: %q", c["raw.dnsmasq"])
	}
}
