package cloudinit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
)

// RecipeFormat versions how images are made from a recipe; bump it when the
// bake procedure changes what an unchanged recipe produces.
const RecipeFormat = 1

// Recipe is everything that determines a baked image.
type Recipe struct {
	Format       int    `json:"format"`
	Base         string `json:"base"`
	InstanceType string `json:"instance_type"`
	UserDataHash string `json:"user_data_sha256"`
	Disk         string `json:"disk,omitempty"` // a VM's root disk size, when set
}

// NewRecipe describes the image baked from userData on base.
// A VM's disk size is part of it (its builder runs at that size); a
// container's is not (its root takes the pool's space).
func NewRecipe(base, instanceType, disk string, userData []byte) Recipe {
	sum := sha256.Sum256(userData)
	r := Recipe{Format: RecipeFormat, Base: base, InstanceType: instanceType, UserDataHash: hex.EncodeToString(sum[:])}
	if instanceType == "vm" {
		r.Disk = disk
	}
	return r
}

// Canonical is the exact text hashed: one "key: value" line per input, in a
// fixed order, so the hash is stable across versions of this program.
func (r Recipe) Canonical() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vibe-recipe-format: %d\n", r.Format)
	fmt.Fprintf(&b, "base: %s\n", r.Base)
	fmt.Fprintf(&b, "instance-type: %s\n", r.InstanceType)
	fmt.Fprintf(&b, "user-data-sha256: %s\n", r.UserDataHash)
	if r.Disk != "" {
		fmt.Fprintf(&b, "disk: %s\n", r.Disk)
	}
	return b.String()
}

// Hash is the recipe hash: SHA-256 of Canonical, in hex.
func (r Recipe) Hash() string {
	sum := sha256.Sum256([]byte(r.Canonical()))
	return hex.EncodeToString(sum[:])
}
