package dockerfile

import (
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
)

const graph = `FROM busybox AS base
RUN touch /base

FROM base AS child
RUN touch /child

FROM alpine AS independent
RUN touch /independent

FROM debian AS unused
RUN touch /unused

FROM busybox AS final
COPY --from=child /child /
COPY --from=2 /independent /
COPY --from=nginx:1.27 /etc/nginx /nginx

FROM scratch AS other
COPY --from=unused /unused /
`

func TestPlanKeepsOnlyNeededStages(t *testing.T) {
	p := mustPlan(t, graph, PlanOptions{Target: "Final"})
	if got := stageNames(p.Stages); !equal(got, []string{"base", "child", "independent", "final"}) {
		t.Errorf("Stages = %q", got)
	}
	if p.Target.Name != "final" || p.Target != p.Stages[len(p.Stages)-1] {
		t.Errorf("Target = %q", p.Target.Name)
	}
	final := p.Target
	if got := stageNames(final.Deps); !equal(got, []string{"child", "independent"}) {
		t.Errorf("final.Deps = %q", got)
	}
	child := p.Stages[1]
	if child.BaseStage != p.Stages[0] || child.Base != "base" || !equal(stageNames(child.Deps), []string{"base"}) {
		t.Errorf("child: base %q, BaseStage %v, Deps %q", child.Base, child.BaseStage, stageNames(child.Deps))
	}
	var froms []string
	for _, cmd := range final.Commands {
		src := final.CopyFrom[cmd.(*instructions.CopyCommand)]
		if src.Stage != nil {
			froms = append(froms, src.Stage.Name)
		} else {
			froms = append(froms, "image:"+src.Image)
		}
	}
	if !equal(froms, []string{"child", "independent", "image:nginx:1.27"}) {
		t.Errorf("COPY --from resolved to %q", froms)
	}

	// Without a target, the last stage is built.
	p = mustPlan(t, graph, PlanOptions{})
	if got := stageNames(p.Stages); !equal(got, []string{"unused", "other"}) {
		t.Errorf("default target: Stages = %q", got)
	}
}

func TestPlanUnknownTarget(t *testing.T) {
	_, err := mustParse(t, graph).Plan(PlanOptions{Target: "nope"})
	wantError(t, err, 0, `target stage "nope" not found`, `"base", "child", "independent", "unused", "final", "other"`)

	_, err = mustParse(t, "FROM scratch\n").Plan(PlanOptions{Target: "x"})
	wantError(t, err, 0, `target stage "x" not found: no stage has a name`)
}

func TestPlanFromStage(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		opts      PlanOptions
		wantBase  string // "" when the base is an image
	}{
		{"by name, any case", "FROM busybox AS Build\nFROM BUILD\n", PlanOptions{}, "build"},
		{"through a global ARG", "ARG v=a\nFROM busybox AS stage_a\nFROM busybox AS stage_b\nFROM stage_${v}\n", PlanOptions{}, "stage_a"},
		{"through a build arg", "ARG v=a\nFROM busybox AS stage_a\nFROM busybox AS stage_b\nFROM stage_${v}\n",
			PlanOptions{BuildArgs: map[string]string{"v": "b"}}, "stage_b"},
		// As in BuildKit, a stage's own name or a later one is an image.
		{"own name", "FROM node AS node\n", PlanOptions{}, ""},
		{"later name", "FROM later AS first\nFROM busybox AS later\n", PlanOptions{Target: "first"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPlan(t, tc.src, tc.opts)
			got := ""
			if p.Target.BaseStage != nil {
				got = p.Target.BaseStage.Name
			}
			if got != tc.wantBase {
				t.Errorf("BaseStage = %q, want %q (Base %q)", got, tc.wantBase, p.Target.Base)
			}
		})
	}
}

