package rootfs

import (
	"archive/tar"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/sirupsen/logrus"
)

// usernsRootEnv tells the re-executed test binary that it runs inside the
// user namespace, and where to extract.
const usernsRootEnv = "KILN_ROOTFS_TEST_USERNS_ROOT"

// TestApplyInUserNamespace extracts a layer the way rootless kiln does:
// inside a user namespace that maps only one id, where chown to other ids,
// mknod of devices and trusted.* xattrs are refused.
func TestApplyInUserNamespace(t *testing.T) {
	if root := os.Getenv(usernsRootEnv); root != "" {
		extractInUserNamespace(t, root)
		return
	}
	root := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestApplyInUserNamespace$", "-test.v")
	cmd.Env = append(os.Environ(), usernsRootEnv+"="+root)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags:  syscall.CLONE_NEWUSER,
		UidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getuid(), Size: 1}},
		GidMappings: []syscall.SysProcIDMap{{ContainerID: 0, HostID: os.Getgid(), Size: 1}},
	}
	out, err := cmd.CombinedOutput()
	if _, ran := err.(*exec.ExitError); err != nil && !ran {
		t.Skipf("cannot create a user namespace here: %v", err)
	}
	if err != nil || !strings.Contains(string(out), "--- PASS: TestApplyInUserNamespace") {
		t.Fatalf("in the user namespace: %v\n%s", err, out)
	}
}

func extractInUserNamespace(t *testing.T, root string) {
	owned := func(e entry) entry { return e.with(func(h *tar.Header) { h.Uid, h.Gid = 1000, 1000 }) }
	entries := []entry{
		owned(dirEntry("home/user", 0o750)),
		owned(fileEntry("home/user/.profile", "p")),
		newEntry(tar.TypeChar, "dev/null", 0o666).with(func(h *tar.Header) { h.Devmajor, h.Devminor = 1, 3 }),
		newEntry(tar.TypeFifo, "run/fifo", 0o600),
		fileEntry("trusted", "t").with(func(h *tar.Header) {
			h.PAXRecords = map[string]string{"SCHILY.xattr.trusted.overlay.origin": "x"}
		}),
	}
	if err := Apply(context.Background(), root, layer(t, entries...)); err == nil || !strings.Contains(err.Error(), "setting owner 1000:1000") {
		t.Fatalf("chown error not reported without WithChownErrorsIgnored: %v", err)
	}

	var logs bytes.Buffer
	log := logrus.New()
	log.SetOutput(&logs)
	err := Apply(context.Background(), root, layer(t, entries...), WithChownErrorsIgnored(true), WithLogger(log))
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if got := readFile(t, filepath.Join(root, "home/user/.profile")); got != "p" {
		t.Errorf(".profile = %q", got)
	}
	if exists(filepath.Join(root, "dev/null")) {
		t.Error("a device node was created in a user namespace")
	}
	if !exists(filepath.Join(root, "run/fifo")) {
		t.Error("the fifo was skipped")
	}
	if n := strings.Count(logs.String(), "level=warning"); n != 2 {
		t.Errorf("want one warning for chown and one for mknod, got:\n%s", logs.String())
	}
}
