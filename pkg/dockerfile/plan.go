package dockerfile

import (
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// scratch is the empty base image.
const scratch = "scratch"

// PlanOptions are the inputs of a build that shape the stage graph.
type PlanOptions struct {
	// BuildArgs are the --build-arg values, already resolved (a bare NAME
	// was taken from the environment by the CLI).
	BuildArgs map[string]string
	// Target names the stage to build; "" builds the last stage.
	Target string
	// TargetPlatform is the platform of the image being built; zero means
	// BuildPlatform.
	TargetPlatform v1.Platform
	// BuildPlatform is the platform kiln runs on; zero means the machine's.
	BuildPlatform v1.Platform
}

// Plan is what a build of one target runs: the stages it needs, their bases
// and the sources of their COPY --from and RUN --mount from= flags.
type Plan struct {
	Dockerfile *Dockerfile
	// Stages are the stages the target needs, in Dockerfile order, which puts
	// every stage after the stages it depends on.
	Stages []*Stage
	// Target is the stage whose result is the image; the last of Stages.
	Target *Stage
	// UnusedBuildArgs are the build arguments no ARG of the planned stages
	// (or before the first FROM) declares, sorted, for Docker's warning.
	UnusedBuildArgs []string

	buildArgs map[string]string
	global    *vars
	// declared holds the ARG names, expanded, of the planned stages and
	// before the first FROM, to report unused build arguments.
	declared map[string]bool
	// byName maps a lower-cased stage name to its last definition, which is
	// what --target and --from refer to.
	byName map[string]int
	// planned holds the Stage of each Dockerfile stage the target needs, by
	// index, and nil for the others.
	planned []*Stage
	// scopes holds each planned stage's scope at its end, to seed stages
	// based on it.
	scopes []*Scope
}

// Stage is a stage of a Plan.
type Stage struct {
	// Index is the stage's position in the Dockerfile, counted from 0.
	Index int
	// Name is the lower-cased name given with AS, or "".
	Name string
	// Base is the FROM argument expanded with the global scope: an image
	// reference, "scratch", or the name of the stage BaseStage.
	Base string
	// BaseStage is the earlier stage named by FROM, nil for an image base.
	BaseStage *Stage
	// Platform is the expanded FROM --platform value, "" if absent.
	Platform string
	// Commands are the stage's instructions as parsed (unexpanded); expand
	// each with Scope.ExpandCommand.
	Commands []instructions.Command
	// Line is the line of the FROM instruction.
	Line int
	// CopyFrom gives what each COPY --from of Commands names.
	CopyFrom map[*instructions.CopyCommand]Source
	// MountFrom gives, for each RUN of Commands with a --mount from=, what
	// each of its mounts names, in the order of instructions.GetMounts (a
	// zero Source for mounts without from=).
	MountFrom map[*instructions.RunCommand][]Source
	// Deps are the stages this stage needs (BaseStage, --from and mount
	// sources, including those of BaseStage's ONBUILD triggers), in order of
	// first use.
	Deps []*Stage

	def *instructions.Stage
}

// Source is what a COPY --from or a RUN --mount from= refers to: an earlier
// stage, or otherwise an image.
//
// It is resolved at plan time with the stage's ARGs and ENVs as the
// Dockerfile sets them. The environment of the base image is not known then
// and takes no part: a --from naming a variable that only the base image
// defines expands as if the variable were unset.
type Source struct {
	Stage *Stage
	Image string
}

// Plan resolves the stage graph for opts.Target and returns the stages it
// needs. Errors are *Error values naming the instruction concerned.
func (d *Dockerfile) Plan(opts PlanOptions) (*Plan, error) {
	opts.BuildPlatform = defaultPlatform(opts.BuildPlatform, hostPlatform)
	opts.TargetPlatform = defaultPlatform(opts.TargetPlatform, opts.BuildPlatform)
	p := &Plan{
		Dockerfile: d,
		buildArgs:  maps.Clone(opts.BuildArgs),
		byName:     map[string]int{},
		declared:   map[string]bool{},
		planned:    make([]*Stage, len(d.Stages)),
		scopes:     make([]*Scope, len(d.Stages)),
	}
	for i, st := range d.Stages {
		if st.Name != "" {
			p.byName[st.Name] = i
		}
	}
	target, err := p.targetIndex(opts.Target)
	if err != nil {
		return nil, err
	}
	if p.global, err = d.globalScope(opts, d.Stages[target].Name, p.declared); err != nil {
		return nil, err
	}
	if p.Target, err = p.plan(target); err != nil {
		return nil, err
	}
	for _, s := range p.planned {
		if s != nil {
			p.Stages = append(p.Stages, s)
		}
	}
	p.UnusedBuildArgs = p.unusedBuildArgs()
	return p, nil
}

func (p *Plan) targetIndex(target string) (int, error) {
	d := p.Dockerfile
	if target == "" {
		return len(d.Stages) - 1, nil
	}
	if i, ok := p.byName[strings.ToLower(target)]; ok {
		return i, nil
	}
	// A stage's position, as for COPY --from.
	if i, err := strconv.Atoi(target); err == nil && i >= 0 && i < len(d.Stages) {
		return i, nil
	}
	var names []string
	for _, st := range d.Stages {
		if st.Name != "" && !slices.Contains(names, strconv.Quote(st.Name)) {
			names = append(names, strconv.Quote(st.Name))
		}
	}
	if len(names) == 0 {
		return 0, &Error{File: d.Filename, Err: fmt.Errorf("target stage %q not found: no stage has a name (name one with FROM ... AS <name>)", target)}
	}
	return 0, &Error{File: d.Filename, Err: fmt.Errorf("target stage %q not found; the stages are %s", target, strings.Join(names, ", "))}
}

// plan resolves stage i and, first, every stage it needs.
func (p *Plan) plan(i int) (*Stage, error) {
	if s := p.planned[i]; s != nil {
		return s, nil
	}
	d := p.Dockerfile
	def := &d.Stages[i]
	s := &Stage{
		Index:     i,
		Name:      def.Name,
		Commands:  def.Commands,
		Line:      startLine(def.Location),
		CopyFrom:  map[*instructions.CopyCommand]Source{},
		MountFrom: map[*instructions.RunCommand][]Source{},
		def:       def,
	}
	lex := shell.NewLex(d.Escape)
	base, _, err := lex.ProcessWord(def.BaseName, p.global)
	if err != nil {
		return nil, d.StageError(s, err)
	}
	if base == "" {
		return nil, d.StageError(s, fmt.Errorf("the base image %q expands to an empty name", def.BaseName))
	}
	s.Base = base
	if def.Platform != "" {
		if s.Platform, _, err = lex.ProcessWord(def.Platform, p.global); err != nil {
			return nil, d.StageError(s, err)
		}
		if s.Platform == "" {
			return nil, d.StageError(s, fmt.Errorf("--platform=%s expands to an empty value", def.Platform))
		}
	}

	var sc *Scope
	if j := p.baseStageIndex(base, i); j >= 0 {
		bs, err := p.plan(j)
		if err != nil {
			return nil, err
		}
		s.BaseStage = bs
		s.addDep(bs)
		sc = p.scopes[j].Child(s)
		if err := p.planTriggers(s, sc); err != nil {
			return nil, err
		}
	} else {
		if base != scratch {
			if _, err := name.ParseReference(base); err != nil {
				return nil, d.StageError(s, fmt.Errorf("invalid base image reference %q: %w", base, err))
			}
		}
		sc = p.NewScope(s, nil)
	}
	for _, cmd := range s.Commands {
		if err := p.planCommand(s, sc, cmd, false); err != nil {
			return nil, err
		}
	}
	p.planned[i] = s
	p.scopes[i] = sc
	return s, nil
}

// baseStageIndex returns the stage a FROM value names, -1 for an image. As
// in BuildKit, only stages defined before this one count: "FROM node AS node"
// is the image node, and a later stage's name is an image name too.
func (p *Plan) baseStageIndex(base string, i int) int {
	base = strings.ToLower(base)
	for j := i - 1; j >= 0; j-- {
		if p.Dockerfile.Stages[j].Name == base {
			return j
		}
	}
	return -1
}

// planTriggers walks the ONBUILD triggers of s's base stage, which run at
// the start of s, for the stages their --from flags need. The executor runs
// them from the base stage's image config like any image's triggers.
func (p *Plan) planTriggers(s *Stage, sc *Scope) error {
	for _, cmd := range s.BaseStage.Commands {
		ob, ok := cmd.(*instructions.OnbuildCommand)
		if !ok {
			continue
		}
		trigger, err := sc.ParseTrigger(ob.Expression)
		if err != nil {
			return err
		}
		if err := p.planCommand(s, sc, trigger, true); err != nil {
			return err
		}
	}
	return nil
}

// planCommand follows cmd's effect on the scope and resolves its --from
// flags. ARG and ENV whose expansion fails here are skipped: they may need
// the base image's environment, and the executor reports the error if it
// persists.
func (p *Plan) planCommand(s *Stage, sc *Scope, cmd instructions.Command, trigger bool) error {
	d := p.Dockerfile
	switch c := cmd.(type) {
	case *instructions.ArgCommand:
		x, err := sc.ExpandCommand(c)
		if err != nil {
			return nil // see above
		}
		for _, a := range x.(*instructions.ArgCommand).Args {
			p.declared[a.Key] = true
			_, _ = sc.DeclareArg(a) // a failing ARG stays undeclared (see above)
		}
	case *instructions.EnvCommand:
		x, err := sc.ExpandCommand(c)
		if err != nil {
			return nil // see above
		}
		for _, kv := range x.(*instructions.EnvCommand).Env {
			sc.SetEnv(kv.Key, kv.Value)
		}
	case *instructions.CopyCommand:
		if c.From == "" {
			return nil
		}
		ref, err := sc.Expand(c.From)
		if err != nil {
			return d.CommandError(c, err)
		}
		src, err := p.resolve(s, ref, "--from="+c.From, true)
		if err != nil {
			return d.CommandError(c, err)
		}
		if !trigger {
			s.CopyFrom[c] = src
		}
	case *instructions.RunCommand:
		x, err := sc.ExpandCommand(c)
		if err != nil {
			return err
		}
		mounts := instructions.GetMounts(x.(*instructions.RunCommand))
		srcs := make([]Source, len(mounts))
		hasFrom := false
		for i, m := range mounts {
			if m.From == "" {
				continue
			}
			if srcs[i], err = p.resolve(s, m.From, "--mount from="+m.From, true); err != nil {
				return d.CommandError(c, err)
			}
			hasFrom = true
		}
		if hasFrom && !trigger {
			s.MountFrom[c] = srcs
		}
	}
	return nil
}

// ResolveSource resolves the --from value of an ONBUILD trigger of a base
// image, expanded by the executor, for stage s. The stages of the Dockerfile
// are resolved like at plan time; a stage the plan does not build cannot be
// named, since the plan is fixed once the build starts.
func (p *Plan) ResolveSource(s *Stage, ref string) (Source, error) {
	return p.resolve(s, ref, "--from="+ref, false)
}

// resolve finds what a --from value names for stage s: a stage by index or
// name (case-insensitive), which must come before s, or an image.
func (p *Plan) resolve(s *Stage, ref, flag string, planning bool) (Source, error) {
	if ref == "" {
		return Source{}, fmt.Errorf("%s expands to an empty value", flag)
	}
	j := -1
	if n, err := strconv.Atoi(ref); err == nil {
		if n < 0 || n >= len(p.Dockerfile.Stages) {
			return Source{}, fmt.Errorf("%s: invalid stage index %d: the Dockerfile has %d stages, counted from 0", flag, n, len(p.Dockerfile.Stages))
		}
		j = n
	} else if i, ok := p.byName[strings.ToLower(ref)]; ok {
		j = i
	}
	if j < 0 {
		if _, err := name.ParseReference(ref); err != nil {
			return Source{}, fmt.Errorf("%s: %q is neither a stage nor a valid image reference: %w", flag, ref, err)
		}
		return Source{Image: ref}, nil
	}
	switch {
	case j == s.Index:
		return Source{}, fmt.Errorf("%s: a stage cannot use itself", flag)
	case j > s.Index:
		return Source{}, fmt.Errorf("%s: stage %s is defined on line %d, after this stage: a stage can only use earlier stages", flag, describeStage(&p.Dockerfile.Stages[j], j), startLine(p.Dockerfile.Stages[j].Location))
	}
	if !planning {
		if p.planned[j] == nil {
			return Source{}, fmt.Errorf("%s: stage %s is not part of this build: the target does not depend on it", flag, describeStage(&p.Dockerfile.Stages[j], j))
		}
		return Source{Stage: p.planned[j]}, nil
	}
	dep, err := p.plan(j)
	if err != nil {
		return Source{}, err
	}
	s.addDep(dep)
	return Source{Stage: dep}, nil
}

func describeStage(st *instructions.Stage, i int) string {
	if st.Name != "" {
		return strconv.Quote(st.Name)
	}
	return strconv.Itoa(i)
}

func (s *Stage) addDep(dep *Stage) {
	if !slices.Contains(s.Deps, dep) {
		s.Deps = append(s.Deps, dep)
	}
}

func (p *Plan) unusedBuildArgs() []string {
	var unused []string
	for k := range p.buildArgs {
		if !p.declared[k] && !isBuiltinArg(k) {
			unused = append(unused, k)
		}
	}
	slices.Sort(unused)
	return unused
}