func TestPlanStageReferenceErrors(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		line      int
		want      []string
	}{
		{"copy from later stage", "FROM busybox\nCOPY --from=later /a /a\nFROM busybox AS later\nCOPY --from=0 /a /a\n", 2,
			[]string{`COPY --from=later /a /a: --from=later: stage "later" is defined on line 3, after this stage`}},
		{"copy from itself by name", "FROM busybox AS me\nCOPY --from=me /a /a\n", 2, []string{"a stage cannot use itself"}},
		{"copy from itself by index", "FROM busybox\nCOPY --from=0 /a /a\n", 2, []string{"a stage cannot use itself"}},
		{"copy from later index", "FROM busybox\nCOPY --from=1 /a /a\nFROM busybox\nCOPY --from=0 / /\n", 2, []string{"stage 1 is defined on line 3"}},
		{"index out of range", "FROM busybox\nFROM busybox\nCOPY --from=7 /a /a\n", 3, []string{"invalid stage index 7: the Dockerfile has 2 stages"}},
		{"mount from later stage", "FROM busybox\nRUN --mount=from=later,target=/x true\nFROM busybox AS later\nCOPY --from=0 / /\n", 2,
			[]string{`--mount from=later: stage "later" is defined on line 3`}},
		{"empty --from", "FROM busybox\nARG SRC\nCOPY --from=$SRC /a /a\n", 3, []string{"--from=$SRC expands to an empty value"}},
		{"bad image in --from", "FROM busybox\nCOPY --from=Not_An:Image:ref /a /a\n", 2, []string{"neither a stage nor a valid image reference"}},
		{"bad mount", "FROM busybox\nRUN --mount=type=bogus true\n", 2, []string{`unsupported mount type "bogus"`}},
		{"empty base", "ARG IMAGE\nFROM $IMAGE\n", 2, []string{`Dockerfile:2: FROM $IMAGE: the base image "$IMAGE" expands to an empty name`}},
		{"bad base", "FROM Upper/Case\n", 1, []string{`invalid base image reference "Upper/Case"`}},
		{"empty platform", "FROM --platform=$NOPE busybox\n", 1, []string{"--platform=$NOPE expands to an empty value"}},
		{"meta ARG error", "ARG FOO=${FOO:?\"custom error\"}\nFROM busybox\n", 1, []string{"FOO: custom error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := mustParse(t, tc.src).Plan(PlanOptions{})
			wantError(t, err, tc.line, tc.want...)
		})
	}
}

func TestPlanErrorsOnlyInNeededStages(t *testing.T) {
	// A broken stage the target does not need does not fail the build.
	p := mustPlan(t, "FROM busybox AS broken\nCOPY --from=broken / /\nFROM scratch AS ok\n", PlanOptions{Target: "ok"})
	if len(p.Stages) != 1 {
		t.Errorf("Stages = %q", stageNames(p.Stages))
	}
}

func TestPlanCopyFromFollowsArgScope(t *testing.T) {
	p := mustPlan(t, `FROM busybox AS build
FROM build AS dev
FROM build AS staging
FROM busybox
ARG VARIANT="staging"
COPY --from="${VARIANT}" /variant /variant_first
ARG VARIANT="dev"
COPY --from="${VARIANT}" /variant /variant_second
ENV VARIANT=build
COPY --from=$VARIANT /variant /variant_third
`, PlanOptions{})
	var got []string
	for _, cmd := range p.Target.Commands {
		if c, ok := cmd.(*instructions.CopyCommand); ok {
			got = append(got, p.Target.CopyFrom[c].Stage.Name)
		}
	}
	if !equal(got, []string{"staging", "dev", "build"}) {
		t.Errorf("COPY --from resolved to %q", got)
	}
	if got := stageNames(p.Target.Deps); !equal(got, []string{"staging", "dev", "build"}) {
		t.Errorf("Deps = %q", got)
	}
	// A build argument overrides both defaults.
	p = mustPlan(t, "FROM busybox AS a\nFROM busybox AS b\nFROM scratch\nARG SRC=a\nCOPY --from=$SRC / /\n",
		PlanOptions{BuildArgs: map[string]string{"SRC": "b"}})
	if got := stageNames(p.Stages); !equal(got, []string{"b", "#2"}) {
		t.Errorf("with build arg: Stages = %q", got)
	}
}

