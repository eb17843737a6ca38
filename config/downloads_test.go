package config

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"
)

// Every site a provisioning step downloads from is one Downloads names for
// the configuration with everything on, so setup's check covers them all.
func TestDownloadsNameEverySiteTheStepsUse(t *testing.T) {
	c, err := Parse("vibe.yaml", []byte("mirrors:\n  go: https://goproxy.test\n  npm: https://npm.test/\ntoolchains:\n  python: {enabled: true}\n  go: {enabled: true}\n"), Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var named []string
	for _, d := range c.Downloads() {
		named = append(named, d.Hosts...)
	}
	steps, _ := filepath.Glob("../provision/steps/*.sh")
	if len(steps) == 0 {
		t.Fatal("no steps found")
	}
	site := regexp.MustCompile(`https://([a-z0-9.-]+)`)
	for _, p := range steps {
		b, _ := os.ReadFile(p)
		for _, m := range site.FindAllStringSubmatch(string(b), -1) {
			if !slices.Contains(named, m[1]) {
				t.Errorf("%s downloads from %s, which Downloads does not name", filepath.Base(p), m[1])
			}
		}
	}
}

func TestDownloadsFollowMirrors(t *testing.T) {
	c, err := Parse("vibe.yaml", []byte("mirrors:\n  npm: https://npm.corp.example/\n  node: https://nodejs.corp.example/dist\ntoolchains:\n  java: {enabled: false}\n  maven: {enabled: false}\n  gradle: {enabled: false}\n  chrome: {enabled: false}\n"), Host{UID: 1000, GID: 1000})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string][]string{}
	for _, d := range c.Downloads() {
		got[d.Key] = d.Hosts
	}
	if !slices.Equal(got["agent"], []string{"npm.corp.example"}) || !slices.Equal(got["toolchains.node"], []string{"raw.githubusercontent.com", "nodejs.corp.example"}) {
		t.Errorf("downloads %v", got)
	}
	if _, ok := got["toolchains.java"]; ok {
		t.Errorf("a toolchain that is off is listed: %v", got)
	}
}
