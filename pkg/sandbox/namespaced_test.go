package sandbox

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kiln-build/kiln/internal/testutil"
	"golang.org/x/sys/unix"
)

func newChroot(t *testing.T) Sandbox {
	t.Helper()
	testutil.RequireRoot(t, "chroot isolation creates namespaces and mounts")
	sb, err := New(ModeChroot, WithWorkDir(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	return sb
}

func TestChrootCommand(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	t.Setenv(testLeakEnv, "registry password")
	t.Run("exit codes", func(t *testing.T) { checkExitCodes(t, sb, rootfs) })
	t.Run("output", func(t *testing.T) { checkOutput(t, sb, rootfs) })
	t.Run("environment", func(t *testing.T) { checkEnvironment(t, sb, rootfs) })
	t.Run("identity", func(t *testing.T) {
		checkIdentity(t, sb, rootfs, 1000, 1000, []uint32{10, 20}, "uid=1000 gid=1000 groups=10,20")
		checkIdentity(t, sb, rootfs, 0, 0, nil, "uid=0 gid=0")
	})
	t.Run("working directory", func(t *testing.T) { checkWorkDir(t, sb, rootfs) })
	t.Run("missing command", func(t *testing.T) { checkMissingCommand(t, sb, rootfs) })
	t.Run("background processes", func(t *testing.T) { checkBackgroundKilled(t, sb, rootfs) })
	t.Run("cancel", func(t *testing.T) { checkCancel(t, sb, rootfs) })
	t.Run("system mounts", func(t *testing.T) { checkSystemMounts(t, sb, rootfs) })
	t.Run("network none", func(t *testing.T) { checkNetworkNone(t, sb, rootfs) })
	t.Run("network default", func(t *testing.T) { checkNetworkDefault(t, sb, rootfs) })
	checkScratchRootfsUnchanged(t, rootfs, "work")
}

func TestChrootCapabilities(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	want := fmt.Sprintf("CapBnd:\t%016x\n", uint64(runCapabilities))
	if got := mustRun(t, sb, shellSpec(rootfs, "grep CapBnd /proc/self/status")); got != want {
		t.Errorf("bounding set %q, want %q", got, want)
	}
	if out, _, err := run(sb, shellSpec(rootfs, "mount -t tmpfs none /tmp")); err == nil {
		t.Errorf("a RUN could mount a tmpfs: %s", out)
	}
}

// A sentinel file next to the root filesystem must be out of reach.
func TestChrootHostUnreachable(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	sentinel := filepath.Join(filepath.Dir(rootfs), "sentinel")
	if err := os.WriteFile(sentinel, []byte("host secret"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := fmt.Sprintf(`for p in %[1]s /proc/1/root%[1]s /proc/self/root%[1]s /../../..%[1]s ../../../sentinel /proc/1/cwd/../sentinel; do
	if cat "$p" 2>/dev/null; then echo " read through $p"; exit 1; fi
done
cd /tmp && for i in 1 2 3 4 5 6; do cd ..; done
if [ -e sentinel ] || [ "$(pwd)" != / ]; then echo "climbed out of the root filesystem"; exit 1; fi`, sentinel)
	mustRun(t, sb, shellSpec(rootfs, script))
}

// setTimes gives p a fixed, recognisable mtime.
func setTimes(t *testing.T, p string) time.Time {
	t.Helper()
	when := time.Date(2001, 2, 3, 4, 5, 6, 7000, time.UTC)
	if err := os.Chtimes(p, when, when); err != nil {
		t.Fatal(err)
	}
	return when
}

func mtime(t *testing.T, p string) time.Time {
	t.Helper()
	st, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.ModTime()
}

func TestChrootEtcFiles(t *testing.T) {
	sb := newChroot(t)

	t.Run("missing", func(t *testing.T) {
		rootfs := newRootfs(t)
		when := setTimes(t, rootfs)
		spec := shellSpec(rootfs, "cat /etc/hosts /etc/resolv.conf /etc/hostname; hostname")
		spec.Hostname = "builder"
		spec.Hosts = []byte("10.1.2.3\tregistry\n")
		spec.ResolvConf = []byte("nameserver 10.0.0.53\n")
		want := "10.1.2.3\tregistry\nnameserver 10.0.0.53\nbuilder\nbuilder\n"
		if got := mustRun(t, sb, spec); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		checkScratchRootfsUnchanged(t, rootfs)
		if got := mtime(t, rootfs); !got.Equal(when) {
			t.Errorf("mtime of / is %v after the RUN, want %v as before", got, when)
		}
	})

	t.Run("existing", func(t *testing.T) {
		rootfs := newRootfs(t)
		etc := filepath.Join(rootfs, "etc")
		if err := os.Mkdir(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("image hosts\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		when := setTimes(t, etc)
		spec := shellSpec(rootfs, "echo changed >/etc/hosts; cat /etc/hosts /etc/hostname")
		if got := mustRun(t, sb, spec); got != "changed\n"+DefaultHostname+"\n" {
			t.Errorf("got %q", got)
		}
		if b, err := os.ReadFile(filepath.Join(etc, "hosts")); err != nil || string(b) != "image hosts\n" {
			t.Errorf("the image's /etc/hosts is %q, %v after the RUN, want it untouched", b, err)
		}
		if entries, _ := os.ReadDir(etc); len(entries) != 1 {
			t.Errorf("/etc has %d entries after the RUN, want only hosts", len(entries))
		}
		if got := mtime(t, etc); !got.Equal(when) {
			t.Errorf("mtime of /etc is %v after the RUN, want %v as before", got, when)
		}
	})

	t.Run("changed by the RUN", func(t *testing.T) {
		rootfs := newRootfs(t)
		etc := filepath.Join(rootfs, "etc")
		if err := os.Mkdir(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		when := setTimes(t, etc)
		mustRun(t, sb, shellSpec(rootfs, "touch /etc/new"))
		entries, _ := os.ReadDir(etc)
		if len(entries) != 1 || entries[0].Name() != "new" {
			t.Errorf("/etc has %v after the RUN, want only the RUN's file", entries)
		}
		if got := mtime(t, etc); got.Equal(when) {
			t.Errorf("mtime of /etc was put back to %v although the RUN changed /etc", got)
		}
	})

	t.Run("dangling symlink", func(t *testing.T) {
		rootfs := newRootfs(t)
		etc := filepath.Join(rootfs, "etc")
		if err := os.Mkdir(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink("../run/systemd/resolve/stub-resolv.conf", filepath.Join(etc, "resolv.conf")); err != nil {
			t.Fatal(err)
		}
		spec := shellSpec(rootfs, "cat /etc/resolv.conf")
		spec.ResolvConf = []byte("nameserver 10.0.0.53\n")
		if got := mustRun(t, sb, spec); got != "nameserver 10.0.0.53\n" {
			t.Errorf("got %q", got)
		}
		checkScratchRootfsUnchanged(t, rootfs, "etc")
		if target, err := os.Readlink(filepath.Join(etc, "resolv.conf")); err != nil || target != "../run/systemd/resolve/stub-resolv.conf" {
			t.Errorf("/etc/resolv.conf is %q, %v after the RUN, want the image's symlink", target, err)
		}
	})
}

func TestChrootMounts(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	host := t.TempDir()
	src := filepath.Join(host, "src")
	cache := filepath.Join(host, "cache")
	secret := filepath.Join(host, "secret")
	for _, d := range []string{src, cache} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(src, "data"), []byte("source"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secret, []byte("s3cret"), 0o600); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(host, "script")
	if err := os.WriteFile(script, []byte("#!/bin/sh\necho from a script\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	spec := shellSpec(rootfs, `set -e
[ "$(cat /src/data)" = source ]
if touch /src/new 2>/dev/null; then echo "read-only bind mount is writable"; exit 1; fi
echo rw >/rw/data-rw
echo cached >/cache/out
echo t >/scratch/f
[ "$(cat /scratch/nested/secret)" = s3cret ]
[ "$(cat /run/secrets/token)" = s3cret ]
if (echo x >/run/secrets/token) 2>/dev/null; then echo "secret is writable"; exit 1; fi
grep -q " /scratch tmpfs " /proc/mounts
[ "$(/dev/pipes/script)" = "from a script" ]
grep -q " /dev/shm tmpfs .*size=1024k" /proc/mounts`)
	spec.Mounts = []Mount{
		{Type: MountBind, Source: src, Target: "/src", ReadOnly: true},
		{Type: MountBind, Source: src, Target: "/rw"},
		{Type: MountCache, Source: cache, Target: "/cache"},
		{Type: MountSecret, Source: secret, Target: "/scratch/nested/secret"},
		{Type: MountTmpfs, Target: "/scratch", Size: 1 << 20},
		{Type: MountSecret, Source: secret, Target: "/run/secrets/token"},
		// As BuildKit runs a here-document with a shebang.
		{Type: MountBind, Source: script, Target: "/dev/pipes/script", ReadOnly: true},
		{Type: MountTmpfs, Target: "/dev/shm", Size: 1 << 20},
	}
	mustRun(t, sb, spec)

	if b, err := os.ReadFile(filepath.Join(cache, "out")); err != nil || string(b) != "cached\n" {
		t.Errorf("cache mount: %q, %v; want the RUN's file in the cache", b, err)
	}
	if b, err := os.ReadFile(filepath.Join(src, "data-rw")); err != nil || string(b) != "rw\n" {
		t.Errorf("read-write bind mount: %q, %v; want the RUN's file in the source", b, err)
	}
	if _, err := os.Lstat(filepath.Join(src, "new")); err == nil {
		t.Error("the RUN wrote through the read-only bind mount")
	}
	checkScratchRootfsUnchanged(t, rootfs)
	checkNoMountsUnder(t, rootfs, host)
}

func TestChrootLeavesNoMount(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	spec := shellSpec(rootfs, "exit 3")
	spec.Mounts = []Mount{{Type: MountTmpfs, Target: "/scratch"}}
	if _, _, err := run(sb, spec); err == nil {
		t.Fatal("exit 3 succeeded")
	}
	spec = shellSpec(rootfs, "kill -KILL $$")
	if _, _, err := run(sb, spec); err == nil {
		t.Fatal("a killed command succeeded")
	}
	checkNoMountsUnder(t, rootfs)
	checkScratchRootfsUnchanged(t, rootfs)
}

func TestChrootRejects(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	src := t.TempDir()
	for _, tc := range []struct {
		name string
		spec *Spec
		want string
	}{
		{"machine root", &Spec{Rootfs: "/", Args: []string{"true"}}, "machine's own root filesystem"},
		{"mount in /proc", &Spec{Rootfs: rootfs, Args: []string{"true"},
			Mounts: []Mount{{Type: MountTmpfs, Target: "/proc/x"}}}, "inside /proc"},
		{"mount point is a file", &Spec{Rootfs: rootfs, Args: []string{"true"},
			Mounts: []Mount{{Type: MountTmpfs, Target: "/bin/sh"}}}, `mount point "/bin/sh": want a directory, found a file`},
		{"unknown network", &Spec{Rootfs: rootfs, Args: []string{"true"}, Network: "bridge"}, `unknown network "bridge"`},
		// The helper fails after the parent created stubs and the helper
		// mounted some: the nested mount point cannot be created in the
		// read-only bind mount.
		{"nested in a read-only mount", &Spec{Rootfs: rootfs, Args: []string{"true"}, Mounts: []Mount{
			{Type: MountBind, Source: src, Target: "/src", ReadOnly: true},
			{Type: MountTmpfs, Target: "/src/missing"},
		}}, `creating the mount point "/src/missing"`},
	} {
		if _, _, err := run(sb, tc.spec); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
	checkScratchRootfsUnchanged(t, rootfs)
	if entries, _ := os.ReadDir(src); len(entries) != 0 {
		t.Errorf("the read-only source got %v", entries)
	}
	checkNoMountsUnder(t, rootfs, src)
}

// checkNoMountsUnder checks that nothing is mounted in the directories in
// this process's mount namespace, the machine's. (Other tests may mount
// elsewhere meanwhile.)
func checkNoMountsUnder(t *testing.T, dirs ...string) {
	t.Helper()
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	mounts, err := ParseMountinfo(f)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range mounts {
		for _, dir := range dirs {
			if m.MountPoint == dir || strings.HasPrefix(m.MountPoint, dir+"/") {
				t.Errorf("%s is mounted at %q", m.FSType, m.MountPoint)
			}
		}
	}
}

// Stub removal must not follow what the RUN put in a stub directory.
func TestChrootKeepsWhatTheRunWroteInStubs(t *testing.T) {
	sb := newChroot(t)
	rootfs := newRootfs(t)
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	spec := shellSpec(rootfs, "echo mine >/run/secrets/other")
	spec.Mounts = []Mount{{Type: MountSecret, Source: secret, Target: "/run/secrets/token"}}
	mustRun(t, sb, spec)
	var got []string
	filepath.WalkDir(filepath.Join(rootfs, "run"), func(p string, d fs.DirEntry, err error) error {
		if err == nil {
			got = append(got, strings.TrimPrefix(p, rootfs))
		}
		return nil
	})
	want := []string{"/run", "/run/secrets", "/run/secrets/other"}
	if !slices.Equal(got, want) {
		t.Errorf("after the RUN: %q, want %q", got, want)
	}
}

// The sandbox's mounts must not propagate out of its mount namespace even
// when the root filesystem is on a shared mount (systemd makes "/" shared).
// The helper process makes such a mount in a mount namespace of its own.
func TestChrootMountsDoNotPropagate(t *testing.T) {
	testutil.RequireRoot(t, "chroot isolation creates namespaces and mounts")
	requireBusybox(t)
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{testHelperEnv + "=propagation", testDirEnv + "=" + t.TempDir()}
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("propagation helper: %v\n%s", err, out)
	}
}

func propagationHelper(r *reporter) {
	dir := os.Getenv(testDirEnv)
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		r.Fatalf("%v", err)
	}
	if err := unix.Mount(dir, dir, "", unix.MS_BIND, ""); err != nil {
		r.Fatalf("%v", err)
	}
	if err := unix.Mount("", dir, "", unix.MS_SHARED, ""); err != nil {
		r.Fatalf("%v", err)
	}
	rootfs := filepath.Join(dir, "rootfs")
	makeRootfs(r, "/bin/busybox", rootfs)
	sb, err := New(ModeChroot, WithWorkDir(dir))
	if err != nil {
		r.Fatalf("%v", err)
	}
	spec := shellSpec(rootfs, "true")
	spec.Mounts = []Mount{{Type: MountTmpfs, Target: "/scratch"}}
	mustRun(r, sb, spec)
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		r.Fatalf("%v", err)
	}
	defer f.Close()
	mounts, err := ParseMountinfo(f)
	if err != nil {
		r.Fatalf("%v", err)
	}
	for _, m := range mounts {
		if strings.HasPrefix(m.MountPoint, rootfs) {
			r.Errorf("the sandbox's mount %s (%s) propagated out", m.MountPoint, m.FSType)
		}
	}
}
