package provision

import (
	"archive/zip"
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// goUnpacker is the Python program of steps/45-go.sh that checks and
// unpacks the toolchain zip, exactly as shipped.
func goUnpacker(t *testing.T) string {
	t.Helper()
	b, err := FS.ReadFile("steps/45-go.sh")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "python3 -c '\n")
	prog, _, ok2 := strings.Cut(rest, "\n' \"$tmp/go.zip\"")
	if !ok || !ok2 {
		t.Fatal("steps/45-go.sh: no python3 -c '…' \"$tmp/go.zip\" program")
	}
	return prog
}

// h1 is dirhash.Hash1 of a zip's files: what Go's checksum database records.
func h1(files map[string]string) string {
	names := slices.Sorted(func(yield func(string) bool) {
		for n := range files {
			if !yield(n) {
				return
			}
		}
	})
	h := sha256.New()
	for _, n := range names {
		fmt.Fprintf(h, "%x  %s\n", sha256.Sum256([]byte(files[n])), n)
	}
	return "h1:" + base64.StdEncoding.EncodeToString(h.Sum(nil))
}

func writeZip(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for n, c := range files {
		w, _ := zw.Create(n)
		w.Write([]byte(c))
	}
	zw.Close()
	p := filepath.Join(t.TempDir(), "go.zip")
	os.WriteFile(p, buf.Bytes(), 0o644)
	return p
}

const goPrefix = "golang.org/toolchain@v0.0.1-go1.26.8.linux-amd64/"

// The toolchain is unpacked only when its h1 checksum is the pinned one,
// with the modes and go.mod names the module format drops restored, and
// never outside its folder.
func TestGoToolchainUnpack(t *testing.T) {
	prog := goUnpacker(t)
	good := map[string]string{
		goPrefix + "bin/go":                   "#!/bin/sh\necho go version go1.26.8 linux/amd64\n",
		goPrefix + "pkg/tool/linux_amd64/vet": "tool",
		goPrefix + "lib/wasm/go_js_wasm_exec": "exec",
		goPrefix + "lib/time/zoneinfo.zip":    "zones",
		goPrefix + "src/_go.mod":              "module std\n",
		goPrefix + "src/cmd/vendor/x/_go.mod": "module x\n",
		goPrefix + "VERSION":                  "go1.26.8\n",
	}
	run := func(t *testing.T, files map[string]string, sum string) (string, string, error) {
		dest := filepath.Join(t.TempDir(), "go.new")
		out, err := exec.Command("python3", "-c", prog, writeZip(t, files), sum, goPrefix, dest).CombinedOutput()
		return dest, string(out), err
	}
	t.Run("pinned", func(t *testing.T) {
		dest, out, err := run(t, good, h1(good))
		if err != nil {
			t.Fatalf("%v\n%s", err, out)
		}
		for rel, mode := range map[string]os.FileMode{
			"bin/go": 0o755, "pkg/tool/linux_amd64/vet": 0o755, "lib/wasm/go_js_wasm_exec": 0o755,
			"lib/time/zoneinfo.zip": 0o644, "src/go.mod": 0o644, "src/cmd/vendor/x/go.mod": 0o644, "VERSION": 0o644,
		} {
			st, err := os.Stat(filepath.Join(dest, rel))
			if err != nil || st.Mode().Perm() != mode {
				t.Errorf("%s: %v, mode %v, want %v", rel, err, st, mode)
			}
		}
		if v, err := exec.Command(filepath.Join(dest, "bin/go")).Output(); err != nil || !strings.Contains(string(v), "go1.26.8") {
			t.Errorf("bin/go: %v %s", err, v)
		}
	})
	refused := map[string]struct {
		files map[string]string
		sum   string
		want  string
	}{
		"other bytes":        {good, h1(map[string]string{goPrefix + "bin/go": "evil"}), "the proxy served other bytes"},
		"outside the module": {map[string]string{goPrefix + "bin/go": "x", "etc/cron.d/x": "y"}, "", "outside"},
		"dot-dot":            {map[string]string{goPrefix + "../../etc/x": "y"}, "", "outside"},
		"the module root":    {map[string]string{strings.TrimSuffix(goPrefix, "/"): "y"}, "", "outside"},
	}
	for name, tc := range refused {
		t.Run(name, func(t *testing.T) {
			sum := tc.sum
			if sum == "" {
				sum = h1(tc.files) // pinned, yet still refused
			}
			dest, out, err := run(t, tc.files, sum)
			if err == nil || !strings.Contains(out, tc.want) {
				t.Fatalf("got %v %q, want a refusal containing %q", err, out, tc.want)
			}
			if _, err := os.Stat(dest); name == "other bytes" && err == nil {
				t.Error("a zip of other bytes was unpacked")
			}
		})
	}
}

// A toolchain a step downloads never runs as root in the builder: a
// project may choose its bytes (mirrors.go with its own go.sums), and root
// there persists into the image. Its version is asked as the user.
func TestDownloadedToolchainsRunAsTheUser(t *testing.T) {
	runs := regexp.MustCompile(`\$\(\s*(/usr/local/go(\.new)?/bin/go(fmt)?|uvx?|/usr/local/bin/uvx?)\s`)
	for _, step := range []string{"steps/44-python.sh", "steps/45-go.sh"} {
		b, err := FS.ReadFile(step)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if code, _, _ := strings.Cut(line, "#"); runs.MatchString(code) {
				t.Errorf("%s:%d runs a downloaded toolchain as root: %s", step, i+1, strings.TrimSpace(line))
			}
		}
	}
}
