package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/manifest"
	"github.com/kiln-build/kiln/pkg/registry"
)

func newManifestCommand() *cobra.Command {
	c := &connectionFlags{}
	cmd := &cobra.Command{
		Use:   "manifest",
		Short: "Assemble multi-platform manifest lists and push them",
		Long: `Merge images built separately for each platform into one multi-platform
manifest list (an OCI index or a Docker manifest list), as docker manifest does:
create a list, annotate its entries, push it; or do it all at once with
push-index. inspect shows a remote manifest or index; rm deletes local lists.
Lists being assembled are kept beside the docker config (--docker-config,
$DOCKER_CONFIG or ~/.docker) in kiln/manifests.`,
	}
	addConnectionFlags(cmd.PersistentFlags(), c)
	cmd.AddCommand(newManifestCreateCommand(c), newManifestAnnotateCommand(c),
		newManifestPushCommand(c), newManifestPushIndexCommand(c),
		newManifestInspectCommand(c), newManifestRmCommand(c))
	return cmd
}

func newManifestCreateCommand(c *connectionFlags) *cobra.Command {
	var amend, insecure bool
	cmd := &cobra.Command{
		Use:   "create TARGET SOURCE...",
		Short: "Create a local manifest list of images (an index source adds each of its images)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, store, err := manifestTools(c, insecureRefs(insecure, args[1:]...)...)
			if err != nil {
				return err
			}
			target, err := canonicalRef(args[0])
			if err != nil {
				return err
			}
			list, err := store.Load(target)
			switch {
			case err == nil && !amend:
				return fmt.Errorf("manifest list %q exists: add to it with --amend, or push it with --purge first", target)
			case errors.Is(err, manifest.ErrNoList):
				list = &manifest.List{Target: target}
			case err != nil:
				return err
			}
			entries, err := resolveSources(cmd.Context(), client, args[1:])
			if err != nil {
				return err
			}
			list.Add(entries...)
			if err := store.Save(list); err != nil {
				return err
			}
			for _, e := range list.Entries {
				fmt.Fprintf(cmd.OutOrStdout(), "%s\t%s\t%s\n", e.Descriptor.Platform, e.Descriptor.Digest, e.From)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&amend, "amend", "a", false, "add to an existing list (an image with the same digest is replaced)")
	addInsecureFlag(cmd, &insecure, "the sources' registries")
	return cmd
}

func newManifestAnnotateCommand(c *connectionFlags) *cobra.Command {
	var p v1.Platform
	cmd := &cobra.Command{
		Use:   "annotate TARGET SOURCE",
		Short: "Set the platform of an entry of a local manifest list",
		Long: `Set the platform of the entry added from SOURCE (as given to create, or the
entry's digest reference when an index source gave several).`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if p.OS == "" && p.Architecture == "" && p.Variant == "" && p.OSVersion == "" && len(p.OSFeatures) == 0 {
				return errors.New("nothing to annotate: give --os, --arch, --variant, --os-version or --os-features")
			}
			_, store, err := manifestTools(c)
			if err != nil {
				return err
			}
			target, err := canonicalRef(args[0])
			if err != nil {
				return err
			}
			source, err := canonicalRef(args[1])
			if err != nil {
				return err
			}
			list, err := store.Load(target)
			if err != nil {
				return err
			}
			if err := list.Annotate(source, p); err != nil {
				return err
			}
			return store.Save(list)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&p.OS, "os", "", "operating system")
	fl.StringVar(&p.Architecture, "arch", "", "architecture (amd64, arm64, arm, ...)")
	fl.StringVar(&p.Variant, "variant", "", "architecture variant (v7, v8, ...)")
	fl.StringVar(&p.OSVersion, "os-version", "", "operating system version")
	fl.StringSliceVar(&p.OSFeatures, "os-features", nil, "operating system features")
	return cmd
}

func newManifestPushCommand(c *connectionFlags) *cobra.Command {
	var (
		purge, insecure bool
		format          string
	)
	cmd := &cobra.Command{
		Use:   "push TARGET",
		Short: "Push a local manifest list to its target and print its digest",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := registry.ParseIndexFormat(format)
			if err != nil {
				return err
			}
			client, store, err := manifestTools(c, insecureRefs(insecure, args[0])...)
			if err != nil {
				return err
			}
			target, err := canonicalRef(args[0])
			if err != nil {
				return err
			}
			list, err := store.Load(target)
			if err != nil {
				return err
			}
			if err := pushIndex(cmd, client, target, list.IndexEntries(), f); err != nil {
				return err
			}
			if purge {
				return store.Remove(target)
			}
			return nil
		},
	}
	cmd.Flags().BoolVarP(&purge, "purge", "p", false, "delete the local list once pushed")
	addIndexFormatFlag(cmd, &format)
	addInsecureFlag(cmd, &insecure, "TARGET's registry")
	return cmd
}

