package workdir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"
)

// Build is the work directory of one running build.
type Build struct {
	// Dir is the build's private directory, removed by Close.
	Dir string
	// SecretsDir is where secret files go: memory-backed when possible.
	SecretsDir string

	lockPath string
	lock     *os.File
}

// Option configures Start.
type Option func(*options)

type options struct {
	shm string
	log logrus.FieldLogger
}

// WithMemoryDir sets the memory-backed directory for secrets (default
// /dev/shm); "" keeps secrets in the build's directory.
func WithMemoryDir(dir string) Option { return func(o *options) { o.shm = dir } }

// WithLogger sets the logger for what Start cleans up.
func WithLogger(l logrus.FieldLogger) Option { return func(o *options) { o.log = l } }

const (
	buildPrefix   = "build-"
	lockSuffix    = ".lock"
	pendingPrefix = ".pending-"
	secretsPrefix = "kiln-secrets-"
)

// Start creates a build directory in kilnDir, locked for this process, after
// removing what dead builds left there.
func Start(kilnDir string, opts ...Option) (*Build, error) {
	o := options{shm: "/dev/shm", log: logrus.StandardLogger()}
	for _, opt := range opts {
		opt(&o)
	}
	// The lock is taken on a file of a unique name first and only then
	// renamed to build-ID.lock: no other build ever sees the lock file of
	// a live build unlocked.
	f, err := os.CreateTemp(kilnDir, pendingPrefix)
	if err != nil {
		return nil, fmt.Errorf("creating a build directory in %q: %w", kilnDir, err)
	}
	if ok, err := tryFlock(f); !ok {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("locking %q: %w", f.Name(), err)
	}
	id := strings.TrimPrefix(filepath.Base(f.Name()), pendingPrefix)
	b := &Build{Dir: filepath.Join(kilnDir, buildPrefix+id), lockPath: filepath.Join(kilnDir, buildPrefix+id+lockSuffix), lock: f}
	if err := os.Rename(f.Name(), b.lockPath); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	clean(kilnDir, o)
	if err := os.Mkdir(b.Dir, 0o700); err != nil {
		b.Close()
		return nil, fmt.Errorf("creating build directory: %w", err)
	}
	b.SecretsDir = filepath.Join(b.Dir, "secrets")
	if dir := secretsDir(o.shm, id); dir != "" {
		b.SecretsDir = dir
	} else if err := os.Mkdir(b.SecretsDir, 0o700); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// secretsDir creates the memory-backed secrets directory of build id, or
// returns "" when shm is not a tmpfs kiln may write.
func secretsDir(shm, id string) string {
	if shm == "" {
		return ""
	}
	var st unix.Statfs_t
	if err := unix.Statfs(shm, &st); err != nil || st.Type != unix.TMPFS_MAGIC {
		return ""
	}
	dir := filepath.Join(shm, secretsPrefix+id)
	if err := os.Mkdir(dir, 0o700); err != nil {
		return ""
	}
	return dir
}

// Close removes the build's directories and lets go of its lock.
func (b *Build) Close() error {
	var errs []error
	if b.SecretsDir != "" {
		errs = append(errs, os.RemoveAll(b.SecretsDir))
	}
	errs = append(errs, os.RemoveAll(b.Dir), os.Remove(b.lockPath))
	if b.lock != nil {
		errs = append(errs, b.lock.Close())
		b.lock = nil
	}
	return errors.Join(errs...)
}

// clean removes, in kilnDir, the directories of builds that are not running:
// those whose lock file is unlocked or gone.
func clean(kilnDir string, o options) {
	entries, err := os.ReadDir(kilnDir)
	if err != nil {
		return
	}
	live := map[string]bool{}
	for _, e := range entries {
		name := e.Name()
		switch {
		case strings.HasPrefix(name, buildPrefix) && strings.HasSuffix(name, lockSuffix):
			id := strings.TrimSuffix(strings.TrimPrefix(name, buildPrefix), lockSuffix)
			if !removeIfDead(kilnDir, id, o) {
				live[id] = true
			}
		case strings.HasPrefix(name, pendingPrefix):
			// A build that died before it renamed its lock.
			p := filepath.Join(kilnDir, name)
			if unlock, ok, _ := TryLock(p); ok {
				os.Remove(p)
				unlock()
			}
		}
	}
	for _, e := range entries {
		name := e.Name()
		if !e.IsDir() || !strings.HasPrefix(name, buildPrefix) {
			continue
		}
		// A build directory without a lock file belongs to a dead build
		// (a live build renames its lock into place before creating it).
		id := strings.TrimPrefix(name, buildPrefix)
		if _, err := os.Lstat(filepath.Join(kilnDir, name+lockSuffix)); errors.Is(err, os.ErrNotExist) && !live[id] {
			o.log.Infof("Removing %q, left by a build that is no longer running", filepath.Join(kilnDir, name))
			os.RemoveAll(filepath.Join(kilnDir, name))
		}
	}
}

// removeIfDead removes the directories of build id if its lock is free,
// and reports whether it did.
func removeIfDead(kilnDir, id string, o options) bool {
	lock := filepath.Join(kilnDir, buildPrefix+id+lockSuffix)
	unlock, ok, err := TryLock(lock)
	if err != nil || !ok {
		return false
	}
	defer unlock()
	dir := filepath.Join(kilnDir, buildPrefix+id)
	if _, err := os.Lstat(dir); err == nil {
		o.log.Infof("Removing %q, left by a build that is no longer running", dir)
	}
	os.RemoveAll(dir)
	if o.shm != "" {
		os.RemoveAll(filepath.Join(o.shm, secretsPrefix+id))
	}
	os.Remove(lock)
	return true
}
