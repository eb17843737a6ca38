package images

// The builder instance: launch, provisioning, and cleaning up after killed runs.

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/egress"
	"github.com/vibesandbox/vibe/gateway"
	"github.com/vibesandbox/vibe/internal/capped"
	"github.com/vibesandbox/vibe/provision"
	"github.com/vibesandbox/vibe/sbom"
)

// removeLeftovers deletes builders and intermediate images of bakes whose
// process is gone (a killed run), on this host.
func (b *baker) removeLeftovers() {
	host, _ := os.Hostname()
	insts, err := b.c.GetInstances(api.InstanceTypeAny)
	if err == nil {
		for _, in := range insts {
			if in.Config[KeyBuilder] != "true" || in.Config[keyBuilderHst] != host {
				continue
			}
			if pid, err := strconv.Atoi(in.Config[keyBuilderPID]); err == nil && processAlive(pid) {
				continue
			}
			b.p.Log("removing builder " + in.Name + " left by an interrupted bake")
			_ = daemon.ForceDelete(b.c, in.Name)
		}
	}
	imgs, err := b.c.GetImages()
	if err == nil {
		for _, img := range imgs {
			owner := img.Properties[PropIntermediate]
			if owner == "" {
				continue
			}
			if _, _, err := b.c.GetInstance(owner); err != nil && api.StatusErrorCheck(err, 404) {
				_ = deleteImage(b.c, img.Fingerprint)
			}
		}
	}
}

func randomSuffix() string {
	var x [3]byte
	_, _ = rand.Read(x[:])
	return hex.EncodeToString(x[:])
}

// launch creates and starts the builder with the user-data.
func (b *baker) launch(ctx context.Context, base *Base) (string, error) {
	b.enter("launch")
	cfg := b.o.Config
	name := builderPrefix + b.res.Recipe[:12] + "-" + randomSuffix()
	host, _ := os.Hostname()
	post := api.InstancesPost{
		Name:   name,
		Type:   daemon.APIType(cfg.Instance.Type),
		Source: api.InstanceSource{Type: "image", Fingerprint: base.Fingerprint},
		InstancePut: api.InstancePut{
			Config: map[string]string{
				"cloud-init.user-data": string(b.o.UserData),
				KeyBuilder:             "true",
				keyBuilderPID:          strconv.Itoa(os.Getpid()),
				keyBuilderHst:          host,
				"limits.cpu":           strconv.Itoa(cfg.Instance.CPU),
				"limits.memory":        cfg.Instance.Memory,
			},
		},
		Start: true,
	}
	// A VM builder's disk is the sandboxes' size (in the recipe): what is
	// installed must fit there, and the image is made at that size.
	if root := daemon.VMRootDisk(b.c, cfg.Instance.Type, cfg.Instance.Disk); root != nil {
		post.Devices = map[string]map[string]string{"root": root}
	}
	if g := b.o.Gateway; g != nil {
		b.p.Status("egress gateway")
		info, err := g.Ensure(ctx)
		if err != nil {
			return "", err
		}
		addr, err := g.Address(ctx)
		if err != nil {
			return "", err
		}
		if err := g.Forget(ctx, addr); err != nil {
			return "", err
		}
		if err := g.SetPolicy(ctx, addr, gateway.Policy{Sandbox: name, Allow: cfg.Allowlist.Strings()}); err != nil {
			return "", err
		}
		b.cleanups = append(b.cleanups, func() { _ = g.Forget(context.Background(), addr) })
		if post.Devices == nil {
			post.Devices = map[string]map[string]string{}
		}
		maps.Copy(post.Devices, g.Devices(addr))
		post.Config[egress.KeyProxy] = info.HostPort()
	}
	op, err := b.c.CreateInstance(post)
	if err != nil {
		return "", daemon.ExplainDiskSize(fmt.Errorf("create builder: %w", err), cfg.Instance.Disk)
	}
	b.res.Builder = name
	b.cleanups = append(b.cleanups, func() {
		if b.o.KeepOnFailure && b.res.Fingerprint == "" {
			return
		}
		// A create interrupted here still runs on the server: let it finish,
		// or the delete would find nothing and the builder would appear later.
		_ = op.Wait()
		_ = daemon.ForceDelete(b.c, name)
	})
	if err := waitOp(ctx, op, "create builder "+name); err != nil {
		return "", daemon.ExplainDiskSize(err, cfg.Instance.Disk)
	}
	if cfg.Instance.Type == config.VM {
		b.p.Status("waiting for the VM agent")
		if err := daemon.WaitAgent(ctx, b.c, name, 5*time.Minute); err != nil {
			return "", err
		}
	}
	return name, nil
}

