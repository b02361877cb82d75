package executor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/sirupsen/logrus"

	"github.com/kiln-build/kiln/pkg/compression"
	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/rootfs"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/snapshot"
)

// inPlaceRoots lends "/" of the container kiln runs in to one stage at a
// time (in-place isolation, kaniko's model). Before the first stage it
// records what the executor image shipped outside the protected paths;
// before each stage and at Close it puts "/" back to exactly that, so a
// second build in the same container starts clean.
type inPlaceRoots struct {
	dir     string // "/"; a directory standing in for it in tests
	workDir string
	// stateDir outlives the build (in kiln's own directory): the
	// pristine record and a marker stay there while "/" is changed, so
	// that the next build puts "/" back if this one is killed first.
	stateDir string
	extra    []string // protected besides alwaysProtected and mount points
	mounts   func() ([]string, error)
	log      logrus.FieldLogger

	mu       sync.Mutex
	protect  []string
	pristine *layer.File
	current  *inPlaceRoot
}

// alwaysProtected are paths of the container that kiln never deletes,
// changes or snapshots in-place: kernel filesystems, files the runtime
// provides, kiln's own directories (and kaniko's, for images that keep
// them) and the debug shell.
var alwaysProtected = []string{
	"/proc", "/sys", "/dev", "/etc/resolv.conf", "/etc/hosts", "/etc/hostname",
	"/kiln", "/kaniko", "/busybox", "/.dockerenv", "/run/.containerenv",
}

// newInPlaceRoots lends "/", protecting extra paths (work dir, context, the
// directory kiln was started in, --ignore-path) besides every mount point.
func newInPlaceRoots(workDir, stateDir string, extra []string, log logrus.FieldLogger) *inPlaceRoots {
	return &inPlaceRoots{dir: "/", workDir: workDir, stateDir: stateDir, extra: extra, mounts: sandbox.Protected, log: log}
}

// dirtyMarker names, in the state directory, the pristine record of a
// build that is changing "/".
const dirtyMarker = "in-place-dirty"

// New resets "/" and lends it to a new stage; the previous stage's tree
// is gone from then on.
func (a *inPlaceRoots) New(ctx context.Context, _ string, _ []v1.Layer) (rootFS, int, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pristine == nil {
		if err := a.record(ctx); err != nil {
			return nil, 0, err
		}
	}
	a.revoke()
	if err := a.reset(ctx); err != nil {
		return nil, 0, err
	}
	a.current = &inPlaceRoot{a: a, live: true}
	return a.current, 0, nil
}

func (a *inPlaceRoots) OneAtATime() bool { return true }

// Close puts "/" back as the executor image shipped it.
func (a *inPlaceRoots) Close(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.pristine == nil {
		return nil
	}
	a.revoke()
	if err := a.reset(ctx); err != nil {
		// The marker stays: the next build tries again.
		return fmt.Errorf("restoring the container's files after the build: %w", err)
	}
	if a.stateDir != "" {
		os.Remove(filepath.Join(a.stateDir, dirtyMarker))
	}
	a.pristine.Remove()
	a.pristine = nil
	return nil
}

// recover puts "/" back as the record of a build that was killed before
// it could left it, if there is one.
func (a *inPlaceRoots) recover(ctx context.Context) error {
	marker := filepath.Join(a.stateDir, dirtyMarker)
	name, err := os.ReadFile(marker)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	record := filepath.Join(a.stateDir, filepath.Base(strings.TrimSpace(string(name))))
	a.log.Warnf("A build in this container ended before it put \"/\" back: restoring it from %s", record)
	f, err := os.Open(record)
	if err != nil {
		return fmt.Errorf("the record of the container's files %q: %w", record, err)
	}
	defer f.Close()
	rc, _, err := compression.Decompress(f)
	if err != nil {
		return fmt.Errorf("the record of the container's files %q: %w", record, err)
	}
	defer rc.Close()
	if err := a.restore(ctx, rc); err != nil {
		return err
	}
	os.Remove(record)
	return os.Remove(marker)
}

func (a *inPlaceRoots) revoke() {
	if a.current != nil {
		a.current.mu.Lock()
		a.current.live = false
		a.current.mu.Unlock()
		a.current = nil
	}
}