func TestPlanMountFrom(t *testing.T) {
	p := mustPlan(t, `FROM busybox AS builder
FROM busybox
ARG T=/tmp
RUN --mount=type=bind,from=builder,target=/b --mount=type=tmpfs,target=$T --mount=type=cache,from=alpine:3,target=/c --mount=from=0,target=/z true
RUN --mount=type=cache,target=/cache true
`, PlanOptions{})
	run := p.Target.Commands[1].(*instructions.RunCommand)
	srcs := p.Target.MountFrom[run]
	if len(srcs) != 4 || srcs[0].Stage != p.Stages[0] || srcs[1] != (Source{}) || srcs[2].Image != "alpine:3" || srcs[3].Stage != p.Stages[0] {
		t.Errorf("MountFrom = %+v", srcs)
	}
	// Expansion gives the mounts their values; the command itself is unchanged.
	sc := p.NewScope(p.Target, nil)
	if _, err := sc.DeclareArg(p.Target.Commands[0].(*instructions.ArgCommand).Args[0]); err != nil {
		t.Fatal(err)
	}
	x, err := sc.ExpandCommand(run)
	if err != nil {
		t.Fatal(err)
	}
	if m := instructions.GetMounts(x.(*instructions.RunCommand)); len(m) != 4 || m[1].Target != "/tmp" || m[1].Type != instructions.MountTypeTmpfs {
		t.Errorf("expanded mounts = %+v", m)
	}
	if _, ok := p.Target.MountFrom[p.Target.Commands[2].(*instructions.RunCommand)]; ok {
		t.Error("a RUN without from= has a MountFrom entry")
	}
}

func TestPlanPlatforms(t *testing.T) {
	src := `FROM --platform=$BUILDPLATFORM golang:1.23 AS build
ARG TARGETOS TARGETARCH
FROM busybox:${TARGETARCH}
COPY --from=build /out /
`
	p := mustPlan(t, src, PlanOptions{
		BuildPlatform:  v1.Platform{OS: "linux", Architecture: "amd64"},
		TargetPlatform: v1.Platform{OS: "linux", Architecture: "arm", Variant: "v7"},
	})
	if p.Stages[0].Platform != "linux/amd64" {
		t.Errorf("build stage platform = %q", p.Stages[0].Platform)
	}
	if p.Target.Base != "busybox:arm" || p.Target.Platform != "" {
		t.Errorf("target base %q platform %q", p.Target.Base, p.Target.Platform)
	}
	// A build argument overrides a predefined one.
	p = mustPlan(t, src, PlanOptions{BuildArgs: map[string]string{"TARGETARCH": "riscv64"}})
	if p.Target.Base != "busybox:riscv64" {
		t.Errorf("with TARGETARCH build arg: base %q", p.Target.Base)
	}
	if len(p.UnusedBuildArgs) != 0 {
		t.Errorf("UnusedBuildArgs = %q", p.UnusedBuildArgs)
	}
}

func TestPlanUnusedBuildArgs(t *testing.T) {
	p := mustPlan(t, "ARG META\nFROM busybox AS other\nARG OTHER\nFROM busybox\nARG USED\n", PlanOptions{
		BuildArgs: map[string]string{"META": "1", "USED": "1", "OTHER": "1", "typo": "1", "HTTP_PROXY": "x", "no_proxy": "y"},
	})
	if !equal(p.UnusedBuildArgs, []string{"OTHER", "typo"}) {
		t.Errorf("UnusedBuildArgs = %q", p.UnusedBuildArgs)
	}
}

func TestPlanOnbuildTriggersOfBaseStage(t *testing.T) {
	p := mustPlan(t, `FROM busybox AS tools
FROM busybox AS base
ONBUILD COPY --from=tools /bin/tool /bin/
FROM base
`, PlanOptions{})
	if got := stageNames(p.Stages); !equal(got, []string{"tools", "base", "#2"}) {
		t.Fatalf("Stages = %q", got)
	}
	if got := stageNames(p.Target.Deps); !equal(got, []string{"base", "tools"}) {
		t.Errorf("Deps = %q", got)
	}
	// At run time the executor parses the trigger from the base stage's
	// config and resolves its --from against the plan.
	src, err := p.ResolveSource(p.Target, "TOOLS")
	if err != nil || src.Stage != p.Stages[0] {
		t.Errorf("ResolveSource(tools) = %+v, %v", src, err)
	}
}

