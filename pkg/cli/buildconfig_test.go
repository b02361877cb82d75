package cli

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/sirupsen/logrus"
	"github.com/sirupsen/logrus/hooks/test"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/output"
	"github.com/kiln-build/kiln/pkg/sandbox"
)

// parseBuild parses a kiln build command line with env as the environment
// and returns its configuration and the log lines.
func parseBuild(t *testing.T, env []string, args ...string) (*buildConfig, []string, error) {
	t.Helper()
	cmd, f := buildCommand(&globalFlags{})
	if err := cmd.ParseFlags(args); err != nil {
		return nil, nil, err
	}
	log, hook := test.NewNullLogger()
	if err := rejectRefused(cmd.Flags()); err != nil {
		return nil, nil, err
	}
	if err := applyEnvironment(cmd.Flags(), env, log); err != nil {
		return nil, nil, err
	}
	cfg, err := f.config()
	var lines []string
	for _, e := range hook.AllEntries() {
		lines = append(lines, e.Message)
	}
	return cfg, lines, err
}

func TestBuildConfig(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1700000000")
	c, _, err := parseBuild(t, nil, "-c", "ctx", "-d", "reg.example.com/app:1", "--build-arg", "A=1", "--label", "l=v",
		"--reproducible", "--compression", "ZSTD", "--ignore-path", "var/lib/x/", "--custom-platform", "linux/arm64/v8",
		"--isolation", "chroot", "--annotation", "org.example=1", "--target", "t")
	if err != nil {
		t.Fatal(err)
	}
	if c.contextSpec != "ctx" || !reflect.DeepEqual(c.output.Destinations, []string{"reg.example.com/app:1"}) || c.output.NoPush {
		t.Errorf("context %q, output %+v", c.contextSpec, c.output)
	}
	if c.plan.BuildArgs["A"] != "1" || c.plan.Target != "t" || c.platform().Architecture != "arm64" || c.platform().Variant != "v8" {
		t.Errorf("plan options %+v", c.plan)
	}
	if c.epoch == nil || !c.epoch.Equal(time.Unix(1700000000, 0)) || c.compression != layer.Zstd || c.labels["l"] != "v" {
		t.Errorf("epoch %v, compression %v, labels %v", c.epoch, c.compression, c.labels)
	}
	// An annotation needs an OCI manifest.
	if c.format != output.FormatOCI || c.annotations["org.example"] != "1" {
		t.Errorf("format %q, annotations %v", c.format, c.annotations)
	}
	if c.isolation != sandbox.ModeChroot || !reflect.DeepEqual(c.snapshotIgnores(sandbox.ModeChroot), []string{"/var/lib/x"}) {
		t.Errorf("isolation %q, ignores %q", c.isolation, c.snapshotIgnores(sandbox.ModeChroot))
	}
	if got := c.snapshotIgnores(sandbox.ModeInPlace); !reflect.DeepEqual(got, []string{"/var/lib/x", "/var/run"}) {
		t.Errorf("in-place ignores %q", got)
	}

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{}, "no destination"},
		{[]string{"--no-push", "--image-format", "docker", "--compression", "zstd"}, "needs an OCI image"},
		{[]string{"--no-push", "--compression-level", "12"}, "--compression-level: invalid gzip compression level 12"},
		{[]string{"--no-push", "--image-format", "v2"}, `invalid --image-format "v2"`},
		{[]string{"--no-push", "--snapshot-mode", "fast"}, `invalid --snapshot-mode "fast"`},
		{[]string{"--no-push", "--jobs", "0"}, "invalid --jobs 0"},
		{[]string{"--no-push", "--skip-unused-stages=false"}, "--skip-unused-stages=false is not supported"},
		{[]string{"--no-push", "--isolation", "vm"}, `"vm"`},
		{[]string{"--no-push", "--annotation", "novalue"}, `invalid --annotation "novalue"`},
		{[]string{"-d", "bad ref with spaces"}, `"bad ref with spaces"`},
	} {
		if _, _, err := parseBuild(t, nil, bad.args...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: err = %v, want %q", bad.args, err, bad.want)
		}
	}
}

func TestKanikoSpellings(t *testing.T) {
	c, _, err := parseBuild(t, nil, "--no-push", "--customPlatform", "linux/s390x", "--tarPath", "out.tar", "-d", "app",
		"--snapshotMode", "redo", "--whitelist-var-run=false", "--kaniko-dir", "/k", "--preserve-context", "--cleanup")
	if err != nil {
		t.Fatal(err)
	}
	if c.platform().Architecture != "s390x" || c.output.TarPath != "out.tar" || c.ignoreVarRun || c.kilnDir != "/k" {
		t.Errorf("config %+v", c)
	}
	if len(c.notes) != 1 || !strings.Contains(c.notes[0], "--snapshot-mode=redo") {
		t.Errorf("notes %q", c.notes)
	}
	for _, args := range [][]string{{"-b", "bucket"}, {"--bucket=b"}, {"--force-build-metadata"}, {"--credential-helpers", "ecr-login"},
		{"--materialize"}, {"--pre-cleanup"}, {"--digest-file-format=json"}} {
		_, _, err := parseBuild(t, nil, append([]string{"--no-push"}, args...)...)
		if err == nil || !strings.Contains(err.Error(), "is a kaniko flag that kiln does not support") {
			t.Errorf("%q: err = %v", args, err)
		}
	}
}

