// Package templates embeds the cloud-config fragments, one per concern
// (cloud-config/NN-concern.yaml, applied in name order), and the templates of
// configuration files written into the guest (files/). Templates receive
// values only through escaping helpers; a test enforces it.
package templates

import "embed"

//go:embed cloud-config/*.yaml files/*
var FS embed.FS
