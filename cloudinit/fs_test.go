package cloudinit

import (
	"io/fs"

	"github.com/vibesandbox/vibe/templates"
)

func fsGlob(pattern string) ([]string, error) { return fs.Glob(templates.FS, pattern) }