// provision waits for cloud-init, streaming its output log, then runs the
// self-test.
func (b *baker) provision(ctx context.Context, name string) error {
	b.enter("provision")
	deadline := time.Now().Add(b.o.Timeout)
	offset := 1
	var partial string
	var tail []string
	for {
		r, err := run(ctx, b.c, name, "tail", "-c", "+"+strconv.Itoa(offset), "/var/log/cloud-init-output.log")
		if err != nil {
			return err
		}
		if r.Code == 0 && r.Stdout != "" {
			offset += len(r.Stdout)
			text := partial + r.Stdout
			lines := strings.Split(text, "\n")
			partial = lines[len(lines)-1]
			for _, l := range lines[:len(lines)-1] {
				b.p.Log(l)
				tail = append(tail, l)
				if len(tail) > 25 {
					tail = tail[1:]
				}
			}
		}
		res, err := run(ctx, b.c, name, "cat", "/run/cloud-init/result.json")
		if err != nil {
			return err
		}
		if res.Code == 0 {
			var result struct {
				V1 struct {
					Errors []string `json:"errors"`
				} `json:"v1"`
			}
			if err := json.Unmarshal([]byte(res.Stdout), &result); err != nil {
				return b.fail(fmt.Errorf("cloud-init result.json: %w", err), "")
			}
			if len(result.V1.Errors) > 0 {
				return b.fail(errors.New("cloud-init reported errors"), b.cloudInitDetails(ctx, name, result.V1.Errors, tail))
			}
			break
		}
		if time.Now().After(deadline) {
			return b.fail(fmt.Errorf("cloud-init did not finish within %s (raise it with --timeout)", b.o.Timeout), "last lines of /var/log/cloud-init-output.log:\n"+strings.Join(tail, "\n"))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}

	b.enter("selftest")
	r, err := run(ctx, b.c, name, "/usr/local/sbin/vibe-selftest")
	if err != nil {
		return err
	}
	for _, l := range strings.Split(strings.TrimRight(r.Stdout, "\n"), "\n") {
		b.p.Log(l)
	}
	if r.Code != 0 {
		return b.fail(fmt.Errorf("the guest self-test failed (exit %d)", r.Code), r.Stdout+r.Stderr)
	}
	return nil
}

// cloudInitDetails names the failing modules and shows the log's tail.
func (b *baker) cloudInitDetails(ctx context.Context, name string, errs []string, tail []string) string {
	var d strings.Builder
	// The provisioning driver names the step that failed; its own error
	// line ("vibe: error: …") says why.
	for i, l := range tail {
		if step, ok := strings.CutPrefix(strings.TrimSpace(l), "vibe: step "); ok && strings.HasSuffix(step, "FAILED; provisioning stopped") {
			fmt.Fprintf(&d, "failing step: %s\n", strings.TrimSuffix(step, ": FAILED; provisioning stopped"))
			for j := i - 1; j >= 0 && j >= i-5; j-- {
				if strings.HasPrefix(strings.TrimSpace(tail[j]), "vibe: error:") {
					fmt.Fprintf(&d, "  %s\n", strings.TrimSpace(tail[j]))
					break
				}
			}
		}
	}
	d.WriteString("cloud-init errors:\n")
	for _, e := range errs {
		fmt.Fprintf(&d, "  %s\n", e)
	}
	if st, err := run(ctx, b.c, name, "cat", "/run/cloud-init/status.json"); err == nil && st.Code == 0 {
		var status struct {
			V1 map[string]json.RawMessage `json:"v1"`
		}
		if json.Unmarshal([]byte(st.Stdout), &status) == nil {
			var stages []string
			for k := range status.V1 {
				stages = append(stages, k)
			}
			sort.Strings(stages)
			for _, stage := range stages {
				var s struct {
					Errors []string `json:"errors"`
				}
				if json.Unmarshal(status.V1[stage], &s) == nil && len(s.Errors) > 0 {
					fmt.Fprintf(&d, "failing stage %s: %s\n", stage, strings.Join(s.Errors, "; "))
				}
			}
		}
	}
	d.WriteString("last lines of /var/log/cloud-init-output.log:\n")
	for _, l := range tail {
		fmt.Fprintf(&d, "  %s\n", l)
	}
	return d.String()
}

// inventoryTimeout bounds the package listing.
const inventoryTimeout = 5 * time.Minute

// keyPackages are the distribution packages whose versions the manifest
// names beside the toolchains: the ones containment rests on.
var keyPackages = map[string]bool{"cloud-init": true, "nftables": true, "tinyproxy": true, "curl": true, "git": true}

// inventory lists every installed package for the image's SBOM, and the
// versions the manifest names: each toolchain provisioning recorded and the
// key packages. The script runs as the sandbox user, so nothing it reads
// in that user's home is read with more rights than the user's own, and it
// runs nothing the user can change; its output is bounded and checked line
// by line, and the manifest's versions come only from deb and tool lines,
// which come from files only root can write.
func (b *baker) inventory(ctx context.Context, name string) (map[string]string, []sbom.Package, error) {
	b.enter("inventory")
	u := b.o.Config.User
	home := u.Home()
	// A process a package script left running as the user ends first: it
	// could write into the inventory's output (the same user's pipe), or
	// into the image after seal cleans it.
	script, err := provision.File("end-user")
	if err != nil {
		return nil, nil, err
	}
	if r, err := run(ctx, b.c, name, "bash", "-c", script, "end-user", strconv.Itoa(u.UID)); err != nil {
		return nil, nil, fmt.Errorf("end the sandbox user's processes: %w", err)
	} else if r.Code != 0 {
		return nil, nil, b.fail(fmt.Errorf("the sandbox user's processes would not end (exit %d)", r.Code), r.Stderr)
	}
	out := &capped.Buffer{Limit: sbom.MaxInventory}
	errb := &capped.Buffer{Limit: 64 << 10}
	// Reading thousands of small files takes seconds; a home folder made
	// to slow it down must not hold the bake for ever.
	ctx, cancel := context.WithTimeout(ctx, inventoryTimeout)
	defer cancel()
	code, err := daemon.Execute(ctx, b.c, name, daemon.Exec{
		Command: []string{"/usr/local/lib/vibe/inventory"},
		UID:     uint32(u.UID), GID: uint32(u.GID), Cwd: home,
		Env:    map[string]string{"HOME": home, "USER": u.Name, "LOGNAME": u.Name, "PATH": "/usr/local/bin:/usr/bin:/bin"},
		Stdout: out, Stderr: errb,
	})
	if err != nil {
		if ctx.Err() == context.DeadlineExceeded {
			return nil, nil, b.fail(fmt.Errorf("listing the image's packages took over %s", inventoryTimeout), errb.String())
		}
		return nil, nil, fmt.Errorf("list the image's packages: %w", err)
	}
	if code != 0 {
		return nil, nil, b.fail(fmt.Errorf("listing the image's packages failed (exit %d)", code), errb.String())
	}
	if out.Over {
		return nil, nil, b.fail(fmt.Errorf("the package list is larger than %d MiB", sbom.MaxInventory>>20), "")
	}
	pkgs, err := sbom.ParseInventory(bytes.NewReader(out.Bytes()))
	if err != nil {
		return nil, nil, b.fail(fmt.Errorf("the image's package list: %w", err), "")
	}
	v := map[string]string{}
	for _, p := range pkgs {
		switch {
		case p.Type == sbom.Tool:
			v[p.Name] = p.Version
		case p.Type == sbom.Deb && keyPackages[p.Name]:
			if _, seen := v[p.Name]; !seen {
				v[p.Name] = p.Version
			}
		}
	}
	return v, pkgs, nil
}

func (b *baker) stop(ctx context.Context, name string) error {
	op, err := b.c.UpdateInstanceState(name, api.InstanceStatePut{Action: "stop", Timeout: 120}, "")
	if err == nil {
		err = waitOp(ctx, op, "stop builder")
	}
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		op, ferr := b.c.UpdateInstanceState(name, api.InstanceStatePut{Action: "stop", Force: true, Timeout: -1}, "")
		if ferr != nil {
			return fmt.Errorf("stop builder: %w", err)
		}
		return waitOp(ctx, op, "force-stop builder")
	}
	return nil
}
