package sandbox

import (
	"runtime"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// TestDockerSeccompFilter evaluates the filter of RUN commands: Docker's
// default profile for a container with a RUN's capabilities.
func TestDockerSeccompFilter(t *testing.T) {
	raw, err := runSeccompFilter()
	if err != nil {
		if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
			t.Skipf("no seccomp filter on %s: %v", runtime.GOARCH, err)
		}
		t.Fatal(err)
	}
	filter, err := decodeBPF(raw)
	if err != nil {
		t.Fatal(err)
	}
	prog := make([]bpf.RawInstruction, len(filter))
	for i, f := range filter {
		prog[i] = bpf.RawInstruction{Op: f.Code, Jt: f.Jt, Jf: f.Jf, K: f.K}
	}
	native, err := arch.GetInfo("")
	if err != nil {
		t.Fatal(err)
	}
	eperm := errnoRet(unix.EPERM)
	cases := []struct {
		name string
		args [6]uint64
		want uint32
	}{
		{"read", [6]uint64{}, retAllow},
		{"execve", [6]uint64{}, retAllow},
		{"add_key", [6]uint64{}, eperm},
		{"keyctl", [6]uint64{}, eperm},
		{"request_key", [6]uint64{}, eperm},
		{"mount", [6]uint64{}, eperm},
		{"umount2", [6]uint64{}, eperm},
		{"unshare", [6]uint64{unix.CLONE_NEWUSER}, eperm},
		{"setns", [6]uint64{}, eperm},
		{"pivot_root", [6]uint64{}, eperm},
		{"bpf", [6]uint64{}, eperm},
		{"perf_event_open", [6]uint64{}, eperm},
		{"reboot", [6]uint64{}, eperm},
		{"init_module", [6]uint64{}, eperm},
		{"clock_settime", [6]uint64{}, eperm},
		{"open_by_handle_at", [6]uint64{}, eperm},
		{"clone3", [6]uint64{}, errnoRet(unix.ENOSYS)},
		{"personality", [6]uint64{0x40000}, eperm},
		{"personality", [6]uint64{0xffffffff}, retAllow},
		{"socket", [6]uint64{unix.AF_INET}, retAllow},
		{"socket", [6]uint64{unix.AF_VSOCK}, eperm},
		{"socket", [6]uint64{unix.AF_ALG}, eperm},
		// CAP_SYS_CHROOT is a RUN's: chroot stays allowed.
		{"chroot", [6]uint64{}, retAllow},
		// ptrace itself is allowed (on kernels from 4.8), but the kernel
		// asks for CAP_SYS_PTRACE or the same user.
		{"ptrace", [6]uint64{}, retAllow},
		{"mknodat", [6]uint64{}, retAllow},
	}
	if native.ID == arch.X86_64.ID {
		cases = append(cases,
			struct {
				name string
				args [6]uint64
				want uint32
			}{"clone", [6]uint64{uint64(unix.SIGCHLD) | unix.CLONE_VM | unix.CLONE_VFORK}, retAllow},
			struct {
				name string
				args [6]uint64
				want uint32
			}{"clone", [6]uint64{uint64(unix.SIGCHLD) | unix.CLONE_NEWNS}, eperm})
	}
	for _, tc := range cases {
		c := call{arch: native, name: tc.name, args: tc.args}
		if got := runFilter(t, prog, c); got != tc.want {
			t.Errorf("%s(%#x) on %s returns %#x, want %#x", tc.name, tc.args[0], native.Name, got, tc.want)
		}
	}
	if native.ID == arch.X86_64.ID {
		// The 32-bit tables are filtered too.
		for _, c := range []struct {
			call call
			want uint32
		}{
			{call{arch: arch.I386, name: "add_key"}, eperm},
			{call{arch: arch.I386, name: "read"}, retAllow},
			{call{arch: arch.X32, name: "keyctl"}, eperm},
			{call{arch: arch.X32, name: "write"}, retAllow},
		} {
			if got := runFilter(t, prog, c.call); got != c.want {
				t.Errorf("%s on %s returns %#x, want %#x", c.call.name, c.call.arch.Name, got, c.want)
			}
		}
	}
}