// record computes the protected paths and saves everything outside them
// as a layer: the snapshot of "/" against an empty baseline.
func (a *inPlaceRoots) record(ctx context.Context) error {
	mounts, err := a.mounts()
	if err != nil {
		return fmt.Errorf("listing mount points: %w", err)
	}
	var protect []string
	for _, p := range append(append(append([]string{}, alwaysProtected...), mounts...), a.extra...) {
		if p == "" || !path.IsAbs(p) {
			continue
		}
		p = path.Clean(p)
		if p == "/" {
			continue // "/" itself is the root being built
		}
		protect = append(protect, p)
		// A protected path reached through a symlink must be protected
		// where it really is, too.
		if real, err := filepath.EvalSymlinks(a.host(p)); err == nil {
			if rel, err := filepath.Rel(a.dir, real); err == nil && !strings.HasPrefix(rel, "..") {
				if cp := path.Clean("/" + rel); cp != p {
					protect = append(protect, cp)
				}
			}
		}
	}
	if exe, err := os.Executable(); err == nil && a.dir == "/" {
		protect = append(protect, exe)
	}
	sort.Strings(protect)
	a.protect = compactPaths(protect)
	a.log.Debugf("in-place: protected paths %s", strings.Join(a.protect, ", "))

	recordDir := a.workDir
	if a.stateDir != "" {
		if err := os.MkdirAll(a.stateDir, 0o700); err != nil {
			return err
		}
		if err := a.recover(ctx); err != nil {
			return fmt.Errorf("restoring \"/\" after an interrupted build: %w", err)
		}
		recordDir = a.stateDir
	}
	w, err := layer.NewWriter(recordDir)
	if err != nil {
		return err
	}
	snap := snapshot.New(a.dir, snapshot.WithIgnore(a.protected))
	if _, err := snap.Diff(ctx, w); err != nil {
		w.Abort()
		return fmt.Errorf("recording the container's files: %w", err)
	}
	if a.pristine, err = w.Commit(); err != nil {
		return err
	}
	if a.stateDir != "" {
		// From here until Close, "/" may differ from the record.
		return writeMarker(filepath.Join(a.stateDir, dirtyMarker), filepath.Base(a.pristine.Path()))
	}
	return nil
}

// writeMarker writes a small file whole or not at all.
func writeMarker(p, content string) error {
	tmp := p + ".tmp"
	if err := os.WriteFile(tmp, []byte(content+"\n"), 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, p)
}

// host is the host path of a container path.
func (a *inPlaceRoots) host(p string) string { return filepath.Join(a.dir, p) }

// compactPaths drops paths below another path of the sorted list.
func compactPaths(sorted []string) []string {
	var out []string
	for _, p := range sorted {
		if len(out) > 0 && within(p, out[len(out)-1]) {
			continue
		}
		out = append(out, p)
	}
	return out
}

// protected reports whether a container path must not be touched.
func (a *inPlaceRoots) protected(p string) bool {
	for _, pr := range a.protect {
		if within(p, pr) {
			return true
		}
	}
	return false
}

// reset puts "/" back as the pristine layer recorded it.
func (a *inPlaceRoots) reset(ctx context.Context) error {
	rc, err := a.pristine.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return a.restore(ctx, rc)
}

// restore removes everything outside the protected paths, through the
// confined filesystem API, then extracts the container's files from rc.
func (a *inPlaceRoots) restore(ctx context.Context, rc io.Reader) error {
	rt, err := rootfs.OpenRoot(a.dir)
	if err != nil {
		return err
	}
	err = rt.Clear("/", a.protected)
	rt.Close()
	if err != nil {
		return fmt.Errorf("cleaning \"/\" for in-place isolation: %w", err)
	}
	return rootfs.Apply(ctx, a.dir, rc, rootfs.WithIgnore(a.protected), rootfs.WithLogger(a.log),
		rootfs.WithLayerName("the container's own files"))
}

// inPlaceRoot is "/" lent to one stage. Nothing can be mounted here, so
// RUN mounts are placed as files.
type inPlaceRoot struct {
	a    *inPlaceRoots
	mu   sync.Mutex
	live bool
}

func (r *inPlaceRoot) Dir() string { return r.a.dir }

// Differ compares file metadata with a walk of "/".
func (r *inPlaceRoot) Differ(ignore func(string) bool) differ {
	return snapshot.New(r.a.dir, snapshot.WithIgnore(ignore))
}

func (r *inPlaceRoot) Protected(p string) bool { return r.a.protected(p) }
func (r *inPlaceRoot) PlacesMounts() bool      { return true }
func (r *inPlaceRoot) Release()                {} // the next stage or Close resets "/"

func (r *inPlaceRoot) Live() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.live
}

// Provide places a RUN mount in "/" for the RUN only, hidden from the
// snapshot, and returns how to put things back: what the image has at the
// target is moved aside; a secret or a bind gets a copy of its source
// (writes to it are discarded, and a read-only bind is not enforced); a
// cache directory is moved in and back out, keeping what the RUN wrote; a
// tmpfs is an empty directory.
func (r *inPlaceRoot) Provide(m sandbox.Mount) (*sandbox.Mount, string, func() error, error) {
	placed, undo, err := placeMount(r.a.dir, r.a.workDir, m)
	if err != nil {
		return nil, "", nil, fmt.Errorf("providing --mount=type=%s at %q without mounting: %w", m.Type, m.Target, err)
	}
	return nil, placed, undo, nil
}
