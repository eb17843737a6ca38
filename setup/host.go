package setup

import (
	"os"
	"path/filepath"
	"strings"
)

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
