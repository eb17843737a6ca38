package main

// Sharing images: export, verify, import, publish, diff.

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/internal/safetext"
	"github.com/vibesandbox/vibe/sbom"
	"github.com/vibesandbox/vibe/signing"
	"github.com/vibesandbox/vibe/source"
	"github.com/vibesandbox/vibe/streams"
)

// Exit codes of verify and import, so scripts can tell why an image was
// refused.
const (
	exitUnreadable = 2
	exitTampered   = 3
	exitUntrusted  = 4
)

func kindExit(k images.Kind) int {
	switch k {
	case images.Unreadable:
		return exitUnreadable
	case images.Tampered:
		return exitTampered
	case images.Untrusted:
		return exitUntrusted
	}
	return 1
}

const sourceHelp = "An exported folder (or its meta-FP.tar.xz), a store folder, an alias or fingerprint on this machine, a simplestreams tree (a folder or an https:// URL), or REMOTE:NAME for a simplestreams incus remote."

// loadTrust reads an allowed-signers file ("" for none).
func loadTrust(path string) (*signing.AllowedSigners, error) {
	if path == "" {
		return nil, nil
	}
	a, err := signing.LoadAllowedSigners(path)
	if err != nil {
		return nil, &images.VerifyError{Kind: images.Unreadable, Err: err}
	}
	return a, nil
}

// localImage resolves an image on this machine, with the daemon optional
// (folders and the store need none).
func localImage(s string) (*images.Files, *images.Store, error) {
	store, err := images.DefaultStore()
	if err != nil {
		return nil, nil, err
	}
	f, err := source.Local(s, store, nil)
	return f, store, err
}

type exportCmd struct {
	Image string `arg:"" help:"An alias or fingerprint on this machine, or a store or exported folder." placeholder:"IMAGE"`
	Dir   string `arg:"" help:"Folder to write the image's files into (created if missing)." type:"path"`
	Sign  string `help:"Sign the fingerprint and manifest with this SSH private key (or a .pub key held by ssh-agent)." placeholder:"KEY" type:"path"`
	Name  string `help:"The name the signature binds the image to (default: the alias it was baked for, else vibe)." placeholder:"NAME"`
	JSON  bool   `help:"Print the result as JSON."`
}

// intactLocal resolves an image on this machine and verifies it before it
// is handed on: a damaged store copy must not travel.
func intactLocal(s, verb string) (*images.Files, *images.Verified, error) {
	f, _, err := localImage(s)
	if err != nil {
		return nil, nil, err
	}
	v, err := images.Verify(f, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("%s %s: the source is not intact: %w", verb, s, err)
	}
	return f, v, nil
}

func (e *exportCmd) Run() error {
	f, v, err := intactLocal(e.Image, "export")
	if err != nil {
		return err
	}
	var sig []byte
	if e.Sign != "" {
		if sig, err = images.Sign(v, e.Sign, cmp.Or(e.Name, bakedAlias(v))); err != nil {
			return err
		}
	}
	files, err := images.Export(f, v, e.Dir, sig)
	if err != nil {
		return err
	}
	if e.JSON {
		return printJSON(map[string]any{"fingerprint": v.Fingerprint, "files": files, "signed": sig != nil || f.Sig != ""})
	}
	fmt.Printf("exported %s to %s\n", v.Fingerprint, e.Dir)
	for _, p := range files {
		fmt.Printf("  %s\n", filepath.Base(p))
	}
	return nil
}

type verifyCmd struct {
	Image string `arg:"" help:"${source_help}" placeholder:"DIR|IMAGE"`
	Trust string `help:"Allowed-signers file (the format git and ssh-keygen use): require a valid signature by a key it lists." placeholder:"FILE" type:"existingfile"`
	JSON  bool   `help:"Print the result as JSON."`
}

// verifyReport is what verify prints with --json.
type verifyReport struct {
	Fingerprint  string `json:"fingerprint"`
	OK           bool   `json:"ok"`
	Failure      string `json:"failure,omitempty"` // unreadable, tampered, untrusted
	Error        string `json:"error,omitempty"`
	Recipe       string `json:"recipe,omitempty"`
	InstanceType string `json:"instance_type,omitempty"`
	Size         int64  `json:"size,omitempty"`
	Signed       bool   `json:"signed"`
	Signer       string `json:"signer,omitempty"`
	Principal    string `json:"principal,omitempty"`
	Trusted      bool   `json:"trusted"`
}

