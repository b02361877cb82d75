package executor

import (
	"context"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/dockerfile"
	"github.com/kiln-build/kiln/pkg/fsview"
	"github.com/kiln-build/kiln/pkg/progress"
)

// stageBuilder holds the state of one stage while it builds.
type stageBuilder struct {
	b     *Builder
	stage *dockerfile.Stage
	log   logrus.FieldLogger

	base   v1.Image    // the image the stage starts from
	cfg    *configFile // current config, history included
	layers []v1.Layer  // layers added by this stage
	lfs    *fsview.LayerFS
	scope  *dockerfile.Scope
	oci    bool // new layers use OCI media types
	cmdSet bool // CMD set in this stage (ENTRYPOINT then keeps it)

	root *stageRoot // the materialised root filesystem, once a RUN needed it
	// key is the cache key of the last step that made a layer (at first,
	// of the stage's base); kept only with a layer cache.
	key string

	runMountTargets []string // excluded from the snapshot of the RUN in progress
	// pending is the cache key of the step in progress (see fromCache).
	pending cachedStep

	// pendingRoot is closed when the root prefetchRoot makes is ready.
	pendingRoot chan struct{}
	prefetched  *stageRoot
	prefetchErr error
	volumes     []string // declared volumes, resolved for the snapshot in progress
}

// stageResult is a finished stage.
type stageResult struct {
	image v1.Image
	cfg   *configFile
	scope *dockerfile.Scope
	lfs   *fsview.LayerFS
	root  *stageRoot // nil unless the stage's tree is on disk
	// layers counts the layers of the image, base included.
	layers int
	// key is the stage's final cache key, with a layer cache.
	key string
}

// fs returns the finished stage's tree for COPY --from and RUN --mount: on
// disk while it is there and complete, else the view of its layers.
func (r *stageResult) fs() fsview.FS {
	if r.root != nil && r.root.Live() && r.root.applied == r.layers {
		return r.root.fs
	}
	return r.lfs
}

func (r *stageResult) close() {
	if r.lfs != nil {
		r.lfs.Close()
	}
	if r.root != nil {
		r.root.Release()
	}
}

func (b *Builder) buildStage(ctx context.Context, st *dockerfile.Stage) (*stageResult, error) {
	s := &stageBuilder{b: b, stage: st, log: b.opts.log.WithField("stage", stageName(st))}
	start := time.Now()
	if err := s.from(ctx); err != nil {
		return nil, b.plan.Dockerfile.StageError(st, err)
	}
	if s.root == nil && !b.roots.OneAtATime() && (stageRunsCommands(st) || b.opts.singleSnapshot) {
		if layers, err := s.allLayers(); err == nil {
			if b.cache == nil {
				s.prefetchRoot(ctx, layers)
			} else if tapped, ok := s.prefetchForCopy(ctx, layers); ok {
				// With a cache, only where the RUN steps will run.
				s.prefetchRoot(ctx, tapped)
			}
		}
	}
	defer func() {
		// A stage that failed before it took its prefetched root over.
		if s.pendingRoot != nil {
			<-s.pendingRoot
			if s.prefetched != nil {
				s.prefetched.Release()
			}
		}
	}()
	cmds, err := s.onbuildTriggers()
	if err != nil {
		return nil, err
	}
	cmds = append(cmds, st.Commands...)
	for i, cmd := range cmds {
		if err := s.step(ctx, i+1, len(cmds), cmd); err != nil {
			return nil, err
		}
	}
	if err := s.finishSnapshot(ctx); err != nil {
		return nil, err
	}
	if st == b.plan.Target && len(b.opts.labels) > 0 {
		if s.cfg.Config.Labels == nil {
			s.cfg.Config.Labels = map[string]string{}
		}
		for k, v := range b.opts.labels {
			s.cfg.Config.Labels[k] = v
		}
	}
	s.cfg.Created = v1.Time{Time: s.now()}
	img, err := assemble(s.base, s.layers, s.cfg)
	if err != nil {
		return nil, fmt.Errorf("stage %s: assembling image: %w", stageLabel(st), err)
	}
	s.log.Infof("Built stage %s in %s", stageLabel(st), roundDuration(time.Since(start)))
	layers, err := img.Layers()
	if err != nil {
		return nil, err
	}
	res := &stageResult{image: img, cfg: s.cfg, scope: s.scope, lfs: s.lfs, root: s.root, layers: len(layers), key: s.key}
	return res, nil
}

