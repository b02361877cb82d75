package executor

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/cache"
	"github.com/kiln-build/kiln/pkg/copier"
	"github.com/kiln-build/kiln/pkg/dockerfile"
)

// CacheOptions configure the layer cache (kaniko's --cache family).
type CacheOptions struct {
	Store cache.Store
	// TTL is how old an entry may be (0: any age).
	TTL time.Duration
	// RunLayers caches the layers of RUN (kaniko's default), CopyLayers
	// those of COPY and ADD (off by default, as in kaniko).
	RunLayers, CopyLayers bool
	// Write stores the layers of steps that missed (false: --no-push-cache).
	Write bool
}

// WithCache serves steps whose inputs were built before from the cache,
// and writes the others to it.
func WithCache(o CacheOptions) Option { return func(opts *options) { opts.cache = &o } }

// layerCache is the cache as one build uses it. It never fails the build:
// a store that errs is warned about once and not used again.
type layerCache struct {
	opts CacheOptions
	log  logrus.FieldLogger
	now  func() time.Time

	mu     sync.Mutex
	broken bool
	writes sync.WaitGroup
	hits   int
	misses int
}

func newLayerCache(o CacheOptions, log logrus.FieldLogger) *layerCache {
	return &layerCache{opts: o, log: log.WithField("cache", o.Store.String()), now: time.Now}
}

// lookup returns the entry of a step, or nil for a miss.
func (c *layerCache) lookup(ctx context.Context, st cachedStep, step string) *cache.Entry {
	e, err := c.get(ctx, st.key)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.misses++
		switch {
		case errors.Is(err, cache.ErrCorrupt):
			c.log.Warnf("%s: not served from the cache, its entry is damaged: %v", step, err)
		case errors.Is(err, cache.ErrMiss):
			c.log.Debugf("%s: cache miss for key %s (%v); its inputs: %s", step, st.key, err, st.inputs)
		}
		return nil
	}
	c.hits++
	return e
}

// errBroken is get's answer once the store has failed.
var errBroken = errors.New("the cache store failed earlier")

// get reads the entry of key. An error that is not a miss is the store's
// trouble: it is warned about once and the store is not used again.
func (c *layerCache) get(ctx context.Context, key string) (*cache.Entry, error) {
	c.mu.Lock()
	broken := c.broken
	c.mu.Unlock()
	if broken {
		return nil, errBroken
	}
	e, err := cache.Lookup(ctx, c.opts.Store, key, c.opts.TTL, c.now())
	if err != nil && !errors.Is(err, cache.ErrMiss) {
		c.mu.Lock()
		c.fail("reading", err)
		c.mu.Unlock()
	}
	return e, err
}

// fail stops using a store that errs, with one warning. c.mu is held.
func (c *layerCache) fail(op string, err error) {
	if c.broken || errors.Is(err, context.Canceled) {
		return
	}
	c.broken = true
	c.log.Warnf("Layer cache %q: %s failed, the build goes on without it: %v", c.opts.Store, op, err)
}

// store writes the entry of key in the background; nil is a step that
// changed nothing.
func (c *layerCache) store(ctx context.Context, key string, l v1.Layer) {
	c.storeFrom(ctx, key, func() (v1.Layer, error) { return l, nil })
}

// storeFrom writes the layer that build returns, in the background.
func (c *layerCache) storeFrom(ctx context.Context, key string, build func() (v1.Layer, error)) {
	if !c.opts.Write {
		return
	}
	c.mu.Lock()
	broken := c.broken
	c.mu.Unlock()
	if broken {
		return
	}
	c.writes.Add(1)
	go func() {
		defer c.writes.Done()
		l, err := build()
		if err == nil {
			err = c.opts.Store.Put(context.WithoutCancel(ctx), key, &cache.Entry{Layer: l, Created: c.now()})
		}
		if err != nil {
			c.mu.Lock()
			c.fail("writing", err)
			c.mu.Unlock()
		}
	}()
}

// wait waits for the writes in flight.
func (c *layerCache) wait() {
	c.writes.Wait()
}

// summary is the cache's line at the end of a build.
func (c *layerCache) summary() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("Layer cache %q: %d steps served from the cache, %d run", c.opts.Store, c.hits, c.misses)
}

