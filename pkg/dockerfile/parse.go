package dockerfile

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/buildkit/util/suggest"
)

// Dockerfile is a parsed Dockerfile. It is not changed by planning or
// expansion, so one Dockerfile may be planned for several platforms at once.
type Dockerfile struct {
	// Filename names the file in errors: "Dockerfile", "build/Containerfile".
	Filename string
	// Syntax is the value of a "# syntax=" parser directive, "" if none.
	Syntax string
	// Escape is the escape character: '\\', or '`' when set by "# escape=".
	Escape rune
	// MetaArgs are the ARG instructions before the first FROM.
	MetaArgs []instructions.ArgCommand
	// Stages are the build stages in Dockerfile order, commands unexpanded.
	Stages []instructions.Stage
	// Warnings are problems Docker tolerates, formatted like errors
	// ("Dockerfile:3: MaintainerDeprecated: ..."), for the build log.
	Warnings []string

	// nodes keeps the syntax node of every command so that expansion can
	// work on a fresh copy (RUN keeps its mounts in state shared by copies).
	nodes map[instructions.Command]*parser.Node
}

// MaxSize is the size of the largest Dockerfile kiln reads, 16 MiB: the
// largest message BuildKit's frontends exchange, so no Dockerfile that
// builds elsewhere is refused.
const MaxSize = 16 << 20

// maxLineLength is the longest line BuildKit's parser reads, in bytes
// without the newline: its line scanner holds at most 64 KiB with it.
const maxLineLength = bufio.MaxScanTokenSize - 1

// Parse reads and parses a Dockerfile. filename is used in messages only.
// Errors are *Error values naming the line and the offending source; a
// Dockerfile over MaxSize is refused before being read whole.
func Parse(r io.Reader, filename string) (*Dockerfile, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading Dockerfile %q: %w", filename, err)
	}
	if len(data) > MaxSize {
		return nil, &Error{File: filename, Err: fmt.Errorf("the Dockerfile is larger than %d MiB, the most kiln (like BuildKit) reads", MaxSize>>20)}
	}
	d := &Dockerfile{Filename: filename, nodes: map[instructions.Command]*parser.Node{}}
	if err := d.checkLineLengths(data); err != nil {
		return nil, err
	}
	lines := sourceLines(data)
	if err := d.readDirectives(lines); err != nil {
		return nil, err
	}
	res, err := parser.Parse(bytes.NewReader(data))
	if err != nil {
		return nil, d.locate(err, lines)
	}
	d.Escape = res.EscapeToken
	var ws warnings
	for _, w := range res.Warnings {
		ws.add(w.Location.Start.Line, linter.RuleNoEmptyContinuation.Name, linter.RuleNoEmptyContinuation.Format())
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		ws.add(startLine(loc), rule, msg)
	}})
	for _, node := range res.AST.Children {
		v, err := instructions.ParseInstructionWithLinter(node, lint)
		if err != nil {
			return nil, d.nodeError(node, err)
		}
		switch c := v.(type) {
		case *instructions.Stage:
			d.Stages = append(d.Stages, *c)
		case *instructions.ArgCommand:
			if len(d.Stages) == 0 {
				d.MetaArgs = append(d.MetaArgs, *c)
				continue
			}
			d.addCommand(c, node)
		case instructions.Command:
			if len(d.Stages) == 0 {
				return nil, d.nodeError(node, errors.New("instruction before the first FROM: a Dockerfile must start with FROM (only ARG may come before it)"))
			}
			d.addCommand(c, node)
		default:
			return nil, d.nodeError(node, fmt.Errorf("unexpected instruction type %T", v))
		}
	}
	if len(d.Stages) == 0 {
		return nil, &Error{File: filename, Err: errors.New("no FROM instruction: the Dockerfile has no stage to build")}
	}
	checkStageNames(d.Stages, &ws)
	d.Warnings = ws.format(filename)
	return d, nil
}

func (d *Dockerfile) addCommand(c instructions.Command, node *parser.Node) {
	d.Stages[len(d.Stages)-1].AddCommand(c)
	d.nodes[c] = node
}

// reservedStageNames cannot name a stage usefully: "scratch" is the empty
// image and "context" the build context in BuildKit's named contexts.
var reservedStageNames = map[string]bool{"scratch": true, "context": true}

// checkStageNames warns, as BuildKit does, about stage names that are used
// twice (references then go to the last definition) or reserved.
func checkStageNames(stages []instructions.Stage, ws *warnings) {
	seen := map[string]bool{}
	for _, st := range stages {
		if st.Name == "" {
			continue
		}
		line := startLine(st.Location)
		if reservedStageNames[st.Name] {
			ws.add(line, linter.RuleReservedStageName.Name, linter.RuleReservedStageName.Format(st.Name))
		}
		if seen[st.Name] {
			ws.add(line, linter.RuleDuplicateStageName.Name, linter.RuleDuplicateStageName.Format(st.Name))
		}
		seen[st.Name] = true
	}
}

// warnings collects the warnings of a parse, which come from the parser,
// the linter and checkStageNames in no particular order.
type warnings []warning

type warning struct {
	line      int
	rule, msg string
}

func (ws *warnings) add(line int, rule, msg string) {
	*ws = append(*ws, warning{line, rule, msg})
}

// format returns the warnings in line order, located like errors.
func (ws warnings) format(file string) []string {
	slices.SortStableFunc(ws, func(a, b warning) int { return a.line - b.line })
	out := make([]string, len(ws))
	for i, w := range ws {
		loc := file
		if w.line > 0 {
			loc = fmt.Sprintf("%s:%d", file, w.line)
		}
		out[i] = fmt.Sprintf("%s: %s: %s", loc, w.rule, w.msg)
	}
	return out
}

