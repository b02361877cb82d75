package cli

import (
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/logging"
)

// Version is kiln's version, set at link time
// (-ldflags "-X github.com/kiln-build/kiln/pkg/cli.Version=v1.2.3").
var Version = "dev"

// globalFlags are the flags every command has.
type globalFlags struct {
	verbosity    string
	logFormat    string
	logTimestamp bool
}

// NewRootCommand returns the kiln command tree.
func NewRootCommand() *cobra.Command {
	g := &globalFlags{}
	root := &cobra.Command{
		Use:           "kiln",
		Short:         "Build container images from Dockerfiles without a daemon",
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			return logging.Configure(logrus.StandardLogger(), os.Stderr, g.verbosity, g.logFormat, g.logTimestamp)
		},
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&g.verbosity, "verbosity", "v", "info", "log level: panic, fatal, error, warn, info, debug or trace")
	pf.StringVar(&g.logFormat, "log-format", logging.FormatText, "log format: text, color or json")
	pf.BoolVar(&g.logTimestamp, "log-timestamp", false, "add timestamps to log lines")
	warmer := newWarmCommand("warmer")
	warmer.Short = "Same as `kiln cache warm` (kaniko's warmer)"
	root.AddCommand(newBuildCommand(g), newVersionCommand(), newLoginCommand(), newManifestCommand(), newCacheCommand(), warmer)
	return root
}

// Execute runs kiln with args (os.Args) and returns the exit status. Run as
// "executor" (kaniko's binary name), the arguments are those of `kiln build`.
// See run for the exit status.
func Execute(args []string) int {
	root := NewRootCommand()
	rest := args[1:]
	switch filepath.Base(args[0]) {
	case "executor":
		if len(rest) == 0 || rest[0] != "version" {
			rest = append([]string{"build"}, rest...)
		}
	case "warmer":
		rest = append([]string{"cache", "warm"}, rest...)
	}
	root.SetArgs(rest)
	rejectUnknownCommands(root)
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	return run(root, signals, signalGrace, os.Stderr)
}

func newVersionCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print kiln's version",
		Args:  cobra.NoArgs,
		Run: func(cmd *cobra.Command, _ []string) {
			fmt.Fprintln(cmd.OutOrStdout(), Version)
		},
	}
}

// runOutput is where RUN commands' output goes: straight to stdout, or as
// log records with --log-format json so that the stream stays parseable.
func runOutput(g *globalFlags, log *logrus.Logger) io.Writer {
	if g.logFormat == logging.FormatJSON {
		return log.WithField("stream", "run").WriterLevel(logrus.InfoLevel)
	}
	return os.Stdout
}
