package config

import (
	"fmt"
	"reflect"
	"regexp"
	"strings"
)

// secretPatterns are well-known credential shapes, named for the error.
var secretPatterns = []struct {
	name string
	// hints are literals of which every match contains one: a cheap filter
	// before the regular expression.
	hints []string
	re    *regexp.Regexp
}{
	{"an Anthropic API key", []string{"sk-ant-"}, regexp.MustCompile(`sk-ant-[A-Za-z0-9_-]{8,}`)},
	{"an API key (sk-…)", []string{"sk-"}, regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{20,}`)},
	{"a GitHub token", []string{"gh", "github_pat_"}, regexp.MustCompile(`\b(gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})`)},
	{"a GitLab token", []string{"glpat-"}, regexp.MustCompile(`\bglpat-[A-Za-z0-9_-]{16,}`)},
	{"an AWS access key id", []string{"AKIA", "ASIA"}, regexp.MustCompile(`\b(AKIA|ASIA)[0-9A-Z]{16}\b`)},
	{"a Slack token", []string{"xox"}, regexp.MustCompile(`\bxox[abposr]-[A-Za-z0-9-]{10,}`)},
	{"a Google API key", []string{"AIza"}, regexp.MustCompile(`\bAIza[0-9A-Za-z_-]{35}`)},
	{"an npm token", []string{"npm_"}, regexp.MustCompile(`\bnpm_[A-Za-z0-9]{36}`)},
	{"a JSON web token", []string{"eyJ"}, regexp.MustCompile(`\beyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}\.`)},
	{"a private key", []string{"-----BEGIN"}, regexp.MustCompile(`-----BEGIN [A-Z ]*PRIVATE KEY`)},
	{"a URL with credentials", []string{"://"}, regexp.MustCompile(`[a-z][a-z0-9+.-]*://[^/\s:@]+:[^/\s@]+@`)},
	{"a bearer token", nil, regexp.MustCompile(`(?i)\bbearer\s+[A-Za-z0-9._~+/-]{16,}`)},
}

// tokenish is a long run of token characters; mixed case plus digits in such
// a run is what random credentials look like and names or versions do not.
// '/' is not one: paths are common values, and base64 split at '/' still
// leaves long runs.
var tokenish = regexp.MustCompile(`[A-Za-z0-9_+=-]{32,}`)

// goChecksum is an entry of toolchains.go.sums as build.json holds it: an
// h1 checksum as Go's checksum database records it, public and
// random-looking by design. Only that exact shape is let through, so a
// secret written as h1:… anywhere else is still caught.
var goChecksum = regexp.MustCompile(`"[0-9][0-9.rc]*/linux-(amd64|arm64)": ?"h1:[A-Za-z0-9+/]{43}="`)

// LooksSecret returns what kind of credential s resembles, or "".
// Callers pass short texts (a value, a line): Go's regexp is fastest there.
func LooksSecret(s string) string {
	lower := ""
	for _, p := range secretPatterns {
		if p.hints == nil {
			if lower == "" {
				lower = strings.ToLower(s)
			}
			if !strings.Contains(lower, "bearer") {
				continue
			}
		} else if !containsAny(s, p.hints) {
			continue
		}
		if p.re.MatchString(s) {
			return p.name
		}
	}
	if strings.HasPrefix(s, "/") || strings.HasPrefix(s, "~/") {
		return "" // a path: names in paths are often long and mixed-case
	}
	for _, run := range tokenish.FindAllString(goChecksum.ReplaceAllString(s, " "), -1) {
		if strings.ContainsAny(run, "abcdefghijklmnopqrstuvwxyz") &&
			strings.ContainsAny(run, "ABCDEFGHIJKLMNOPQRSTUVWXYZ") &&
			strings.ContainsAny(run, "0123456789") {
			return "a random token"
		}
	}
	return ""
}

// walkStrings calls fn with the key path of every string in the
// configuration's YAML fields.
func walkStrings(c *Config, fn func(path, s string)) {
	var walk func(v reflect.Value, path string)
	walk = func(v reflect.Value, path string) {
		switch v.Kind() {
		case reflect.String:
			fn(path, v.String())
		case reflect.Slice:
			for i := 0; i < v.Len(); i++ {
				walk(v.Index(i), fmt.Sprintf("%s[%d]", path, i))
			}
		case reflect.Struct:
			t := v.Type()
			for i := 0; i < t.NumField(); i++ {
				tag := t.Field(i).Tag.Get("yaml")
				if tag == "" || tag == "-" {
					continue
				}
				walk(v.Field(i), join(path, tag))
			}
		}
	}
	walk(reflect.ValueOf(c).Elem(), "")
}

func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}
