package dockerfile

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/frontend/dockerfile/shell"
)

// Scope holds the variables visible inside one stage: the environment (the
// base image's, then the stage's ENV instructions) and the ARGs declared so
// far. A Scope is used by one goroutine at a time.
type Scope struct {
	plan  *Plan
	stage *Stage
	lex   *shell.Lex
	// rawLex expands heredoc contents: quotes are kept, and BuildKit uses
	// the backslash there whatever the Dockerfile's escape character.
	rawLex *shell.Lex

	env      []string // "K=V", in Docker's order
	envIndex map[string]int
	args     []instructions.KeyValuePairOptional // declared ARGs, values resolved
	argIndex map[string]int

	// triggers keeps the syntax nodes of ONBUILD triggers parsed by
	// ParseTrigger, so that they can be expanded like instructions.
	triggers map[instructions.Command]*parser.Node
}

// NewScope starts the scope of stage s, whose base is an image with the
// environment imageEnv ("K=V"; nil for scratch). For a stage based on an
// earlier stage use Child on that stage's scope instead.
func (p *Plan) NewScope(s *Stage, imageEnv []string) *Scope {
	sc := p.newScope(s)
	for _, kv := range imageEnv {
		k, v, _ := strings.Cut(kv, "=")
		sc.SetEnv(k, v)
	}
	return sc
}

// Child starts the scope of stage s, whose FROM names the stage sc belongs
// to, as sc stands at the end of that stage. Like BuildKit, s inherits the
// environment and the declared ARGs of its base stage.
func (sc *Scope) Child(s *Stage) *Scope {
	c := sc.plan.newScope(s)
	c.env = slices.Clone(sc.env)
	c.envIndex = maps.Clone(sc.envIndex)
	c.args = slices.Clone(sc.args)
	c.argIndex = maps.Clone(sc.argIndex)
	return c
}

func (p *Plan) newScope(s *Stage) *Scope {
	raw := shell.NewLex('\\')
	raw.SkipProcessQuotes = true
	return &Scope{
		plan:     p,
		stage:    s,
		lex:      shell.NewLex(p.Dockerfile.Escape),
		rawLex:   raw,
		envIndex: map[string]int{},
		argIndex: map[string]int{},
	}
}

// Expand expands the variables of one word of an instruction, with
// BuildKit's shell lexer: $VAR, ${VAR}, ${VAR:-default}, ${VAR:+alt},
// ${VAR#pattern}, quotes and escapes.
func (sc *Scope) Expand(word string) (string, error) {
	s, _, err := sc.lex.ProcessWord(word, sc.vars())
	return s, err
}

// ExpandWords expands word and splits the result into words the way a
// shell would, honouring quotes (EXPOSE "80 443" gives two ports).
func (sc *Scope) ExpandWords(word string) ([]string, error) {
	return sc.lex.ProcessWords(word, sc.vars())
}

