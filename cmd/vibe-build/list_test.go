package main

import (
	"encoding/json"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/internal/e2e"
)

// fakeIncus serves the incus API on a unix socket with the given images.
func fakeIncus(t *testing.T, imgs []api.Image) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "unix.socket")
	l, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	sync := func(w http.ResponseWriter, v any) {
		b, _ := json.Marshal(v)
		json.NewEncoder(w).Encode(map[string]any{"type": "sync", "status": "Success", "status_code": 200, "metadata": json.RawMessage(b)})
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/1.0", func(w http.ResponseWriter, r *http.Request) {
		sync(w, api.Server{ServerUntrusted: api.ServerUntrusted{APIVersion: "1.0", Auth: "trusted"}, Environment: api.ServerEnvironment{Server: "incus"}})
	})
	mux.HandleFunc("/1.0/images", func(w http.ResponseWriter, r *http.Request) { sync(w, imgs) })
	srv := &http.Server{Handler: mux}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return sock
}

// list (and gc) take an image's incus properties, which anyone in the
// project may set and an image copied from a remote keeps, for a vibe
// image's only when they have its form: escape sequences in
// vibe.instance_type reached the terminal, and a vibe.recipe shorter than
// 12 characters panicked list and gc.
func TestListTakesOnlyVibeImagesProperties(t *testing.T) {
	fp := strings.Repeat("c", 64)
	for _, tc := range []struct {
		name  string
		props map[string]string
	}{
		{"escapes", map[string]string{"vibe.recipe": strings.Repeat("d", 64), "vibe.instance_type": "container\x1b]0;owned\x07\x1b[8m"}},
		{"short recipe", map[string]string{"vibe.recipe": "x", "vibe.instance_type": "container"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := fakeIncus(t, []api.Image{{Fingerprint: fp, ImagePut: api.ImagePut{Properties: tc.props}, CreatedAt: time.Unix(1700000000, 0)}})
			dir := t.TempDir()
			cmd := exec.Command(bin, "list")
			cmd.Dir = dir
			cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "HOME="+dir, "INCUS_SOCKET="+sock)
			out, errOut, code := e2e.Run(t, cmd)
			if strings.Contains(errOut, "panic:") || strings.ContainsAny(out+errOut, "\x1b\x07") {
				t.Fatalf("list (exit %d) with a hostile image in incus:\n%q\n%s", code, out, firstLines(errOut, 4))
			}
		})
	}
}