func (vc *verifyCmd) Run() error {
	v, err := vc.verify()
	if vc.JSON {
		r := verifyReport{OK: err == nil}
		if err != nil {
			r.Failure, r.Error = images.KindOf(err).String(), err.Error()
		} else {
			r.Fingerprint, r.Recipe, r.InstanceType, r.Size = v.Fingerprint, v.Contents.Manifest.Recipe, v.Contents.Manifest.InstanceType, v.Size
			if v.Signer != nil {
				r.Signed, r.Signer, r.Principal, r.Trusted = true, v.Signer.Fingerprint, v.Signer.Principal, v.Trusted
			}
		}
		if perr := printJSON(r); perr != nil {
			return perr
		}
		if err != nil {
			return exitError{code: kindExit(images.KindOf(err)), err: fmt.Errorf("verify: %w", err)}
		}
		return nil
	}
	if err != nil {
		return err
	}
	ok := fmt.Sprintf("ok: %s (%s, recipe %s, %.1f MiB)", v.Fingerprint, v.Contents.Manifest.InstanceType, v.Contents.Manifest.Recipe[:12], float64(v.Size)/(1<<20))
	fmt.Println(safetext.Line(ok))
	fmt.Println("  " + safetext.Line(signatureLine(v)))
	warnTemplates(v.Contents)
	return nil
}