// ExpandCommand returns a copy of cmd with its variables expanded as Docker
// expands them when the instruction runs: the sources, destination, --chown,
// --chmod and --checksum of COPY and ADD and the contents of their unquoted
// heredocs, ENV and LABEL keys and values, EXPOSE, VOLUME, USER, WORKDIR,
// STOPSIGNAL, the --mount flags of RUN, and the names of ARG (all with the
// scope before the instruction; see expandArgNames). Other instructions come
// back as parsed: the shell expands RUN, CMD and ENTRYPOINT itself, and an
// ARG's value is resolved by DeclareArg. COPY --from is left as written; its resolution is
// Stage.CopyFrom (or Plan.ResolveSource for a trigger).
//
// cmd must be an instruction of the Dockerfile or a trigger returned by
// ParseTrigger; it is not modified. Errors are located *Error values.
func (sc *Scope) ExpandCommand(cmd instructions.Command) (instructions.Command, error) {
	d := sc.plan.Dockerfile
	node := d.nodes[cmd]
	if node == nil {
		node = sc.triggers[cmd]
	}
	if node == nil {
		return nil, d.CommandError(cmd, errors.New("cannot expand an instruction that is not part of this Dockerfile"))
	}
	// Parsing the node again gives a copy that shares nothing with cmd.
	fresh, err := parseCommand(node)
	if err != nil {
		return nil, d.CommandError(cmd, err)
	}
	switch c := fresh.(type) {
	case *instructions.ArgCommand:
		if err := sc.expandArgNames(c); err != nil {
			return nil, d.CommandError(cmd, err)
		}
		return c, nil
	case *instructions.ExposeCommand:
		var ports []string
		for _, p := range c.Ports {
			words, err := sc.ExpandWords(p)
			if err != nil {
				return nil, d.CommandError(cmd, err)
			}
			ports = append(ports, words...)
		}
		c.Ports = ports
		return c, nil
	}
	if ex, ok := fresh.(instructions.SupportsSingleWordExpansion); ok {
		if err := ex.Expand(sc.Expand); err != nil {
			return nil, d.CommandError(cmd, err)
		}
	}
	if ex, ok := fresh.(instructions.SupportsSingleWordExpansionRaw); ok {
		if err := ex.ExpandRaw(sc.expandRaw); err != nil {
			return nil, d.CommandError(cmd, err)
		}
	}
	return fresh, nil
}

// expandArgNames expands the names of an ARG instruction in place, each
// with the scope before the instruction: "ARG ${tool}_VERSION=1" declares
// GO_VERSION when tool is GO. The classic builder, kaniko, buildah and
// BuildKit's frontend up to 1.7 expand the name like the value; later
// BuildKit takes it literally, which declares a variable no instruction
// can name (a name with "$" cannot be referenced), so expanding breaks
// nothing that works there. A name that expands to nothing is an error.
func (sc *Scope) expandArgNames(c *instructions.ArgCommand) error {
	for i, a := range c.Args {
		key, err := sc.Expand(a.Key)
		if err != nil {
			return err
		}
		if err := checkArgName(a.Key, key); err != nil {
			return err
		}
		c.Args[i].Key = key
	}
	return nil
}

// checkArgName rejects an ARG name that expanded to nothing or to
// something that is not one name.
func checkArgName(written, key string) error {
	switch {
	case key == "":
		return fmt.Errorf("the ARG name %q expands to an empty name", written)
	case strings.ContainsAny(key, "= \t\n"):
		return fmt.Errorf("the ARG name %q expands to %q, which is not a name", written, key)
	}
	return nil
}

func (sc *Scope) expandRaw(word string) (string, error) {
	s, _, err := sc.rawLex.ProcessWord(word, sc.vars())
	return s, err
}

// DeclareArg declares an ARG in the stage and returns it with its value
// resolved: the build argument if one is given, else the default expanded
// in this scope, else the value of the ARG of the same name before the
// first FROM (or of a predefined ARG such as TARGETARCH), else none (a nil
// Value: the variable stays unset). Declaring again without a value keeps
// the value declared earlier. On error the scope is unchanged. arg is one
// of an instruction returned by ExpandCommand: its name is expanded, its
// value not.
func (sc *Scope) DeclareArg(arg instructions.KeyValuePairOptional) (instructions.KeyValuePairOptional, error) {
	switch v, given := sc.plan.buildArgs[arg.Key]; {
	case given:
		arg.Value = &v
	case arg.Value != nil:
		x, err := sc.Expand(*arg.Value)
		if err != nil {
			return arg, err
		}
		arg.Value = &x
	default:
		if g, ok := sc.plan.global.Get(arg.Key); ok {
			arg.Value = &g
		}
	}
	i, declared := sc.argIndex[arg.Key]
	switch {
	case !declared:
		sc.argIndex[arg.Key] = len(sc.args)
		sc.args = append(sc.args, arg)
	case arg.Value != nil:
		sc.args[i] = arg
	}
	return sc.args[sc.argIndex[arg.Key]], nil
}

