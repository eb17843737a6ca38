package sandbox

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	incus "github.com/lxc/incus/v6/client"
)

// StatusFile is what the guest's status line reads about its sandbox:
// written by vibe, as root, at every start and every firewall change,
// never by anything in the guest that the agent runs as.
const StatusFile = "/run/vibe-status.json"

// guestStatus is StatusFile's content.
type guestStatus struct {
	Name   string `json:"name"`
	Egress string `json:"egress"` // allowlist or off
	Image  string `json:"image"`  // the short fingerprint
	Newest bool   `json:"newest"` // whether the alias still points at it
}

// writeStatus tells the guest's status line its sandbox's name, egress
// mode and image. It is for display only: a failure is not an error of
// the start or the firewall change it follows.
func (m *Manager) writeStatus(ctx context.Context, name string, off bool) {
	inst, err := m.Get(name)
	if err != nil {
		return
	}
	in := m.info(inst)
	// "Newest" unless the alias is known to point elsewhere (an image
	// given by fingerprint has no alias to lag behind).
	st := guestStatus{Name: name, Egress: "allowlist", Image: in.Fingerprint, Newest: in.Newest || in.NewestImage == ""}
	if len(st.Image) > 12 {
		st.Image = st.Image[:12]
	}
	if off || inst.Config[KeyFirewall] == "off" {
		st.Egress = "off"
	}
	b, _ := json.Marshal(st)
	if ctx.Err() != nil {
		return
	}
	// The file API takes no context: a guest whose root put something
	// that blocks at the path must not hold vibe.
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = m.C.CreateInstanceFile(m.id(name), StatusFile, incus.InstanceFileArgs{
			Content: bytes.NewReader(append(b, '\n')), UID: 0, GID: 0, Mode: 0o644, Type: "file", WriteMode: "overwrite",
		})
	}()
	select {
	case <-done:
	case <-time.After(statusTimeout):
	case <-ctx.Done():
	}
}

// statusTimeout bounds the status write.
const statusTimeout = 10 * time.Second
