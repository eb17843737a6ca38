// Package version reports the program version: set at link time by the
// Makefile, else taken from the module build information.
package version

import "runtime/debug"

// Version is overridden with -ldflags "-X github.com/vibesandbox/vibe/internal/version.Version=…".
var Version = ""

// String returns the version, "devel" when unknown.
func String() string {
	if Version != "" {
		return Version
	}
	if info, ok := debug.ReadBuildInfo(); ok && info.Main.Version != "" && info.Main.Version != "(devel)" {
		return info.Main.Version
	}
	return "devel"
}