// rootKey is the key a stage starts from: its base image's manifest digest
// and the platform, "scratch", or the final key of the stage it continues.
func (s *stageBuilder) rootKey(parent *stageResult) (string, error) {
	p := s.platform()
	k := cache.NewKey("FROM").String("platform", p.String())
	switch {
	case parent != nil:
		return parent.key, nil
	case s.isScratch():
		k.String("base", "scratch")
	default:
		d, err := s.base.Digest()
		if err != nil {
			return "", fmt.Errorf("image %q: %w", s.stage.Base, err)
		}
		k.String("base", d.String())
	}
	return k.Sum(), nil
}

// layerKey starts the key of a step that makes a layer: the key before it
// and how kiln writes layers.
func (s *stageBuilder) layerKey(kind string) *cache.Key {
	o := s.b.opts
	k := cache.NewKey(kind).String("parent", s.key).
		String("compression", string(o.compression)).String("level", fmt.Sprint(o.level)).Bool("oci", s.oci)
	if o.epoch != nil {
		k.String("epoch", o.epoch.UTC().Format(time.RFC3339))
	}
	return k
}

// cachedStep is a step's cache key and whether the cache serves it.
type cachedStep struct {
	key string
	// inputs lists the key's fields, for the log of a miss.
	inputs string
	// use: the step may be looked up and stored.
	use bool
	// fromOutput: the key is only known from the layer the step makes (an
	// ADD of a URL without --checksum): it is neither looked up nor stored.
	fromOutput bool
}

// stepKey computes the key of a step that makes (or may make) a layer:
// RUN, COPY, ADD and WORKDIR. Other instructions return a zero cachedStep:
// what they change reaches the keys of later steps through the
// environment, user, shell and directory those steps see.
func (s *stageBuilder) stepKey(ctx context.Context, orig, cmd instructions.Command) (cachedStep, error) {
	c := s.b.cache
	switch x := cmd.(type) {
	case *instructions.RunCommand:
		k, err := s.runKey(ctx, orig.(*instructions.RunCommand), x)
		if err != nil {
			return cachedStep{}, err
		}
		return cachedStep{key: k.Sum(), inputs: k.Inputs(), use: c.opts.RunLayers}, nil
	case *instructions.CopyCommand:
		return s.copyKey(ctx, orig, copyFromCommand(x))
	case *instructions.AddCommand:
		return s.copyKey(ctx, orig, addFromCommand(x))
	case *instructions.WorkdirCommand:
		k := s.layerKey("WORKDIR").String("path", resolveWorkdir(s.cfg.Config.WorkingDir, x.Path)).
			String("user", s.cfg.Config.User)
		return cachedStep{key: k.Sum(), inputs: k.Inputs(), use: true}, nil
	}
	return cachedStep{}, nil
}

// runKey is the key of a RUN: the command, the environment, user, shell
// and directory it runs with, its flags, and what its mounts bring in (the
// content of a bind from the context, the key of a stage, the digest of an
// image). A secret counts by its id only.
func (s *stageBuilder) runKey(ctx context.Context, orig, c *instructions.RunCommand) (*cache.Key, error) {
	p, err := s.planRun(orig, c)
	if err != nil {
		return nil, err
	}
	k := s.layerKey("RUN").Strings("args", p.Args).Strings("env", p.Env).String("user", p.User).
		String("dir", p.Dir).String("network", p.Network).String("security", instructions.GetSecurity(c))
	if p.Script != nil {
		k.String("script", p.Script.Name+"\x00"+p.Script.Data)
	}
	for _, m := range p.Mounts {
		k.Strings("mount", []string{string(m.Type), m.Target, m.Source, m.CacheID, string(m.CacheSharing), fmt.Sprint(m.ReadOnly),
			fmt.Sprint(m.Required), ptrString(m.Mode), ptrString(m.UID), ptrString(m.GID), fmt.Sprint(m.SizeLimit), ptrString(m.Env)})
		if m.Type != instructions.MountTypeBind {
			continue
		}
		if err := s.sourceKey(ctx, k, m.From, []string{m.Source}); err != nil {
			return nil, err
		}
	}
	return k, nil
}