func newManifestPushIndexCommand(c *connectionFlags) *cobra.Command {
	var (
		format   string
		insecure bool
	)
	cmd := &cobra.Command{
		Use:   "push-index TARGET SOURCE...",
		Short: "Push a manifest list of the sources' images straight to TARGET and print its digest",
		Long: `Push a manifest list of the sources' images straight to TARGET, without a
local list: the merge step after building each platform's image on its own
node. An index source adds each of its images.`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := registry.ParseIndexFormat(format)
			if err != nil {
				return err
			}
			client, _, err := manifestTools(c, insecureRefs(insecure, args...)...)
			if err != nil {
				return err
			}
			target, err := canonicalRef(args[0])
			if err != nil {
				return err
			}
			entries, err := resolveSources(cmd.Context(), client, args[1:])
			if err != nil {
				return err
			}
			list := &manifest.List{Target: target}
			list.Add(entries...)
			return pushIndex(cmd, client, target, list.IndexEntries(), f)
		},
	}
	addIndexFormatFlag(cmd, &format)
	addInsecureFlag(cmd, &insecure, "the registries of TARGET and the sources")
	return cmd
}

func newManifestInspectCommand(c *connectionFlags) *cobra.Command {
	var verbose, insecure bool
	cmd := &cobra.Command{
		Use:   "inspect REFERENCE",
		Short: "Print the manifest or index of a remote image as JSON",
		Long: `Print the manifest of a remote image, or the index (manifest list) of a
multi-platform one, as the registry serves it, indented. With --verbose, print
a JSON object with its digest reference, descriptor and manifest, each image's
config, and for an index each listed manifest the same way.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, _, err := manifestTools(c, insecureRefs(insecure, args[0])...)
			if err != nil {
				return err
			}
			return inspectManifest(cmd.Context(), cmd.OutOrStdout(), client, args[0], verbose)
		},
	}
	cmd.Flags().BoolVar(&verbose, "verbose", false, "also print the descriptor and each image's config, and each manifest of an index")
	addInsecureFlag(cmd, &insecure, "REFERENCE's registry")
	return cmd
}

func newManifestRmCommand(c *connectionFlags) *cobra.Command {
	return &cobra.Command{
		Use:     "rm LIST...",
		Aliases: []string{"remove"},
		Short:   "Delete local manifest lists (kept since create; nothing is deleted from a registry)",
		Args:    cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			store, err := manifestStore(c)
			if err != nil {
				return err
			}
			var errs []error
			for _, a := range args {
				target, err := canonicalRef(a)
				if err == nil {
					err = store.Remove(target)
				}
				if err != nil {
					errs = append(errs, err)
					continue
				}
				logrus.StandardLogger().Infof("Deleted the local manifest list %q", target)
			}
			return errors.Join(errs...)
		},
	}
}

// addInsecureFlag adds docker manifest's --insecure; which says the
// registries it applies to.
func addInsecureFlag(cmd *cobra.Command, insecure *bool, which string) {
	cmd.Flags().BoolVar(insecure, "insecure", false, "allow plain HTTP and unverified TLS for "+which+" (as --insecure-registry and --skip-tls-verify-registry for each)")
}

// insecureRefs returns refs when insecure is set, nil otherwise: the
// references whose registries --insecure applies to.
func insecureRefs(insecure bool, refs ...string) []string {
	if !insecure {
		return nil
	}
	return refs
}

func addIndexFormatFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVar(format, "format", "", "oci (OCI index) or docker (Docker manifest list); default: docker when every image is a Docker manifest, else oci")
}

// manifestTools are the registry client and the store of local lists.
// The registries of insecure (image references) are reached as
// --insecure-registry and --skip-tls-verify-registry would allow.
func manifestTools(c *connectionFlags, insecure ...string) (*registry.Client, *manifest.Store, error) {
	opts, err := c.options(logrus.StandardLogger())
	if err != nil {
		return nil, nil, err
	}
	for _, s := range insecure {
		ref, err := name.ParseReference(s, name.WeakValidation)
		if err != nil {
			return nil, nil, fmt.Errorf("invalid image reference %q: %w", s, err)
		}
		host := ref.Context().RegistryStr()
		opts = append(opts, registry.WithInsecureRegistries(host), registry.WithSkipTLSVerifyRegistries(host))
	}
	client, err := registry.New(opts...)
	if err != nil {
		return nil, nil, err
	}
	store, err := manifestStore(c)
	if err != nil {
		return nil, nil, err
	}
	return client, store, nil
}

// manifestStore is the store of local lists, beside the docker config.
func manifestStore(c *connectionFlags) (*manifest.Store, error) {
	configPath, err := registry.LoginConfigPath(c.dockerConfig)
	if err != nil {
		return nil, err
	}
	return manifest.NewStore(manifest.DefaultDir(configPath)), nil
}

// inspectedManifest is one manifest in `kiln manifest inspect --verbose`.
type inspectedManifest struct {
	Ref        string              `json:"ref"`
	Descriptor v1.Descriptor       `json:"descriptor"`
	Manifest   json.RawMessage     `json:"manifest"`
	Config     json.RawMessage     `json:"config,omitempty"`
	Manifests  []inspectedManifest `json:"manifests,omitempty"`
}

func inspectManifest(ctx context.Context, out io.Writer, client *registry.Client, ref string, verbose bool) error {
	m, err := client.Manifest(ctx, ref, verbose)
	if err != nil {
		return err
	}
	if !verbose {
		var b bytes.Buffer
		if err := json.Indent(&b, m.Raw, "", "  "); err != nil {
			return fmt.Errorf("the manifest of %q is not JSON: %w", m.Ref, err)
		}
		b.WriteByte('\n')
		_, err := b.WriteTo(out)
		return err
	}
	doc := inspectedManifest{Ref: m.Ref, Descriptor: m.Descriptor, Manifest: m.Raw, Config: m.Config}
	if m.Descriptor.MediaType.IsIndex() {
		children, err := client.IndexManifests(ctx, m, true)
		if err != nil {
			return err
		}
		for _, ch := range children {
			doc.Manifests = append(doc.Manifests, inspectedManifest{Ref: ch.Ref, Descriptor: ch.Descriptor, Manifest: ch.Raw, Config: ch.Config})
		}
	}
	b, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

func resolveSources(ctx context.Context, client *registry.Client, sources []string) ([]manifest.Entry, error) {
	var out []manifest.Entry
	for _, s := range sources {
		from, err := canonicalRef(s)
		if err != nil {
			return nil, err
		}
		entries, err := client.ResolveEntries(ctx, s)
		if err != nil {
			return nil, err
		}
		for _, e := range entries {
			out = append(out, manifest.Entry{From: from, IndexEntry: e})
		}
	}
	return out, nil
}

func pushIndex(cmd *cobra.Command, client *registry.Client, target string, entries []registry.IndexEntry, f registry.IndexFormat) error {
	pushed, err := client.PushIndex(cmd.Context(), target, entries, f)
	if err != nil {
		return err
	}
	var platforms []string
	for _, e := range entries {
		platforms = append(platforms, e.Descriptor.Platform.String())
	}
	logrus.StandardLogger().Infof("Pushed manifest list %q (%s) as %q", target, strings.Join(platforms, ", "), pushed.Name())
	fmt.Fprintln(cmd.OutOrStdout(), pushed.DigestStr())
	return nil
}

// canonicalRef spells a reference in full ("docker.io/library/app:latest"
// is "index.docker.io/library/app:latest"), so that a list is found
// however it was named.
func canonicalRef(s string) (string, error) {
	ref, err := name.ParseReference(s, name.WeakValidation)
	if err != nil {
		return "", fmt.Errorf("invalid image reference %q: %w", s, err)
	}
	return ref.Name(), nil
}