func TestKanikoEnvironment(t *testing.T) {
	c, logs, err := parseBuild(t, []string{"KANIKO_NO_PUSH=true", "KANIKO_REGISTRY_MIRROR=m1.example.com;m2.example.com/hub",
		"KANIKO_REGISTRY_MAP=quay.io=q.example.com;ghcr.io=g.example.com", "KANIKO_DIR=/kaniko-work", "KANIKO_FOO=1",
		"KANIKO_HARBOR_EXAMPLE_COM_USER=robot", "KANIKO_HARBOR_EXAMPLE_COM_PASSWORD=pw", "PATH=/bin"})
	if err != nil {
		t.Fatal(err)
	}
	if !c.output.NoPush || c.kilnDir != "/kaniko-work" {
		t.Errorf("no-push %v, kiln dir %q", c.output.NoPush, c.kilnDir)
	}
	if want := []string{"m1.example.com", "m2.example.com/hub"}; !reflect.DeepEqual(c.flags.mirrors, want) {
		t.Errorf("mirrors %q", c.flags.mirrors)
	}
	if want := []string{"quay.io=q.example.com", "ghcr.io=g.example.com"}; !reflect.DeepEqual(c.flags.registryMaps, want) {
		t.Errorf("maps %q", c.flags.registryMaps)
	}
	all := strings.Join(logs, "\n")
	if !strings.Contains(all, "Ignoring $KANIKO_FOO") || strings.Contains(all, "KANIKO_HARBOR") || strings.Contains(all, "pw") {
		t.Errorf("logs:\n%s", all)
	}

	// The command line wins over the environment, and KILN_ over KANIKO_.
	c, _, err = parseBuild(t, []string{"KANIKO_NO_PUSH=true", "KANIKO_DIR=/a", "KILN_DIR=/b"}, "-d", "app", "--no-push=false")
	if err != nil {
		t.Fatal(err)
	}
	if c.output.NoPush || c.kilnDir != "/b" {
		t.Errorf("no-push %v, kiln dir %q", c.output.NoPush, c.kilnDir)
	}
	if _, _, err := parseBuild(t, []string{"KANIKO_NO_PUSH=yes please"}); err == nil || !strings.Contains(err.Error(), `invalid $KANIKO_NO_PUSH "yes please"`) {
		t.Errorf("bad boolean: %v", err)
	}
}

func TestBuildHelpListsCompatibilityFlags(t *testing.T) {
	root := NewRootCommand()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetArgs([]string{"build", "--help"})
	logrus.SetOutput(&out)
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	help := out.String()
	compat := strings.Index(help, "kaniko compatibility flags")
	if compat < 0 {
		t.Fatalf("no compatibility section:\n%s", help)
	}
	for _, f := range []string{"--customPlatform", "--tarPath", "--whitelist-var-run", "--bucket", "--preserve-context", "--snapshot-mode"} {
		if i := strings.Index(help, f); i < compat {
			t.Errorf("%s not in the compatibility section", f)
		}
	}
	if i := strings.Index(help, "--dryrun"); i < 0 || i > compat {
		t.Error("--dryrun is not among the main flags")
	}
}

func TestCacheConfig(t *testing.T) {
	for _, tc := range []struct {
		args            []string
		repo, layout    string
		run, copy, push bool
	}{
		{[]string{"-d", "harbor.example.com/team/app:1", "--cache"}, "harbor.example.com/team/app/cache", "", true, false, true},
		{[]string{"-d", "app:1", "--cache=true", "--cache-repo", "harbor.example.com/team/cache", "--cache-copy-layers", "--cache-run-layers=false", "--no-push-cache"},
			"harbor.example.com/team/cache", "", false, true, false},
		{[]string{"--no-push", "--cache", "--cache-repo", "oci:/var/cache/kiln"}, "", "/var/cache/kiln", true, false, true},
	} {
		c, _, err := parseBuild(t, nil, tc.args...)
		if err != nil {
			t.Errorf("%q: %v", tc.args, err)
			continue
		}
		got := c.cache
		if got == nil || got.repo != tc.repo || got.layoutDir != tc.layout || got.run != tc.run || got.copy != tc.copy || got.write != tc.push {
			t.Errorf("%q: %+v", tc.args, got)
		}
		if c.cacheTTL != 336*time.Hour {
			t.Errorf("%q: ttl %s", tc.args, c.cacheTTL)
		}
	}
	if c, _, err := parseBuild(t, nil, "-d", "app:1", "--cache-repo", "x/cache"); err != nil || c.cache != nil {
		t.Errorf("without --cache: %+v, %v", c, err)
	}
	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--no-push", "--cache"}, "--cache needs --cache-repo"},
		{[]string{"--no-push", "--cache", "--cache-repo", "oci:"}, `invalid --cache-repo "oci:"`},
		{[]string{"--no-push", "--cache", "--cache-repo", "Bad Repo"}, `invalid --cache-repo "Bad Repo"`},
		{[]string{"--no-push", "--cache-ttl", "-1h"}, "invalid --cache-ttl"},
	} {
		if _, _, err := parseBuild(t, nil, bad.args...); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: %v, want %q", bad.args, err, bad.want)
		}
	}
}
