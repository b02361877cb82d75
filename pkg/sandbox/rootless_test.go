package sandbox

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// nobody is the unprivileged user the rootless tests run as.
const nobody = 65534

const testSubIDsEnv = "KILN_SANDBOX_TEST_SUBIDS"

// requireUserNamespaces skips when the kernel does not let unprivileged
// users create user namespaces.
func requireUserNamespaces(t *testing.T) {
	t.Helper()
	for file, deny := range map[string]string{
		"/proc/sys/user/max_user_namespaces":                     "0",
		"/proc/sys/kernel/unprivileged_userns_clone":             "0",
		"/proc/sys/kernel/apparmor_restrict_unprivileged_userns": "1",
	} {
		if b, err := os.ReadFile(file); err == nil && strings.TrimSpace(string(b)) == deny {
			t.Skipf("unprivileged user namespaces are disabled: %s is %s", file, deny)
		}
	}
}

// TestRootless runs rootless isolation as an unprivileged user: the test
// binary, as that user, enters its user namespace. Run as root, it starts
// the helper as uid 65534, with and without subordinate ids.
func TestRootless(t *testing.T) {
	requireBusybox(t)
	requireUserNamespaces(t)

	if uid := os.Getuid(); uid != 0 {
		cmd := rootlessCommand(t, "rootless")
		var name string
		if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
			name = u.Username
		}
		if planIDMaps(uid, os.Getgid(), name, "/etc").helpers {
			cmd.Env = append(cmd.Env, testSubIDsEnv+"=1")
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rootless helper: %v\n%s", err, out)
		}
		return
	}

	t.Run("single mapping", func(t *testing.T) {
		cmd := rootlessCommand(t, "rootless")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rootless helper: %v\n%s", err, out)
		}
	})

	// A RUN network of its own, set up by pasta or slirp4netns from
	// inside kiln's user namespace.
	for _, tool := range []string{netPasta, netSlirp} {
		t.Run(tool, func(t *testing.T) {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("%s not installed (make test-deps installs it)", tool)
			}
			if st, err := os.Stat("/dev/net/tun"); err != nil || st.Mode().Perm()&0o006 != 0o006 {
				t.Skipf("/dev/net/tun is not usable by an unprivileged user here (%v, %v)", err, st.Mode())
			}
			cmd := rootlessCommand(t, "rootless")
			cmd.Env = append(cmd.Env, networkEnv+"="+tool)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("rootless helper: %v\n%s", err, out)
			} else if !strings.Contains(string(out), "connected by "+tool) {
				t.Errorf("the RUNs did not get a network from %s:\n%s", tool, out)
			}
		})
	}

	t.Run("subordinate ids", func(t *testing.T) {
		for _, tool := range []string{"newuidmap", "newgidmap"} {
			if _, err := exec.LookPath(tool); err != nil {
				t.Skipf("needs %s (Debian package uidmap)", tool)
			}
		}
		for _, f := range []string{"/etc/subuid", "/etc/subgid"} {
			if _, err := os.Stat(f); err != nil {
				t.Skipf("needs %s to mount a test file over it: %v", f, err)
			}
		}
		// The helper mounts its own /etc/subuid and /etc/subgid in a mount
		// namespace of its own, then becomes uid 65534.
		cmd := rootlessCommand(t, "subid-setup")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: unix.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("rootless helper: %v\n%s", err, out)
		}
	})
}

// rootlessCommand is a helper process with a work directory that uid 65534
// owns when the test runs as root.
func rootlessCommand(t *testing.T, helper string) *exec.Cmd {
	t.Helper()
	dir, err := os.MkdirTemp("", "kiln-rootless-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if os.Getuid() == 0 {
		if err := os.Chown(dir, nobody, nobody); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = []string{
		testHelperEnv + "=" + helper,
		testDirEnv + "=" + dir,
		testLeakEnv + "=registry password",
		"PATH=" + os.Getenv("PATH"),
	}
	return cmd
}

// subIDSetupHelper gives uid 65534 subordinate ids in this mount namespace
// only, then runs the rootless helper as that user.
func subIDSetupHelper(r *reporter) {
	dir := os.Getenv(testDirEnv)
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		r.Fatalf("%v", err)
	}
	owner := strconv.Itoa(nobody)
	if u, err := user.LookupId(owner); err == nil {
		owner = u.Username
	}
	for _, name := range []string{"subuid", "subgid"} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(owner+":200000:65536\n"), 0o644); err != nil {
			r.Fatalf("%v", err)
		}
		if err := unix.Mount(p, "/etc/"+name, "", unix.MS_BIND, ""); err != nil {
			r.Fatalf("mounting over /etc/%s: %v", name, err)
		}
	}
	cmd := exec.Command("/proc/self/exe")
	cmd.Env = append(os.Environ(), testHelperEnv+"=rootless", testSubIDsEnv+"=1")
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobody, Gid: nobody}}
	if err := cmd.Run(); err != nil {
		r.Fatalf("rootless helper: %v", err)
	}
}

