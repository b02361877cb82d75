package dockerfile

import (
	"runtime"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// vars is an ordered set of variables; it is the shell.EnvGetter of the
// global scope (FROM lines).
type vars struct {
	keys   []string
	values map[string]string
}

func (v *vars) Get(key string) (string, bool) {
	val, ok := v.values[key]
	return val, ok
}

func (v *vars) Keys() []string { return v.keys }

func (v *vars) set(key, value string) {
	if v.values == nil {
		v.values = map[string]string{}
	}
	if _, ok := v.values[key]; !ok {
		v.keys = append(v.keys, key)
	}
	v.values[key] = value
}

// platformArgs are the ARGs Docker predefines in the global scope; a stage
// sees them once it declares them with "ARG NAME".
func platformArgs(build, target v1.Platform, targetStage string) [][2]string {
	if targetStage == "" {
		targetStage = "default"
	}
	return [][2]string{
		{"BUILDPLATFORM", formatPlatform(build)},
		{"BUILDOS", build.OS},
		{"BUILDOSVERSION", build.OSVersion},
		{"BUILDARCH", build.Architecture},
		{"BUILDVARIANT", build.Variant},
		{"TARGETPLATFORM", formatPlatform(target)},
		{"TARGETOS", target.OS},
		{"TARGETOSVERSION", target.OSVersion},
		{"TARGETARCH", target.Architecture},
		{"TARGETVARIANT", target.Variant},
		{"TARGETSTAGE", targetStage},
	}
}

// formatPlatform formats like BuildKit: "linux/arm/v7", no OS version.
func formatPlatform(p v1.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// defaultPlatform fills a zero platform: the build platform defaults to the
// machine kiln runs on, the target platform to the build platform.
func defaultPlatform(p, fallback v1.Platform) v1.Platform {
	if p.OS != "" || p.Architecture != "" {
		return p
	}
	return fallback
}

var hostPlatform = v1.Platform{OS: runtime.GOOS, Architecture: runtime.GOARCH}

// globalScope computes the variables of FROM lines: the predefined platform
// ARGs (a build argument may override them), then the ARGs before the first
// FROM in order, each default expanded with what precedes it. The names of
// an ARG instruction are expanded first, with what precedes the instruction,
// as in a stage (see Scope.expandArgNames); they are added to declared.
func (d *Dockerfile) globalScope(opts PlanOptions, targetStage string, declared map[string]bool) (*vars, error) {
	g := &vars{}
	for _, kv := range platformArgs(opts.BuildPlatform, opts.TargetPlatform, targetStage) {
		v := kv[1]
		if ov, ok := opts.BuildArgs[kv[0]]; ok {
			v = ov
		}
		g.set(kv[0], v)
	}
	lex := shell.NewLex(d.Escape)
	for i := range d.MetaArgs {
		cmd := &d.MetaArgs[i]
		keys := make([]string, len(cmd.Args))
		for j, a := range cmd.Args {
			key, _, err := lex.ProcessWord(a.Key, g)
			if err == nil {
				err = checkArgName(a.Key, key)
			}
			if err != nil {
				return nil, d.CommandError(cmd, err)
			}
			keys[j] = key
		}
		for j, a := range cmd.Args {
			a.Key = keys[j]
			declared[a.Key] = true
			if v, ok := opts.BuildArgs[a.Key]; ok {
				g.set(a.Key, v)
				continue
			}
			if a.Value == nil {
				continue
			}
			v, _, err := lex.ProcessWord(*a.Value, g)
			if err != nil {
				return nil, d.CommandError(cmd, err)
			}
			g.set(a.Key, v)
		}
	}
	return g, nil
}

// proxyArgs are the build arguments Docker passes to RUN without an ARG
// declaration. Each pair names both spellings; a value given for one
// spelling serves the other too, as in BuildKit.
var proxyArgs = [][2]string{
	{"HTTP_PROXY", "http_proxy"},
	{"HTTPS_PROXY", "https_proxy"},
	{"FTP_PROXY", "ftp_proxy"},
	{"NO_PROXY", "no_proxy"},
	{"ALL_PROXY", "all_proxy"},
}

// isBuiltinArg reports whether a build argument is used without an ARG
// declaration, so it is never reported as unused.
func isBuiltinArg(key string) bool {
	for _, p := range proxyArgs {
		if key == p[0] || key == p[1] {
			return true
		}
	}
	for _, kv := range platformArgs(v1.Platform{}, v1.Platform{}, "") {
		if key == kv[0] {
			return true
		}
	}
	return false
}
