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
}

// NewRecipe describes the image baked from userData on base.
func NewRecipe(base, instanceType string, userData []byte) Recipe {
	sum := sha256.Sum256(userData)
	return Recipe{Format: RecipeFormat, Base: base, InstanceType: instanceType, UserDataHash: hex.EncodeToString(sum[:])}
}

// Canonical is the exact text hashed: one "key: value" line per input, in a
// fixed order, so the hash is stable across versions of this program.
func (r Recipe) Canonical() string {
	var b strings.Builder
	fmt.Fprintf(&b, "vibe-recipe-format: %d\n", r.Format)
	fmt.Fprintf(&b, "base: %s\n", r.Base)
	fmt.Fprintf(&b, "instance-type: %s\n", r.InstanceType)
	fmt.Fprintf(&b, "user-data-sha256: %s\n", r.UserDataHash)
	return b.String()
}

// Hash is the recipe hash: SHA-256 of Canonical, in hex.
func (r Recipe) Hash() string {
	sum := sha256.Sum256([]byte(r.Canonical()))
	return hex.EncodeToString(sum[:])
}
