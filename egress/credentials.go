package egress

import (
	"fmt"
	"net/url"
	"strings"

	"github.com/vibesandbox/vibe/gateway"
)

// Binding says how one credential of secrets.env is used: the gateway
// holds it and adds it to requests for Upstream in Header; the guest sees
// Placeholder in Key and the gateway's route in BaseURLEnv.
type Binding struct {
	Key        string // the secrets.env variable holding the credential
	Upstream   string // where requests go, unless BaseURLEnv is set in secrets.env
	Header     string
	Prefix     string // put before the value in the header ("Bearer ")
	BaseURLEnv string // the variable the client reads its base URL from
}

// Bindings are the credentials vibe keeps out of the guest. A key listed
// here never enters a sandbox behind a gateway.
var Bindings = []Binding{
	{Key: "ANTHROPIC_API_KEY", Upstream: "https://api.anthropic.com", Header: "X-Api-Key", BaseURLEnv: "ANTHROPIC_BASE_URL"},
	{Key: "ANTHROPIC_AUTH_TOKEN", Upstream: "https://api.anthropic.com", Header: "Authorization", Prefix: "Bearer ", BaseURLEnv: "ANTHROPIC_BASE_URL"},
	{Key: "OPENAI_API_KEY", Upstream: "https://api.openai.com/v1", Header: "Authorization", Prefix: "Bearer ", BaseURLEnv: "OPENAI_BASE_URL"},
	// Gemini CLI sends the key in x-goog-api-key and appends /v1beta/...
	// to a base URL of the host's root.
	{Key: "GEMINI_API_KEY", Upstream: "https://generativelanguage.googleapis.com", Header: "X-Goog-Api-Key", BaseURLEnv: "GOOGLE_GEMINI_BASE_URL"},
}

// Placeholder is what the guest holds in place of a credential: clients
// insist on a key being set, and the gateway replaces it on the way out.
const Placeholder = "vibe-gateway-holds-this-credential"

// Bound is secrets.env split between the gateway and the guest.
type Bound struct {
	Credentials []gateway.Credential // for the gateway
	Guest       map[string]string    // the secrets that still go to the guest
	Env         map[string]string    // placeholders and base URLs (not secret)
}

// Bind splits secrets: each bound credential goes to the gateway with its
// upstream (the user's own base URL from secrets.env, if set, else the
// binding's), and the guest gets a placeholder and a base URL naming the
// gateway's route. When two credentials share one base URL variable, the
// first in Bindings takes it and the other stays with the gateway unused.
//
// extra are the user's own bindings (egress.credentials), after the
// built-in ones; a key bound twice takes its first binding.
func Bind(secrets map[string]string, info *Info, extra ...Binding) (Bound, error) {
	b := Bound{Guest: map[string]string{}, Env: map[string]string{}}
	for k, v := range secrets {
		b.Guest[k] = v
	}
	claimed, bound := map[string]bool{}, map[string]bool{}
	for _, bd := range append(append([]Binding(nil), Bindings...), extra...) {
		val, ok := secrets[bd.Key]
		if !ok || val == "" || bound[bd.Key] {
			continue
		}
		bound[bd.Key] = true
		upstream := bd.Upstream
		if u := secrets[bd.BaseURLEnv]; u != "" {
			p, err := url.Parse(u)
			if err != nil || (p.Scheme != "https" && p.Scheme != "http") || p.Host == "" || p.User != nil {
				return Bound{}, fmt.Errorf("secrets.env: %s %q is not an http(s) URL without credentials", bd.BaseURLEnv, u)
			}
			upstream = strings.TrimSuffix(u, "/")
		}
		if strings.ContainsAny(val, "\r\n") {
			return Bound{}, fmt.Errorf("secrets.env: %s holds a line break, which no HTTP header can carry", bd.Key)
		}
		b.Credentials = append(b.Credentials, gateway.Credential{Name: bd.Key, Upstream: upstream, Header: bd.Header, Prefix: bd.Prefix, Value: val})
		b.Env[bd.Key] = Placeholder
		delete(b.Guest, bd.Key)
		if !claimed[bd.BaseURLEnv] {
			claimed[bd.BaseURLEnv] = true
			b.Env[bd.BaseURLEnv] = info.CredentialURL(bd.Key)
			delete(b.Guest, bd.BaseURLEnv)
		}
	}
	return b, nil
}
