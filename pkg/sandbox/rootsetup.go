package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// rootSetup is the helper's part of chroot and rootless isolation: the
// mounts, made in the helper's new mount namespace, then pivot_root. It
// runs before the command, so nothing else changes the root filesystem
// meanwhile.
type rootSetup struct {
	Rootfs   string
	Hostname string
	// Loopback brings up "lo" in the helper's new network namespace.
	Loopback bool
	// Mounts are mounted in order.
	Mounts []mountStep
}

// The kinds of mountStep.
const (
	kindProc  = "proc"
	kindDev   = "dev"
	kindSysfs = "sysfs"
	kindBind  = "bind"
	kindTmpfs = "tmpfs"
)

// mountStep is one mount of rootSetup.
type mountStep struct {
	Kind string
	// Source is the file or directory a bind mount mounts.
	Source string
	// Target is the mount point inside the root filesystem.
	Target   string
	ReadOnly bool
	// Size limits a tmpfs, in bytes (0: the kernel's default).
	Size int64
	// File says the mount point is a file, not a directory.
	File bool
	// Nested says the target is inside an earlier mount of the list,
	// where the helper creates it if missing. The parent process creates
	// the others in the root filesystem and removes them after the RUN.
	Nested bool
}

func (r *rootSetup) setup() error {
	// Mount points and device nodes get exactly the modes asked for.
	unix.Umask(0)
	// Nothing mounted from now on propagates to the machine's mounts.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("making the sandbox's mounts private: %w", err)
	}
	// pivot_root needs the new root to be a mount point.
	if err := unix.Mount(r.Rootfs, r.Rootfs, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind-mounting the root filesystem %q: %w", r.Rootfs, err)
	}
	// Device nodes in the root filesystem (from a layer, an ADD archive)
	// cannot be opened: the RUN's devices are those of kiln's /dev.
	if err := setMountAttr(r.Rootfs, unix.MOUNT_ATTR_NODEV); err != nil {
		return fmt.Errorf("making the root filesystem %q nodev: %w", r.Rootfs, err)
	}
	for i := range r.Mounts {
		if err := r.mount(&r.Mounts[i]); err != nil {
			return err
		}
	}
	if err := unix.Sethostname([]byte(r.Hostname)); err != nil {
		return fmt.Errorf("setting the host name %q: %w", r.Hostname, err)
	}
	if r.Loopback {
		if err := loopbackUp(); err != nil {
			return fmt.Errorf("bringing up the loopback interface: %w", err)
		}
	}
	return pivotRoot(r.Rootfs)
}

func (r *rootSetup) mount(m *mountStep) error {
	// Symlinks in the target are resolved inside the root filesystem, as
	// it looks once the earlier mounts are made.
	target, err := securejoin.SecureJoin(r.Rootfs, m.Target)
	if err != nil {
		return fmt.Errorf("resolving the mount point %q: %w", m.Target, err)
	}
	if err := ensureNestedMountPoint(target, m); err != nil {
		return err
	}
	switch m.Kind {
	case kindProc:
		err = mountProc(target)
	case kindDev:
		err = mountDev(target)
	case kindSysfs:
		err = mountSysfs(target)
	case kindBind:
		err = bindMount(m.Source, target, m.ReadOnly)
		if err == nil {
			err = setMountAttr(target, unix.MOUNT_ATTR_NODEV)
		}
	case kindTmpfs:
		err = mountTmpfs(target, m.Size)
	default:
		err = fmt.Errorf("unknown kind %q", m.Kind)
	}
	if err != nil {
		return fmt.Errorf("mounting %s at %q: %w", m.Kind, m.Target, err)
	}
	return nil
}

// ensureNestedMountPoint creates the mount point of a nested mount, inside
// the mount that contains it; the others must exist already.
func ensureNestedMountPoint(target string, m *mountStep) error {
	_, err := os.Lstat(target)
	switch {
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist) || !m.Nested:
		return fmt.Errorf("mount point %q: %w", m.Target, err)
	}
	if m.File {
		err = os.MkdirAll(filepath.Dir(target), 0o755)
		if err == nil {
			var f *os.File
			if f, err = os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644); err == nil {
				err = f.Close()
			}
		}
	} else {
		err = os.MkdirAll(target, 0o755)
	}
	if err != nil {
		return fmt.Errorf("creating the mount point %q: %w", m.Target, err)
	}
	return nil
}

