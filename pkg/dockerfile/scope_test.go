package dockerfile

import (
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

// TestExpansion checks what instructions see, through LABEL values.
func TestExpansion(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src      string // after "FROM busybox\n"
		args     map[string]string
		imageEnv []string
		want     map[string]string
	}{
		{name: "global ARG invisible without redeclaration",
			src: "LABEL v=\"[$V]\"", want: map[string]string{"v": "[]"}},
		{name: "redeclared global ARG takes the global value",
			src: "ARG V\nLABEL v=$V", want: map[string]string{"v": "global"}},
		{name: "redeclared global ARG takes the build arg",
			src: "ARG V\nLABEL v=$V", args: map[string]string{"V": "cli"}, want: map[string]string{"v": "cli"}},
		{name: "stage default overrides the global value",
			src: "ARG V=stage\nLABEL v=$V", want: map[string]string{"v": "stage"}},
		{name: "build arg overrides a stage default",
			src: "ARG S=default\nLABEL s=$S", args: map[string]string{"S": "cli"}, want: map[string]string{"s": "cli"}},
		{name: "empty build arg is a value",
			src: "ARG S=default\nLABEL s=${S:-unset} t=${S-unset}", args: map[string]string{"S": ""}, want: map[string]string{"s": "unset", "t": ""}},
		{name: "ARG visible only after its declaration",
			src: "LABEL a=\"[$A]\"\nARG A=1\nLABEL b=$A", want: map[string]string{"a": "[]", "b": "1"}},
		{name: "ENV wins over an earlier ARG",
			src: "ARG FOO\nENV FOO=bat\nLABEL foo=$FOO", args: map[string]string{"FOO": "cli"}, want: map[string]string{"foo": "bat"}},
		{name: "ENV wins over a later ARG",
			src: "ENV FOO=bat\nARG FOO=arg\nLABEL foo=$FOO", want: map[string]string{"foo": "bat"}},
		{name: "image ENV wins over an ARG",
			src: "ARG FOO=arg\nLABEL foo=$FOO", imageEnv: []string{"FOO=image"}, want: map[string]string{"foo": "image"}},
		{name: "image ENV is visible",
			src: "ENV P=$PATH:/x\nLABEL p=$P", imageEnv: []string{"PATH=/bin"}, want: map[string]string{"p": "/bin:/x"}},
		{name: "ENV expanded at its definition",
			src: "ENV A=1\nENV B=$A\nENV A=2\nLABEL a=$A b=$B", want: map[string]string{"a": "2", "b": "1"}},
		{name: "one ENV sees the values before it",
			src: "ENV A=1\nENV A=2 B=$A\nLABEL b=$B", want: map[string]string{"b": "1"}},
		{name: "ENV value built from ARGs",
			src:  "ARG FOO=bar\nARG WEBROOT=https://example.org/\nENV WEBROOT=\"$WEBROOT$FOO\"\nLABEL w=${WEBROOT}",
			want: map[string]string{"w": "https://example.org/bar"}},
		{name: "legacy ENV form",
			src:  "ENV envcheck \"unique test\"\nENV two words here\nLABEL e=\"$envcheck\" t=\"$two\"",
			want: map[string]string{"e": "unique test", "t": "words here"}},
		{name: "command substitution stays literal",
			src: "ENV LIB=\"$(PREFIX)/lib\"\nLABEL lib=$LIB", want: map[string]string{"lib": "$(PREFIX)/lib"}},
		{name: "shell forms",
			src:  "ARG S=value E=\nLABEL a=${S:-d} b=${U:-d} c=${S:+alt} d=\"[${U:+alt}]\" e=${E:-d} f=\"[${E-d}]\" g=${S#va} h=${S%ue}",
			want: map[string]string{"a": "value", "b": "d", "c": "alt", "d": "[]", "e": "d", "f": "[]", "g": "lue", "h": "val"}},
		{name: "quotes and escapes",
			src:  "ARG S=v\nLABEL a='$S' b=\"$S\" c=\\$S d=\"\\$S\" e=${S}x",
			want: map[string]string{"a": "$S", "b": "v", "c": "$S", "d": "$S", "e": "vx"}},
		{name: "predefined platform ARGs need a declaration",
			src:  "LABEL before=\"[$TARGETARCH]\"\nARG TARGETPLATFORM TARGETOS TARGETARCH TARGETVARIANT BUILDPLATFORM BUILDARCH TARGETSTAGE\nLABEL tp=$TARGETPLATFORM os=$TARGETOS arch=$TARGETARCH v=$TARGETVARIANT bp=$BUILDPLATFORM ba=$BUILDARCH ts=$TARGETSTAGE",
			want: map[string]string{"before": "[]", "tp": "linux/arm64/v8", "os": "linux", "arch": "arm64", "v": "v8", "bp": "linux/amd64", "ba": "amd64", "ts": "default"}},
		{name: "undeclared build args are invisible",
			src: "LABEL x=\"[$X]\" p=\"[$HTTP_PROXY]\"", args: map[string]string{"X": "1", "HTTP_PROXY": "p"},
			want: map[string]string{"x": "[]", "p": "[]"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := PlanOptions{
				BuildArgs:      tc.args,
				BuildPlatform:  v1.Platform{OS: "linux", Architecture: "amd64"},
				TargetPlatform: v1.Platform{OS: "linux", Architecture: "arm64", Variant: "v8"},
			}
			r := target(t, "ARG V=global\nFROM busybox\n"+tc.src+"\n", opts, tc.imageEnv...)
			for k, want := range tc.want {
				if got, ok := r.labels[k]; !ok || got != want {
					t.Errorf("%s = %q (set %v), want %q", k, got, ok, want)
				}
			}
		})
	}
}

