package cli

import (
	"fmt"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sirupsen/logrus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// compatAnnotation marks the flags kiln has for kaniko's sake: spellings of
// kaniko's (archived and maintained) executors, accepted flags whose
// behaviour kiln always has, and flags kiln refuses. They stay out of the
// main flag list and get a help section of their own.
const compatAnnotation = "kiln/kaniko-compat"

// refusedFlags are kaniko flags kiln knows and refuses: a pipeline using one
// fails with a clear message instead of an "unknown flag" or, worse, a
// silently different build.
var refusedFlags = map[string]string{
	"image-fs-extract-retry": "retrying layer extraction (interrupted layer downloads are resumed, see --image-download-retry)",
	"digest-file-format":     "digest file formats",
	"bucket":                 "build contexts in Google Cloud Storage buckets (give the context as an https:// URL of a tar archive instead)",
	"force-build-metadata":   "empty layers for metadata instructions",
	"credential-helpers":     "choosing credential helpers by flag (kiln uses the credHelpers and credsStore of the docker config)",
	"materialize":            "materializing the final filesystem (kiln snapshots every RUN exactly)",
	"pre-cleanup":            "cleaning the filesystem before the build (in-place builds always start from what the executor image shipped)",
}

// refusedShorthands are the one-letter spellings of refused flags.
var refusedShorthands = map[string]string{"bucket": "b"}

// addCompatFlags registers kaniko's spellings and the flags kiln refuses.
func addCompatFlags(fl *pflag.FlagSet, f *buildFlags) {
	// Spellings of the archived kaniko executor, and earlier kiln aliases.
	fl.StringVar(&f.platform, "platform", "", "alias of --custom-platform")
	fl.StringVar(&f.platform, "customPlatform", "", "alias of --custom-platform (kaniko's old spelling)")
	fl.StringVar(&f.snapshotMode, "snapshotMode", "", "alias of --snapshot-mode (kaniko's old spelling)")
	fl.StringVar(&f.tarPath, "tarPath", "", "alias of --tar-path (kaniko's old spelling)")
	fl.BoolVar(&f.ignoreVarRun, "whitelist-var-run", true, "alias of --ignore-var-run (kaniko's old name)")
	fl.StringVar(&f.kilnDir, "kaniko-dir", "", "alias of --kiln-dir")
	// Accepted: kiln always behaves as they ask.
	fl.StringVar(&f.snapshotMode, "snapshot-mode", "", "full, redo or time: kiln always compares full file metadata (inode, size, mode, owner, mtime, ctime), which is exact without rehashing")
	fl.BoolVar(&f.ignoreVarRun, "ignore-var-run", true, "in-place isolation: leave /var/run alone")
	fl.BoolVar(&f.cleanup, "cleanup", false, "in-place builds always restore the container's filesystem")
	fl.BoolVar(&f.skipUnusedStages, "skip-unused-stages", true, "kiln builds only the stages the target needs (false is refused)")
	fl.BoolVar(&f.useNewRun, "use-new-run", false, "kiln's RUN snapshots are always metadata-based")
	fl.BoolVar(&f.preserveContext, "preserve-context", false, "kiln never touches the build context, in every isolation mode")
	names := []string{"platform", "customPlatform", "snapshotMode", "tarPath", "whitelist-var-run", "kaniko-dir",
		"snapshot-mode", "ignore-var-run", "cleanup", "skip-unused-stages", "use-new-run", "preserve-context"}
	for name, what := range refusedFlags {
		fl.VarP(&refusedValue{}, name, refusedShorthands[name], "refused: "+what)
		fl.Lookup(name).NoOptDefVal = "true"
		names = append(names, name)
	}
	for _, n := range names {
		fl.Lookup(n).Hidden = true
		fl.SetAnnotation(n, compatAnnotation, []string{"true"})
	}
}

// refusedValue takes any value of a refused flag, with or without one.
type refusedValue struct{ v string }

func (r *refusedValue) String() string     { return r.v }
func (r *refusedValue) Set(v string) error { r.v = v; return nil }

// Type is "bool" so that the help shows the flag without a value type:
// kaniko's refused flags are switches, or take a value kiln never reads.
func (r *refusedValue) Type() string { return "bool" }

// rejectRefused fails when a refused kaniko flag was given.
func rejectRefused(fl *pflag.FlagSet) error {
	var err error
	fl.Visit(func(f *pflag.Flag) {
		if what, ok := refusedFlags[f.Name]; ok && err == nil {
			err = fmt.Errorf("--%s is a kaniko flag that kiln does not support (%s); remove it to build without it", f.Name, what)
		}
	})
	return err
}

// compatUsage is the help section listing the kaniko compatibility flags.
func compatUsage(cmd *cobra.Command) string {
	fs := pflag.NewFlagSet("compat", pflag.ContinueOnError)
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if _, ok := f.Annotations[compatAnnotation]; ok {
			c := *f
			c.Hidden = false
			fs.AddFlag(&c)
		}
	})
	return fs.FlagUsages()
}