func TestResolveSource(t *testing.T) {
	p := mustPlan(t, "FROM busybox AS skipped\nFROM busybox AS used\nFROM used AS target\nFROM busybox AS later\n", PlanOptions{Target: "target"})
	if src, err := p.ResolveSource(p.Target, "alpine"); err != nil || src.Image != "alpine" {
		t.Errorf("image: %+v, %v", src, err)
	}
	if _, err := p.ResolveSource(p.Target, "skipped"); err == nil || !strings.Contains(err.Error(), `stage "skipped" is not part of this build`) {
		t.Errorf("unplanned stage: %v", err)
	}
	if _, err := p.ResolveSource(p.Target, "later"); err == nil || !strings.Contains(err.Error(), "after this stage") {
		t.Errorf("later stage: %v", err)
	}
}

func TestPlanDuplicateStageNames(t *testing.T) {
	// References go to the last definition, as in BuildKit; FROM only sees
	// the definitions before it.
	p := mustPlan(t, `FROM busybox AS dup
RUN echo first
FROM dup AS mid
FROM alpine AS dup
FROM scratch
COPY --from=dup / /
COPY --from=mid / /
`, PlanOptions{})
	if p.Stages[1].BaseStage != p.Stages[0] {
		t.Errorf("FROM dup resolved to %v", p.Stages[1].BaseStage)
	}
	if got := stageNames(p.Target.Deps); !equal(got, []string{"dup", "mid"}) || p.Target.Deps[0].Index != 2 {
		t.Errorf("Deps = %q (first index %d)", got, p.Target.Deps[0].Index)
	}
}

func TestPlanIsIndependentPerCall(t *testing.T) {
	d := mustParse(t, "FROM busybox AS a\nFROM busybox AS b\nFROM scratch\nARG SRC=a\nARG V\nCOPY --from=$SRC / /\nRUN --mount=type=cache,target=/$V true\nLABEL v=$V\n")
	var wg sync.WaitGroup
	results := make([]string, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			src := map[bool]string{true: "a", false: "b"}[i%2 == 0]
			p, err := d.Plan(PlanOptions{BuildArgs: map[string]string{"SRC": src, "V": src}})
			if err != nil {
				t.Error(err)
				return
			}
			sc := p.NewScope(p.Target, nil)
			for _, cmd := range p.Target.Commands {
				x, err := sc.ExpandCommand(cmd)
				if err != nil {
					t.Error(err)
					return
				}
				switch c := x.(type) {
				case *instructions.ArgCommand:
					for _, a := range c.Args {
						sc.DeclareArg(a)
					}
				case *instructions.RunCommand:
					results[i] = p.Target.CopyFrom[p.Target.Commands[2].(*instructions.CopyCommand)].Stage.Name +
						strings.TrimPrefix(instructions.GetMounts(c)[0].Target, "/")
				case *instructions.LabelCommand:
					results[i] += c.Labels[0].Value
				}
			}
		}()
	}
	wg.Wait()
	for i, r := range results {
		want := map[bool]string{true: "aaa", false: "bbb"}[i%2 == 0]
		if r != want {
			t.Errorf("plan %d: got %q, want %q", i, r, want)
		}
	}
}

func TestTargetByIndex(t *testing.T) {
	d, err := Parse(strings.NewReader("FROM a AS one\nFROM b\nFROM c AS three\n"), "Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for target, base := range map[string]string{"1": "b", "one": "a", "2": "c", "": "c"} {
		p, err := d.Plan(PlanOptions{Target: target})
		if err != nil || p.Target.Base != base {
			t.Errorf("target %q: %+v, %v", target, p, err)
		}
	}
	if _, err := d.Plan(PlanOptions{Target: "3"}); err == nil {
		t.Error("target 3 of 3 stages accepted")
	}
}
