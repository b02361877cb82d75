package cli

import (
	"fmt"
	"runtime"
	"runtime/debug"

	"github.com/spf13/cobra"
)

// Version, Commit and BuildDate describe this build of kiln. `make build`
// and `make release` set them at link time from git (hack/version.sh):
//
//	-X github.com/kiln-build/kiln/pkg/cli.Version=v0.1.0
//	-X github.com/kiln-build/kiln/pkg/cli.Commit=<full commit hash>
//	-X github.com/kiln-build/kiln/pkg/cli.BuildDate=<commit time, RFC 3339 UTC>
//
// The build date is the commit's time, not the time of the build, so that
// two builds of a commit are the same binary.
var (
	Version   = "dev"
	Commit    = ""
	BuildDate = ""
)

// buildInfo is what `kiln version` and `kiln --version` print.
type buildInfo struct {
	Version   string
	Commit    string
	BuildDate string
	GoVersion string
	Platform  string
}

// currentBuildInfo returns the stamped values. A binary built without them
// (`go build`, `go install ...@v0.1.0`) falls back to what the Go toolchain
// recorded: the module version and the git revision and time.
func currentBuildInfo() buildInfo {
	info := buildInfo{
		Version:   Version,
		Commit:    Commit,
		BuildDate: BuildDate,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "dev" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		settings := map[string]string{}
		for _, s := range bi.Settings {
			settings[s.Key] = s.Value
		}
		if info.Commit == "" && settings["vcs.revision"] != "" {
			info.Commit = settings["vcs.revision"]
			if settings["vcs.modified"] == "true" {
				info.Commit += "-dirty"
			}
		}
		if info.BuildDate == "" {
			info.BuildDate = settings["vcs.time"]
		}
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.BuildDate == "" {
		info.BuildDate = "unknown"
	}
	return info
}

func (b buildInfo) String() string {
	return fmt.Sprintf("kiln %s\n  commit:     %s\n  build date: %s\n  go:         %s\n  platform:   %s\n",
		b.Version, b.Commit, b.BuildDate, b.GoVersion, b.Platform)
}

func newVersionCommand() *cobra.Command {
	var short bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version, commit, build date, Go version and platform",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			info := currentBuildInfo()
			if short {
				fmt.Fprintln(cmd.OutOrStdout(), info.Version)
				return
			}
			fmt.Fprint(cmd.OutOrStdout(), info)
		},
	}
	cmd.Flags().BoolVar(&short, "short", false, "print the version only")
	return cmd
}

// setVersionFlag gives root a --version flag printing what `kiln version`
// prints.
func setVersionFlag(root *cobra.Command) {
	info := currentBuildInfo()
	root.Version = info.Version
	// The template is literal text: the values hold no template actions
	// (git describe output, hashes, dates).
	root.SetVersionTemplate(info.String())
}
