package cli

import (
	"fmt"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// unsupportedFlags are kaniko executor flags kiln does not implement yet.
// They are known, so that a pipeline using one fails with a clear message
// instead of an "unknown flag" or, worse, a silently different build.
var unsupportedFlags = map[string]string{
	"cache":                  "layer caching",
	"cache-repo":             "layer caching",
	"cache-dir":              "layer caching",
	"cache-ttl":              "layer caching",
	"cache-copy-layers":      "layer caching",
	"cache-run-layers":       "layer caching",
	"compressed-caching":     "layer caching",
	"no-push-cache":          "layer caching",
	"image-fs-extract-retry": "retrying layer extraction (interrupted layer downloads are resumed, see --image-download-retry)",
	"digest-file-format":     "digest file formats",
}

func addUnsupportedFlags(fl *pflag.FlagSet) {
	for name := range unsupportedFlags {
		fl.String(name, "", "not supported yet")
		fl.Lookup(name).Hidden = true
		fl.Lookup(name).NoOptDefVal = "true"
	}
}

// rejectUnsupported fails when an unsupported kaniko flag was given.
func rejectUnsupported(cmd *cobra.Command) error {
	var err error
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if what, ok := unsupportedFlags[f.Name]; ok && err == nil {
			err = fmt.Errorf("--%s is a kaniko flag that kiln does not support yet (%s); remove it to build without it", f.Name, what)
		}
	})
	return err
}
