package provision

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/vibesandbox/vibe/internal/e2e"
)

func TestEveryScriptPassesShellcheck(t *testing.T) {
	bin := e2e.Tool(t, "shellcheck", "")
	scripts := Scripts()
	if len(scripts) < 10 {
		t.Fatalf("only %d scripts found", len(scripts))
	}
	// -x follows the "source=../lib.sh" directives; the files are checked in
	// place, as embedded.
	out, err := exec.Command(bin, append([]string{"-x", "-P", "SCRIPTDIR", "--severity=style"}, scripts...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("shellcheck: %v\n%s", err, out)
	}
	// The check can fail.
	cmd := exec.Command(bin, "-s", "bash", "-")
	cmd.Stdin = strings.NewReader("#!/bin/bash\nrm -rf $1/*\n")
	if out, err := cmd.CombinedOutput(); err == nil {
		t.Errorf("shellcheck accepted an unquoted expansion:\n%s", out)
	}
}

func TestScriptsAreStrict(t *testing.T) {
	for _, s := range Scripts() {
		src, err := File(s)
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasPrefix(src, "#!") && !strings.Contains(src, "set -euo pipefail") && !strings.Contains(src, "set -uo pipefail") {
			t.Errorf("%s does not set -u and pipefail", s)
		}
	}
}

func TestStepsAreNumberedAndOrdered(t *testing.T) {
	steps := Steps()
	for i, s := range steps {
		name := StepName(s)
		if len(name) < 4 || name[2] != '-' || name[0] < '0' || name[0] > '9' || name[1] < '0' || name[1] > '9' {
			t.Errorf("step %s is not named NN-concern", s)
		}
		if i > 0 && StepName(steps[i-1]) >= name {
			t.Errorf("steps out of order: %s then %s", steps[i-1], s)
		}
	}
	if StepName(steps[0]) != "10-user" || StepName(steps[len(steps)-1]) != "90-selftest" {
		t.Errorf("the user comes first and the self-test last: %v", steps)
	}
}
