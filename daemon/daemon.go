// Package daemon connects to incus (the local daemon, or a remote or
// cluster from the user's incus client configuration) and turns the
// failures people hit into errors that say what to do. It also runs
// commands in instances, with or without a terminal (exec.go).
package daemon

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
	"github.com/lxc/incus/v6/shared/cliconfig"
)

// ErrUnreachable is wrapped by Connect when no daemon answers.
var ErrUnreachable = errors.New("incus daemon unreachable")

// Connect returns a client for remote ("" or "local": the local daemon over
// its unix socket, honouring INCUS_SOCKET).
func Connect(remote string) (incus.InstanceServer, error) {
	if remote == "" || remote == "local" {
		c, err := incus.ConnectIncusUnix("", nil)
		if err != nil {
			return nil, fmt.Errorf("%w: %v; is incus installed and incusd running? (sudo vibe setup installs and starts it)", ErrUnreachable, err)
		}
		if _, _, err := c.GetServer(); err != nil {
			return nil, fmt.Errorf("%w: %v; %s", ErrUnreachable, err, socketHint(err))
		}
		return c, nil
	}
	conf, err := ClientConfig()
	if err != nil {
		return nil, err
	}
	c, err := conf.GetInstanceServer(remote)
	if err != nil {
		return nil, fmt.Errorf("%w: remote %q: %v (see `incus remote list`)", ErrUnreachable, remote, err)
	}
	return c, nil
}

// socketHint says what to do when the local socket refuses: most often a
// user whom vibe setup just added to incus-admin, in a session that began
// before (group membership counts from the next login).
func socketHint(err error) string {
	if !errors.Is(err, os.ErrPermission) && !strings.Contains(err.Error(), "permission denied") {
		return "is incusd running, and are you root or in the incus-admin group?"
	}
	g, gerr := user.LookupGroup("incus-admin")
	u, uerr := user.Current()
	if gerr != nil || uerr != nil {
		return "only root and the incus-admin group may use incus: run sudo vibe setup, which adds you"
	}
	if ids, err := u.GroupIds(); err == nil && slices.Contains(ids, g.Gid) {
		return "you are in incus-admin, but this session began before you were added: run newgrp incus-admin (or log in again), or this command as sg incus-admin -c '…'"
	}
	return "only root and the incus-admin group may use incus: run sudo vibe setup, which adds you"
}

// ClientConfig loads the user's incus client configuration, or the
// defaults (which include the public "images" remote) when there is none.
func ClientConfig() (*cliconfig.Config, error) {
	dir := os.Getenv("INCUS_CONF")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("incus client configuration: %w", err)
		}
		dir = filepath.Join(home, ".config", "incus")
	}
	path := filepath.Join(dir, "config.yml")
	if _, err := os.Stat(path); err != nil {
		return cliconfig.NewConfig(dir, true), nil
	}
	conf, err := cliconfig.LoadConfig(path)
	if err != nil {
		return nil, fmt.Errorf("incus client configuration %s: %w", path, err)
	}
	return conf, nil
}

// SupportsVMs reports whether the server can run virtual machines.
func SupportsVMs(c incus.InstanceServer) (bool, error) {
	srv, _, err := c.GetServer()
	if err != nil {
		return false, fmt.Errorf("server info: %w", err)
	}
	return strings.Contains(srv.Environment.Driver, "qemu"), nil
}

// APIType maps the configuration's instance type to incus's.
func APIType(instanceType string) api.InstanceType {
	if instanceType == "vm" {
		return api.InstanceTypeVM
	}
	return api.InstanceTypeContainer
}

// ImageType maps the configuration's instance type to incus's image type.
func ImageType(instanceType string) string {
	if instanceType == "vm" {
		return "virtual-machine"
	}
	return "container"
}

// NeedVMs returns the error for a VM request on a server that cannot run one.
func NeedVMs(c incus.InstanceServer, instanceType string) error {
	if instanceType != "vm" {
		return nil
	}
	ok, err := SupportsVMs(c)
	if err != nil {
		return err
	}
	if !ok {
		return errors.New("this incus server cannot run virtual machines (no KVM: /dev/kvm is missing or the qemu driver is unavailable); use --instance-type container, or bake on a machine with KVM")
	}
	return nil
}

// WaitAgent waits until a VM's agent answers (processes are reported),
// without which nothing can be run in it.
func WaitAgent(ctx context.Context, c incus.InstanceServer, name string, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for {
		if st, _, err := c.GetInstanceState(name); err == nil && st.Processes > 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: timed out after %s waiting for the VM agent", name, limit)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Kill force-stops an instance; a stopped one is left as it is.
func Kill(ctx context.Context, c incus.InstanceServer, inst *api.Instance) error {
	if inst.StatusCode == api.Stopped {
		return nil
	}
	op, err := c.UpdateInstanceState(inst.Name, api.InstanceStatePut{Action: "stop", Force: true, Timeout: -1}, "")
	if err == nil {
		err = op.WaitContext(ctx)
	}
	if err != nil {
		return fmt.Errorf("stop %s: %w", inst.Name, err)
	}
	return nil
}

// ForceDelete kills and deletes an instance; one that is absent is fine.
// It cleans up after failures, the cancellation of a context among them,
// so it takes none of its own and bounds each wait instead.
func ForceDelete(c incus.InstanceServer, name string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	inst, _, err := c.GetInstance(name)
	if err != nil {
		if api.StatusErrorCheck(err, 404) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	_ = Kill(ctx, c, inst)
	op, err := c.DeleteInstance(name)
	if err != nil {
		if api.StatusErrorCheck(err, 404) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := op.WaitContext(ctx); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

// VMRootDisk is the root disk device of a VM of size disk, on the default
// profile's root pool; nil for a container, no size, or no such pool (the
// profile's own device then serves).
func VMRootDisk(c incus.InstanceServer, instanceType, disk string) map[string]string {
	if instanceType != "vm" || disk == "" {
		return nil
	}
	p, _, err := c.GetProfile("default")
	if err != nil || p.Devices["root"]["pool"] == "" {
		return nil
	}
	return vmRootDisk(p.Devices["root"]["pool"], disk)
}

// vmRootDisk caches writes in the host's page cache (io.cache writeback)
// instead of incus's default of none (O_DIRECT): QEMU still passes the
// guest's flushes through, what a host crash can lose is a disposable
// sandbox's, and sandboxes cloned from one image share the cached blocks
// of its files. (Project mounts keep virtiofs's default of no cache: see
// sandbox's mount devices.)
func vmRootDisk(pool, disk string) map[string]string {
	return map[string]string{"type": "disk", "path": "/", "pool": pool, "size": disk, "io.cache": "writeback"}
}

// imageTooBig is incus's refusal of a root disk smaller than the image
// (internal/server/storage/drivers/volume.go).
var imageTooBig = regexp.MustCompile(`Source image size \((\d+)\) exceeds specified volume size \((\d+)\)`)

// ExplainDiskSize turns incus's refusal of a root disk smaller than the
// image into what to change; other errors pass through.
func ExplainDiskSize(err error, disk string) error {
	if err == nil {
		return nil
	}
	m := imageTooBig.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	img, _ := strconv.ParseInt(m[1], 10, 64)
	gib := (img + 1<<30 - 1) >> 30
	return fmt.Errorf("instance.disk %s is smaller than the image's disk (%d bytes): set instance.disk to at least %dGiB in vibe.yaml: %w", disk, img, gib, err)
}
