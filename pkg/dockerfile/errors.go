package dockerfile

import (
	"errors"
	"fmt"
	"strings"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
)

// Error is an error located in a Dockerfile. Its message reads
// "Dockerfile:12: COPY --from=build /app /app: <cause>".
type Error struct {
	// File is the Dockerfile's name as the user gave it.
	File string
	// Line is the first line of the instruction, counted from 1; 0 when the
	// error concerns the whole file.
	Line int
	// Source is the instruction as written, continuation lines joined, or ""
	// when unknown.
	Source string
	// Err is the cause.
	Err error
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		fmt.Fprintf(&b, ":%d", e.Line)
	}
	b.WriteString(": ")
	if e.Source != "" {
		b.WriteString(abbreviate(e.Source))
		b.WriteString(": ")
	}
	b.WriteString(e.Err.Error())
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// maxSourceLen keeps messages about long RUN lines readable; the line number
// says where the rest is.
const maxSourceLen = 120

func abbreviate(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > maxSourceLen {
		return string(r[:maxSourceLen-3]) + "..."
	}
	return s
}

// CommandError locates err at cmd, an instruction of d (or an ONBUILD trigger
// parsed by a Scope). An err that is already an *Error is returned as it is,
// so wrapping twice does not repeat the location.
func (d *Dockerfile) CommandError(cmd instructions.Command, err error) error {
	if err == nil {
		return nil
	}
	var located *Error
	if errors.As(err, &located) {
		return err
	}
	src := ""
	if s, ok := cmd.(fmt.Stringer); ok {
		src = s.String()
	}
	return &Error{File: d.Filename, Line: startLine(cmd.Location()), Source: src, Err: err}
}

// StageError locates err at the FROM line of s, for failures that concern
// the stage as a whole, such as pulling its base image.
func (d *Dockerfile) StageError(s *Stage, err error) error {
	if err == nil {
		return nil
	}
	var located *Error
	if errors.As(err, &located) {
		return err
	}
	return &Error{File: d.Filename, Line: s.Line, Source: s.def.SourceCode, Err: err}
}

// startLine returns the first line of a BuildKit location, 0 if none.
func startLine(loc []parser.Range) int {
	if len(loc) == 0 {
		return 0
	}
	return loc[0].Start.Line
}
