package images

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
)

// Store is the local content-addressed image store: one folder per
// fingerprint holding meta.tar.xz, the rootfs, manifest.json and user-data.
// Folders appear whole (staged, then renamed) or not at all.
type Store struct {
	Dir string
}

// DefaultStore is $XDG_DATA_HOME/vibe/images (~/.local/share/vibe/images).
func DefaultStore() (*Store, error) {
	base := os.Getenv("XDG_DATA_HOME")
	if !filepath.IsAbs(base) {
		home, err := os.UserHomeDir()
		if err != nil {
			return nil, fmt.Errorf("image store: %w", err)
		}
		base = filepath.Join(home, ".local", "share")
	}
	return &Store{Dir: filepath.Join(base, "vibe", "images")}, nil
}

var fingerprintRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// IsFingerprint reports whether s is a full image fingerprint.
func IsFingerprint(s string) bool { return fingerprintRE.MatchString(s) }

// Path is the folder of fingerprint fp.
func (s *Store) Path(fp string) string { return filepath.Join(s.Dir, fp) }

// Has reports whether the store holds fp.
func (s *Store) Has(fp string) bool {
	_, err := os.Stat(filepath.Join(s.Path(fp), MetaFile))
	return err == nil
}

// Stage is a folder being filled; Commit renames it into place.
type Stage struct {
	Dir   string
	store *Store
}

// Begin creates a staging folder named after this process, so that a later
// run can tell an abandoned one from a live one.
func (s *Store) Begin() (*Stage, error) {
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("image store %s: %w", s.Dir, err)
	}
	dir, err := os.MkdirTemp(s.Dir, fmt.Sprintf(".tmp-%d-", os.Getpid()))
	if err != nil {
		return nil, fmt.Errorf("image store %s: %w", s.Dir, err)
	}
	// Images are shareable and hold no secrets: readable like any file.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, fmt.Errorf("image store %s: %w", s.Dir, err)
	}
	return &Stage{Dir: dir, store: s}, nil
}

// Commit moves the staged folder to its fingerprint's place. An existing
// folder for the same fingerprint holds the same bytes and is kept.
func (st *Stage) Commit(fp string) error {
	if !IsFingerprint(fp) {
		return fmt.Errorf("image store: %q is not a fingerprint", fp)
	}
	dst := st.store.Path(fp)
	if st.store.Has(fp) {
		return st.Discard()
	}
	if err := os.Rename(st.Dir, dst); err != nil {
		return fmt.Errorf("image store: %w", err)
	}
	st.Dir = ""
	return nil
}

// Discard removes the staged folder; safe to call after Commit.
func (st *Stage) Discard() error {
	if st.Dir == "" {
		return nil
	}
	err := os.RemoveAll(st.Dir)
	st.Dir = ""
	return err
}

// CleanAbandoned removes staging folders whose process is gone.
func (s *Store) CleanAbandoned() error {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), ".tmp-")
		if !ok {
			continue
		}
		pidText, _, _ := strings.Cut(rest, "-")
		pid, err := strconv.Atoi(pidText)
		if err == nil && pid != os.Getpid() && processAlive(pid) {
			continue
		}
		if pid == os.Getpid() {
			continue
		}
		os.RemoveAll(filepath.Join(s.Dir, e.Name()))
	}
	return nil
}

// List returns the fingerprints the store holds.
func (s *Store) List() ([]string, error) {
	entries, err := os.ReadDir(s.Dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var fps []string
	for _, e := range entries {
		if e.IsDir() && IsFingerprint(e.Name()) {
			fps = append(fps, e.Name())
		}
	}
	return fps, nil
}

// Remove deletes fp's folder.
func (s *Store) Remove(fp string) error {
	if !IsFingerprint(fp) {
		return fmt.Errorf("image store: %q is not a fingerprint", fp)
	}
	return os.RemoveAll(s.Path(fp))
}

// processAlive reports whether pid exists (signal 0 probes without acting).
func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// OriginFile records, in a store folder, how the image came to this
// machine. The build cache hits only images baked here or signed by a key
// the bake trusts (FindByRecipe): an image anyone else made carries
// whatever recipe property and creation date its maker wrote.
const OriginFile = "origin.json"

// Origin is how an image came into the store.
type Origin struct {
	How     string `json:"how"` // baked, imported, daemon (copied from incus as is), unknown
	Signer  string `json:"signer,omitempty"`
	Trusted bool   `json:"trusted,omitempty"` // signed by a key a --trust file listed
}

func writeOrigin(dir string, o Origin) error {
	b, _ := json.Marshal(o)
	return os.WriteFile(filepath.Join(dir, OriginFile), append(b, '\n'), 0o644)
}

// Origin reads how fp came into the store ("unknown" for a folder written
// before vibe recorded it, or one it cannot read).
func (s *Store) Origin(fp string) Origin {
	b, err := readBounded(filepath.Join(s.Path(fp), OriginFile), 4096)
	var o Origin
	if err != nil || json.Unmarshal(b, &o) != nil || o.How == "" {
		return Origin{How: "unknown"}
	}
	return o
}
