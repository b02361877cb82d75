package executor

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"

	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/userdb"
)

// runPlan is what a RUN will do, computed from the instruction and the
// stage's state without touching the disk: tests check it without root.
type runPlan struct {
	// Args is the command line. With Script set, Args[0] is the script's
	// path, which acquisition may move.
	Args []string
	Env  []string
	Dir  string
	// User is the USER spec; identify resolves it to UID, GID and Groups.
	User    string
	UID     uint32
	GID     uint32
	Groups  []uint32
	Network string // sandbox.Network*
	Mounts  []mountSpec
	// Script is a here-document with a shebang, run as an executable at
	// /dev/pipes/NAME as BuildKit does.
	Script *script
	// History is the config history entry of the RUN.
	History string
}

// script is a here-document to run as an executable file.
type script struct {
	Name, Data string
}

// mountSpec is one --mount of a RUN, with its target made absolute and
// its from= resolved.
type mountSpec struct {
	*instructions.Mount
	Target string
	From   dockerfile.Source
	// AuthSock: the first ssh mount is the RUN's SSH_AUTH_SOCK.
	AuthSock bool
}

// scriptDir is where here-document scripts appear in the RUN's root.
const scriptDir = "/dev/pipes"

// planRun computes the plan of the RUN c (expanded; orig is the
// instruction as planned, which keys its mount sources). The user it runs
// as is set by identify, once the stage's tree is at hand.
func (s *stageBuilder) planRun(orig, c *instructions.RunCommand) (*runPlan, error) {
	if sec := instructions.GetSecurity(c); sec == instructions.SecurityInsecure {
		return nil, errors.New("RUN --security=insecure is not supported: kiln never runs build steps privileged")
	}
	p := &runPlan{Dir: s.workingDir(), History: s.runHistory(c), Env: s.scope.RunEnv(), User: s.userSpec()}
	var err error
	if p.Args, p.Script, err = s.runArgs(c); err != nil {
		return nil, err
	}
	switch instructions.GetNetwork(c) {
	case instructions.NetworkNone:
		p.Network = sandbox.NetworkNone
	case instructions.NetworkHost:
		p.Network = sandbox.NetworkHost
	default:
		p.Network = sandbox.NetworkDefault
	}
	if p.Mounts, err = s.planMounts(orig, c); err != nil {
		return nil, err
	}
	return p, nil
}

// identify looks the plan's USER up in fsys, the stage's tree, and
// completes the environment with its HOME.
func (p *runPlan) identify(fsys fsview.FS) error {
	usr, err := userdb.LookupUser(fsys, p.User)
	if err != nil {
		return fmt.Errorf("USER %q: %w", p.User, err)
	}
	p.UID, p.GID, p.Groups = uint32(usr.UID), uint32(usr.GID), supplementaryGroups(usr)
	p.Env = runEnv(p.Env, usr.Home)
	return nil
}

// planMounts resolves the targets and sources of the RUN's --mount flags.
func (s *stageBuilder) planMounts(orig, c *instructions.RunCommand) ([]mountSpec, error) {
	sources := s.stage.MountFrom[orig]
	var out []mountSpec
	sshMounts := 0
	for i, mnt := range instructions.GetMounts(c) {
		target := mnt.Target
		if target != "" && !path.IsAbs(target) {
			target = path.Join(s.workingDir(), target)
		}
		if target != "" {
			target = path.Clean(target)
		}
		var src dockerfile.Source
		if i < len(sources) {
			src = sources[i]
		}
		if src.Stage == nil && src.Image == "" && mnt.From != "" {
			// An ONBUILD trigger's mount: resolved now.
			var err error
			if src, err = s.b.plan.ResolveSource(s.stage, mnt.From); err != nil {
				return nil, err
			}
		}
		if mnt.Type == instructions.MountTypeSSH && target == "" {
			// BuildKit's default: one socket per ssh mount, numbered.
			target = fmt.Sprintf("/run/buildkit/ssh_agent.%d", sshMounts)
		}
		spec := mountSpec{Mount: mnt, Target: target, From: src}
		if mnt.Type == instructions.MountTypeSSH {
			spec.AuthSock = sshMounts == 0
			sshMounts++
		}
		out = append(out, spec)
	}
	return out, nil
}

// runArgs builds the command line, handling here-documents like BuildKit: a
// RUN that is a single here-document runs its content (through its shebang
// if it has one), other here-documents go to the shell with the command.
func (s *stageBuilder) runArgs(c *instructions.RunCommand) ([]string, *script, error) {
	args := append([]string(nil), c.CmdLine...)
	if len(c.Files) > 0 {
		if len(args) != 1 || !c.PrependShell {
			return nil, nil, fmt.Errorf("here-documents need the shell form of RUN")
		}
		if parser.MustParseHeredoc(args[0]) != nil {
			data := c.Files[0].Data
			if c.Files[0].Chomp {
				data = parser.ChompHeredocContent(data)
			}
			if strings.HasPrefix(data, "#!") {
				sc := &script{Name: c.Files[0].Name, Data: data}
				return []string{path.Join(scriptDir, sc.Name)}, sc, nil
			}
			args = []string{data}
		} else {
			full := args[0]
			for _, f := range c.Files {
				full += "\n" + f.Data + f.Name
			}
			args = []string{full}
		}
	}
	if c.PrependShell {
		return append(append([]string(nil), s.shell()...), strings.Join(args, " ")), nil, nil
	}
	return args, nil, nil
}

// runHistory is the history entry of a RUN, like BuildKit's: the build
// arguments in scope are listed by name only (values may be secrets).
func (s *stageBuilder) runHistory(c *instructions.RunCommand) string {
	var names []string
	for _, kv := range s.scope.DeclaredArgs() {
		k, _, _ := strings.Cut(kv, "=")
		names = append(names, k)
	}
	text := "RUN " + strings.Join(s.withShell(c.ShellDependantCmdLine), " ")
	if len(names) > 0 {
		text = fmt.Sprintf("RUN |%d %s %s", len(names), strings.Join(names, " "), strings.TrimPrefix(text, "RUN "))
	}
	return text
}

// userSpec is the USER a RUN runs as ("root" when unset).
func (s *stageBuilder) userSpec() string {
	if u := s.cfg.Config.User; u != "" {
		return u
	}
	return "0"
}

// runEnv completes a RUN's environment like Docker: PATH and HOME when the
// image and the Dockerfile set none.
func runEnv(env []string, home string) []string {
	has := func(k string) bool {
		for _, kv := range env {
			if strings.HasPrefix(kv, k+"=") {
				return true
			}
		}
		return false
	}
	out := append([]string(nil), env...)
	if !has("PATH") {
		out = append(out, "PATH="+defaultPath)
	}
	if !has("HOME") {
		if home == "" {
			home = "/"
		}
		out = append(out, "HOME="+home)
	}
	return out
}

// supplementaryGroups are the user's groups as initgroups sets them: the
// primary group, then the groups that list the user.
func supplementaryGroups(u *userdb.User) []uint32 {
	out := []uint32{uint32(u.GID)}
	for _, g := range u.Groups {
		if g != u.GID {
			out = append(out, uint32(g))
		}
	}
	return out
}

// workingDir is the stage's WORKDIR, "/" when unset.
func (s *stageBuilder) workingDir() string {
	if wd := s.cfg.Config.WorkingDir; wd != "" {
		return wd
	}
	return "/"
}
