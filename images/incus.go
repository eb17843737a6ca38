package images

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"
)

// execResult is what a command run in an instance produced.
type execResult struct {
	Stdout, Stderr string
	Code           int
}

// run executes argv in the instance, non-interactively, and waits for it and
// for its output streams. Environment travels in the request body.
func run(ctx context.Context, c incus.InstanceServer, name string, argv []string, stdin io.Reader) (execResult, error) {
	var out, errb bytes.Buffer
	done := make(chan bool)
	if stdin == nil {
		stdin = bytes.NewReader(nil)
	}
	op, err := c.ExecInstance(name, api.InstanceExecPost{
		Command:     argv,
		WaitForWS:   true,
		Interactive: false,
		Environment: map[string]string{"LANG": "C.UTF-8", "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"},
	}, &incus.InstanceExecArgs{Stdin: stdin, Stdout: &out, Stderr: &errb, DataDone: done})
	if err != nil {
		return execResult{}, fmt.Errorf("exec %s in %s: %w", argv[0], name, err)
	}
	if err := op.WaitContext(ctx); err != nil {
		return execResult{}, fmt.Errorf("exec %s in %s: %w", argv[0], name, err)
	}
	select {
	case <-done:
	case <-ctx.Done():
		return execResult{}, ctx.Err()
	case <-time.After(30 * time.Second):
		return execResult{}, fmt.Errorf("exec %s in %s: output streams did not close within 30s", argv[0], name)
	}
	code := -1
	if v, ok := op.Get().Metadata["return"].(float64); ok {
		code = int(v)
	}
	return execResult{Stdout: out.String(), Stderr: errb.String(), Code: code}, nil
}

// waitOp waits for an operation, or for ctx.
func waitOp(ctx context.Context, op incus.Operation, what string) error {
	if err := op.WaitContext(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// forceDelete stops (forcibly) and deletes an instance; absent is fine.
func forceDelete(c incus.InstanceServer, name string) error {
	inst, _, err := c.GetInstance(name)
	if err != nil {
		if api.StatusErrorCheck(err, 404) {
			return nil
		}
		return err
	}
	if inst.StatusCode != api.Stopped {
		op, err := c.UpdateInstanceState(name, api.InstanceStatePut{Action: "stop", Force: true, Timeout: -1}, "")
		if err == nil {
			_ = op.Wait()
		}
	}
	op, err := c.DeleteInstance(name)
	if err != nil {
		if api.StatusErrorCheck(err, 404) {
			return nil
		}
		return fmt.Errorf("delete %s: %w", name, err)
	}
	if err := op.Wait(); err != nil {
		return fmt.Errorf("delete %s: %w", name, err)
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

// setAlias points alias at fp, creating or moving it.
func setAlias(c incus.InstanceServer, alias, fp, description string) error {
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