// from starts the stage from scratch, an image or an earlier stage.
func (s *stageBuilder) from(ctx context.Context) error {
	st := s.stage
	var parent *stageResult
	switch {
	case st.BaseStage != nil:
		var err error
		if parent, err = s.b.wait(ctx, st.BaseStage); err != nil {
			return err
		}
		s.base, s.cfg, s.lfs = parent.image, parent.cfg.clone(), parent.lfs.Clone()
		s.scope = parent.scope.Child(st)
		if stageRunsCommands(st) || s.b.opts.singleSnapshot {
			if s.root = s.b.adoptRoot(st.BaseStage); s.root != nil {
				s.root.ignore = s.ignored
			}
		}
		if s.root != nil {
			s.log.Infof("FROM stage %s (continuing in its root filesystem)", stageLabel(st.BaseStage))
		} else {
			s.log.Infof("FROM stage %s", stageLabel(st.BaseStage))
		}
	case s.isScratch():
		s.base = empty.Image
		s.cfg = scratchConfig(s.platform())
		s.lfs = s.b.layerFS(nil)
		s.log.Info("FROM scratch")
	default:
		var p *basePull
		if f := s.b.results[st]; f != nil {
			p = f.base
		}
		if p == nil { // a stage built outside Build
			p = s.b.startPull(ctx, st)
		}
		if err := p.wait(ctx); err != nil {
			return err
		}
		s.base, s.cfg, s.lfs = p.img, p.cfg, p.lfs
		s.log.Infof("FROM %s (%d layers, %s)", st.Base, len(p.layers), roundDuration(p.took))
	}
	mt, err := s.base.MediaType()
	if err != nil {
		return err
	}
	s.oci = mt == types.OCIManifestSchema1
	if s.scope == nil {
		s.scope = s.b.plan.NewScope(st, s.cfg.Config.Env)
	}
	if s.b.cache != nil {
		if s.key, err = s.rootKey(parent); err != nil {
			return err
		}
	}
	return nil
}

// afterStep moves the stage's key past a step that ran and stores what it
// made (a layer, or nothing) in the cache.
func (s *stageBuilder) afterStep(ctx context.Context, before int) error {
	step := s.pending
	s.pending = cachedStep{}
	if s.b.cache == nil || (step.key == "" && !step.fromOutput) {
		return nil
	}
	var made v1.Layer
	if len(s.layers) > before {
		made = s.layers[len(s.layers)-1]
	}
	if step.fromOutput {
		k := s.layerKey("OUTPUT")
		if made != nil {
			d, err := made.DiffID()
			if err != nil {
				return err
			}
			k.String("diffid", d.String())
		}
		s.key = k.Sum()
		return nil
	}
	s.key = step.key
	if step.use {
		s.b.cache.store(ctx, step.key, made)
	}
	return nil
}

// isScratch reports whether the stage starts from nothing.
func (s *stageBuilder) isScratch() bool {
	return s.stage.BaseStage == nil && strings.EqualFold(s.stage.Base, "scratch")
}

// platform is the stage's platform: FROM --platform, else the build's.
func (s *stageBuilder) platform() v1.Platform {
	if s.stage.Platform != "" {
		if p, err := v1.ParsePlatform(s.stage.Platform); err == nil {
			return *p
		}
	}
	return s.b.opts.platform
}

// scratchConfig is the config of an empty image for platform p; like
// BuildKit's it carries the default PATH so RUN works after COPYing a shell.
func scratchConfig(p v1.Platform) *configFile {
	cf := &configFile{}
	cf.OS, cf.Architecture, cf.Variant, cf.OSVersion = p.OS, p.Architecture, p.Variant, p.OSVersion
	cf.RootFS.Type = "layers"
	cf.Config.Env = []string{"PATH=" + defaultPath}
	return cf
}

// defaultPath is the PATH of images built from scratch.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// onbuildTriggers parses the ONBUILD triggers of the base image: they run
// first in this stage, and are not inherited further.
func (s *stageBuilder) onbuildTriggers() ([]instructions.Command, error) {
	triggers := s.cfg.Config.OnBuild
	s.cfg.Config.OnBuild = nil
	var cmds []instructions.Command
	for _, t := range triggers {
		cmd, err := s.scope.ParseTrigger(t)
		if err != nil {
			return nil, err
		}
		cmds = append(cmds, cmd)
	}
	if len(cmds) > 0 {
		s.log.Infof("Running %d ONBUILD trigger(s) of the base image", len(cmds))
	}
	return cmds, nil
}

// step runs one instruction and logs it with its duration.
func (s *stageBuilder) step(ctx context.Context, n, total int, cmd instructions.Command) (err error) {
	start := time.Now()
	text := instructionText(cmd)
	stage := stageName(s.stage)
	before := len(s.layers)
	cached := false
	started := false
	defer func() {
		if !started && !cached && err == nil {
			return // a metadata instruction: no event
		}
		e := progress.Event{Kind: progress.StepDone, Time: time.Now(), Stage: stage, Step: n, Steps: total,
			Instruction: text, Duration: time.Since(start), Cached: cached}
		if err != nil {
			e.Error = err.Error()
		} else if len(s.layers) > before {
			l := s.layers[len(s.layers)-1]
			if d, derr := l.Digest(); derr == nil {
				e.Layer = d.String()
			}
			e.LayerSize, _ = l.Size()
		}
		s.b.opts.progress.Event(e)
	}()
	expanded, err := s.scope.ExpandCommand(cmd)
	if err != nil {
		return err
	}
	cached, err = s.fromCache(ctx, cmd, expanded)
	if err != nil {
		return s.b.plan.Dockerfile.CommandError(cmd, err)
	}
	if !cached {
		if makesLayer(cmd) {
			started = true
			s.b.opts.progress.Event(progress.Event{Kind: progress.StepStarted, Time: start, Stage: stage, Step: n, Steps: total, Instruction: text})
		}
		if _, isRun := cmd.(*instructions.RunCommand); isRun {
			// A command may take a while: say when it starts.
			s.log.Infof("[%d/%d] %s", n, total, text)
		}
		if err := s.dispatch(ctx, cmd, expanded); err != nil {
			return s.b.plan.Dockerfile.CommandError(cmd, err)
		}
		if err := s.afterStep(ctx, before); err != nil {
			return s.b.plan.Dockerfile.CommandError(cmd, err)
		}
	}
	took := roundDuration(time.Since(start))
	suffix := ""
	if cached {
		suffix = ", cached"
	}
	s.log.WithFields(logrus.Fields{"step": n, "duration": took.String(), "cached": cached}).
		Infof("[%d/%d] %s (%s%s)", n, total, text, took, suffix)
	return nil
}

