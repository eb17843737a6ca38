package setup

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"strings"
)

// OSRelease is what /etc/os-release says about the host.
type OSRelease struct {
	ID       string // debian, ubuntu
	Codename string // bookworm, noble
	Version  string // 12, 24.04
}

// ReadOSRelease reads root/etc/os-release (root is "/" for the host).
func ReadOSRelease(root string) OSRelease {
	b, _ := os.ReadFile(filepath.Join(root, "etc/os-release"))
	var o OSRelease
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			o.ID = v
		case "VERSION_CODENAME":
			o.Codename = v
		case "VERSION_ID":
			o.Version = v
		}
	}
	return o
}

// Systemd reports whether systemd is the init system (sd_booted's test).
func Systemd(root string) bool {
	st, err := os.Stat(filepath.Join(root, "run/systemd/system"))
	return err == nil && st.IsDir()
}

// KVM reports whether this process can use /dev/kvm, the one thing VMs
// need that a container host lacks.
func KVM() bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	return true
}

// kernelHas reports whether the kernel knows a file system (btrfs, zfs).
func kernelHas(fs string) bool {
	b, _ := os.ReadFile("/proc/filesystems")
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 0 && f[len(f)-1] == fs {
			return true
		}
	}
	return false
}
