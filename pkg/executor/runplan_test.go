package executor

import (
	"context"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"

	"github.com/kiln-build/kiln/pkg/sandbox"
)

// planOf plans the last instruction of df, a RUN, after running the
// metadata instructions before it: no disk, no root, no sandbox.
func planOf(t *testing.T, df string, buildArgs map[string]string) (*runPlan, error) {
	t.Helper()
	plan, err := planDockerfile(df, "", buildArgs)
	if err != nil {
		return nil, err
	}
	tb := newTestBuild(t, "FROM base\n", "", nil)
	tb.plan = plan
	b := tb.builder()
	st := tb.plan.Target
	s := &stageBuilder{b: b, stage: st, log: b.opts.log}
	ctx := context.Background()
	if err := s.from(ctx); err != nil {
		t.Fatal(err)
	}
	last := len(st.Commands) - 1
	for _, cmd := range st.Commands[:last] {
		expanded, err := s.scope.ExpandCommand(cmd)
		if err != nil {
			t.Fatal(err)
		}
		if err := s.dispatch(ctx, cmd, expanded); err != nil {
			t.Fatal(err)
		}
	}
	orig := st.Commands[last].(*instructions.RunCommand)
	expanded, err := s.scope.ExpandCommand(orig)
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.planRun(orig, expanded.(*instructions.RunCommand))
	if err != nil {
		return nil, err
	}
	return p, p.identify(s.lfs)
}

func TestRunPlan(t *testing.T) {
	t.Run("shell form, user, groups, home, build args", func(t *testing.T) {
		p, err := planOf(t, `FROM base
ARG DECLARED
ARG OTHER=default
ENV E=1
USER app
WORKDIR /w
RUN echo "$DECLARED" > out
`, map[string]string{"DECLARED": "value", "UNDECLARED": "x"})
		if err != nil {
			t.Fatal(err)
		}
		if want := []string{"/bin/sh", "-c", `echo "$DECLARED" > out`}; !reflect.DeepEqual(p.Args, want) {
			t.Errorf("Args = %q", p.Args)
		}
		if p.UID != 1000 || p.GID != 1000 || !reflect.DeepEqual(p.Groups, []uint32{1000, 50}) {
			t.Errorf("identity %d:%d %v", p.UID, p.GID, p.Groups)
		}
		for _, kv := range []string{"DECLARED=value", "OTHER=default", "E=1", "HOME=/home/app"} {
			if !slices.Contains(p.Env, kv) {
				t.Errorf("Env lacks %q: %q", kv, p.Env)
			}
		}
		for _, kv := range p.Env {
			if strings.HasPrefix(kv, "UNDECLARED=") {
				t.Errorf("an undeclared build argument reached RUN: %q", p.Env)
			}
		}
		if p.Dir != "/w" || p.Network != sandbox.NetworkDefault || p.Script != nil || len(p.Mounts) != 0 {
			t.Errorf("plan %+v", p)
		}
		if p.History != `RUN |2 DECLARED OTHER /bin/sh -c echo "$DECLARED" > out` {
			t.Errorf("History = %q", p.History)
		}
	})

	t.Run("exec form and SHELL", func(t *testing.T) {
		p, err := planOf(t, "FROM base\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN [\"/bin/true\", \"a b\"]\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(p.Args, []string{"/bin/true", "a b"}) || p.UID != 0 || !slices.Contains(p.Env, "HOME=/root") {
			t.Errorf("plan %+v", p)
		}
		p, err = planOf(t, "FROM base\nSHELL [\"/bin/bash\", \"-eu\", \"-c\"]\nRUN true\n", nil)
		if err != nil || !reflect.DeepEqual(p.Args, []string{"/bin/bash", "-eu", "-c", "true"}) {
			t.Errorf("shell form: %+v, %v", p, err)
		}
	})

	t.Run("here-documents", func(t *testing.T) {
		p, err := planOf(t, "FROM base\nRUN <<EOF\n#!/bin/busybox sh\necho hi\nEOF\n", nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Script == nil || p.Script.Name != "EOF" || p.Script.Data != "#!/bin/busybox sh\necho hi\n" ||
			!reflect.DeepEqual(p.Args, []string{"/dev/pipes/EOF"}) {
			t.Errorf("script plan %+v %+v", p, p.Script)
		}
		p, err = planOf(t, "FROM base\nRUN <<EOF\necho hi\nEOF\n", nil)
		if err != nil || p.Script != nil || !reflect.DeepEqual(p.Args, []string{"/bin/sh", "-c", "echo hi\n"}) {
			t.Errorf("shell here-document: %+v, %v", p, err)
		}
		p, err = planOf(t, "FROM base\nRUN cat <<EOF > /x\nhello\nEOF\n", nil)
		if err != nil || !reflect.DeepEqual(p.Args, []string{"/bin/sh", "-c", "cat <<EOF > /x\nhello\nEOF"}) {
			t.Errorf("here-document as input: %q, %v", p.Args, err)
		}
	})

	t.Run("network and mounts", func(t *testing.T) {
		p, err := planOf(t, `FROM base AS src
FROM base
WORKDIR /w
RUN --network=none --mount=type=cache,target=cache,id=c1,sharing=locked --mount=type=bind,from=src,source=/etc,target=/mnt/etc --mount=type=secret,id=tok,env=TOKEN --mount=type=tmpfs,target=/t true
`, nil)
		if err != nil {
			t.Fatal(err)
		}
		if p.Network != sandbox.NetworkNone || len(p.Mounts) != 4 {
			t.Fatalf("plan %+v", p)
		}
		cache, bind, secret, tmpfs := p.Mounts[0], p.Mounts[1], p.Mounts[2], p.Mounts[3]
		if cache.Type != instructions.MountTypeCache || cache.Target != "/w/cache" || cache.CacheID != "c1" || cache.CacheSharing != instructions.MountSharingLocked {
			t.Errorf("cache %+v", cache)
		}
		if bind.Type != instructions.MountTypeBind || bind.Target != "/mnt/etc" || bind.From.Stage == nil || bind.From.Stage.Name != "src" {
			t.Errorf("bind %+v", bind)
		}
		if secret.Type != instructions.MountTypeSecret || secret.CacheID != "tok" || secret.Env == nil || *secret.Env != "TOKEN" {
			t.Errorf("secret %+v", secret)
		}
		if tmpfs.Type != instructions.MountTypeTmpfs || tmpfs.Target != "/t" {
			t.Errorf("tmpfs %+v", tmpfs)
		}
		// A secret never reaches the plan: only its id does.
		for _, kv := range p.Env {
			if strings.HasPrefix(kv, "TOKEN=") {
				t.Errorf("secret in the planned environment: %q", kv)
			}
		}
	})

	t.Run("refused before anything runs", func(t *testing.T) {
		for df, want := range map[string]string{
			"FROM base\nRUN --security=insecure true\n": "--security=insecure is not supported",
			"FROM base\nUSER nobody-here\nRUN true\n":   `USER "nobody-here"`,
		} {
			_, err := planOf(t, df, nil)
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("%q: err = %v, want %q", df, err, want)
			}
		}
	})
}
