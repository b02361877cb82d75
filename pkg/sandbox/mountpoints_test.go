package sandbox

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMountPoints(t *testing.T) {
	rootfs := t.TempDir()
	for _, d := range []string{"etc", "var"} {
		if err := os.Mkdir(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../run", filepath.Join(rootfs, "var/run")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "etc/hosts"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	old := map[string]time.Time{}
	for _, d := range []string{".", "etc", "var"} {
		old[d] = setTimes(t, filepath.Join(rootfs, d))
	}

	m := newMountPoints(rootfs)
	for _, mp := range []struct {
		target string
		file   bool
	}{
		{"/etc/hosts", true},             // exists
		{"/etc/resolv.conf", true},       // stub in an existing directory
		{"/proc", false},                 // stub in the root
		{"/var/run/secrets/token", true}, // through a symlink: /run, /run/secrets, the file
		{"/run/secrets/other", true},     // in a stub directory
	} {
		if err := m.ensure(mp.target, mp.file); err != nil {
			t.Fatalf("ensure(%q): %v", mp.target, err)
		}
	}
	for _, p := range []string{"etc/resolv.conf", "proc", "run/secrets/token", "run/secrets/other"} {
		if _, err := os.Lstat(filepath.Join(rootfs, p)); err != nil {
			t.Errorf("mount point %s: %v", p, err)
		}
	}
	if st, err := os.Lstat(filepath.Join(rootfs, "proc")); err != nil || !st.IsDir() {
		t.Errorf("/proc is not a directory: %v", err)
	}

	if err := m.remove(); err != nil {
		t.Fatal(err)
	}
	entries, _ := os.ReadDir(rootfs)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if strings.Join(names, " ") != "etc var" {
		t.Errorf("root entries after remove: %q", names)
	}
	if entries, _ := os.ReadDir(filepath.Join(rootfs, "etc")); len(entries) != 1 {
		t.Errorf("/etc has %d entries after remove, want hosts only", len(entries))
	}
	for d, when := range old {
		if got := mtime(t, filepath.Join(rootfs, d)); !got.Equal(when) {
			t.Errorf("mtime of %s is %v after remove, want %v", d, got, when)
		}
	}
}

func TestMountPointsChangedDirectory(t *testing.T) {
	rootfs := t.TempDir()
	etc := filepath.Join(rootfs, "etc")
	if err := os.Mkdir(etc, 0o755); err != nil {
		t.Fatal(err)
	}
	setTimes(t, etc)
	m := newMountPoints(rootfs)
	if err := m.ensure("/etc/hosts", true); err != nil {
		t.Fatal(err)
	}
	// What a RUN does to /etc.
	runTime := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := os.WriteFile(filepath.Join(etc, "new"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(etc, runTime, runTime); err != nil {
		t.Fatal(err)
	}
	if err := m.remove(); err != nil {
		t.Fatal(err)
	}
	if got := mtime(t, etc); !got.Equal(runTime) {
		t.Errorf("mtime of /etc is %v after remove, want the RUN's %v", got, runTime)
	}
	if _, err := os.Lstat(filepath.Join(etc, "hosts")); err == nil {
		t.Error("the stub /etc/hosts is left")
	}
}

func TestMountPointsErrors(t *testing.T) {
	rootfs := t.TempDir()
	if err := os.WriteFile(filepath.Join(rootfs, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(rootfs, "dir"), 0o755); err != nil {
		t.Fatal(err)
	}
	m := newMountPoints(rootfs)
	for _, tc := range []struct {
		target string
		file   bool
		want   string
	}{
		{"/file", false, `mount point "/file": want a directory, found a file`},
		{"/dir", true, `mount point "/dir": want a file, found a directory`},
		{"/file/sub", false, `"/file/sub"`},
	} {
		if err := m.ensure(tc.target, tc.file); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("ensure(%q): %v, want an error containing %q", tc.target, err, tc.want)
		}
	}
	if err := m.remove(); err != nil {
		t.Fatal(err)
	}
}