func TestRunEnv(t *testing.T) {
	r := target(t, `FROM busybox
ENV container=docker
ARG USERNAME
ARG UNSET
ARG EMPTY=
ARG PORT=55555
ARG FOO=arg
ENV FOO=env
ARG https_proxy
RUN true
`, PlanOptions{BuildArgs: map[string]string{
		"USERNAME": "praiskup", "UNDECLARED": "x",
		"HTTP_PROXY": "http://proxy", "no_proxy": "localhost", "https_proxy": "declared",
	}}, "PATH=/bin", "FOO=image")
	env := r.runEnv[0]
	for k, want := range map[string]string{
		"PATH": "/bin", "container": "docker", "USERNAME": "praiskup", "EMPTY": "", "PORT": "55555",
		"FOO": "env", "HTTP_PROXY": "http://proxy", "http_proxy": "http://proxy",
		"NO_PROXY": "localhost", "no_proxy": "localhost", "https_proxy": "declared", "HTTPS_PROXY": "declared",
	} {
		if got, ok := lookup(env, k); !ok || got != want {
			t.Errorf("RUN env %s = %q (exactly once: %v), want %q", k, got, ok, want)
		}
	}
	for _, k := range []string{"UNSET", "UNDECLARED", "FTP_PROXY"} {
		if v, _ := lookup(env, k); v != "" || strings.Contains(strings.Join(env, "\n"), k+"=") {
			t.Errorf("RUN env has %s", k)
		}
	}
	// Image env first, in order, ENV replacing in place.
	if !equal(env[:3], []string{"PATH=/bin", "FOO=env", "container=docker"}) {
		t.Errorf("RUN env starts %q", env[:3])
	}
	if !equal(r.env, []string{"PATH=/bin", "FOO=env", "container=docker"}) {
		t.Errorf("Env = %q", r.env)
	}
	wantDeclared := []string{"USERNAME=praiskup", "UNSET=", "EMPTY=", "PORT=55555", "FOO=env", "https_proxy=declared"}
	if !equal(r.declared[0], wantDeclared) {
		t.Errorf("DeclaredArgs = %q, want %q", r.declared[0], wantDeclared)
	}
}

func TestProxyArgsDoNotOverrideEnv(t *testing.T) {
	r := target(t, "FROM busybox\nENV http_proxy=\nRUN true\n", PlanOptions{BuildArgs: map[string]string{"HTTP_PROXY": "p"}})
	if v, ok := lookup(r.runEnv[0], "http_proxy"); !ok || v != "" {
		t.Errorf("http_proxy = %q, %v", v, ok)
	}
	if v, ok := lookup(r.runEnv[0], "HTTP_PROXY"); !ok || v != "p" {
		t.Errorf("HTTP_PROXY = %q, %v", v, ok)
	}
}

func TestStageInheritsFromBaseStage(t *testing.T) {
	src := `ARG G=global
FROM busybox AS parent
ARG LOCAL=local
ARG G
ENV E=parent
FROM parent AS child
ARG LOCAL
LABEL local=$LOCAL g=$G e=$E
RUN true
FROM busybox AS other
LABEL local="[$LOCAL]" e="[$E]"
`
	child := target(t, src, PlanOptions{Target: "child"}, "PATH=/bin")
	if child.labels["local"] != "local" || child.labels["g"] != "global" || child.labels["e"] != "parent" {
		t.Errorf("child labels = %v", child.labels)
	}
	if !equal(child.declared[0], []string{"LOCAL=local", "G=global"}) {
		t.Errorf("child DeclaredArgs = %q", child.declared[0])
	}
	if !equal(child.env, []string{"PATH=/bin", "E=parent"}) {
		t.Errorf("child Env = %q", child.env)
	}
	if other := target(t, src, PlanOptions{Target: "other"}); other.labels["local"] != "[]" || other.labels["e"] != "[]" {
		t.Errorf("unrelated stage labels = %v", other.labels)
	}
}

