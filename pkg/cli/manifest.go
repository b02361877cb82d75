package cli

import (
	"context"
	"errors"
	"fmt"
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
push-index. Lists being assembled are kept beside the docker config
(--docker-config, $DOCKER_CONFIG or ~/.docker) in kiln/manifests.`,
	}
	addConnectionFlags(cmd.PersistentFlags(), c)
	cmd.AddCommand(newManifestCreateCommand(c), newManifestAnnotateCommand(c),
		newManifestPushCommand(c), newManifestPushIndexCommand(c))
	return cmd
}

func newManifestCreateCommand(c *connectionFlags) *cobra.Command {
	var amend bool
	cmd := &cobra.Command{
		Use:   "create TARGET SOURCE...",
		Short: "Create a local manifest list of images (an index source adds each of its images)",
		Args:  cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			client, store, err := manifestTools(c)
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
		purge  bool
		format string
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
			client, store, err := manifestTools(c)
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
	return cmd
}

func newManifestPushIndexCommand(c *connectionFlags) *cobra.Command {
	var format string
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
			client, _, err := manifestTools(c)
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
	return cmd
}

func addIndexFormatFlag(cmd *cobra.Command, format *string) {
	cmd.Flags().StringVar(format, "format", "", "oci (OCI index) or docker (Docker manifest list); default: docker when every image is a Docker manifest, else oci")
}

// manifestTools are the registry client and the store of local lists.
func manifestTools(c *connectionFlags) (*registry.Client, *manifest.Store, error) {
	opts, err := c.options(logrus.StandardLogger())
	if err != nil {
		return nil, nil, err
	}
	client, err := registry.New(opts...)
	if err != nil {
		return nil, nil, err
	}
	configPath, err := registry.LoginConfigPath(c.dockerConfig)
	if err != nil {
		return nil, nil, err
	}
	return client, manifest.NewStore(manifest.DefaultDir(configPath)), nil
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