// readDirectives reads the parser directives at the top of the file, the
// way BuildKit's parser does, to record "# syntax=" and to report a bad
// directive at its own line (the parser reports it one line early).
func (d *Dockerfile) readDirectives(lines []string) error {
	var dp parser.DirectiveParser
	for i, line := range lines {
		text := strings.TrimLeftFunc(line, unicode.IsSpace)
		dir, err := dp.ParseLine([]byte(text))
		if err != nil {
			return &Error{File: d.Filename, Line: i + 1, Source: line, Err: err}
		}
		if dir == nil {
			return nil
		}
		switch dir.Name {
		case "syntax":
			d.Syntax = dir.Value
		case "escape":
			if dir.Value != "\\" && dir.Value != "`" {
				return &Error{File: d.Filename, Line: i + 1, Source: line, Err: fmt.Errorf("invalid escape character %q: it must be ` or \\", dir.Value)}
			}
		}
	}
	return nil
}

// locate turns an error of BuildKit's parser into an *Error.
func (d *Dockerfile) locate(err error, lines []string) error {
	e := &Error{File: d.Filename, Err: err}
	var le *parser.LocationError
	if errors.As(err, &le) && len(le.Locations) > 0 {
		e.Line = startLine(le.Locations[0])
	}
	if e.Line > 0 && e.Line <= len(lines) {
		e.Source = lines[e.Line-1]
	}
	return e
}

// checkLineLengths refuses a line the parser cannot read, at its own line:
// the parser's scanner stops there and the error comes located at the line
// before (or, inside a heredoc, as an unterminated heredoc).
func (d *Dockerfile) checkLineLengths(data []byte) error {
	for i := 1; len(data) > 0; i++ {
		n := bytes.IndexByte(data, '\n')
		if n < 0 {
			n = len(data)
		}
		if n > maxLineLength {
			return &Error{File: d.Filename, Line: i, Err: fmt.Errorf("the line is %d bytes long, more than the %d a Dockerfile line may have: split it with line continuations", n, maxLineLength)}
		}
		data = data[min(n+1, len(data)):]
	}
	return nil
}

func (d *Dockerfile) nodeError(node *parser.Node, err error) error {
	var unknown *instructions.UnknownInstructionError
	if errors.As(err, &unknown) {
		return d.unknownInstruction(node, unknown)
	}
	return &Error{File: d.Filename, Line: node.StartLine, Source: node.Original, Err: err}
}

// unknownInstruction reports a line that does not start with an
// instruction without quoting it: the file may not be a Dockerfile at all
// (a path given with -f, a symlink), and its first line may be a secret.
// A plausible instruction word is named, with BuildKit's suggestion.
func (d *Dockerfile) unknownInstruction(node *parser.Node, u *instructions.UnknownInstructionError) error {
	e := &Error{File: d.Filename, Line: node.StartLine}
	if word := u.Instruction; isInstructionWord(word) {
		msg := fmt.Sprintf("unknown instruction %q", strings.ToUpper(word))
		if match, ok := suggest.Search(word, instructionNames, false); ok && match != "" {
			msg += fmt.Sprintf(" (did you mean %q?)", strings.ToUpper(match))
		}
		e.Err = errors.New(msg)
	} else {
		e.Err = errors.New("the line does not start with a Dockerfile instruction: is this file a Dockerfile?")
	}
	return e
}

// instructionNames are the instructions BuildKit knows, for suggestions.
var instructionNames = []string{
	"add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
	"label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
}

// isInstructionWord reports whether w looks like an instruction that is
// misspelt or unknown, rather than the start of some other file.
func isInstructionWord(w string) bool {
	if w == "" || len(w) > 16 {
		return false
	}
	for _, r := range w {
		if !('a' <= r && r <= 'z' || 'A' <= r && r <= 'Z') {
			return false
		}
	}
	return true
}

// sourceLines splits the file the way the parser counts lines.
func sourceLines(data []byte) []string {
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf"))
	lines := strings.Split(string(data), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, "\r")
	}
	return lines
}

// parseTrigger parses an ONBUILD trigger, the text of one instruction as the
// image config stores it. Like BuildKit it uses the default escape character
// whatever the Dockerfile says, and locates the command at line, the FROM of
// the stage that runs it.
func parseTrigger(expr string, line int) (instructions.Command, *parser.Node, error) {
	res, err := parser.Parse(strings.NewReader(expr))
	if err != nil {
		return nil, nil, err
	}
	if len(res.AST.Children) != 1 {
		return nil, nil, errors.New("an ONBUILD trigger must be a single instruction")
	}
	node := res.AST.Children[0]
	node.StartLine, node.EndLine = line, line
	switch instr := strings.ToUpper(node.Value); instr {
	case "ONBUILD":
		return nil, nil, errors.New("chaining ONBUILD via ONBUILD ONBUILD is not allowed")
	case "FROM", "MAINTAINER":
		return nil, nil, fmt.Errorf("%s is not allowed as an ONBUILD trigger", instr)
	}
	cmd, err := parseCommand(node)
	if err != nil {
		return nil, nil, err
	}
	return cmd, node, nil
}

// parseCommand parses a command node again, into a fresh value. The linter
// reports nothing; it is there because BuildKit dereferences it when a
// "# check=" comment precedes the instruction.
func parseCommand(node *parser.Node) (instructions.Command, error) {
	v, err := instructions.ParseInstructionWithLinter(node, linter.New(&linter.Config{}))
	if err != nil {
		return nil, err
	}
	cmd, ok := v.(instructions.Command)
	if !ok {
		return nil, fmt.Errorf("unexpected instruction type %T", v)
	}
	return cmd, nil
}
