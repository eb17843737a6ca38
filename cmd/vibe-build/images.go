package main

import (
	"context"
	"fmt"
	"maps"
	"os"
	"os/signal"
	"slices"
	"sort"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	incus "github.com/lxc/incus/v6/client"
	"github.com/lxc/incus/v6/shared/api"

	"github.com/vibesandbox/vibe/daemon"
	"github.com/vibesandbox/vibe/images"
	"github.com/vibesandbox/vibe/internal/safetext"
	"github.com/vibesandbox/vibe/source"
)

// listedImage is one vibe image as `list` reports it.
type listedImage struct {
	Aliases      []string  `json:"aliases"`
	BakedFor     string    `json:"baked_for"`
	Fingerprint  string    `json:"fingerprint"`
	Recipe       string    `json:"recipe"`
	InstanceType string    `json:"instance_type"`
	Created      time.Time `json:"created"`
	Size         int64     `json:"size"`
	Stored       bool      `json:"stored"`
}

// vibeImages lists the server's vibe images, newest first.
func vibeImages(c incus.InstanceServer, store *images.Store) ([]listedImage, error) {
	imgs, err := c.GetImages()
	if err != nil {
		return nil, fmt.Errorf("list images: %w", err)
	}
	var out []listedImage
	for _, img := range imgs {
		// Properties are anyone's to set (and an image copied from a
		// remote keeps its own): one without a vibe image's form is not
		// one of vibe's.
		if !images.IsFingerprint(img.Properties[images.PropRecipe]) || !images.IsFingerprint(img.Fingerprint) {
			continue
		}
		if t := img.Properties[images.PropType]; t != "container" && t != "vm" {
			continue
		}
		// A bake's intermediate image is hidden while its builder lives;
		// the property alone (anyone can write it) hides nothing.
		if owner := img.Properties[images.PropIntermediate]; owner != "" {
			if inst, _, err := c.GetInstance(owner); err == nil && inst.Config[images.KeyBuilder] == "true" {
				continue
			}
		}
		li := listedImage{
			Aliases: []string{}, BakedFor: img.Properties[images.PropAlias], Fingerprint: img.Fingerprint, Recipe: img.Properties[images.PropRecipe],
			InstanceType: img.Properties[images.PropType], Created: img.CreatedAt, Size: img.Size,
			Stored: store.Has(img.Fingerprint),
		}
		for _, a := range img.Aliases {
			li.Aliases = append(li.Aliases, a.Name)
		}
		out = append(out, li)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, nil
}

// storeAndDaemon opens the image store and connects to the local daemon:
// what every command that bakes, lists or imports needs.
func storeAndDaemon() (*images.Store, incus.InstanceServer, error) {
	store, err := images.DefaultStore()
	if err != nil {
		return nil, nil, err
	}
	c, err := daemon.Connect("")
	if err != nil {
		return nil, nil, err
	}
	return store, c, nil
}

// openImages opens the store, connects, and lists the vibe images.
func openImages() (*images.Store, incus.InstanceServer, []listedImage, error) {
	store, c, err := storeAndDaemon()
	if err != nil {
		return nil, nil, nil, err
	}
	list, err := vibeImages(c, store)
	return store, c, list, err
}

type listCmd struct {
	JSON bool `help:"Print JSON."`
}

func (l *listCmd) Run() error {
	_, _, list, err := openImages()
	if err != nil {
		return err
	}
	if l.JSON {
		if list == nil {
			list = []listedImage{}
		}
		return printJSON(list)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ALIAS\tFINGERPRINT\tRECIPE\tTYPE\tCREATED\tSIZE")
	for _, li := range list {
		alias := strings.Join(li.Aliases, ",")
		if alias == "" {
			alias = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%.1f MiB\n", safetext.Line(alias), li.Fingerprint[:12], li.Recipe[:12], li.InstanceType,
			li.Created.Local().Format("2006-01-02 15:04"), float64(li.Size)/(1<<20))
	}
	return tw.Flush()
}

type inspectCmd struct {
	Image    string `arg:"" help:"${source_help}" placeholder:"IMAGE|DIR|URL"`
	Select   string `name:"image" help:"The image inside a simplestreams tree: an alias or fingerprint (default: the tree's only image)." placeholder:"NAME"`
	Trust    string `help:"Allowed-signers file to judge the signature by." placeholder:"FILE" type:"existingfile"`
	Manifest bool   `help:"Print manifest.json exactly." xor:"what"`
	UserData bool   `help:"Print the user-data exactly as it was baked." xor:"what"`
	Metadata bool   `help:"Print what metadata.yaml makes incus do: its properties and every template, with its content." xor:"what"`
	SBOM     bool   `name:"sbom" help:"Print the image's SBOM exactly: every installed package (deb, npm, pypi and each toolchain) as CycloneDX JSON." xor:"what"`
}

func (in *inspectCmd) Run() error {
	trust, err := loadTrust(in.Trust)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	// Only the metadata tarball and the signature are read: inspect never
	// needs the daemon or the rootfs.
	var contents *images.Contents
	var fp, sigPath, rootfsNote string
	r, isRemote, err := source.OpenRemote(ctx, in.Image, in.Select)
	switch {
	case err != nil:
		return err
	case isRemote:
		if contents, err = r.Contents(ctx); err != nil {
			return err
		}
		tmp, err := os.MkdirTemp("", "vibe-inspect-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(tmp)
		if sigPath, err = r.Signature(ctx, tmp); err != nil {
			return err
		}
		fp, rootfsNote = r.Entry.Fingerprint, "not downloaded; vibe-build verify or import checks it"
	default:
		if in.Select != "" {
			return fmt.Errorf("--image picks an image inside a simplestreams tree; %s is not one", in.Image)
		}
		f, _, err := localImage(in.Image)
		if err != nil {
			return err
		}
		if contents, err = images.ReadContentsFile(f.Meta); err != nil {
			return err
		}
		fp, sigPath, rootfsNote = f.Fingerprint, f.Sig, "not hashed; vibe-build verify checks it"
	}
	switch {
	case in.Manifest:
		_, err = os.Stdout.Write(contents.ManifestRaw)
		return err
	case in.UserData:
		_, err = os.Stdout.Write(contents.UserData)
		return err
	case in.Metadata:
		fmt.Print(safetext.Text(images.MetadataText(contents)))
		return nil
	case in.SBOM:
		// Only a document that reads; and JSON strings may still hold C1
		// controls or bidirectional overrides, which never reach the
		// terminal.
		if _, err := contents.Packages(); err != nil {
			return err
		}
		fmt.Print(safetext.Text(string(contents.SBOM)))
		return nil
	}
	// Every field is the image's word (inspect is for images nobody has
	// verified yet): printed without control characters.
	var out strings.Builder
	m := contents.Manifest
	if fp != "" {
		fmt.Fprintf(&out, "fingerprint    %s (as named; %s)\n", fp, rootfsNote)
	}
	fmt.Fprintf(&out, "recipe         %s\n", m.Recipe)
	fmt.Fprintf(&out, "instance type  %s (%s)\n", m.InstanceType, m.Architecture)
	fmt.Fprintf(&out, "base           %s (%s)\n", m.Base.Source, m.Base.Fingerprint)
	fmt.Fprintf(&out, "created        %s by vibe-build %s\n", m.Created.Format(time.RFC3339), m.VibeBuild)
	fmt.Fprintf(&out, "user-data      sha256 %s\n", m.UserDataSHA256)
	fmt.Fprintf(&out, "rootfs         %s sha256 %s, %d bytes\n", m.Rootfs.Name, m.Rootfs.SHA256, m.Rootfs.Size)
	for _, k := range slices.Sorted(maps.Keys(m.Versions)) {
		fmt.Fprintf(&out, "version        %-12s %s\n", k, m.Versions[k])
	}
	fmt.Fprintf(&out, "packages       %s\n", packagesLine(contents))
	status := "unknown (no fingerprint to check it against)"
	if fp != "" {
		st, err := images.CheckSignature(fp, contents, sigPath, trust)
		if err != nil {
			status = fmt.Sprintf("%s: %v", images.KindOf(err), err)
		} else {
			status = signatureLine(&images.Verified{Signer: st.Signer, Trusted: st.Trusted, Claim: st.Claim})
		}
	}
	fmt.Fprintf(&out, "signature      %s\n", status)
	for _, target := range slices.Sorted(maps.Keys(contents.Metadata.Templates)) {
		note := ""
		if !images.KnownTemplates[target] {
			note = "  WARNING: not one of vibe's; incus writes it into every new instance as root (--metadata shows it)"
		}
		fmt.Fprintf(&out, "template       %s (%s)%s\n", target, strings.Join(contents.Metadata.Templates[target].When, ", "), note)
	}
	if ud := contents.Metadata.Templates["/var/lib/cloud/seed/nocloud-net/user-data"]; ud != nil && ud.Properties["default"] != "" && contents.Manifest.InstanceType == "vm" {
		fmt.Fprintf(&out, "note           a VM made from it runs the seed template's default user-data at first boot (--metadata shows it)\n")
	}
	fmt.Print(safetext.Text(out.String()))
	return nil
}

type gcCmd struct {
	Keep   int    `help:"How many of the newest images to keep for each alias they were baked for (images an alias points at are always kept)." default:"3"`
	Alias  string `help:"Only consider images baked for this alias." placeholder:"NAME"`
	DryRun bool   `help:"Say what would be removed, remove nothing."`
}

func (g *gcCmd) Run() error {
	if g.Keep < 0 {
		return fmt.Errorf("--keep must be 0 or more")
	}
	store, c, all, err := openImages()
	if err != nil {
		return err
	}
	// Newest first already: keep the first N of each alias they were baked
	// for, and anything an alias points at now.
	keep := map[string]bool{}
	seen := map[string]int{}
	var list []listedImage
	for _, li := range all {
		if g.Alias != "" && li.BakedFor != g.Alias {
			keep[li.Fingerprint] = true
			continue
		}
		list = append(list, li)
		if seen[li.BakedFor] < g.Keep || len(li.Aliases) > 0 {
			keep[li.Fingerprint] = true
		}
		seen[li.BakedFor]++
	}
	verb := "removed"
	if g.DryRun {
		verb = "would remove"
	}
	for _, li := range list {
		if keep[li.Fingerprint] {
			continue
		}
		if !g.DryRun {
			op, err := c.DeleteImage(li.Fingerprint)
			if err == nil {
				err = op.Wait()
			}
			if err != nil && !api.StatusErrorCheck(err, 404) {
				return fmt.Errorf("gc: delete image %s: %w", li.Fingerprint[:12], err)
			}
			if err := store.Remove(li.Fingerprint); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
		}
		fmt.Printf("%s image %s (recipe %s)\n", verb, li.Fingerprint[:12], li.Recipe[:12])
	}
	if g.Alias != "" {
		return nil // store folders are not tied to an alias
	}
	// Store folders whose image the daemon no longer has.
	fps, err := store.List()
	if err != nil {
		return err
	}
	for _, fp := range fps {
		if keep[fp] {
			continue
		}
		if _, _, err := c.GetImage(fp); err == nil {
			continue
		}
		if !g.DryRun {
			if err := store.Remove(fp); err != nil {
				return fmt.Errorf("gc: %w", err)
			}
		}
		fmt.Printf("%s store folder %s (not in incus)\n", verb, fp[:12])
	}
	return nil
}

// packagesLine counts the SBOM's packages by type.
func packagesLine(c *images.Contents) string {
	pkgs, err := c.Packages()
	if err != nil {
		return err.Error()
	}
	n := map[string]int{}
	for _, p := range pkgs {
		n[p.Type]++
	}
	var parts []string
	for _, t := range slices.Sorted(maps.Keys(n)) {
		parts = append(parts, fmt.Sprintf("%s %d", t, n[t]))
	}
	return fmt.Sprintf("%d in the SBOM (%s; --sbom prints it)", len(pkgs), strings.Join(parts, ", "))
}
