package deploy_test

import (
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"
	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"

	"github.com/kiln-build/kiln/pkg/cli"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/logging"
	"github.com/kiln-build/kiln/pkg/output"
	"github.com/kiln-build/kiln/pkg/registry"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// kilnBinaries are the names kiln is run by in deploy material and the
// docs; true marks kaniko's name, "executor", whose arguments are those of
// `kiln build`.
var kilnBinaries = map[string]bool{
	"/kiln/executor":   true,
	"/kaniko/executor": true,
	"executor":         true,
	"/kiln/kiln":       false,
	"kiln":             false,
	// Copied into a Jenkins agent for freestyle jobs
	// (jenkins/freestyle/pod.yaml).
	"/opt/kiln/kiln": false,
}

// isKilnProgram reports whether a command runs kiln. Any other program in
// the executor image's directories is a mistake (a misspelt /kiln/executor
// would otherwise go unchecked).
func isKilnProgram(prog string) (bool, error) {
	if _, ok := kilnBinaries[prog]; ok {
		return true, nil
	}
	if strings.HasPrefix(prog, "/kiln/") || strings.HasPrefix(prog, "/kaniko/") {
		return false, fmt.Errorf("%q is not a kiln binary (want one of %s)", prog, strings.Join(sortedKeys(kilnBinaries), ", "))
	}
	return false, nil
}

// commandChecker checks kiln command lines.
type commandChecker struct {
	// env holds the variables scripts may use; a variable it lacks is an
	// error, as under `set -u`: a typo, or a value the CI system does not
	// provide.
	env expand.Environ
	// explicitRefs requires image references to name their registry and a
	// tag or digest, as deploy material must; docs examples may be short.
	explicitRefs bool
}

// withRule is c for the material of a file with rule r (no rule changes
// what kiln command lines may say today).
func (c commandChecker) withRule(fileRule) commandChecker { return c }

// deployChecker checks deploy material, whose scripts see exactly env.
func deployChecker(env map[string]string) commandChecker {
	return commandChecker{env: mapEnviron(env, false), explicitRefs: true}
}

// docsChecker checks examples, where any variable stands for some value.
func docsChecker() commandChecker {
	return commandChecker{env: mapEnviron(nil, true)}
}

// mapEnviron is an expand.Environ of vars; with anyVar, a variable vars
// lacks is set to "value" (but IFS, which the shell reads to split words).
func mapEnviron(vars map[string]string, anyVar bool) expand.Environ {
	return lookupEnviron(func(name string) (string, bool) {
		if v, ok := vars[name]; ok {
			return v, true
		}
		return "value", anyVar && name != "IFS"
	})
}

// check parses one kiln command line (argv[0] is the binary) with kiln's
// own command tree, without running it: an unknown command, flag or
// argument count fails, as do the values kiln checks before a build.
func (c commandChecker) check(argv []string) error {
	args := argv[1:]
	if kilnBinaries[argv[0]] && (len(args) == 0 || (args[0] != "version" && args[0] != "--version")) {
		args = append([]string{"build"}, args...)
	}
	root := cli.NewRootCommand()
	if len(args) == 1 && args[0] == "--version" {
		return nil // kiln --version, cobra's flag of the root command
	}
	cmd, rest, err := root.Find(args)
	if err != nil {
		return err
	}
	if !cmd.Runnable() {
		return fmt.Errorf("%q is not a command: give one of its subcommands", cmd.CommandPath())
	}
	if err := cmd.ParseFlags(rest); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	if err := cmd.ValidateArgs(cmd.Flags().Args()); err != nil {
		return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
	}
	// Hidden flags are kaniko's aliases (use kiln's names) and kaniko flags
	// kiln does not support yet (which fail the build).
	var hidden []string
	cmd.Flags().Visit(func(f *pflag.Flag) {
		if f.Hidden {
			hidden = append(hidden, "--"+f.Name)
		}
	})
	if len(hidden) > 0 {
		return fmt.Errorf("%s: hidden flags %s: kiln rejects them or keeps them for kaniko compatibility only", cmd.CommandPath(), strings.Join(hidden, ", "))
	}
	if err := checkGlobalValues(cmd.Flags()); err != nil {
		return err
	}
	switch {
	case cmd.Name() == "build":
		if err := checkCacheValues(cmd.Flags()); err != nil {
			return err
		}
		return c.checkBuildValues(cmd.Flags())
	case cmd.Parent() != nil && cmd.Parent().Name() == "manifest":
		// Every argument of a manifest command is an image reference.
		for _, ref := range cmd.Flags().Args() {
			if err := c.checkRef(ref); err != nil {
				return fmt.Errorf("%s: %w", cmd.CommandPath(), err)
			}
		}
	}
	return nil
}

// checkRef checks an image reference.
func (c commandChecker) checkRef(ref string) error {
	opt := name.WeakValidation
	if c.explicitRefs {
		opt = name.StrictValidation
	}
	if _, err := name.ParseReference(ref, opt); err != nil {
		if c.explicitRefs {
			return fmt.Errorf("%q: %w (name the registry and a tag or digest)", ref, err)
		}
		return fmt.Errorf("%q: %w", ref, err)
	}
	return nil
}

// checkCacheValues checks the values of the cache flags given, as material
// for every cluster must have them: absolute paths, a repository without a
// tag.
func checkCacheValues(fl *pflag.FlagSet) error {
	var errs []error
	fl.Visit(func(f *pflag.Flag) {
		v := f.Value.String()
		switch f.Name {
		case "cache", "cache-copy-layers", "cache-run-layers":
			if _, err := strconv.ParseBool(v); err != nil {
				errs = append(errs, fmt.Errorf("--%s %q: want true or false", f.Name, v))
			}
		case "cache-ttl":
			if d, err := time.ParseDuration(v); err != nil || d <= 0 {
				errs = append(errs, fmt.Errorf("--cache-ttl %q: want a duration such as 168h", v))
			}
		case "cache-dir":
			if !path.IsAbs(v) {
				errs = append(errs, fmt.Errorf("--cache-dir %q: want an absolute path", v))
			}
		case "cache-repo":
			if dir, ok := strings.CutPrefix(v, "oci:"); ok {
				if !path.IsAbs(dir) {
					errs = append(errs, fmt.Errorf("--cache-repo %q: want oci:/ABSOLUTE/PATH", v))
				}
			} else if _, err := name.NewRepository(v, name.StrictValidation); err != nil {
				errs = append(errs, fmt.Errorf("--cache-repo %q: want a repository (REGISTRY/PATH, no tag) or oci:/PATH", v))
			}
		}
	})
	return errors.Join(errs...)
}

// checkGlobalValues checks the logging flags every command has.
func checkGlobalValues(fl *pflag.FlagSet) error {
	level, _ := fl.GetString("verbosity")
	format, _ := fl.GetString("log-format")
	return logging.Configure(logrus.New(), io.Discard, level, format, false)
}

// checkBuildValues checks the values of `kiln build` flags that kiln
// checks before building.
func (c commandChecker) checkBuildValues(fl *pflag.FlagSet) error {
	str := func(n string) string { v, _ := fl.GetString(n); return v }
	strs := func(n string) []string { v, _ := fl.GetStringArray(n); return v }
	noPush, _ := fl.GetBool("no-push")
	spec := output.Spec{
		Destinations: strs("destination"),
		NoPush:       noPush,
		TarPath:      str("tar-path"),
		OCILayout:    str("oci-layout-path"),
	}
	if err := spec.Validate(); err != nil {
		return err
	}
	for _, d := range spec.Destinations {
		if err := c.checkRef(d); err != nil {
			return fmt.Errorf("--destination %w", err)
		}
	}
	if scheme, _, ok := strings.Cut(str("context"), "://"); ok {
		switch scheme {
		case "dir", "tar", "git", "http", "https":
		default:
			return fmt.Errorf("--context %q: unknown scheme %q", str("context"), scheme)
		}
	}
	if _, err := sandbox.ParseMode(str("isolation")); err != nil {
		return err
	}
	if _, err := layer.ParseCompression(str("compression")); err != nil {
		return err
	}
	if p := str("custom-platform"); p != "" {
		if pl, err := v1.ParsePlatform(p); err != nil || pl.OS == "" || pl.Architecture == "" {
			return fmt.Errorf("--custom-platform %q: want OS/ARCH[/VARIANT]", p)
		}
	}
	for _, flag := range []string{"label", "registry-certificate"} {
		for _, kv := range strs(flag) {
			if k, v, ok := strings.Cut(kv, "="); !ok || k == "" || v == "" {
				return fmt.Errorf("--%s %q: want KEY=VALUE", flag, kv)
			}
		}
	}
	for _, a := range strs("build-arg") {
		if strings.HasPrefix(a, "=") || a == "" {
			return fmt.Errorf("--build-arg %q: want NAME=VALUE or NAME", a)
		}
	}
	return nil
}

// commands returns the kiln command lines of a POSIX shell script (busybox
// sh runs them), each expanded in c.env.
func (c commandChecker) commands(script string) ([][]string, error) {
	file, err := syntax.NewParser(syntax.Variant(syntax.LangPOSIX)).Parse(strings.NewReader(script), "")
	if err != nil {
		return nil, err
	}
	cfg := &expand.Config{Env: c.env, NoUnset: true}
	var cmds [][]string
	var errs []error
	syntax.Walk(file, func(n syntax.Node) bool {
		call, ok := n.(*syntax.CallExpr)
		if !ok || len(call.Args) == 0 {
			return true
		}
		prog, err := expand.Literal(cfg, call.Args[0])
		if err != nil {
			// Only kiln's command lines are expanded; their program
			// names are literal.
			return true
		}
		isKiln, err := isKilnProgram(prog)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", call.Pos().Line(), err))
		}
		if !isKiln {
			return true
		}
		argv, err := expand.Fields(cfg, call.Args...)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %w", call.Pos().Line(), err))
			return true
		}
		cmds = append(cmds, argv)
		return true
	})
	return cmds, errors.Join(errs...)
}