// buildUsageTemplate is cobra's usage template with a section for the
// kaniko compatibility flags.
const buildUsageTemplate = `Usage:
  {{.UseLine}}

Flags:
{{.LocalFlags.FlagUsages | trimTrailingWhitespaces}}

Global Flags:
{{.InheritedFlags.FlagUsages | trimTrailingWhitespaces}}

kaniko compatibility flags (old spellings, flags whose behaviour kiln always has, and flags kiln refuses):
{{compatUsage . | trimTrailingWhitespaces}}

Environment: KILN_DIR, KILN_NO_PUSH, KILN_REGISTRY_MIRROR and KILN_REGISTRY_MAP (or kaniko's KANIKO_ names) are
the defaults of --kiln-dir, --no-push, --registry-mirror and --registry-map.
`

func init() { cobra.AddTemplateFunc("compatUsage", compatUsage) }

// envDefault is an environment variable that gives a flag its default.
type envDefault struct {
	name string // the part after KILN_ / KANIKO_
	flag string
}

var envDefaults = []envDefault{
	{"DIR", "kiln-dir"},
	{"NO_PUSH", "no-push"},
	{"REGISTRY_MIRROR", "registry-mirror"},
	{"REGISTRY_MAP", "registry-map"},
}

// kanikoCredentialVar matches the maintained kaniko fork's registry
// credentials (KANIKO_<HOST>_USER / _PASSWORD), which the registry client
// reads.
var kanikoCredentialVar = regexp.MustCompile(`^KANIKO_.+_(USER|PASSWORD)$`)

// applyEnvironment sets the flags the command line did not set from
// KILN_* variables, else from kaniko's KANIKO_* ones, and logs each other
// KANIKO_* variable once, as kiln ignores it.
func applyEnvironment(fl *pflag.FlagSet, environ []string, log logrus.FieldLogger) error {
	env := map[string]string{}
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	known := map[string]bool{}
	for _, d := range envDefaults {
		known["KANIKO_"+d.name] = true
		name, value := "KILN_"+d.name, ""
		v, ok := env[name]
		if !ok {
			name = "KANIKO_" + d.name
			v, ok = env[name]
		}
		if !ok || fl.Changed(d.flag) {
			continue
		}
		value = v
		if err := setFromEnv(fl, d.flag, name, value); err != nil {
			return err
		}
		log.Infof("--%s from $%s", d.flag, name)
	}
	var ignored []string
	for k := range env {
		if strings.HasPrefix(k, "KANIKO_") && !known[k] && !kanikoCredentialVar.MatchString(k) {
			ignored = append(ignored, k)
		}
	}
	sort.Strings(ignored)
	for _, k := range ignored {
		log.Infof("Ignoring $%s: kiln does not use this kaniko variable", k)
	}
	return nil
}

// setFromEnv sets flag from the variable name's value; list flags take
// several values separated by ";" (or "," for mirrors).
func setFromEnv(fl *pflag.FlagSet, flag, name, value string) error {
	f := fl.Lookup(flag)
	var values []string
	switch f.Value.Type() {
	case "bool":
		b, err := strconv.ParseBool(strings.TrimSpace(value))
		if err != nil {
			return fmt.Errorf("invalid $%s %q: want true or false", name, value)
		}
		values = []string{strconv.FormatBool(b)}
	case "stringArray":
		sep := ";"
		if flag == "registry-mirror" && !strings.Contains(value, ";") {
			sep = ","
		}
		for _, v := range strings.Split(value, sep) {
			if v = strings.TrimSpace(v); v != "" {
				values = append(values, v)
			}
		}
	default:
		values = []string{value}
	}
	for _, v := range values {
		if err := fl.Set(flag, v); err != nil {
			return fmt.Errorf("invalid $%s %q: %w", name, value, err)
		}
	}
	return nil
}

// environ is the process environment (a variable for tests).
var environ = os.Environ
