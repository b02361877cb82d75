package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSpecValidate(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ok := func() *Spec { return &Spec{Rootfs: dir, Args: []string{"true"}, Env: []string{"A=1", "EMPTY="}} }
	if err := ok().validate(); err != nil {
		t.Fatalf("valid spec: %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*Spec)
		want   string
	}{
		{"no command", func(s *Spec) { s.Args = nil }, "no command"},
		{"relative rootfs", func(s *Spec) { s.Rootfs = "rootfs" }, `"rootfs" is not an absolute path`},
		{"relative dir", func(s *Spec) { s.Dir = "work" }, `working directory "work"`},
		{"bad env", func(s *Spec) { s.Env = []string{"NOVALUE"} }, `"NOVALUE" is not NAME=VALUE`},
		{"network", func(s *Spec) { s.Network = "bridge" }, `unknown network "bridge"`},
		{"relative target", func(s *Spec) { s.Mounts = []Mount{{Type: MountTmpfs, Target: "tmp"}} }, `"tmp" is not an absolute path`},
		{"root target", func(s *Spec) { s.Mounts = []Mount{{Type: MountTmpfs, Target: "/"}} }, `"/" is not an absolute path below /`},
		{"target in /sys", func(s *Spec) { s.Mounts = []Mount{{Type: MountTmpfs, Target: "/sys/fs/x"}} }, "inside /sys"},
		{"target /dev", func(s *Spec) { s.Mounts = []Mount{{Type: MountTmpfs, Target: "/dev/"}} }, "is /dev"},
		{"duplicate", func(s *Spec) {
			s.Mounts = []Mount{{Type: MountTmpfs, Target: "/x"}, {Type: MountTmpfs, Target: "/x/"}}
		}, `two mounts at "/x/"`},
		{"missing source", func(s *Spec) {
			s.Mounts = []Mount{{Type: MountBind, Source: filepath.Join(dir, "nope"), Target: "/x"}}
		}, `bind mount at "/x"`},
		{"relative source", func(s *Spec) { s.Mounts = []Mount{{Type: MountBind, Source: "src", Target: "/x"}} }, `source "src"`},
		{"cache file", func(s *Spec) { s.Mounts = []Mount{{Type: MountCache, Source: file, Target: "/x"}} }, "is not a directory"},
		{"secret dir", func(s *Spec) { s.Mounts = []Mount{{Type: MountSecret, Source: dir, Target: "/x"}} }, "is a directory"},
		{"tmpfs size", func(s *Spec) { s.Mounts = []Mount{{Type: MountTmpfs, Target: "/x", Size: -1}} }, "negative size"},
		{"type", func(s *Spec) { s.Mounts = []Mount{{Type: "ssh", Target: "/x"}} }, `unknown type "ssh"`},
	} {
		s := ok()
		tc.change(s)
		if err := s.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error containing %q", tc.name, err, tc.want)
		}
	}
}

func TestLookPath(t *testing.T) {
	dir := t.TempDir()
	exe := filepath.Join(dir, "tool")
	if err := os.WriteFile(exe, nil, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "data"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got, err := lookPath("tool", []string{"PATH=/nonexistent:" + dir}); err != nil || got != exe {
		t.Errorf("lookPath(tool) = %q, %v", got, err)
	}
	if got, err := lookPath("./x/tool", nil); err != nil || got != "./x/tool" {
		t.Errorf("a name with a slash is used as it is: %q, %v", got, err)
	}
	if _, err := lookPath("data", []string{"PATH=" + dir}); err == nil {
		t.Error("found a file that is not executable")
	}
	// The last PATH wins, as in a process environment.
	if _, err := lookPath("tool", []string{"PATH=" + dir, "PATH=/nonexistent"}); err == nil || !strings.Contains(err.Error(), `PATH "/nonexistent"`) {
		t.Errorf("lookPath with two PATHs: %v", err)
	}
	if _, err := lookPath("no-such-tool-anywhere", nil); err == nil || !strings.Contains(err.Error(), defaultPath) {
		t.Errorf("without PATH the default is searched: %v", err)
	}
}

func TestMountSteps(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	spec := &Spec{Mounts: []Mount{
		{Type: MountTmpfs, Target: "/work/cache/"},
		{Type: MountBind, Source: dir, Target: "/work", ReadOnly: true},
		{Type: MountBind, Source: file, Target: "/etc/resolv.conf"},
		{Type: MountSecret, Source: file, Target: "/run/secrets/a"},
		{Type: MountBind, Source: file, Target: "/dev/pipes/script"},
	}}
	etc := map[string]string{etcHosts: "/w/hosts", etcResolv: "/w/resolv.conf", etcHostname: "/w/hostname"}
	var got []string
	for _, st := range mountSteps(spec, etc) {
		got = append(got, fmt.Sprintf("%s %s %s ro=%v file=%v nested=%v", st.Kind, st.Source, st.Target, st.ReadOnly, st.File, st.Nested))
	}
	// By depth, in the order given at the same depth.
	want := []string{
		"proc  /proc ro=false file=false nested=false",
		"dev  /dev ro=false file=false nested=false",
		"sysfs  /sys ro=false file=false nested=false",
		"bind " + dir + " /work ro=true file=false nested=false",
		"bind /w/hosts /etc/hosts ro=false file=true nested=false",
		"bind /w/hostname /etc/hostname ro=false file=true nested=false",
		"tmpfs  /work/cache ro=false file=false nested=true",
		"bind " + file + " /etc/resolv.conf ro=false file=true nested=false",
		"bind " + file + " /run/secrets/a ro=true file=true nested=false",
		"bind " + file + " /dev/pipes/script ro=false file=true nested=true",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("mount steps:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDefaultHosts(t *testing.T) {
	machine := []byte("127.0.0.1 localhost\n10.0.0.5 registry.internal")
	if got := string(defaultHosts(NetworkDefault, "b", machine, true)); got != string(machine)+"\n127.0.0.1\tb\n" {
		t.Errorf("default network: %q", got)
	}
	if got := string(defaultHosts(NetworkNone, "b", machine, true)); got != localhostEntries+"127.0.0.1\tb\n" {
		t.Errorf("no network: %q", got)
	}
	if got := string(defaultHosts(NetworkHost, "b", nil, false)); got != localhostEntries+"127.0.0.1\tb\n" {
		t.Errorf("no /etc/hosts on the machine: %q", got)
	}
}

func TestWriteEtcFiles(t *testing.T) {
	dir := t.TempDir()
	files, err := writeEtcFiles(dir, &Spec{Hosts: []byte("h\n"), ResolvConf: []byte{}}, []byte("nameserver 10.0.0.1\n"))
	if err != nil {
		t.Fatal(err)
	}
	for target, want := range map[string]string{etcHosts: "h\n", etcResolv: "", etcHostname: DefaultHostname + "\n"} {
		if b, err := os.ReadFile(files[target]); err != nil || string(b) != want {
			t.Errorf("%s: %q, %v; want %q", target, b, err, want)
		}
	}
}
