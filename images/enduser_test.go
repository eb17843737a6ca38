package images

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/provision"
)

// execRecorder is an incus server that records every exec and answers
// the few a bake's provision and inventory phases make.
type execRecorder struct {
	incus.InstanceServer
	execs []api.InstanceExecPost
}

type doneOp struct {
	incus.Operation
	code int
}

func (o doneOp) WaitContext(context.Context) error { return nil }
func (o doneOp) Wait() error                       { return nil }
func (o doneOp) Get() api.Operation {
	return api.Operation{Metadata: map[string]any{"return": float64(o.code)}}
}

func (f *execRecorder) ExecInstance(name string, req api.InstanceExecPost, args *incus.InstanceExecArgs) (incus.Operation, error) {
	f.execs = append(f.execs, req)
	out := ""
	switch strings.Join(req.Command, " ") {
	case "cat /run/cloud-init/result.json":
		out = `{"v1":{"errors":[]}}`
	case "/usr/local/lib/vibe/inventory":
		out = "deb\tnftables\t1.0.9-1\tamd64\n"
	}
	io.WriteString(args.Stdout, out)
	close(args.DataDone)
	return doneOp{}, nil
}

// Before the inventory runs as the sandbox user, every process of that
// user ends, as root: npm package scripts run as the user during
// provisioning and may leave a process behind (cloud-final keeps it),
// which could write lines of its choosing into the inventory's output
// (the SBOM, the manifest's versions) and go on running through seal.
func TestInventoryEndsTheUsersProcessesFirst(t *testing.T) {
	c, err := config.Parse("", nil, config.Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	srv := &execRecorder{}
	b := &baker{c: srv, o: Options{Config: c, Timeout: time.Minute}, p: nopProgress{}}
	if _, _, err := b.inventory(context.Background(), "vibe-builder-x"); err != nil {
		t.Fatal(err)
	}
	script, _ := provision.File("end-user")
	want := []string{"bash", "-c", script, "end-user", "1000"}
	if len(srv.execs) != 2 || !slices.Equal(srv.execs[0].Command, want) || srv.execs[0].User != 0 || srv.execs[1].Command[0] != "/usr/local/lib/vibe/inventory" {
		var cmds []string
		for _, e := range srv.execs {
			cmds = append(cmds, fmt.Sprintf("uid %d: %.60q", e.User, e.Command))
		}
		t.Fatalf("the bake ran:\n  %s\nwant end-user 1000 as root, then the inventory", strings.Join(cmds, "\n  "))
	}
}
