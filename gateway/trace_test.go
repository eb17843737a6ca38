package gateway

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A credential route takes only the methods an API call uses. TRACE asks
// the origin to echo the request it received, headers included (RFC 9110
// 9.3.8; Apache httpd answers it unless TraceEnable is off, as do many
// appliances and self-hosted front ends an upstream may name), and the
// gateway puts the real key in a header on the way out: the echo handed
// the agent the key.
func TestCredentialRouteRefusesTrace(t *testing.T) {
	// An upstream that implements TRACE as the RFC says.
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "TRACE" {
			b, _ := httputil.DumpRequest(r, false)
			w.Header().Set("Content-Type", "message/http")
			w.Write(b)
			return
		}
		io.WriteString(w, "ok")
	}))
	defer up.Close()
	state := t.TempDir()
	dir := filepath.Join(state, "sandboxes", "127.0.0.1")
	os.MkdirAll(dir, 0o700)
	put := func(name string, v any) {
		b, _ := json.Marshal(v)
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	put(PolicyFile, Policy{Sandbox: "sb"})
	put(CredentialsFile, Credentials{Credentials: []Credential{{
		Name: "ANTHROPIC_AUTH_TOKEN", Upstream: up.URL + "/anthropic", Header: "Authorization", Prefix: "Bearer ", Value: "sk-ant-REAL-SECRET",
	}}})
	s := &Server{Store: &Store{Dir: filepath.Join(state, "sandboxes")}, Self: netip.MustParseAddr("192.0.2.1")}
	gw := httptest.NewServer(s.Handler())
	defer gw.Close()

	// What the agent sends: the route it was given, with TRACE.
	req, _ := http.NewRequest("TRACE", gw.URL+CredentialPath+"ANTHROPIC_AUTH_TOKEN/v1/messages", nil)
	req.Header.Set("Authorization", "Bearer vibe-gateway-holds-this-credential")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed || strings.Contains(string(b), "sk-ant-REAL-SECRET") {
		t.Errorf("TRACE through the credential route returned the real key to the sandbox (%d):\n%s", resp.StatusCode, b)
	}
}