// Paths in /proc and /sys that a container must not write (they change the
// whole machine: sysctls, sysrq, IRQ affinity) or read (kernel memory,
// keys, timers), as Docker sets them up.
var (
	procReadOnly = []string{"bus", "fs", "irq", "sys", "sysrq-trigger"}
	procMasked   = []string{"acpi", "kcore", "keys", "latency_stats", "sched_debug", "scsi", "timer_list", "timer_stats"}
	sysMasked    = []string{"firmware"}
)

func mountProc(target string) error {
	if err := unix.Mount("proc", target, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return err
	}
	for _, name := range procReadOnly {
		p := filepath.Join(target, name)
		if _, err := os.Lstat(p); err != nil {
			continue
		}
		if err := bindMount(p, p, true); err != nil {
			return err
		}
	}
	return mask(target, procMasked)
}

func mountSysfs(target string) error {
	err := unix.Mount("sysfs", target, "sysfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "")
	if errors.Is(err, unix.EPERM) {
		// A user namespace may mount sysfs only with a network namespace
		// of its own: show the machine's, read-only.
		err = bindMount("/sys", target, true)
	}
	if err != nil {
		return err
	}
	return mask(target, sysMasked)
}

// mask hides the names under dir that exist: a directory behind an empty
// read-only tmpfs, a file behind the null device.
func mask(dir string, names []string) error {
	for _, name := range names {
		p := filepath.Join(dir, name)
		st, err := os.Lstat(p)
		if err != nil {
			continue
		}
		if st.IsDir() {
			err = unix.Mount("tmpfs", p, "tmpfs", unix.MS_RDONLY|unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "size=0")
		} else {
			err = unix.Mount("/dev/null", p, "", unix.MS_BIND, "")
		}
		if err != nil {
			return fmt.Errorf("masking %q: %w", p, err)
		}
	}
	return nil
}

// devices are the device nodes of /dev, as Docker creates them.
var devices = []struct {
	name         string
	major, minor uint32
}{
	{"null", 1, 3}, {"zero", 1, 5}, {"full", 1, 7}, {"random", 1, 8}, {"urandom", 1, 9}, {"tty", 5, 0},
}

// devLinks are the symbolic links of /dev.
var devLinks = [][2]string{
	{"fd", "/proc/self/fd"},
	{"stdin", "/proc/self/fd/0"},
	{"stdout", "/proc/self/fd/1"},
	{"stderr", "/proc/self/fd/2"},
	{"ptmx", "pts/ptmx"},
}

// mountDev mounts a tmpfs at target with the device nodes, /dev/pts (a
// private devpts instance) and /dev/shm. The tmpfs is nodev: the device
// nodes are the machine's, bind-mounted one by one, and nothing else in
// /dev can be opened as a device. (A RUN cannot create device nodes
// anyway: it lacks CAP_MKNOD.)
func mountDev(target string) error {
	if err := unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_STRICTATIME, "mode=755,size=65536k"); err != nil {
		return err
	}
	for _, d := range devices {
		p := filepath.Join(target, d.name)
		if err := bindDevice("/dev/"+d.name, p, d.major, d.minor); err != nil {
			return fmt.Errorf("creating %q: %w", p, err)
		}
	}
	pts := filepath.Join(target, "pts")
	if err := os.Mkdir(pts, 0o755); err != nil {
		return err
	}
	const ptsFlags = unix.MS_NOSUID | unix.MS_NOEXEC
	// Group 5 ("tty" on Debian and Alpine) owns terminals; a user
	// namespace with a single mapping has no group 5.
	err := unix.Mount("devpts", pts, "devpts", ptsFlags, "newinstance,ptmxmode=0666,mode=0620,gid=5")
	if errors.Is(err, unix.EINVAL) {
		err = unix.Mount("devpts", pts, "devpts", ptsFlags, "newinstance,ptmxmode=0666,mode=0620")
	}
	if err != nil {
		return fmt.Errorf("mounting devpts at %q: %w", pts, err)
	}
	shm := filepath.Join(target, "shm")
	if err := os.Mkdir(shm, 0o1777); err != nil {
		return err
	}
	if err := unix.Mount("shm", shm, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "mode=1777,size=65536k"); err != nil {
		return fmt.Errorf("mounting tmpfs at %q: %w", shm, err)
	}
	for _, l := range devLinks {
		if err := os.Symlink(l[1], filepath.Join(target, l[0])); err != nil {
			return err
		}
	}
	return nil
}

