package setup

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"

	"github.com/vibesandbox/vibe/distro"
)

// InstallPlan says how incus comes from the distribution's own packages.
type InstallPlan struct {
	SourcePath string   `json:"source_path,omitempty"` // an apt source to add first
	Source     string   `json:"source,omitempty"`
	Target     string   `json:"target,omitempty"` // apt-get's -t ("" for the default)
	Packages   []string `json:"packages"`
}

// backportsFile is the apt source vibe adds on Debian 12.
const backportsFile = "/etc/apt/sources.list.d/vibe-bookworm-backports.sources"

// PlanInstall decides where incus comes from: Debian 12 has it in
// bookworm-backports (the source is made from the host's own Debian
// archive and keyring), newer Debian and Ubuntu 24.04 on in the archive.
func PlanInstall(o distro.OSRelease, host []distro.Source, kvm bool) (InstallPlan, error) {
	p := InstallPlan{Packages: []string{"incus"}}
	if kvm {
		// Mounts into VMs go through virtiofsd (9p cannot be hot-plugged).
		p.Packages = append(p.Packages, "virtiofsd")
	}
	switch {
	case o.ID == "debian" && o.Codename == "bookworm":
		p.Target = "bookworm-backports"
		for _, s := range host {
			if slices.Contains(s.Suites, "bookworm-backports") && slices.Contains(s.Components, "main") {
				return p, nil // the host has backports already
			}
		}
		archive, _ := distro.HostArchives("debian", host)
		if archive == nil {
			return p, fmt.Errorf("no Debian archive for bookworm in the host's apt sources to take bookworm-backports from; add bookworm-backports and run vibe setup again")
		}
		keyring := archive.SignedBy
		if keyring == "" {
			keyring = "/usr/share/keyrings/debian-archive-keyring.gpg"
		}
		p.SourcePath = backportsFile
		p.Source = fmt.Sprintf("Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: %s\n", archive.URI, keyring)
		return p, nil
	case o.ID == "debian" && (o.Codename == "bullseye" || o.Codename == "buster"):
		return p, fmt.Errorf("Debian %s has no incus package: upgrade to Debian 12 or newer, or install incus from its upstream packages and run vibe setup again", o.Codename)
	case o.ID == "debian":
		return p, nil
	case o.ID == "ubuntu" && versionAtLeast(o.Version, 24, 4):
		return p, nil
	}
	return p, fmt.Errorf("incus is not packaged for %s %s that vibe knows of: install it (see https://linuxcontainers.org/incus/docs/main/installing/) and run vibe setup again", o.ID, o.Version)
}

func versionAtLeast(v string, major, minor int) bool {
	var a, b int
	fmt.Sscanf(v, "%d.%d", &a, &b)
	return a > major || a == major && b >= minor
}

// incusInstalled reports whether the client and the daemon are there.
func incusInstalled() bool {
	_, err := exec.LookPath("incus")
	return err == nil && incusdPath() != ""
}

// incusdPath is the daemon's binary: where Debian, Ubuntu and Zabbly's
// packages put it, else on PATH; "" when there is none.
func incusdPath() string {
	for _, p := range []string{"/usr/libexec/incus/incusd", "/usr/lib/incus/incusd", "/opt/incus/bin/incusd"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, _ := exec.LookPath("incusd")
	return p
}

// aptInstall adds the plan's source if any and installs its packages.
func aptInstall(ctx context.Context, p InstallPlan, log func(string)) error {
	if p.SourcePath != "" {
		if err := os.MkdirAll(filepath.Dir(p.SourcePath), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p.SourcePath, []byte(p.Source), 0o644); err != nil {
			return err
		}
		log("added " + p.SourcePath)
	}
	if err := run(ctx, log, "apt-get", "update", "-q"); err != nil {
		if p.SourcePath != "" {
			// A source that does not work would break the host's apt.
			_ = os.Remove(p.SourcePath)
			log("removed " + p.SourcePath + " again")
		}
		return err
	}
	args := []string{"install", "-y", "-q"}
	if p.Target != "" {
		args = append(args, "-t", p.Target)
	}
	return run(ctx, log, "apt-get", append(append(args, "--"), p.Packages...)...)
}

// aptPackages installs distribution packages (tools a step needs).
func aptPackages(ctx context.Context, log func(string), pkgs ...string) error {
	return run(ctx, log, "apt-get", append([]string{"install", "-y", "-q", "--"}, pkgs...)...)
}

// run runs a command, its output going to log line by line; the error
// carries the last lines.
func run(ctx context.Context, log func(string), name string, args ...string) error {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive", "LC_ALL=C.UTF-8")
	out, err := cmd.CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	for _, l := range lines {
		if l != "" {
			log(l)
		}
	}
	if err != nil {
		if len(lines) > 8 {
			lines = lines[len(lines)-8:]
		}
		return fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, strings.Join(lines, "\n"))
	}
	return nil
}