// rootlessHelper runs as an unprivileged user: it enters kiln's user
// namespace and runs the checks there.
func rootlessHelper(r *reporter) {
	if os.Geteuid() == 0 && !inUserNamespace {
		r.Fatalf("the rootless helper runs as root")
	}
	if err := EnterUserNamespace(); err != nil {
		r.Fatalf("EnterUserNamespace: %v", err)
	}
	// From here on: the re-executed process, root of the namespace.
	if os.Geteuid() != 0 {
		r.Fatalf("uid %d in kiln's user namespace, want 0", os.Geteuid())
	}
	subIDs := os.Getenv(testSubIDsEnv) == "1"
	mode, reason, err := Resolve(ModeAuto, false)
	if err != nil || mode != ModeRootless {
		r.Fatalf("Resolve(auto) in the user namespace: %q, %q, %v; want rootless", mode, reason, err)
	}
	if single := strings.Contains(reason, "only root is mapped"); single == subIDs {
		r.Errorf("Resolve's reason %q, want it to say whether only root is mapped (subordinate ids: %v)", reason, subIDs)
	}

	dir := os.Getenv(testDirEnv)
	rootfs := filepath.Join(dir, "rootfs")
	makeRootfs(r, "/bin/busybox", rootfs)
	sb, err := New(ModeRootless, WithWorkDir(dir))
	if err != nil {
		r.Fatalf("%v", err)
	}
	checkExitCodes(r, sb, rootfs)
	checkOutput(r, sb, rootfs)
	checkEnvironment(r, sb, rootfs)
	checkWorkDir(r, sb, rootfs)
	checkMissingCommand(r, sb, rootfs)
	checkBackgroundKilled(r, sb, rootfs)
	checkCancel(r, sb, rootfs)
	checkSystemMounts(r, sb, rootfs)
	checkNetworkNone(r, sb, rootfs)
	checkNetworkDefault(r, sb, rootfs)

	owned := filepath.Join(rootfs, "tmp", "owned")
	if err := os.WriteFile(owned, nil, 0o644); err != nil {
		r.Fatalf("%v", err)
	}
	chownErr := os.Lchown(owned, 1000, 1000)
	if subIDs {
		if chownErr != nil {
			r.Errorf("chown to 1000 with subordinate ids: %v", chownErr)
		}
		checkIdentity(r, sb, rootfs, 1000, 1000, []uint32{10, 20}, "uid=1000 gid=1000 groups=10,20")
		checkIdentity(r, sb, rootfs, 0, 0, nil, "uid=0 gid=0")
	} else {
		if !errors.Is(chownErr, unix.EINVAL) {
			r.Errorf("chown to an unmapped id: %v, want EINVAL", chownErr)
		}
		// setgroups(2) is denied: the command keeps kiln's groups.
		want := "uid=0 gid=0"
		if groups, err := os.Getgroups(); err == nil && len(groups) > 0 {
			want += " groups=" + strings.Trim(strings.Join(strings.Fields(fmt.Sprint(groups)), ","), "[]")
		}
		checkIdentity(r, sb, rootfs, 0, 0, nil, want)
		_, _, err := run(sb, &Spec{Rootfs: rootfs, Args: []string{"id"}, UID: 1000, GID: 1000})
		if err == nil || !strings.Contains(err.Error(), "uid 1000 is not mapped") {
			r.Errorf("running as an unmapped uid: %v, want an error saying it is not mapped", err)
		}
	}
	os.Remove(owned)
	checkScratchRootfsUnchanged(r, rootfs, "work")
}
