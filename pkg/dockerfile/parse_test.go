package dockerfile

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		want      []string
	}{
		// The line is not quoted: the file may not be a Dockerfile.
		{"unknown instruction", "FROM scratch\nFROBNICATE x\n", 2,
			[]string{`Dockerfile:2: unknown instruction "FROBNICATE"`}},
		{"misspelt instruction", "FORM scratch\n", 1,
			[]string{`Dockerfile:1: unknown instruction "FORM" (did you mean "FROM"?)`}},
		{"flag without =", "FROM busybox\n\nCOPY --chown 2367:3267 a /tmp\n", 3,
			[]string{"Dockerfile:3: COPY --chown 2367:3267 a /tmp: missing a value on flag: --chown"}},
		{"unknown flag", "FROM busybox\nCOPY --own=1 a /tmp\n", 2, []string{"unknown flag: --own"}},
		{"instruction before FROM", "ARG A=1\nRUN echo\nFROM scratch\n", 2,
			[]string{"Dockerfile:2: RUN echo: instruction before the first FROM"}},
		{"no FROM", "ARG A=1\n", 0, []string{"Dockerfile: no FROM instruction"}},
		{"empty", "", 0, []string{"no instructions"}},
		{"unterminated heredoc", "FROM scratch\nRUN <<EOF\necho hi\n", 2,
			[]string{"Dockerfile:2: RUN <<EOF: unterminated heredoc"}},
		{"heredoc destination", "FROM scratch\nCOPY a <<EOF\nx\nEOF\n", 2,
			[]string{"COPY cannot accept a heredoc as a destination"}},
		{"bad escape", "# escape=x\nFROM scratch\n", 1, []string{`invalid escape character "x"`}},
		{"repeated directive", "# escape=`\n# escape=\\\nFROM scratch\n", 2,
			[]string{"only one escape parser directive"}},
		{"ONBUILD ONBUILD", "FROM scratch\nONBUILD ONBUILD RUN x\n", 2, []string{"ONBUILD ONBUILD"}},
		{"ONBUILD FROM", "FROM scratch\nONBUILD FROM busybox\n", 2, []string{"FROM isn't allowed as an ONBUILD trigger"}},
		{"ONBUILD MAINTAINER", "FROM scratch\nONBUILD MAINTAINER me\n", 2,
			[]string{"MAINTAINER isn't allowed as an ONBUILD trigger"}},
		{"bad stage name", "FROM scratch AS 1st\n", 1, []string{"invalid name for build stage"}},
		{"FROM arguments", "FROM a b\n", 1, []string{"FROM requires either one or three arguments"}},
		{"SHELL not JSON", "FROM scratch\nSHELL /bin/sh -c\n", 2, []string{"SHELL requires the arguments to be in JSON form"}},
		{"bad network", "FROM scratch\nRUN --network=bogus true\n", 2, []string{`invalid network mode "bogus"`}},
		// BuildKit's parser refuses variables in --mount from=.
		{"variable in mount from", "FROM busybox\nARG S=a\nRUN --mount=from=$S,target=/m true\n", 3,
			[]string{"'from' doesn't support variable expansion"}},
		{"ENV without value", "FROM scratch\nENV x\n", 2, []string{"ENV must have two arguments"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse(strings.NewReader(tc.src), "Dockerfile")
			wantError(t, err, tc.line, tc.want...)
		})
	}
}

func TestParseErrorNamesTheFile(t *testing.T) {
	_, err := Parse(strings.NewReader("FROM scratch\nNOPE\n"), "build/Containerfile")
	wantError(t, err, 2, `build/Containerfile:2: unknown instruction "NOPE"`)
}

func TestErrorAbbreviatesLongSource(t *testing.T) {
	long := "RUN " + strings.Repeat("x ", 200)
	e := &Error{File: "Dockerfile", Line: 4, Source: long, Err: errors.New("example")}
	msg := e.Error()
	if len(msg) > 200 || !strings.HasPrefix(msg, "Dockerfile:4: RUN x x") || !strings.HasSuffix(msg, "...: example") {
		t.Errorf("Error() = %q", msg)
	}
}

