package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/vibesandbox/vibe/config"
	"github.com/vibesandbox/vibe/setup"
)

type setupCmd struct {
	DryRun          bool     `help:"Check each step and print the plan; change nothing (no root needed)."`
	JSON            bool     `help:"Print the steps as JSON."`
	MirrorsFromHost bool     `help:"Copy this machine's package servers (apt archives, npm registry, pip index, GOPROXY) and the certificate authorities added to its trust store into the vibe.yaml setup writes."`
	Only            []string `help:"Run only these steps (incus, ids, daemon, storage, uplink, base, group, completion, vibe.yaml)." placeholder:"STEP"`
	Storage         string   `help:"Driver of the storage pool setup creates when there is none: auto (zfs, else btrfs, else dir), btrfs, zfs or dir." default:"auto" enum:"auto,btrfs,zfs,dir"`
}

func (s *setupCmd) Run(c *cli) error {
	if os.Geteuid() != 0 && !s.DryRun {
		return errors.New("vibe setup installs packages and starts incusd: run it as root (sudo vibe setup), or see the plan with vibe setup --dry-run")
	}
	// The user who ran sudo gets the group and the vibe.yaml.
	var invoker *user.User
	if name := os.Getenv("SUDO_USER"); name != "" && name != "root" && os.Geteuid() == 0 {
		u, err := user.Lookup(name)
		if err != nil {
			return fmt.Errorf("SUDO_USER %s: %w", name, err)
		}
		invoker = u
	}
	path := c.Config
	if path == "" {
		if invoker != nil {
			path = filepath.Join(invoker.HomeDir, ".config", "vibe", config.FileName)
		} else {
			p, err := config.UserFile()
			if err != nil {
				return err
			}
			path = p
		}
	}
	host := config.CurrentHost()
	// The user's file, read with the user's own permissions, bounded.
	data, err := setup.ReadAsUser(path, invoker)
	exists := err == nil
	if err != nil && !os.IsNotExist(err) {
		return fmt.Errorf("%s: %w", path, err)
	}
	var cfg *config.Config
	if exists {
		cfg, err = config.Parse(path, data, host)
	} else {
		cfg, err = config.Parse("", nil, host)
	}
	if err != nil {
		return err
	}
	// The instance type the user chose, if any; otherwise setup decides
	// by KVM.
	typ := ""
	if _, set := cfg.PosOf("instance.type"); set {
		typ = cfg.Instance.Type
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf := func(line string) { fmt.Fprintf(os.Stderr, "       | %s\n", line) }
	if s.JSON {
		logf = func(string) {}
	}
	st := setup.New(setup.Options{
		Storage: s.Storage, User: invoker, UID: cfg.User.UID, GID: cfg.User.GID,
		Base: cfg.Image.Base, Type: typ, Self: self, ConfigPath: path, Log: logf, MirrorsFromHost: s.MirrorsFromHost,
	})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	progress := func(r setup.Report) {
		if s.JSON {
			return
		}
		state := "ok"
		switch {
		case r.Changed:
			state = "made"
		case !r.Done:
			state = "todo"
		}
		fmt.Printf("%-4s %s: %s\n", state, r.Step, strings.ReplaceAll(r.Detail, "\n", "\n     "))
	}
	steps, err := st.Steps(s.Only...)
	if err != nil {
		return err
	}
	reports, err := setup.Run(ctx, steps, s.DryRun, progress)
	if s.JSON {
		if perr := printJSON(map[string]any{"dry_run": s.DryRun, "steps": reports, "decided": st.Decided, "error": errString(err)}); perr != nil {
			return perr
		}
	}
	if err != nil {
		return fmt.Errorf("setup stopped at %w; fix it and run vibe setup again (the steps already done are kept)", err)
	}
	if !s.JSON && !s.DryRun {
		fmt.Println("ready: next, vibe-build build (bakes the sandbox image), then vibe up")
	}
	return nil
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}