func TestDeclareArg(t *testing.T) {
	p := mustPlan(t, "ARG G=g\nFROM busybox\n", PlanOptions{BuildArgs: map[string]string{"B": "cli"}})
	sc := p.NewScope(p.Target, []string{"HOME=/root"})
	str := func(s string) *string { return &s }
	for _, tc := range []struct {
		arg  instructions.KeyValuePairOptional
		want *string
	}{
		{instructions.KeyValuePairOptional{Key: "B", Value: str("default")}, str("cli")},
		{instructions.KeyValuePairOptional{Key: "D", Value: str("$HOME/x")}, str("/root/x")},
		{instructions.KeyValuePairOptional{Key: "G"}, str("g")},
		{instructions.KeyValuePairOptional{Key: "N"}, nil},
		// Declaring again without a value keeps the earlier value.
		{instructions.KeyValuePairOptional{Key: "D"}, str("/root/x")},
		{instructions.KeyValuePairOptional{Key: "D", Value: str("new")}, str("new")},
	} {
		got, err := sc.DeclareArg(tc.arg)
		if err != nil {
			t.Fatalf("DeclareArg(%s): %v", tc.arg.Key, err)
		}
		if (got.Value == nil) != (tc.want == nil) || (got.Value != nil && *got.Value != *tc.want) {
			t.Errorf("DeclareArg(%s) = %v, want %v", tc.arg.Key, got.Value, tc.want)
		}
	}
	if _, err := sc.DeclareArg(instructions.KeyValuePairOptional{Key: "E", Value: str(`${MISSING:?"is required"}`)}); err == nil || !strings.Contains(err.Error(), "MISSING: is required") {
		t.Errorf("DeclareArg with a failing default: %v", err)
	}
	if _, ok := lookup(sc.RunEnv(), "E"); ok {
		t.Error("a failed declaration changed the scope")
	}
}

func TestExpandCommand(t *testing.T) {
	p := mustPlan(t, `FROM busybox
ARG V=1.2 U=app DIR=/srv PORTS="80 443/udp"
COPY --chown=$U:$U --chmod=0755 file-${V}.txt $DIR/
ADD --checksum=sha256:${V} --chown=${U} https://example.org/${V}.tgz /
COPY <<EOF <<'RAW' /etc/
version=${V} "quoted"
EOF
raw ${V}
RAW
WORKDIR $DIR/$U
USER $U:$U
VOLUME $DIR/data "$DIR/logs"
EXPOSE $PORTS 8080
STOPSIGNAL SIG${U}
LABEL "$U.version"="$V"
RUN --mount=type=cache,target=$DIR/cache,id=$U echo $V
CMD echo $V
`, PlanOptions{})
	sc := p.NewScope(p.Target, nil)
	var got []instructions.Command
	for _, cmd := range p.Target.Commands {
		x, err := sc.ExpandCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if x == cmd {
			t.Errorf("%s: ExpandCommand returned the original", cmd.Name())
		}
		if a, ok := x.(*instructions.ArgCommand); ok {
			for _, kv := range a.Args {
				if _, err := sc.DeclareArg(kv); err != nil {
					t.Fatal(err)
				}
			}
		}
		got = append(got, x)
	}
	if c := got[1].(*instructions.CopyCommand); c.Chown != "app:app" || c.Chmod != "0755" || !equal(c.SourcePaths, []string{"file-1.2.txt"}) || c.DestPath != "/srv/" {
		t.Errorf("COPY = %+v", c)
	}
	if c := got[2].(*instructions.AddCommand); c.Checksum != "sha256:1.2" || c.Chown != "app" || c.SourcePaths[0] != "https://example.org/1.2.tgz" {
		t.Errorf("ADD = %+v", c)
	}
	if c := got[3].(*instructions.CopyCommand); c.SourceContents[0].Data != "version=1.2 \"quoted\"\n" || c.SourceContents[1].Data != "raw ${V}\n" {
		t.Errorf("COPY heredocs = %+v", c.SourceContents)
	}
	if c := got[4].(*instructions.WorkdirCommand); c.Path != "/srv/app" {
		t.Errorf("WORKDIR = %q", c.Path)
	}
	if c := got[5].(*instructions.UserCommand); c.User != "app:app" {
		t.Errorf("USER = %q", c.User)
	}
	if c := got[6].(*instructions.VolumeCommand); !equal(c.Volumes, []string{"/srv/data", "/srv/logs"}) {
		t.Errorf("VOLUME = %q", c.Volumes)
	}
	if c := got[7].(*instructions.ExposeCommand); !equal(c.Ports, []string{"80", "443/udp", "8080"}) {
		t.Errorf("EXPOSE = %q", c.Ports)
	}
	if c := got[8].(*instructions.StopSignalCommand); c.Signal != "SIGapp" {
		t.Errorf("STOPSIGNAL = %q", c.Signal)
	}
	if c := got[9].(*instructions.LabelCommand); c.Labels[0].Key != "app.version" || c.Labels[0].Value != "1.2" {
		t.Errorf("LABEL = %+v", c.Labels)
	}
	run := got[10].(*instructions.RunCommand)
	if m := instructions.GetMounts(run); len(m) != 1 || m[0].Target != "/srv/cache" || m[0].CacheID != "app" {
		t.Errorf("RUN mounts = %+v", m[0])
	}
	if run.CmdLine[0] != "echo $V" {
		t.Errorf("RUN command line expanded: %q", run.CmdLine)
	}
	if c := got[11].(*instructions.CmdCommand); c.CmdLine[0] != "echo $V" {
		t.Errorf("CMD expanded: %q", c.CmdLine)
	}

	// The parsed commands are untouched.
	orig := p.Target.Commands[1].(*instructions.CopyCommand)
	if orig.Chown != "$U:$U" || orig.DestPath != "$DIR/" {
		t.Errorf("original COPY changed: %+v", orig)
	}
	if m := instructions.GetMounts(p.Target.Commands[10].(*instructions.RunCommand)); m[0].Target != "" {
		t.Errorf("original RUN mounts changed: %+v", m[0])
	}
}

