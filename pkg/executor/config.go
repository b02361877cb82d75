package executor

import (
	"fmt"
	"path"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// defaultShell is what shell-form instructions use until SHELL changes it.
var defaultShell = []string{"/bin/sh", "-c"}

// applyMetadata applies an instruction that only changes the image config.
// It reports false for instructions it does not handle.
func (s *stageBuilder) applyMetadata(cmd instructions.Command) (bool, error) {
	cfg := &s.cfg.Config
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		for _, kv := range c.Env {
			cfg.Env = setEnv(cfg.Env, kv.Key, kv.Value)
			s.scope.SetEnv(kv.Key, kv.Value)
		}
	case *instructions.LabelCommand:
		if cfg.Labels == nil {
			cfg.Labels = map[string]string{}
		}
		for _, kv := range c.Labels {
			cfg.Labels[kv.Key] = kv.Value
		}
	case *instructions.CmdCommand:
		cfg.Cmd = s.withShell(c.ShellDependantCmdLine)
		s.cmdSet = true
	case *instructions.EntrypointCommand:
		cfg.Entrypoint = s.withShell(c.ShellDependantCmdLine)
		// An ENTRYPOINT resets a CMD inherited from the base image, not one
		// set earlier in this stage.
		if !s.cmdSet {
			cfg.Cmd = nil
		}
	case *instructions.ExposeCommand:
		ports, err := expandPorts(c.Ports)
		if err != nil {
			return true, err
		}
		if cfg.ExposedPorts == nil {
			cfg.ExposedPorts = map[string]struct{}{}
		}
		for _, p := range ports {
			cfg.ExposedPorts[p] = struct{}{}
		}
	case *instructions.VolumeCommand:
		if cfg.Volumes == nil {
			cfg.Volumes = map[string]struct{}{}
		}
		for _, v := range c.Volumes {
			if strings.TrimSpace(v) == "" {
				return true, fmt.Errorf("VOLUME specified can not be an empty string")
			}
			cfg.Volumes[v] = struct{}{}
		}
	case *instructions.UserCommand:
		cfg.User = c.User
	case *instructions.StopSignalCommand:
		if err := validateSignal(c.Signal); err != nil {
			return true, err
		}
		cfg.StopSignal = c.Signal
	case *instructions.HealthCheckCommand:
		h := c.Health
		cfg.Healthcheck = &healthConfig{
			HealthConfig: v1.HealthConfig{
				Test:        h.Test,
				Interval:    h.Interval,
				Timeout:     h.Timeout,
				StartPeriod: h.StartPeriod,
				Retries:     h.Retries,
			},
			StartInterval: h.StartInterval,
		}
	case *instructions.ShellCommand:
		cfg.Shell = append([]string(nil), c.Shell...)
	case *instructions.OnbuildCommand:
		cfg.OnBuild = append(cfg.OnBuild, c.Expression)
	case *instructions.MaintainerCommand:
		s.cfg.Author = c.Maintainer
	default:
		return false, nil
	}
	return true, nil
}

// shell returns the current SHELL.
func (s *stageBuilder) shell() []string {
	if len(s.cfg.Config.Shell) > 0 {
		return s.cfg.Config.Shell
	}
	return defaultShell
}

// withShell turns a shell-form command line into argv.
func (s *stageBuilder) withShell(c instructions.ShellDependantCmdLine) []string {
	if !c.PrependShell {
		return append([]string{}, c.CmdLine...)
	}
	return append(append([]string{}, s.shell()...), strings.Join(c.CmdLine, " "))
}

// setEnv sets key in a "K=V" list, keeping the position of an existing key.
func setEnv(env []string, key, value string) []string {
	for i, kv := range env {
		if k, _, _ := strings.Cut(kv, "="); k == key {
			out := append([]string(nil), env...)
			out[i] = key + "=" + value
			return out
		}
	}
	return append(append([]string(nil), env...), key+"="+value)
}

// expandPorts normalises EXPOSE arguments as BuildKit does: "80" becomes
// "80/tcp", a range "9000-9001" one entry per port, and a host part
// ("127.0.0.1:8080:80", which publishes nothing) is dropped. buildah keeps
// a range as one entry; Docker's builders never did.
func expandPorts(args []string) ([]string, error) {
	var out []string
	for _, a := range args {
		spec := a
		if i := strings.LastIndex(spec, ":"); i >= 0 {
			spec = spec[i+1:]
		}
		port, proto, _ := strings.Cut(spec, "/")
		proto = strings.ToLower(proto)
		if proto == "" {
			proto = "tcp"
		}
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, fmt.Errorf("invalid protocol %q in EXPOSE %q", proto, a)
		}
		lo, hi, isRange := strings.Cut(port, "-")
		first, err := strconv.ParseUint(lo, 10, 16)
		if err != nil {
			return nil, fmt.Errorf("invalid port %q in EXPOSE", a)
		}
		last := first
		if isRange && hi != lo {
			if last, err = strconv.ParseUint(hi, 10, 16); err != nil || last < first {
				return nil, fmt.Errorf("invalid port range %q in EXPOSE", a)
			}
		}
		for p := first; p <= last; p++ {
			out = append(out, strconv.FormatUint(p, 10)+"/"+proto)
		}
	}
	return out, nil
}

// validateSignal accepts what Docker accepts: a number, or a name with or
// without the SIG prefix (RTMIN+n included).
func validateSignal(sig string) error {
	if _, err := strconv.Atoi(sig); err == nil {
		return nil
	}
	name := strings.TrimPrefix(strings.ToUpper(sig), "SIG")
	if _, ok := signalNames[name]; ok || strings.HasPrefix(name, "RTMIN") || strings.HasPrefix(name, "RTMAX") {
		return nil
	}
	return fmt.Errorf("invalid STOPSIGNAL %q", sig)
}

var signalNames = map[string]struct{}{
	"ABRT": {}, "ALRM": {}, "BUS": {}, "CHLD": {}, "CLD": {}, "CONT": {}, "FPE": {}, "HUP": {}, "ILL": {},
	"INT": {}, "IO": {}, "IOT": {}, "KILL": {}, "PIPE": {}, "POLL": {}, "PROF": {}, "PWR": {}, "QUIT": {},
	"SEGV": {}, "STKFLT": {}, "STOP": {}, "SYS": {}, "TERM": {}, "TRAP": {}, "TSTP": {}, "TTIN": {},
	"TTOU": {}, "URG": {}, "USR1": {}, "USR2": {}, "VTALRM": {}, "WINCH": {}, "XCPU": {}, "XFSZ": {},
}

// resolveWorkdir returns WORKDIR p relative to the current working
// directory. An absolute path is kept as written ("/w/"), as BuildKit
// records it; only a relative one is joined (and cleaned).
func resolveWorkdir(current, p string) string {
	if path.IsAbs(p) {
		return p
	}
	if current == "" {
		current = "/"
	}
	return path.Join(current, p)
}
