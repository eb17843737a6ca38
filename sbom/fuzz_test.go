package sbom

import (
	"reflect"
	"strings"
	"testing"
)

// Whatever a guest prints, the inventory parser returns packages that make
// a valid document, which reads back as the same packages.
func FuzzParseInventory(f *testing.F) {
	f.Add(sample)
	f.Add("deb\tx\t1\n\n\nnpm\t@a/b\t2\n")
	f.Add("pypi\tA_b.c\t1!2.0rc1+local\n")
	f.Fuzz(func(t *testing.T, in string) {
		pkgs, err := ParseInventory(strings.NewReader(in))
		if err != nil {
			return
		}
		doc, err := Document(pkgs, subject)
		if err != nil {
			t.Fatalf("parsed packages make no document: %v", err)
		}
		back, err := Parse(doc)
		if err != nil {
			t.Fatalf("a written document does not read back: %v", err)
		}
		if len(pkgs) == 0 {
			pkgs = nil
		}
		if !reflect.DeepEqual(back, pkgs) {
			t.Fatalf("round trip: got %+v, want %+v", back, pkgs)
		}
	})
}

// A document from an image someone sent never panics the reader, and what
// it accepts is what the diff and the printer can show.
func FuzzParse(f *testing.F) {
	pkgs, _ := ParseInventory(strings.NewReader(sample))
	doc, _ := Document(pkgs, subject)
	f.Add(doc)
	f.Add([]byte(`{"bomFormat":"CycloneDX","specVersion":"1.6","components":[{"type":"library","name":"x","version":"1","purl":"pkg:deb/debian/x@1?arch=amd64"}]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		got, err := Parse(doc)
		if err != nil {
			return
		}
		for _, p := range got {
			if err := p.check(); err != nil {
				t.Fatalf("accepted an invalid package %+v: %v", p, err)
			}
		}
		Diff(got, nil)
	})
}
