package cli

import (
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"

	"github.com/kiln-build/kiln/pkg/logging"
)

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
	setVersionFlag(root)
	return root
}

// Execute runs kiln with args (os.Args) and returns the exit status. Run as
// "executor" (kaniko's binary name), the arguments are those of `kiln build`.
// See run for the exit status.
func Execute(args []string) int {
	root := NewRootCommand()
	root.SetArgs(commandArgs(args))
	rejectUnknownCommands(root)
	signals := make(chan os.Signal, 2)
	signal.Notify(signals, os.Interrupt, syscall.SIGTERM)
	defer signal.Stop(signals)
	return run(root, signals, signalGrace, os.Stderr)
}

// commandArgs are the arguments of kiln's command tree for os.Args: run as
// "executor", kaniko's binary name, they are those of `kiln build`, except
// `executor version` and `executor --version`; run as "warmer", kaniko's
// warmer, those of `kiln cache warm`.
func commandArgs(args []string) []string {
	rest := args[1:]
	switch filepath.Base(args[0]) {
	case "executor":
		if len(rest) == 0 || (rest[0] != "version" && rest[0] != "--version") {
			rest = append([]string{"build"}, rest...)
		}
	case "warmer":
		rest = append([]string{"cache", "warm"}, rest...)
	}
	return rest
}

// runOutput is where RUN commands' output goes: straight to stdout, or as
// log records with --log-format json so that the stream stays parseable.
func runOutput(g *globalFlags, log *logrus.Logger) io.Writer {
	if g.logFormat == logging.FormatJSON {
		return log.WithField("stream", "run").WriterLevel(logrus.InfoLevel)
	}
	return os.Stdout
}
