package setup

import (
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// Systemd reports whether systemd is the init system (sd_booted's test).
func Systemd(root string) bool {
	st, err := os.Stat(filepath.Join(root, "run/systemd/system"))
	return err == nil && st.IsDir()
}

// KVM reports whether this process can run a virtual machine with an
// ordinary guest kernel (see kvmWhy).
func KVM() bool { return kvmWhy("/dev/kvm", "/proc/cpuinfo", runtime.GOARCH) == "" }

// kvmWhy says why VMs cannot run here, or "" when they can: /dev/kvm must
// open, and on x86 the processor must offer VT-x or AMD-V. A /dev/kvm
// without either is PVM's (kvm_pvm), which boots only guest kernels built
// for it: a Debian cloud image's kernel does not start there.
func kvmWhy(dev, cpuinfo, arch string) string {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if err != nil {
		return "no usable /dev/kvm here"
	}
	f.Close()
	if arch != "amd64" && arch != "386" {
		return ""
	}
	b, err := os.ReadFile(cpuinfo)
	if err != nil {
		return "cannot tell whether the processor offers VT-x or AMD-V (" + err.Error() + ")"
	}
	for _, line := range strings.Split(string(b), "\n") {
		name, flags, ok := strings.Cut(line, ":")
		if !ok || strings.TrimSpace(name) != "flags" {
			continue
		}
		for _, f := range strings.Fields(flags) {
			if f == "vmx" || f == "svm" {
				return ""
			}
		}
	}
	return "/dev/kvm here has no VT-x or AMD-V behind it (PVM, which boots only guest kernels built for it)"
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