func (vc *verifyCmd) verify() (*images.Verified, error) {
	trust, err := loadTrust(vc.Trust)
	if err != nil {
		return nil, err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	r, isRemote, err := source.OpenRemote(ctx, vc.Image, "")
	if err != nil {
		return nil, &images.VerifyError{Kind: images.Unreadable, Err: err}
	}
	if isRemote {
		// A tree's image is downloaded into a stage, verified, and dropped.
		store, err := images.DefaultStore()
		if err != nil {
			return nil, err
		}
		st, f, err := r.Download(ctx, store, trust)
		if err != nil {
			return nil, &images.VerifyError{Kind: images.Tampered, Err: err}
		}
		defer st.Discard()
		return images.VerifyContext(ctx, f, trust)
	}
	f, _, err := localImage(vc.Image)
	if err != nil {
		if images.KindOf(err) == 0 {
			err = &images.VerifyError{Kind: images.Unreadable, Err: err}
		}
		return nil, err
	}
	return images.VerifyContext(ctx, f, trust)
}

// bakedAlias is the alias an image was baked for, else vibe.
func bakedAlias(v *images.Verified) string {
	if m := v.Contents.Manifest; m.Config != nil && m.Config.Image.Alias != "" {
		return m.Config.Image.Alias
	}
	return "vibe"
}

// warnTemplates flags templates other than vibe's: incus writes them into
// every new instance as root.
func warnTemplates(c *images.Contents) {
	for _, t := range c.UnknownTemplates() {
		fmt.Fprintf(os.Stderr, "vibe-build: WARNING: the image has a template for %s, which is not one of vibe's: incus writes it into every new instance, as root (vibe-build inspect --metadata shows it)\n", safetext.Line(t))
	}
}

// signatureLine says what is known about an image's signature.
func signatureLine(v *images.Verified) string {
	switch {
	case v.Signer == nil:
		return "unsigned"
	case v.Trusted:
		return fmt.Sprintf("signed by %s (%s %s), trusted%s", v.Signer.Principal, v.Signer.KeyType, v.Signer.Fingerprint, claimText(v.Claim))
	}
	return fmt.Sprintf("signed by %s %s%s; the signature is valid, but no --trust file was given to say whether that key is trusted", v.Signer.KeyType, v.Signer.Fingerprint, claimText(v.Claim))
}

// claimText says what name and time a signature binds.
func claimText(c *signing.Claim) string {
	if c == nil {
		return " (an old signature: no name or time)"
	}
	return fmt.Sprintf(", as %q at %s", c.Name, c.SignedAt.Format(time.RFC3339))
}

type importCmd struct {
	Source string `arg:"" help:"${source_help}" placeholder:"DIR|URL|REMOTE:NAME"`
	Image  string `help:"The image inside a simplestreams tree: an alias or fingerprint (default: the tree's only image)." placeholder:"NAME"`
	Alias  string `help:"Point this alias at the imported image." placeholder:"NAME"`
	Trust  string `help:"Allowed-signers file: import only an image signed by a key it lists." placeholder:"FILE" type:"existingfile"`
	// With --trust only.
	NotBefore  time.Time `help:"With --trust: refuse an image signed before this time (RFC 3339)." placeholder:"TIME"`
	AllowOlder bool      `help:"With --trust: take an image signed before the one last accepted under its name (a deliberate rollback)."`
	JSON       bool      `help:"Print the result as JSON."`
}

func (im *importCmd) Run() error {
	trust, err := loadTrust(im.Trust)
	if err != nil {
		return err
	}
	store, c, err := storeAndDaemon()
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	p := newProgress(os.Stderr)
	start := time.Now()
	if trust == nil && (im.AllowOlder || !im.NotBefore.IsZero()) {
		return errors.New("--not-before and --allow-older judge trusted signatures: give --trust FILE too")
	}
	res, err := source.Import(ctx, c, store, im.Source, im.Image, images.ImportOptions{Alias: im.Alias, Trust: trust, Progress: p, NotBefore: im.NotBefore, AllowOlder: im.AllowOlder})
	p.Done()
	if err != nil {
		return fmt.Errorf("import %s: nothing was imported: %w", im.Source, err)
	}
	if im.JSON {
		return printJSON(map[string]any{
			"fingerprint": res.Fingerprint, "added": res.Added, "alias": im.Alias,
			"signed": res.Signer != nil, "trusted": res.Trusted, "seconds": time.Since(start).Seconds(),
		})
	}
	state := "imported"
	if !res.Added {
		state = "already present"
	}
	fmt.Printf("%s: %s in %.1fs\n  %s\n", state, res.Fingerprint, time.Since(start).Seconds(), signatureLine(res.Verified))
	warnTemplates(res.Contents)
	if im.Alias != "" {
		fmt.Printf("  alias %s -> %s\n", im.Alias, res.Fingerprint[:12])
	}
	return nil
}

type publishCmd struct {
	Image string   `arg:"" help:"An alias or fingerprint on this machine, or a store or exported folder." placeholder:"IMAGE"`
	Dir   string   `arg:"" help:"The simplestreams tree to add the image to (created if missing); serve it over HTTPS." type:"path"`
	Alias []string `help:"Alias to publish the image under (repeatable; default: the alias it was baked for, else vibe)." placeholder:"NAME"`
	Sign  string   `help:"Sign the image with this SSH private key (or a .pub key held by ssh-agent) and publish the signature too." placeholder:"KEY" type:"path"`
}

func (pc *publishCmd) Run() error {
	f, v, err := intactLocal(pc.Image, "publish")
	if err != nil {
		return err
	}
	m := v.Contents.Manifest
	sigPath := ""
	if v.Signer != nil {
		sigPath = f.Sig
	}
	if pc.Sign != "" {
		// The signature binds the first name it is published under.
		sig, err := images.Sign(v, pc.Sign, cmp.Or(append(pc.Alias, bakedAlias(v))...))
		if err != nil {
			return err
		}
		tmp, err := os.CreateTemp("", "vibe-sig-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name())
		if _, err := tmp.Write(sig); err != nil {
			tmp.Close()
			return err
		}
		tmp.Close()
		sigPath = tmp.Name()
	}
	aliases := pc.Alias
	if len(aliases) == 0 {
		aliases = []string{"vibe"}
		if m.Config != nil && m.Config.Image.Alias != "" {
			aliases[0] = m.Config.Image.Alias
		}
	}
	props := v.Contents.Properties
	added, err := streams.Publish(pc.Dir, streams.Image{
		Fingerprint: v.Fingerprint, MetaPath: f.Meta, RootfsPath: f.Rootfs, SigPath: sigPath,
		InstanceType: m.InstanceType, Architecture: m.Architecture,
		OS: cmp.Or(props["os"], "linux"), Release: cmp.Or(props["release"], "vibe"), Variant: cmp.Or(props["variant"], "vibe"),
		Aliases: aliases, Created: m.Created,
	})
	if err != nil {
		return fmt.Errorf("publish %s: %w", v.Fingerprint[:12], err)
	}
	state := "published"
	if !added {
		state = "already published"
	}
	fmt.Printf("%s: %s in %s as %v\n", state, v.Fingerprint, pc.Dir, aliases)
	return nil
}

type diffCmd struct {
	A    string `arg:"" help:"First image (${source_help})" placeholder:"A"`
	B    string `arg:"" help:"Second image." placeholder:"B"`
	JSON bool   `help:"Print the manifest differences and the user-data diff as JSON."`
}

func (d *diffCmd) Run() error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a, err := contentsOf(ctx, d.A)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	b, err := contentsOf(ctx, d.B)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	diffs, err := images.DiffManifests(a.ManifestRaw, b.ManifestRaw)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	ud := images.DiffUserData("a/user-data", a.UserData, "b/user-data", b.UserData)
	// What metadata.yaml makes incus do (templates run as root in every
	// new instance) differs too, or the images are not the same.
	md := images.DiffUserData("a/metadata", []byte(images.MetadataText(a)), "b/metadata", []byte(images.MetadataText(b)))
	pkgs, pkgNote, err := diffPackages(a, b)
	if err != nil {
		return exitError{code: 2, err: err}
	}
	if d.JSON {
		if diffs == nil {
			diffs = []images.Difference{}
		}
		if pkgs == nil {
			pkgs = []sbom.Change{}
		}
		out := map[string]any{"manifest": diffs, "user_data": ud, "metadata": md, "packages": pkgs}
		if pkgNote != "" {
			out["packages_note"] = pkgNote
		}
		if err := printJSON(out); err != nil {
			return err
		}
	} else {
		fmt.Print(safetext.Text(ud))
		fmt.Print(safetext.Text(md))
		if len(diffs) > 0 {
			if ud != "" {
				fmt.Println()
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			// Every cell is an image's word: no control characters, and no
			// tab or newline to shift a column or forge a row.
			l := safetext.Line
			fmt.Fprintf(tw, "FIELD\t%s\t%s\n", l(d.A), l(d.B))
			for _, df := range diffs {
				fmt.Fprintf(tw, "%s\t%s\t%s\n", l(df.Field), l(orDash(df.A)), l(orDash(df.B)))
			}
			tw.Flush()
		}
		if pkgNote != "" {
			fmt.Printf("\npackages: %s\n", safetext.Line(pkgNote))
		}
		if len(pkgs) > 0 {
			fmt.Println()
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			l := safetext.Line
			fmt.Fprintf(tw, "PACKAGE\t\t%s\t%s\n", l(d.A), l(d.B))
			for _, c := range pkgs {
				fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\n", l(c.Type), l(c.Name), c.Kind(), l(orDash(c.A)), l(orDash(c.B)))
			}
			tw.Flush()
		}
	}
	if ud != "" || md != "" || len(diffs) > 0 || len(pkgs) > 0 {
		return exitError{code: 1, err: nil} // like diff(1): 1 means different
	}
	return nil
}

// diffPackages compares the two images' SBOMs. An image baked before
// SBOMs were recorded is not an error: the note says what was not
// compared. A malformed SBOM is.
func diffPackages(a, b *images.Contents) ([]sbom.Change, string, error) {
	pa, errA := a.Packages()
	pb, errB := b.Packages()
	switch {
	case errors.Is(errA, images.ErrNoSBOM) && errors.Is(errB, images.ErrNoSBOM):
		return nil, "not compared: neither image has an SBOM (older vibe-build)", nil
	case errors.Is(errA, images.ErrNoSBOM):
		return nil, "not compared: the first image has no SBOM (older vibe-build)", nil
	case errors.Is(errB, images.ErrNoSBOM):
		return nil, "not compared: the second image has no SBOM (older vibe-build)", nil
	case errA != nil:
		return nil, "", fmt.Errorf("first image: %w", errA)
	case errB != nil:
		return nil, "", fmt.Errorf("second image: %w", errB)
	}
	return sbom.Diff(pa, pb), "", nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// contentsOf reads the manifest and user-data of any image source; for a
// tree only the small metadata tarball is downloaded, and checked against
// the tree's hash.
func contentsOf(ctx context.Context, s string) (*images.Contents, error) {
	r, isRemote, err := source.OpenRemote(ctx, s, "")
	if err != nil {
		return nil, err
	}
	if isRemote {
		return r.Contents(ctx)
	}
	f, _, err := localImage(s)
	if err != nil {
		return nil, err
	}
	return images.ReadContentsFile(f.Meta)
}