// bindDevice bind-mounts the machine's device node at target, after
// checking that it is the character device major:minor.
func bindDevice(device, target string, major, minor uint32) error {
	var st unix.Stat_t
	if err := unix.Stat(device, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFCHR || unix.Major(st.Rdev) != major || unix.Minor(st.Rdev) != minor {
		return fmt.Errorf("%q is not the character device %d:%d", device, major, minor)
	}
	f, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o666)
	if err != nil {
		return err
	}
	f.Close()
	return unix.Mount(device, target, "", unix.MS_BIND, "")
}

func mountTmpfs(target string, size int64) error {
	var data string
	if size > 0 {
		data = "size=" + strconv.FormatInt(size, 10)
	}
	return unix.Mount("tmpfs", target, "tmpfs", unix.MS_NOSUID|unix.MS_NODEV, data)
}

// bindMount mounts source, with the mounts below it, at target.
func bindMount(source, target string, readOnly bool) error {
	if err := unix.Mount(source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return err
	}
	if readOnly {
		return makeReadOnly(target)
	}
	return nil
}

// makeReadOnly makes the mount at target, and the mounts below it,
// read-only.
func makeReadOnly(target string) error {
	return setMountAttr(target, unix.MOUNT_ATTR_RDONLY)
}

// mountAttrFlags are the remount flags of the mount attributes.
var mountAttrFlags = map[uint64]uintptr{
	unix.MOUNT_ATTR_RDONLY: unix.MS_RDONLY,
	unix.MOUNT_ATTR_NODEV:  unix.MS_NODEV,
}

// setMountAttr sets the attribute attr (MOUNT_ATTR_RDONLY or
// MOUNT_ATTR_NODEV) on the mount at target and the mounts below it.
func setMountAttr(target string, attr uint64) error {
	err := unix.MountSetattr(-1, target, unix.AT_RECURSIVE, &unix.MountAttr{Attr_set: attr})
	if !errors.Is(err, unix.ENOSYS) {
		return err
	}
	// Before Linux 5.12 only a remount exists, for the top mount. It must
	// repeat the flags that a user namespace is not allowed to clear.
	var st unix.Statfs_t
	if err := unix.Statfs(target, &st); err != nil {
		return err
	}
	flags := uintptr(unix.MS_BIND|unix.MS_REMOUNT) | mountAttrFlags[attr]
	if st.Flags&unix.ST_RDONLY != 0 {
		flags |= unix.MS_RDONLY
	}
	for _, f := range [][2]uintptr{
		{unix.ST_NOSUID, unix.MS_NOSUID},
		{unix.ST_NODEV, unix.MS_NODEV},
		{unix.ST_NOEXEC, unix.MS_NOEXEC},
		{unix.ST_NOATIME, unix.MS_NOATIME},
		{unix.ST_NODIRATIME, unix.MS_NODIRATIME},
		{unix.ST_RELATIME, unix.MS_RELATIME},
	} {
		if uintptr(st.Flags)&f[0] != 0 {
			flags |= f[1]
		}
	}
	return unix.Mount("", target, "", flags, "")
}

// pivotRoot makes rootfs the root of the mount namespace and detaches the
// machine's root filesystem from it, so that not even a chroot escape can
// reach the machine's files.
func pivotRoot(rootfs string) error {
	oldRoot, err := unix.Open("/", unix.O_DIRECTORY|unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(oldRoot)
	if err := unix.Chdir(rootfs); err != nil {
		return err
	}
	// pivot_root(".", ".") stacks the old root on top of the new one,
	// without needing a directory for it inside the root filesystem.
	if err := unix.PivotRoot(".", "."); err != nil {
		return fmt.Errorf("pivot_root to %q: %w", rootfs, err)
	}
	if err := unix.Fchdir(oldRoot); err != nil {
		return err
	}
	if err := unix.Unmount(".", unix.MNT_DETACH); err != nil {
		return fmt.Errorf("detaching the machine's root filesystem: %w", err)
	}
	return unix.Chdir("/")
}

// loopbackUp sets the IFF_UP flag of "lo".
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}
