package executor

import (
	"fmt"
	"sort"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// historyComment marks history entries written by kiln, as
// "buildkit.dockerfile.v0" marks BuildKit's.
const historyComment = "kiln.dockerfile.v0"

// createdBy renders an instruction for the image history the way Docker's
// BuildKit builder does: the instruction with its arguments, values as the
// builder used them. Build-arg values are never included: they may be
// secrets, and the history is public.
func createdBy(cmd instructions.Command) string {
	switch c := cmd.(type) {
	case *instructions.EnvCommand:
		return "ENV " + kvString(c.Env)
	case *instructions.LabelCommand:
		return "LABEL " + kvString(c.Labels)
	case *instructions.CmdCommand:
		return "CMD " + jsonArgs(c.CmdLine)
	case *instructions.EntrypointCommand:
		return "ENTRYPOINT " + jsonArgs(c.CmdLine)
	case *instructions.ExposeCommand:
		ports := append([]string(nil), c.Ports...)
		sort.Strings(ports)
		return "EXPOSE " + strings.Join(ports, " ")
	case *instructions.VolumeCommand:
		return "VOLUME " + jsonArgs(c.Volumes)
	case *instructions.UserCommand:
		return "USER " + c.User
	case *instructions.WorkdirCommand:
		return "WORKDIR " + c.Path
	case *instructions.StopSignalCommand:
		return "STOPSIGNAL " + c.Signal
	case *instructions.ShellCommand:
		return "SHELL " + jsonArgs(c.Shell)
	case *instructions.OnbuildCommand:
		return "ONBUILD " + c.Expression
	case *instructions.MaintainerCommand:
		return "MAINTAINER " + c.Maintainer
	case *instructions.ArgCommand:
		names := make([]string, len(c.Args))
		for i, a := range c.Args {
			names[i] = a.Key
		}
		return "ARG " + strings.Join(names, " ")
	case *instructions.HealthCheckCommand:
		return "HEALTHCHECK " + jsonArgs(c.Health.Test)
	}
	if s, ok := cmd.(fmt.Stringer); ok {
		return s.String()
	}
	return strings.ToUpper(cmd.Name())
}

func kvString(kvs instructions.KeyValuePairs) string {
	parts := make([]string, len(kvs))
	for i, kv := range kvs {
		parts[i] = kv.Key + "=" + kv.Value
	}
	return strings.Join(parts, " ")
}

func jsonArgs(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return "[" + strings.Join(quoted, " ") + "]"
}
