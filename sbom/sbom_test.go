package sbom

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const sample = "deb\tcurl\t7.88.1-10+deb12u8\tamd64\n" +
	"deb\tlibc6\t2.36-9+deb12u9\tamd64\n" +
	"deb\tlibc6\t2.36-9+deb12u9\tamd64\n" + // listed twice: one package
	"npm\t@anthropic-ai/claude-code\t2.1.330\n" +
	"npm\tnpm\t10.8.2\n" +
	"npm\tnpm\t9.2.0\n" + // two Node installations, each with its npm
	"pypi\tPyYAML\t6.0.1\n" +
	"tool\tgo\tgo1.24.4\n" +
	"\n"

var subject = Subject{Recipe: "abc123", InstanceType: "container", OS: "Debian", Release: "bookworm", Base: "local:vibe-base-bookworm",
	Created: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC), Tool: "vibe-build 1.2.3"}

func TestParseInventory(t *testing.T) {
	got, err := ParseInventory(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	want := []Package{
		{Deb, "curl", "7.88.1-10+deb12u8", "amd64"},
		{Deb, "libc6", "2.36-9+deb12u9", "amd64"},
		{NPM, "@anthropic-ai/claude-code", "2.1.330", ""},
		{NPM, "npm", "10.8.2", ""},
		{NPM, "npm", "9.2.0", ""},
		{PyPI, "PyYAML", "6.0.1", ""},
		{Tool, "go", "go1.24.4", ""},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
}

// A guest that ran downloaded installers wrote the inventory: a line that
// does not say exactly one package is refused, never guessed at.
func TestParseInventoryRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ in, want string }{
		"unknown type":      {"rpm\tbash\t5\n", `unknown package type "rpm"`},
		"too few fields":    {"deb\tbash\n", "got 2 fields"},
		"too many fields":   {"deb\tbash\t5\tamd64\textra\n", "got 5 fields"},
		"empty name":        {"npm\t\t1.0\n", "empty name"},
		"empty version":     {"npm\tleft-pad\t\n", "empty version"},
		"space in name":     {"npm\tleft pad\t1.0\n", "holds a space"},
		"control character": {"npm\tleft\x1b[2Jpad\t1.0\n", "not printable"},
		"invalid UTF-8":     {"pypi\tx\xff\t1\n", "not printable"},
		"arch on npm":       {"npm\tx\t1\tamd64\n", "only deb packages"},
		"npm slash":         {"npm\t/\t0\n", "want NAME or @SCOPE/NAME"},
		"npm empty scope":   {"npm\t@/x\t0\n", "want NAME or @SCOPE/NAME"},
		"npm two slashes":   {"npm\t@a/b/c\t0\n", "want NAME or @SCOPE/NAME"},
		"line too long":     {"npm\t" + strings.Repeat("a", 5000) + "\t1\n", "longer than"},
		"field too long":    {"npm\t" + strings.Repeat("a", 600) + "\t1\n", "longer than 512"},
		"names the line":    {"deb\tbash\t5.2\tamd64\nnope\n", "line 2"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseInventory(strings.NewReader(tc.in))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestParseInventoryBounded(t *testing.T) {
	var b strings.Builder
	for i := 0; i <= MaxPackages; i++ {
		b.WriteString("tool\tt\tv")
		b.WriteString(strings.Repeat("1", i%7+1))
		b.WriteString("\n")
	}
	if _, err := ParseInventory(strings.NewReader(b.String())); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("got %v, want a count error", err)
	}
	big := strings.Repeat("\n", MaxInventory+10)
	if _, err := ParseInventory(strings.NewReader(big)); err == nil || !strings.Contains(err.Error(), "MiB") {
		t.Fatalf("got %v, want a size error", err)
	}
}

// The document is CycloneDX 1.6 JSON with a Package URL for every package,
// byte for byte the same for the same inputs.
func TestDocumentGolden(t *testing.T) {
	pkgs, err := ParseInventory(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	doc, err := Document(pkgs, subject)
	if err != nil {
		t.Fatal(err)
	}
	again, _ := Document(pkgs, subject)
	if !bytes.Equal(doc, again) {
		t.Fatal("two documents of the same packages differ")
	}
	golden := "testdata/sample.cdx.json"
	if *update {
		if err := os.WriteFile(golden, doc, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("%v (go test ./sbom -run TestDocumentGolden -update writes it)", err)
	}
	if !bytes.Equal(doc, want) {
		t.Fatalf("document differs from %s (rerun with -update if intended):\n%s", golden, doc)
	}
	for _, s := range []string{
		`"bomFormat": "CycloneDX"`, `"specVersion": "1.6"`,
		`"purl": "pkg:deb/debian/curl@7.88.1-10%2Bdeb12u8?arch=amd64&distro=debian-bookworm"`,
		`"purl": "pkg:npm/%40anthropic-ai/claude-code@2.1.330"`,
		`"purl": "pkg:pypi/pyyaml@6.0.1"`,
		`"purl": "pkg:generic/go@go1.24.4"`,
	} {
		if !strings.Contains(string(doc), s) {
			t.Errorf("document lacks %s", s)
		}
	}
}

func TestParseRoundTrip(t *testing.T) {
	pkgs, _ := ParseInventory(strings.NewReader(sample))
	doc, err := Document(pkgs, subject)
	if err != nil {
		t.Fatal(err)
	}
	got, err := Parse(doc)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, pkgs) {
		t.Fatalf("round trip: got %+v\nwant %+v", got, pkgs)
	}
}

func TestParseRefuses(t *testing.T) {
	for name, tc := range map[string]struct{ doc, want string }{
		"not JSON":       {"<bom/>", "not CycloneDX JSON"},
		"not CycloneDX":  {`{"bomFormat":"SPDX","specVersion":"1.6"}`, "bomFormat"},
		"foreign purl":   {`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"x","version":"1","purl":"pkg:maven/a/x@1"}]}`, "not one vibe-build writes"},
		"no purl":        {`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"x","version":"1"}]}`, "is not a Package URL"},
		"escape in purl": {`{"bomFormat":"CycloneDX","components":[{"name":"x","version":"1","purl":"pkg:deb/debian/x@1?\u001b[31m=1"}]}`, `"pkg:deb/debian/x@1?\x1b[31m=1" is not a Package URL`},
		"trailing data":  {`{"bomFormat":"CycloneDX"} {}`, "data after the document"},
		"components map": {`{"bomFormat":"CycloneDX","components":{}}`, "not a list"},
		"escape in name": {`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"x\u001b[2J","version":"1","purl":"pkg:npm/x@1"}]}`, "not printable"},
		"empty version":  {`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"x","purl":"pkg:npm/x"}]}`, "empty version"},
		"too large":      {`{"bomFormat":"CycloneDX","x":"` + strings.Repeat("a", MaxDocument) + `"}`, "larger than"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(tc.doc))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	a := []Package{
		{Deb, "curl", "7.88.1-10+deb12u7", "amd64"},
		{Deb, "vim", "9.0", "amd64"},
		{NPM, "npm", "9.2.0", ""},
		{Tool, "go", "go1.24.3", ""},
	}
	b := []Package{
		{Deb, "curl", "7.88.1-10+deb12u8", "amd64"},
		{Deb, "vim", "9.0", "arm64"},
		{NPM, "npm", "9.2.0", ""},
		{NPM, "npm", "10.8.2", ""},
		{PyPI, "requests", "2.32.3", ""},
		{Tool, "go", "go1.24.3", ""},
	}
	got := Diff(a, b)
	want := []Change{
		{Deb, "curl:amd64", "7.88.1-10+deb12u7", "7.88.1-10+deb12u8"},
		{Deb, "vim:amd64", "9.0", ""},
		{Deb, "vim:arm64", "", "9.0"},
		{NPM, "npm", "9.2.0", "10.8.2, 9.2.0"},
		{PyPI, "requests", "", "2.32.3"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	kinds := []string{"changed", "removed", "added", "changed", "added"}
	for i, c := range got {
		if c.Kind() != kinds[i] {
			t.Errorf("%s: kind %s, want %s", c.Name, c.Kind(), kinds[i])
		}
	}
	if d := Diff(a, a); d != nil {
		t.Fatalf("an image differs from itself: %+v", d)
	}
}

// A document of millions of empty components is refused at the limit,
// without building them all.
func TestParseBoundsComponents(t *testing.T) {
	doc := `{"bomFormat":"CycloneDX","components":[` + strings.Repeat(`{"name":"a","version":"1","purl":"pkg:npm/a@1"},`, MaxPackages) + `{}]}`
	if _, err := Parse([]byte(doc)); err == nil || !strings.Contains(err.Error(), "more than") {
		t.Fatalf("got %v, want a count error", err)
	}
}

// What Parse could not read back, Document does not write.
func TestDocumentBounded(t *testing.T) {
	var pkgs []Package
	for i := 0; i < 12000; i++ {
		pkgs = append(pkgs, Package{Type: PyPI, Name: fmt.Sprintf("%s%d", strings.Repeat("ä", 250), i), Version: "1"})
	}
	if _, err := Document(pkgs, subject); err == nil || !strings.Contains(err.Error(), "over the") {
		t.Fatalf("got %v, want a size error", err)
	}
}
