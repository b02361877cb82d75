package executor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/kiln-build/kiln/pkg/layer"
	"github.com/kiln-build/kiln/pkg/rootfs"
	"github.com/kiln-build/kiln/pkg/sandbox"
	"github.com/kiln-build/kiln/pkg/snapshot"
)

// inPlaceRoot manages "/" of the container kiln runs in when it is the
// stage root (in-place isolation, kaniko's model). Before the first stage it
// records what the executor image shipped outside the protected paths;
// before each stage and after the build it puts "/" back to exactly that,
// so a second build in the same container starts clean.
type inPlaceRoot struct {
	log      logrus.FieldLogger
	protect  []string
	pristine *layer.File

	mu  sync.Mutex
	gen int
}

// alwaysProtected are paths of the container that kiln never deletes,
// changes or snapshots in-place: kernel filesystems, files the runtime
// provides, kiln's own directories (and kaniko's, for images that keep
// them) and the debug shell.
var alwaysProtected = []string{
	"/proc", "/sys", "/dev", "/etc/resolv.conf", "/etc/hosts", "/etc/hostname",
	"/kiln", "/kaniko", "/busybox", "/.dockerenv", "/run/.containerenv",
}

// newInPlaceRoot protects extra paths (work dir, context, the directory
// kiln was started in, --ignore-path) besides every mount point, and
// records the pristine state of "/".
func newInPlaceRoot(ctx context.Context, workDir string, extra []string, log logrus.FieldLogger) (*inPlaceRoot, error) {
	mounts, err := sandbox.Protected()
	if err != nil {
		return nil, fmt.Errorf("listing mount points: %w", err)
	}
	var protect []string
	for _, p := range append(append(append([]string{}, alwaysProtected...), mounts...), extra...) {
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
		if real, err := filepath.EvalSymlinks(p); err == nil && real != p {
			protect = append(protect, real)
		}
	}
	if exe, err := os.Executable(); err == nil {
		protect = append(protect, exe)
	}
	sort.Strings(protect)
	ip := &inPlaceRoot{log: log, protect: compactPaths(protect)}
	log.Debugf("in-place: protected paths %s", strings.Join(ip.protect, ", "))
	if err := ip.record(ctx, workDir); err != nil {
		return nil, err
	}
	return ip, nil
}

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
func (ip *inPlaceRoot) protected(p string) bool {
	for _, pr := range ip.protect {
		if within(p, pr) {
			return true
		}
	}
	return false
}

// holdsProtected reports whether a protected path lies below dir.
func (ip *inPlaceRoot) holdsProtected(dir string) bool {
	for _, pr := range ip.protect {
		if within(pr, dir) {
			return true
		}
	}
	return false
}

// record saves everything outside the protected paths as a layer: the
// snapshot of "/" against an empty baseline.
func (ip *inPlaceRoot) record(ctx context.Context, workDir string) error {
	w, err := layer.NewWriter(workDir)
	if err != nil {
		return err
	}
	snap := snapshot.New("/", snapshot.WithIgnore(ip.protected))
	if _, err := snap.Diff(ctx, w); err != nil {
		w.Abort()
		return fmt.Errorf("recording the container's files: %w", err)
	}
	if ip.pristine, err = w.Commit(); err != nil {
		return err
	}
	return nil
}

// acquire makes "/" pristine for a new stage and returns the stage's
// generation: roots of earlier generations are gone.
func (ip *inPlaceRoot) acquire(ctx context.Context) (int, error) {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	if err := ip.reset(ctx); err != nil {
		return 0, err
	}
	ip.gen++
	return ip.gen, nil
}

func (ip *inPlaceRoot) generation() int {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	return ip.gen
}

// restore puts "/" back as the executor image shipped it, at the end of the
// build.
func (ip *inPlaceRoot) restore(ctx context.Context) error {
	ip.mu.Lock()
	defer ip.mu.Unlock()
	ip.gen++
	return ip.reset(ctx)
}

// reset removes everything outside the protected paths, then extracts the
// pristine layer.
func (ip *inPlaceRoot) reset(ctx context.Context) error {
	if err := ip.clear("/"); err != nil {
		return fmt.Errorf("cleaning \"/\" for in-place isolation: %w", err)
	}
	rc, err := ip.pristine.Uncompressed()
	if err != nil {
		return err
	}
	defer rc.Close()
	return rootfs.Apply(ctx, "/", rc, rootfs.WithIgnore(ip.protected), rootfs.WithLogger(ip.log),
		rootfs.WithLayerName("the container's own files"))
}

// clear removes the contents of dir except protected paths.
func (ip *inPlaceRoot) clear(dir string) error {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := path.Join(dir, e.Name())
		switch {
		case ip.protected(p):
		case e.IsDir() && ip.holdsProtected(p):
			errs = append(errs, ip.clear(p))
			// Gone unless a protected path really is below it (the
			// pristine layer puts back a directory the image shipped).
			if err := os.Remove(p); err != nil && !errors.Is(err, unix.ENOTEMPTY) && !errors.Is(err, unix.EEXIST) && !errors.Is(err, unix.EBUSY) {
				errs = append(errs, err)
			}
		default:
			errs = append(errs, os.RemoveAll(p))
		}
	}
	return errors.Join(errs...)
}
