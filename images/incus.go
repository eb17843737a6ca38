package images

import (
	"context"
	"fmt"
	"strings"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
	"github.com/vibesandbox/vibe/daemon"
)

// guestEnv is the environment of the commands vibe-build runs in a builder.
var guestEnv = map[string]string{"LANG": "C.UTF-8", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"}

// run executes argv in the builder as root, without a terminal.
func run(ctx context.Context, c incus.InstanceServer, name string, argv ...string) (daemon.Result, error) {
	return daemon.Run(ctx, c, name, daemon.Exec{Command: argv, Env: guestEnv})
}

// waitOp waits for an operation, or for ctx.
func waitOp(ctx context.Context, op incus.Operation, what string) error {
	if err := op.WaitContext(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// deleteImage removes an image; absent is fine.
func deleteImage(c incus.InstanceServer, fp string) error {
	op, err := c.DeleteImage(fp)
	if err != nil {
		if api.StatusErrorCheck(err, 404) {
			return nil
		}
		return fmt.Errorf("delete image %s: %w", short(fp), err)
	}
	return op.Wait()
}

// SetAlias points alias at fp, creating or moving it.
func SetAlias(c incus.InstanceServer, alias, fp, description string) error {
	if _, _, err := c.GetImageAlias(alias); err == nil {
		if err := c.UpdateImageAlias(alias, api.ImageAliasesEntryPut{Target: fp, Description: description}, ""); err != nil {
			return fmt.Errorf("move alias %s: %w", alias, err)
		}
		return nil
	}
	err := c.CreateImageAlias(api.ImageAliasesPost{ImageAliasesEntry: api.ImageAliasesEntry{
		Name: alias, Type: "", ImageAliasesEntryPut: api.ImageAliasesEntryPut{Target: fp, Description: description},
	}})
	if err != nil {
		return fmt.Errorf("create alias %s: %w", alias, err)
	}
	return nil
}

func short(fp string) string {
	if len(fp) > 12 {
		return fp[:12]
	}
	return fp
}

// isExists reports incus's "already exists" conflict.
func isExists(err error) bool {
	return err != nil && (api.StatusErrorCheck(err, 409) || strings.Contains(err.Error(), "already exists"))
}