// SetEnv sets an environment variable, as ENV does: replacing a variable
// keeps its position.
func (sc *Scope) SetEnv(key, value string) {
	kv := key + "=" + value
	if i, ok := sc.envIndex[key]; ok {
		sc.env[i] = kv
		return
	}
	sc.envIndex[key] = len(sc.env)
	sc.env = append(sc.env, kv)
}

// Env returns the environment for the image config: the base image's, then
// the stage's ENV instructions, "K=V".
func (sc *Scope) Env() []string {
	return slices.Clone(sc.env)
}

// RunEnv returns the environment of a RUN: Env, then the declared ARGs that
// have a value and no ENV of the same name, then the proxy variables given
// as build arguments (HTTP_PROXY, https_proxy, NO_PROXY, ...), which Docker
// passes without a declaration. Other undeclared build arguments are not
// visible.
func (sc *Scope) RunEnv() []string {
	out := slices.Clone(sc.env)
	for _, a := range sc.args {
		if _, shadowed := sc.envIndex[a.Key]; a.Value != nil && !shadowed {
			out = append(out, a.Key+"="+*a.Value)
		}
	}
	for _, pair := range proxyArgs {
		for i, key := range pair {
			if _, ok := sc.envIndex[key]; ok {
				continue
			}
			if _, ok := sc.argIndex[key]; ok {
				continue
			}
			v, ok := sc.plan.buildArgs[key]
			if !ok {
				v, ok = sc.plan.buildArgs[pair[1-i]]
			}
			if ok {
				out = append(out, key+"="+v)
			}
		}
	}
	return out
}

// DeclaredArgs returns the ARGs declared in the stage (and its base
// stages), "K=V" with the value a RUN sees ("K=" when unset), for the RUN
// history entry: "RUN |2 A=1 B=2 /bin/sh -c ...".
func (sc *Scope) DeclaredArgs() []string {
	out := make([]string, 0, len(sc.args))
	for _, a := range sc.args {
		v := a.ValueString()
		if i, ok := sc.envIndex[a.Key]; ok {
			_, v, _ = strings.Cut(sc.env[i], "=")
		}
		out = append(out, a.Key+"="+v)
	}
	return out
}

// ParseTrigger parses an ONBUILD trigger of the stage's base image (one
// entry of its config's OnBuild) into a command ExpandCommand accepts.
// Errors are located at the stage's FROM line, where Docker reports them.
func (sc *Scope) ParseTrigger(expr string) (instructions.Command, error) {
	cmd, node, err := parseTrigger(expr, sc.stage.Line)
	if err != nil {
		return nil, sc.plan.Dockerfile.StageError(sc.stage, fmt.Errorf("ONBUILD trigger %q: %w", expr, err))
	}
	if sc.triggers == nil {
		sc.triggers = map[instructions.Command]*parser.Node{}
	}
	sc.triggers[cmd] = node
	return cmd, nil
}

// vars is the environment instructions expand with: the ENV variables,
// then the declared ARGs with a value that no ENV shadows.
func (sc *Scope) vars() shell.EnvGetter { return (*scopeVars)(sc) }

type scopeVars Scope

func (v *scopeVars) Get(key string) (string, bool) {
	if i, ok := v.envIndex[key]; ok {
		_, val, _ := strings.Cut(v.env[i], "=")
		return val, true
	}
	if i, ok := v.argIndex[key]; ok && v.args[i].Value != nil {
		return *v.args[i].Value, true
	}
	return "", false
}

func (v *scopeVars) Keys() []string {
	keys := make([]string, 0, len(v.env)+len(v.args))
	for _, kv := range v.env {
		k, _, _ := strings.Cut(kv, "=")
		keys = append(keys, k)
	}
	for _, a := range v.args {
		if _, shadowed := v.envIndex[a.Key]; a.Value != nil && !shadowed {
			keys = append(keys, a.Key)
		}
	}
	return keys
}