// makesLayer reports whether an instruction may make a layer (and so
// take a while): RUN, COPY, ADD, WORKDIR.
func makesLayer(cmd instructions.Command) bool {
	switch cmd.(type) {
	case *instructions.RunCommand, *instructions.CopyCommand, *instructions.AddCommand, *instructions.WorkdirCommand:
		return true
	}
	return false
}

// fromCache looks a step up in the layer cache and, on a hit, replays it.
// Otherwise it arranges for the layer the step makes to be stored when it
// is done (see afterStep), and the stage's key moves on either way.
func (s *stageBuilder) fromCache(ctx context.Context, orig, cmd instructions.Command) (bool, error) {
	if s.b.cache == nil {
		return false, nil
	}
	step, err := s.stepKey(ctx, orig, cmd)
	if err != nil || (step.key == "" && !step.fromOutput) {
		return false, err
	}
	s.pending = step
	if step.use {
		if e := s.b.cache.lookup(ctx, step, instructionText(orig)); e != nil {
			s.key, s.pending = step.key, cachedStep{}
			return true, s.replay(cmd, e)
		}
	}
	return false, nil
}

// dispatch runs an expanded instruction; orig is the instruction as planned.
func (s *stageBuilder) dispatch(ctx context.Context, orig, cmd instructions.Command) error {
	switch c := cmd.(type) {
	case *instructions.CopyCommand:
		return s.copy(ctx, orig, copyFromCommand(c))
	case *instructions.AddCommand:
		return s.copy(ctx, orig, addFromCommand(c))
	case *instructions.RunCommand:
		return s.run(ctx, orig.(*instructions.RunCommand), c)
	case *instructions.WorkdirCommand:
		return s.workdir(ctx, c)
	case *instructions.ArgCommand:
		for _, a := range c.Args {
			if _, err := s.scope.DeclareArg(a); err != nil {
				return err
			}
		}
		s.addHistory(createdBy(cmd), true)
		return nil
	}
	handled, err := s.applyMetadata(cmd)
	if err != nil {
		return err
	}
	if !handled {
		return fmt.Errorf("instruction %s is not supported", strings.ToUpper(cmd.Name()))
	}
	s.addHistory(createdBy(cmd), true)
	return nil
}

// addHistory records an instruction in the config history.
func (s *stageBuilder) addHistory(createdBy string, empty bool) {
	s.cfg.History = append(s.cfg.History, v1.History{
		Created:    v1.Time{Time: s.now()},
		CreatedBy:  createdBy,
		Comment:    historyComment,
		EmptyLayer: empty,
	})
}

// addLayer records a new layer of this stage.
func (s *stageBuilder) addLayer(l v1.Layer, createdBy string) {
	s.layers = append(s.layers, l)
	s.lfs.Append(l)
	s.addHistory(createdBy, false)
	if s.b.opts.publish != nil && s.b.inImage[s.stage] {
		s.b.opts.publish(l)
	}
}

// now is the timestamp for config and history: the epoch when reproducible.
func (s *stageBuilder) now() time.Time {
	if s.b.opts.epoch != nil {
		return *s.b.opts.epoch
	}
	return time.Now().UTC()
}

func stageName(s *dockerfile.Stage) string {
	if s.Name != "" {
		return s.Name
	}
	return fmt.Sprintf("%d", s.Index)
}

// instructionText is the instruction as written, shortened for logs.
func instructionText(cmd instructions.Command) string {
	text := strings.ToUpper(cmd.Name())
	if s, ok := cmd.(fmt.Stringer); ok {
		text = s.String()
	}
	text = strings.Join(strings.Fields(text), " ")
	if len(text) > 200 {
		text = text[:197] + "..."
	}
	return text
}

func roundDuration(d time.Duration) time.Duration {
	switch {
	case d > time.Minute:
		return d.Round(time.Second)
	case d > time.Second:
		return d.Round(10 * time.Millisecond)
	default:
		return d.Round(time.Millisecond)
	}
}