func TestParseDirectives(t *testing.T) {
	d := mustParse(t, "# syntax=docker/dockerfile:1.7\n# escape=`\nFROM scratch\nCOPY a\\b `\n  c:\\dst\\\n")
	if d.Syntax != "docker/dockerfile:1.7" {
		t.Errorf("Syntax = %q", d.Syntax)
	}
	if d.Escape != '`' {
		t.Errorf("Escape = %q", d.Escape)
	}
	c := d.Stages[0].Commands[0].(*instructions.CopyCommand)
	if !equal(c.SourcePaths, []string{`a\b`}) || c.DestPath != `c:\dst\` {
		t.Errorf("COPY with backtick escape = %q -> %q", c.SourcePaths, c.DestPath)
	}

	// A directive after an instruction or a comment is a plain comment.
	d = mustParse(t, "# hello\n# syntax=x\nFROM scratch\n")
	if d.Syntax != "" || d.Escape != '\\' {
		t.Errorf("late directive honoured: syntax %q escape %q", d.Syntax, d.Escape)
	}
}

func TestParseHeredocs(t *testing.T) {
	d := mustParse(t, `FROM busybox
RUN <<EOF
echo one
EOF
RUN <<-EOF
	echo tabs
	EOF
RUN cat /proc/self/fd/5 /proc/self/fd/6 5<<A 6<<'B'
first $X
A
second $X
B
COPY <<robots.txt <<"humans.txt" /test/
robots $X
robots.txt
humans $X
humans.txt
`)
	cmds := d.Stages[0].Commands
	run1 := cmds[0].(*instructions.RunCommand)
	if len(run1.Files) != 1 || run1.Files[0].Data != "echo one\n" || run1.Files[0].Chomp {
		t.Errorf("RUN <<EOF files = %+v", run1.Files)
	}
	run2 := cmds[1].(*instructions.RunCommand)
	if len(run2.Files) != 1 || !run2.Files[0].Chomp || run2.Files[0].Data != "\techo tabs\n" {
		t.Errorf("RUN <<-EOF files = %+v", run2.Files)
	}
	run3 := cmds[2].(*instructions.RunCommand)
	if len(run3.Files) != 2 || run3.Files[0].Name != "A" || run3.Files[1].Name != "B" || run3.Files[1].Data != "second $X\n" {
		t.Errorf("RUN with two heredocs files = %+v", run3.Files)
	}
	cp := cmds[3].(*instructions.CopyCommand)
	if cp.DestPath != "/test/" || len(cp.SourceContents) != 2 {
		t.Fatalf("COPY heredocs = %+v", cp.SourcesAndDest)
	}
	if sc := cp.SourceContents[0]; sc.Path != "robots.txt" || sc.Data != "robots $X\n" || !sc.Expand {
		t.Errorf("first COPY heredoc = %+v", sc)
	}
	if sc := cp.SourceContents[1]; sc.Path != "humans.txt" || sc.Expand {
		t.Errorf("quoted COPY heredoc = %+v, want no expansion", sc)
	}
}

func TestParseWarnings(t *testing.T) {
	d := mustParse(t, "FROM busybox AS a\nMAINTAINER me\nRUN echo \\\n\n  hi\nFROM busybox AS a\n")
	want := []string{
		"Dockerfile:2: MaintainerDeprecated:",
		"Dockerfile:5: NoEmptyContinuation:",
		`Dockerfile:6: DuplicateStageName: Duplicate stage name "a"`,
	}
	if len(d.Warnings) != len(want) {
		t.Fatalf("Warnings = %q", d.Warnings)
	}
	for i, w := range want {
		if !strings.HasPrefix(d.Warnings[i], w) {
			t.Errorf("warning %d = %q, want prefix %q", i, d.Warnings[i], w)
		}
	}
	// The instruction with an empty continuation line is kept.
	if c := d.Stages[0].Commands[1].(*instructions.RunCommand); c.CmdLine[0] != "echo   hi" {
		t.Errorf("RUN = %q", c.CmdLine)
	}
	if m := d.Stages[0].Commands[0].(*instructions.MaintainerCommand); m.Maintainer != "me" {
		t.Errorf("MAINTAINER = %q", m.Maintainer)
	}
}

func TestParseAcceptsWhatDockerAccepts(t *testing.T) {
	d := mustParse(t, `ARG BASE=busybox
FROM $BASE AS build
FROM scratch
# check=skip=all
COPY --link --from=build --chmod=755 /bin/sh /sh
ONBUILD RUN echo child
healthcheck --interval=5m CMD true
`)
	if len(d.MetaArgs) != 1 || len(d.Stages) != 2 {
		t.Fatalf("MetaArgs %d, Stages %d", len(d.MetaArgs), len(d.Stages))
	}
	c := d.Stages[1].Commands[0].(*instructions.CopyCommand)
	if !c.Link || c.From != "build" || c.Chmod != "755" {
		t.Errorf("COPY = %+v", c)
	}
	if ob := d.Stages[1].Commands[1].(*instructions.OnbuildCommand); ob.Expression != "RUN echo child" {
		t.Errorf("ONBUILD expression = %q", ob.Expression)
	}
	if h := d.Stages[1].Commands[2].(*instructions.HealthCheckCommand); h.Health.Test[0] != "CMD-SHELL" {
		t.Errorf("HEALTHCHECK = %+v", h.Health)
	}
}

// TestParseDoesNotQuoteOtherFiles: a file that is not a Dockerfile (a
// docker config reached through a symlink or -f) must not have its content
// printed in the error.
func TestParseDoesNotQuoteOtherFiles(t *testing.T) {
	for name, src := range map[string]string{
		"docker config": `{"auths":{"registry.example.com":{"auth":"dXNlcjpodW50ZXIy"}}}` + "\n",
		"netrc":         "machine github.com login bot password hunter2\n",
		"shadow":        "root:$6$salt$hash:19000:0:99999:7:::\n",
		"private key":   "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmU=\n",
		"token":         "ghp_0123456789abcdefghijABCDEFGHIJ012345\n",
	} {
		_, err := Parse(strings.NewReader(src), "Dockerfile")
		if err == nil {
			t.Errorf("%s: parsed", name)
			continue
		}
		for _, secret := range []string{"dXNlcjpodW50ZXIy", "hunter2", "$6$salt", "b3BlbnNzaC1", "ghp_0123", "BEGIN OPENSSH", "github.com"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("%s: the error quotes the file: %v", name, err)
			}
		}
		wantError(t, err, 1, "Dockerfile:1: ")
	}
}

// TestParseLongLine: BuildKit's parser reads lines of up to 64 KiB and
// reports a longer one at the line before it, or inside a heredoc as an
// unterminated heredoc; kiln reports the line itself.
func TestParseLongLine(t *testing.T) {
	long := strings.Repeat("x", 70000)
	for _, tc := range []struct {
		name, src string
		line      int
	}{
		{"RUN", "FROM scratch\nRUN echo " + long + "\nRUN true\n", 2},
		{"first line", "FROM " + long, 1},
		{"in a heredoc", "FROM scratch\nRUN <<EOF\necho hi\n" + long + "\nEOF\n", 4},
		{"continuation", "FROM scratch\nRUN a \\\n  b \\\n " + long + "\n", 4},
	} {
		_, err := Parse(strings.NewReader(tc.src), "Dockerfile")
		wantError(t, err, tc.line, "more than the 65535 a Dockerfile line may have")
	}
	// The longest line the parser reads is accepted, with or without a
	// final newline or a carriage return.
	for _, src := range []string{
		"FROM scratch\nRUN " + strings.Repeat("y", 65531) + "\n",
		"FROM scratch\nRUN " + strings.Repeat("y", 65531),
		"FROM scratch\r\nRUN " + strings.Repeat("y", 65530) + "\r\n",
	} {
		if _, err := Parse(strings.NewReader(src), "Dockerfile"); err != nil {
			t.Errorf("a line of 65535 bytes: %v", err)
		}
	}
}

func TestParseSizeLimit(t *testing.T) {
	big := "FROM scratch\n" + strings.Repeat("# comment to fill the file up\n", MaxSize/30+1)
	_, err := Parse(strings.NewReader(big), "Dockerfile")
	wantError(t, err, 0, "Dockerfile: the Dockerfile is larger than 16 MiB")
	// The reader is not read past the limit: /dev/zero would never end.
	_, err = Parse(io.LimitReader(zeros{}, 1<<40), "Dockerfile")
	wantError(t, err, 0, "larger than 16 MiB")
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}