func TestExpandCommandErrors(t *testing.T) {
	p := mustPlan(t, "FROM busybox\nCOPY ${MISSING:?must_be_set} /\n", PlanOptions{})
	sc := p.NewScope(p.Target, nil)
	_, err := sc.ExpandCommand(p.Target.Commands[0])
	wantError(t, err, 2, `Dockerfile:2: COPY ${MISSING:?must_be_set} /:`, "MISSING: must_be_set")

	other := mustParse(t, "FROM busybox\nRUN true\n")
	_, err = sc.ExpandCommand(other.Stages[0].Commands[0])
	wantError(t, err, 2, "not part of this Dockerfile")
}

func TestBacktickEscapeInExpansion(t *testing.T) {
	r := target(t, "# escape=`\nFROM busybox\nARG V=v\nLABEL a=`$V b=\"`$V\" c=$V\n", PlanOptions{})
	if r.labels["a"] != "$V" || r.labels["b"] != "$V" || r.labels["c"] != "v" {
		t.Errorf("labels = %v", r.labels)
	}
}

func TestParseTrigger(t *testing.T) {
	p := mustPlan(t, "FROM busybox\nFROM base AS app\n", PlanOptions{})
	sc := p.NewScope(p.Target, nil)
	if _, err := sc.DeclareArg(instructions.KeyValuePairOptional{Key: "D", Value: ptr("/dst")}); err != nil {
		t.Fatal(err)
	}
	cmd, err := sc.ParseTrigger("COPY --chown=1:1 . $D")
	if err != nil {
		t.Fatal(err)
	}
	x, err := sc.ExpandCommand(cmd)
	if err != nil {
		t.Fatal(err)
	}
	if c := x.(*instructions.CopyCommand); c.DestPath != "/dst" || c.Chown != "1:1" || startLine(c.Location()) != 2 {
		t.Errorf("trigger = %+v at %v", c, c.Location())
	}
	heredoc, err := sc.ParseTrigger("RUN <<EOF\necho hi\nEOF")
	if err != nil || len(heredoc.(*instructions.RunCommand).Files) != 1 {
		t.Errorf("heredoc trigger: %v", err)
	}
	for _, bad := range []string{"FROM busybox", "ONBUILD RUN x", "MAINTAINER me", "COPY --chown 1 a b", "RUN a\nRUN b"} {
		_, err := sc.ParseTrigger(bad)
		wantError(t, err, 2, "Dockerfile:2: FROM base AS app: ONBUILD trigger")
	}
}

func ptr(s string) *string { return &s }