// checkScript checks every kiln command line of a shell script and returns
// how many there were.
func (c commandChecker) checkScript(t *testing.T, where, script string) int {
	t.Helper()
	cmds, err := c.commands(script)
	if err != nil {
		t.Errorf("%s: %v", where, err)
	}
	for _, argv := range cmds {
		if err := c.check(argv); err != nil {
			t.Errorf("%s: %q: %v", where, strings.Join(argv, " "), err)
		}
	}
	return len(cmds)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// TestCommandChecks shows that the checks the other tests rely on reject
// what they must: each bad line here is a mistake deploy material could
// make.
func TestCommandChecks(t *testing.T) {
	env := map[string]string{"IMAGE": "harbor.example.com/team/app", "TAG": "1.0", "EMPTY": "", "PWD": "/workspace"}
	c := deployChecker(env)
	good := []string{
		`/kiln/executor --context "dir://$PWD" --destination "$IMAGE:$TAG" $EMPTY`,
		`/kaniko/executor -c /workspace -f Dockerfile -d "$IMAGE:$TAG" --build-arg A=1 --label a=b`,
		`/kiln/kiln build --no-push --tar-path /tmp/image.tar --destination "$IMAGE:$TAG" --log-format json`,
		`kiln --verbosity debug build --destination "$IMAGE@sha256:` + strings.Repeat("a", 64) + `" --isolation in-place`,
		`/kiln/executor version`,
		`/kiln/executor --destination "$IMAGE:$TAG" --cache=true --cache-repo="$IMAGE/cache"`,
		`/kiln/kiln manifest push-index "$IMAGE:$TAG" "$IMAGE:$TAG-amd64" "$IMAGE:$TAG-arm64"`,
	}
	for _, script := range good {
		cmds, err := c.commands(script)
		if err != nil || len(cmds) != 1 {
			t.Errorf("%s: %d commands, %v", script, len(cmds), err)
			continue
		}
		if err := c.check(cmds[0]); err != nil {
			t.Errorf("%s: %v", script, err)
		}
	}
	bad := []string{
		`/kiln/executor --destination "$IMAGE:$TAG" --destinaton "$IMAGE:latest"`, // misspelt flag
		`/kiln/executor --destination "$IMAGE:$TAG" --cache=yes`,                  // not a boolean
		`/kiln/executor --destination "$IMAGE:$TAG" --kaniko-dir /tmp`,            // kaniko alias
		`/kiln/executor --destination "$IMAGE"`,                                   // no tag
		`/kiln/executor --destination "$IMAGE:$TAG:latest"`,                       // not a reference
		`/kiln/executor --context "$PWD"`,                                         // nowhere to put the image
		`/kiln/executor --destination "$IMAGE:$TAG" --context s3://bucket/ctx.tar`,
		`/kiln/executor --destination "$IMAGE:$TAG" --isolation chroot-ish`,
		`/kiln/executor --destination "$IMAGE:$TAG" --compression lz4`,
		`/kiln/executor --destination "$IMAGE:$TAG" --custom-platform amd64`,
		`/kiln/executor --destination "$IMAGE:$TAG" --label novalue`,
		`/kiln/executor --destination "$IMAGE:$TAG" --log-format yaml`,
		`/kiln/executor --destination "$IMAGE:$TAG" Dockerfile`, // stray argument
		`/kiln/kiln biuld --destination "$IMAGE:$TAG"`,          // unknown command
		`/kiln/kiln`,
		`/kiln/kiln manifest push-index "$IMAGE:$TAG"`,          // no source
		`/kiln/kiln manifest push-index "$IMAGE:$TAG" "$IMAGE"`, // source without tag
		`/kiln/kiln manifest`,                                   // not a command by itself
	}
	for _, script := range bad {
		cmds, err := c.commands(script)
		if err != nil || len(cmds) != 1 {
			t.Errorf("%s: %d commands, %v", script, len(cmds), err)
			continue
		}
		if err := c.check(cmds[0]); err == nil {
			t.Errorf("%s: accepted", script)
		} else {
			t.Logf("%s: %v", script, err)
		}
	}
	for _, script := range []string{
		`/kiln/executor --destination "$IMAGE:$TGA"`, // undefined variable
		`/kiln/exectuor --destination "$IMAGE:$TAG"`, // misspelt binary
		`/kiln/executor --destination "$(cat tag)"`,  // hides the value
	} {
		if _, err := c.commands(script); err == nil {
			t.Errorf("%s: no error", script)
		} else {
			t.Logf("%s: %v", script, err)
		}
	}
	cmds, err := c.commands("set -e\nif [ -n \"$TAG\" ]; then\n  echo x | /kiln/executor -d \"$IMAGE:$TAG\"\nfi\nkubectl get pods\n")
	if err != nil || len(cmds) != 1 {
		t.Errorf("nested command: %d commands, %v", len(cmds), err)
	}
	// Docs examples may use short names and any variable; deploy material
	// may not.
	short := `kiln build --no-push -d app:dev --secret id=npmrc,src=$HOME/.npmrc`
	docs := docsChecker()
	if cmds, err := docs.commands(short); err != nil || len(cmds) != 1 || docs.check(cmds[0]) != nil {
		t.Errorf("docs: %s: rejected (%v)", short, err)
	}
	if cmds, err := c.commands(`kiln build --no-push -d app:dev`); err != nil || len(cmds) != 1 || c.check(cmds[0]) == nil {
		t.Errorf("deploy: a destination without registry: accepted (%v)", err)
	}
}

// TestCacheFlagValues: the cache flags' values are checked in deploy
// material beyond what kiln's parser checks.
func TestCacheFlagValues(t *testing.T) {
	c := deployChecker(nil)
	good := []string{
		"--cache=true --cache-repo=oci:/cache/layers --cache-ttl=168h --kiln-dir=/kiln-work",
		"--cache --cache-repo=harbor.example.com/team/cache --cache-copy-layers=true --cache-dir=/cache/base",
	}
	bad := []string{
		"--cache=yes",
		"--cache-repo=oci:cache/layers",
		"--cache-repo=harbor.example.com/team/cache:latest",
		"--cache-repo=cache",
		"--cache-ttl=1w",
		"--cache-dir=cache",
		"--cache-mode=max",
	}
	argv := func(flags string) []string {
		return append([]string{"/kiln/executor", "--destination=harbor.example.com/team/app:1"}, strings.Fields(flags)...)
	}
	for _, flags := range good {
		if err := c.check(argv(flags)); err != nil {
			t.Errorf("%s: %v", flags, err)
		}
	}
	for _, flags := range bad {
		if err := c.check(argv(flags)); err == nil {
			t.Errorf("%s: accepted", flags)
		}
	}
}

// pushLogins parses a script's kiln command lines in order and returns an
// error for each command that pushes to a registry no earlier
// `kiln login` of the script logged in to.
func pushLogins(cmds [][]string) error {
	loggedIn := map[string]bool{}
	var errs []error
	for _, argv := range cmds {
		args := argv[1:]
		if kilnBinaries[argv[0]] && (len(args) == 0 || args[0] != "version") {
			args = append([]string{"build"}, args...)
		}
		cmd, rest, err := cli.NewRootCommand().Find(args)
		if err != nil {
			return err
		}
		if err := cmd.ParseFlags(rest); err != nil {
			return err
		}
		fl := cmd.Flags()
		var pushes []string
		switch {
		case cmd.Name() == "login":
			region, _ := fl.GetString("swr-region")
			var host string
			if region != "" {
				ak, _ := fl.GetString("ak")
				if host, _, err = registry.SWRLogin(region, ak, "sk"); err != nil {
					errs = append(errs, fmt.Errorf("kiln login --swr-region %q: %w", region, err))
				}
			}
			if fl.NArg() == 1 {
				host = fl.Arg(0)
			}
			loggedIn[host] = true
		case cmd.Name() == "build":
			if noPush, _ := fl.GetBool("no-push"); !noPush {
				pushes, _ = fl.GetStringArray("destination")
			}
		case cmd.Parent() != nil && cmd.Parent().Name() == "manifest" && cmd.Name() != "annotate":
			pushes = fl.Args()
		}
		for _, p := range pushes {
			ref, err := name.ParseReference(p)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			if host := ref.Context().RegistryStr(); !loggedIn[host] {
				errs = append(errs, fmt.Errorf("%s: %q is on %q, which no earlier kiln login logged in to (logged in: %v)", cmd.CommandPath(), p, host, sortedKeys(loggedIn)))
			}
		}
	}
	return errors.Join(errs...)
}

func TestPushLogins(t *testing.T) {
	c := deployChecker(map[string]string{"AK": "HPUAEXAMPLE", "IMAGE": "swr.cn-north-4.myhuaweicloud.com/team/app"})
	for script, ok := range map[string]bool{
		`printf x | kiln login --swr-region cn-north-4 --ak "$AK" --password-stdin
kiln build -d "$IMAGE:1-amd64"
kiln manifest push-index "$IMAGE:1" "$IMAGE:1-amd64"`: true,
		`kiln build -d "$IMAGE:1"
printf x | kiln login --swr-region cn-north-4 --ak "$AK" --password-stdin`: false,
		`printf x | kiln login --swr-region cn-south-1 --ak "$AK" --password-stdin
kiln build -d "$IMAGE:1"`: false,
		`printf x | kiln login harbor.example.com -u 'robot$team+ci' --password-stdin
kiln build -d harbor.example.com/team/app:1 --no-push
kiln manifest push-index "$IMAGE:1" "$IMAGE:1-amd64"`: false,
	} {
		cmds, err := c.commands(script)
		if err != nil {
			t.Fatal(err)
		}
		if err := pushLogins(cmds); (err == nil) != ok {
			t.Errorf("%s: %v", script, err)
		}
	}
}
