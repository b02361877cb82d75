package sandbox

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// Spec describes one command to run.
type Spec struct {
	// Rootfs is the root filesystem directory the command runs in; "/" in
	// in-place isolation.
	Rootfs string
	// Args is the command and its arguments, already wrapped in a shell by
	// the caller for the shell form of RUN. A name without a slash is looked
	// up in the PATH of Env inside the root filesystem.
	Args []string
	// Env is exactly the environment the command sees: nothing of kiln's own
	// environment is passed on.
	Env []string
	// Dir is the working directory inside the root filesystem; "/" if empty.
	// The caller creates it.
	Dir string
	// UID, GID and Groups (supplementary groups) are the command's identity.
	UID, GID uint32
	Groups   []uint32
	// Hostname is the host name the command sees; DefaultHostname if empty.
	// In-place isolation ignores Hostname, Hosts and ResolvConf: the
	// command sees the container's own.
	Hostname string
	// Network is NetworkDefault (also when empty), NetworkHost or
	// NetworkNone.
	Network string
	// Mounts are the RUN --mount mounts, mounted in order of their target's
	// depth so that a mount can be nested in another one. A mount at
	// /etc/hosts, /etc/resolv.conf or /etc/hostname replaces kiln's file.
	Mounts []Mount
	// Hosts and ResolvConf are the contents of /etc/hosts and
	// /etc/resolv.conf for the command. When nil, /etc/hosts is the
	// machine's (only the localhost entries with NetworkNone) plus the host
	// name, and /etc/resolv.conf is the machine's.
	Hosts, ResolvConf []byte
	// Stdin, Stdout and Stderr are the command's standard streams; nil
	// means the null device.
	Stdin          io.Reader
	Stdout, Stderr io.Writer
}

// The values of Spec.Network.
const (
	// NetworkDefault is decided once per build (see planNetwork): in a
	// container, kiln's network (the pod's); on a host, a network
	// namespace of the RUN's own connected by pasta or slirp4netns, or
	// the machine's network without CAP_NET_RAW when neither is
	// installed. In-place isolation always shares kiln's network.
	NetworkDefault = "default"
	// NetworkHost shares kiln's network.
	NetworkHost = "host"
	// NetworkNone gives the command a network namespace with only a
	// loopback interface.
	NetworkNone = "none"
)

// DefaultHostname is the host name of a RUN command when Spec.Hostname is
// empty: a fixed name keeps builds reproducible.
const DefaultHostname = "kiln"

// MountType is the type of a RUN --mount.
type MountType string

// The mount types.
const (
	// MountBind mounts the file or directory Source at Target.
	MountBind MountType = "bind"
	// MountCache mounts the cache directory Source at Target, read-write
	// unless ReadOnly.
	MountCache MountType = "cache"
	// MountTmpfs mounts an empty tmpfs of at most Size bytes at Target.
	MountTmpfs MountType = "tmpfs"
	// MountSecret mounts the file Source at Target, always read-only.
	MountSecret MountType = "secret"
)

// Mount is one RUN --mount.
type Mount struct {
	Type MountType
	// Source is the file or directory on the machine kiln runs on; unused
	// for tmpfs.
	Source string
	// Target is the absolute path inside the root filesystem, not in /proc
	// or /sys. A mount point that does not exist is created for the RUN and
	// removed afterwards; inside another mount (a tmpfs, a cache, /dev) it
	// is created there.
	Target string
	// ReadOnly makes bind and cache mounts read-only.
	ReadOnly bool
	// Size limits a tmpfs mount, in bytes; zero means the kernel's default.
	Size int64
}

// defaultPath is the PATH used to look the command up when Spec.Env has
// none, as Docker does; it is not added to the command's environment.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// validate checks the parts of s that do not depend on the isolation mode.
func (s *Spec) validate() error {
	if len(s.Args) == 0 || s.Args[0] == "" {
		return errors.New("no command to run")
	}
	if s.Rootfs == "" || !filepath.IsAbs(s.Rootfs) {
		return fmt.Errorf("root filesystem %q is not an absolute path", s.Rootfs)
	}
	if s.Dir != "" && !path.IsAbs(s.Dir) {
		return fmt.Errorf("working directory %q is not an absolute path", s.Dir)
	}
	for _, kv := range s.Env {
		if k, _, ok := strings.Cut(kv, "="); !ok || k == "" {
			return fmt.Errorf("environment entry %q is not NAME=VALUE", kv)
		}
	}
	switch s.Network {
	case "", NetworkDefault, NetworkHost, NetworkNone:
	default:
		return fmt.Errorf("unknown network %q: want %q, %q or %q", s.Network, NetworkDefault, NetworkHost, NetworkNone)
	}
	targets := map[string]bool{}
	for _, m := range s.Mounts {
		if err := m.validate(); err != nil {
			return err
		}
		if targets[path.Clean(m.Target)] {
			return fmt.Errorf("two mounts at %q", m.Target)
		}
		targets[path.Clean(m.Target)] = true
	}
	return nil
}

func (m *Mount) validate() error {
	if !path.IsAbs(m.Target) || path.Clean(m.Target) == "/" {
		return fmt.Errorf("%s mount target %q is not an absolute path below /", m.Type, m.Target)
	}
	// The sandbox mounts /proc, /sys and /dev itself; mount points can be
	// created only in /dev, a tmpfs (BuildKit mounts here-document scripts
	// in /dev/pipes).
	t := path.Clean(m.Target)
	for _, sys := range []string{"/proc", "/sys"} {
		if t == sys || strings.HasPrefix(t, sys+"/") {
			return fmt.Errorf("%s mount target %q is inside %s, which the sandbox mounts itself", m.Type, m.Target, sys)
		}
	}
	if t == "/dev" {
		return fmt.Errorf("%s mount target %q is /dev, which the sandbox mounts itself", m.Type, m.Target)
	}
	switch m.Type {
	case MountBind, MountCache, MountSecret:
		if !filepath.IsAbs(m.Source) {
			return fmt.Errorf("%s mount at %q: source %q is not an absolute path", m.Type, m.Target, m.Source)
		}
		st, err := os.Stat(m.Source)
		if err != nil {
			return fmt.Errorf("%s mount at %q: %w", m.Type, m.Target, err)
		}
		if m.Type == MountCache && !st.IsDir() {
			return fmt.Errorf("cache mount at %q: source %q is not a directory", m.Target, m.Source)
		}
		if m.Type == MountSecret && st.IsDir() {
			return fmt.Errorf("secret mount at %q: source %q is a directory", m.Target, m.Source)
		}
	case MountTmpfs:
		if m.Size < 0 {
			return fmt.Errorf("tmpfs mount at %q: negative size %d", m.Target, m.Size)
		}
	default:
		return fmt.Errorf("mount at %q: unknown type %q", m.Target, m.Type)
	}
	return nil
}

// getenv returns the value of name in env, the last one winning as in a
// process environment.
func getenv(env []string, name string) (string, bool) {
	for i := len(env) - 1; i >= 0; i-- {
		if k, v, _ := strings.Cut(env[i], "="); k == name {
			return v, true
		}
	}
	return "", false
}

// lookPath finds the executable name in the PATH of env, in the filesystem
// kiln's helper sees (the root filesystem, once pivoted into).
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	search, ok := getenv(env, "PATH")
	if !ok {
		search = defaultPath
	}
	for _, dir := range filepath.SplitList(search) {
		if dir == "" {
			dir = "."
		}
		p := path.Join(dir, name)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: executable file not found in PATH %q", name, search)
}