// copyKey is the key of a COPY or ADD: its flags and destination, and the
// names, modes and content of its sources after .dockerignore (from the
// context), the key of the stage or the digest of the image it copies from,
// and the URLs with their checksum.
func (s *stageBuilder) copyKey(ctx context.Context, orig instructions.Command, spec copySpec) (cachedStep, error) {
	kind := "COPY"
	if spec.add {
		kind = "ADD"
	}
	k := s.layerKey(kind).Strings("sources", spec.sources).String("dest", spec.dest).
		String("workdir", s.cfg.Config.WorkingDir).String("chown", spec.chown).String("chmod", spec.chmod).
		Bool("link", spec.link).Bool("parents", spec.parents).Strings("exclude", spec.exclude).String("checksum", spec.checksum)
	for _, h := range spec.contents {
		k.String("heredoc", h.Path+"\x00"+h.Data)
	}
	var local []string
	for _, src := range spec.sources {
		if isURL(src) {
			if spec.checksum == "" {
				// The content behind the URL is only known by fetching it.
				return cachedStep{fromOutput: true}, nil
			}
			continue
		}
		local = append(local, src)
	}
	if spec.from != "" {
		source, err := s.copyFromSource(orig, spec)
		if err != nil {
			return cachedStep{}, err
		}
		if err := s.sourceKey(ctx, k, source, local); err != nil {
			return cachedStep{}, err
		}
	} else if len(local) > 0 || len(spec.contents) > 0 {
		if err := s.contextKey(ctx, k, spec, local); err != nil {
			return cachedStep{}, err
		}
	}
	return cachedStep{key: k.Sum(), inputs: k.Inputs(), use: s.b.cache.opts.CopyLayers}, nil
}

// contextKey adds what a COPY or ADD would take from the build context: the
// copier runs as for the layer, into a digest instead.
func (s *stageBuilder) contextKey(ctx context.Context, k *cache.Key, spec copySpec, sources []string) error {
	if s.b.opts.context == nil {
		return errors.New("no build context")
	}
	d := cache.NewTarDigest()
	req := &copier.Request{Sources: sources, Dest: spec.dest, Workdir: s.cfg.Config.WorkingDir, Src: s.b.opts.context.FS(),
		Chmod: spec.chmod, Exclude: spec.exclude, Parents: spec.parents, Link: true, Add: spec.add, FromContext: true}
	for _, c := range spec.contents {
		req.Heredocs = append(req.Heredocs, copier.Inline{Name: c.Path, Data: []byte(c.Data)})
	}
	if _, err := copier.Copy(ctx, req, d); err != nil {
		return explainExcluded(err, req.Src, sources)
	}
	k.String("content", d.Sum())
	return nil
}

// sourceKey adds a source other than the build context: a stage by its
// final key, an image by its digest, with the paths taken from it; the
// context (a RUN --mount=type=bind without from=) by its content.
func (s *stageBuilder) sourceKey(ctx context.Context, k *cache.Key, src dockerfile.Source, paths []string) error {
	switch {
	case src.Stage != nil:
		res, err := s.b.wait(ctx, src.Stage)
		if err != nil {
			return err
		}
		k.String("from-stage", res.key)
	case src.Image != "":
		v, err := s.b.image(ctx, src.Image)
		if err != nil {
			return err
		}
		k.String("from-image", v.digest.String())
	default:
		return s.contextKey(ctx, k, copySpec{sources: paths, dest: "/"}, paths)
	}
	k.Strings("paths", paths)
	return nil
}

// replay adds what a step served from the cache produced, as if it ran.
func (s *stageBuilder) replay(cmd instructions.Command, e *cache.Entry) error {
	var history string
	switch c := cmd.(type) {
	case *instructions.RunCommand:
		history = s.runHistory(c)
	case *instructions.WorkdirCommand:
		s.cfg.Config.WorkingDir = resolveWorkdir(s.cfg.Config.WorkingDir, c.Path)
		history = createdBy(c)
	case *instructions.CopyCommand, *instructions.AddCommand:
		history = createdBy(cmd)
	default:
		return fmt.Errorf("instruction %s cannot come from the cache", strings.ToUpper(cmd.Name()))
	}
	if e.Layer == nil {
		s.addHistory(history, true)
		return nil
	}
	s.addLayer(e.Layer, history)
	return nil
}

func ptrString[T any](p *T) string {
	if p == nil {
		return ""
	}
	return fmt.Sprint(*p)
}

func isURL(s string) bool {
	return strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://")
}
