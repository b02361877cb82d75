package sandbox

import (
	"encoding/binary"
	"testing"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// call is a system call as a seccomp filter sees it.
type call struct {
	arch *arch.Info
	name string
	// nr overrides the number of name when not zero.
	nr   uint32
	args [6]uint64
}

// data is the call's struct seccomp_data, as x/net/bpf's VM loads it: it
// reads words big-endian, so each 32-bit word is stored big-endian at the
// offset where the kernel has it in native (little-endian) order.
func (c call) data(t *testing.T) []byte {
	t.Helper()
	nr := c.nr
	if nr == 0 {
		n, ok := c.arch.SyscallNames[c.name]
		if !ok {
			t.Fatalf("no syscall %q on %s", c.name, c.arch.Name)
		}
		nr = uint32(n) | uint32(c.arch.SeccompMask)
	}
	b := make([]byte, 64)
	binary.BigEndian.PutUint32(b[0:], nr)
	binary.BigEndian.PutUint32(b[4:], uint32(c.arch.ID))
	for i, a := range c.args {
		binary.BigEndian.PutUint32(b[16+8*i:], uint32(a))
		binary.BigEndian.PutUint32(b[20+8*i:], uint32(a>>32))
	}
	return b
}

// run evaluates a compiled filter on a call.
func runFilter(t *testing.T, prog []bpf.RawInstruction, c call) uint32 {
	t.Helper()
	ins, ok := bpf.Disassemble(prog)
	if !ok {
		t.Fatal("the filter does not disassemble")
	}
	vm, err := bpf.NewVM(ins)
	if err != nil {
		t.Fatalf("the filter does not load: %v", err)
	}
	ret, err := vm.Run(c.data(t))
	if err != nil {
		t.Fatalf("running the filter on %+v: %v", c, err)
	}
	return uint32(ret)
}

func errnoRet(e unix.Errno) uint32 { return retErrno | uint32(e) }

func uintp(v uint) *uint { return &v }

func TestCompileSeccomp(t *testing.T) {
	arg := func(i uint, v uint64, op specs.LinuxSeccompOperator) specs.LinuxSeccompArg {
		return specs.LinuxSeccompArg{Index: i, Value: v, Op: op}
	}
	profile := &specs.LinuxSeccomp{
		DefaultAction:   specs.ActErrno,
		DefaultErrnoRet: uintp(uint(unix.EPERM)),
		Architectures:   []specs.Arch{specs.ArchX86_64, specs.ArchX86, specs.ArchX32},
		Syscalls: []specs.LinuxSyscall{
			{Names: []string{"read", "write", "not_a_syscall"}, Action: specs.ActAllow},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: uintp(uint(unix.ENOSYS))},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(0, 8, specs.OpEqualTo)}},
			{Names: []string{"personality"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(0, 0xffffffff, specs.OpEqualTo)}},
			{Names: []string{"clone"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Value: 0x7e020000, ValueTwo: 0, Op: specs.OpMaskedEqual}}},
			{Names: []string{"socket"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(0, 40, specs.OpNotEqual)}},
			{Names: []string{"lseek"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(1, 1<<32, specs.OpGreaterThan)}},
			{Names: []string{"pread64"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(3, 1<<32|5, specs.OpGreaterEqual)}},
			{Names: []string{"setpriority"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(2, 1<<32|5, specs.OpLessThan)}},
			{Names: []string{"getpriority"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{arg(1, 1<<32|5, specs.OpLessEqual)}},
			// Two conditions are both needed; the unconditional rule
			// applies when the conditional one does not.
			{Names: []string{"mmap"}, Action: specs.ActKillProcess, Args: []specs.LinuxSeccompArg{arg(2, 7, specs.OpEqualTo), arg(3, 0x22, specs.OpNotEqual)}},
			{Names: []string{"mmap"}, Action: specs.ActAllow},
		},
	}
	prog, err := compileSeccomp(profile)
	if err != nil {
		t.Fatal(err)
	}
	x64, i386, x32 := arch.X86_64, arch.I386, arch.X32
	maxX64 := uint32(arch.X86_64.SyscallNames["clone3"])
	for _, nr := range []string{"read", "write", "personality", "clone", "socket", "lseek", "pread64", "setpriority", "getpriority", "mmap"} {
		maxX64 = max(maxX64, uint32(arch.X86_64.SyscallNames[nr]))
	}
	for _, tc := range []struct {
		what string
		call call
		want uint32
	}{
		{"allowed", call{arch: x64, name: "read"}, retAllow},
		{"not listed", call{arch: x64, name: "mount"}, errnoRet(unix.EPERM)},
		{"own errno", call{arch: x64, name: "clone3"}, errnoRet(unix.ENOSYS)},
		{"above the profile's syscalls", call{arch: x64, nr: maxX64 + 1}, errnoRet(unix.ENOSYS)},
		{"largest number", call{arch: x64, nr: x32Bit - 1}, errnoRet(unix.ENOSYS)},
		{"equal, first rule", call{arch: x64, name: "personality", args: [6]uint64{8}}, retAllow},
		{"equal, second rule", call{arch: x64, name: "personality", args: [6]uint64{0xffffffff}}, retAllow},
		{"equal, no rule", call{arch: x64, name: "personality", args: [6]uint64{0x40000}}, errnoRet(unix.EPERM)},
		{"equal, high half differs", call{arch: x64, name: "personality", args: [6]uint64{1<<32 | 8}}, errnoRet(unix.EPERM)},
		{"masked equal", call{arch: x64, name: "clone", args: [6]uint64{0x01200011}}, retAllow},
		{"masked equal, flag set", call{arch: x64, name: "clone", args: [6]uint64{0x01200011 | unix.CLONE_NEWUSER}}, errnoRet(unix.EPERM)},
		{"not equal", call{arch: x64, name: "socket", args: [6]uint64{2}}, retAllow},
		{"not equal, equal", call{arch: x64, name: "socket", args: [6]uint64{40}}, errnoRet(unix.EPERM)},
		{"not equal, high half", call{arch: x64, name: "socket", args: [6]uint64{1<<32 | 40}}, retAllow},
		{"greater", call{arch: x64, name: "lseek", args: [6]uint64{0, 1<<32 | 1}}, retAllow},
		{"greater, high half", call{arch: x64, name: "lseek", args: [6]uint64{0, 2 << 32}}, retAllow},
		{"greater, equal", call{arch: x64, name: "lseek", args: [6]uint64{0, 1 << 32}}, errnoRet(unix.EPERM)},
		{"greater, low half only", call{arch: x64, name: "lseek", args: [6]uint64{0, 0xffffffff}}, errnoRet(unix.EPERM)},
		{"greater or equal", call{arch: x64, name: "pread64", args: [6]uint64{0, 0, 0, 1<<32 | 5}}, retAllow},
		{"greater or equal, less", call{arch: x64, name: "pread64", args: [6]uint64{0, 0, 0, 1<<32 | 4}}, errnoRet(unix.EPERM)},
		{"greater or equal, high half", call{arch: x64, name: "pread64", args: [6]uint64{0, 0, 0, 2 << 32}}, retAllow},
		{"less", call{arch: x64, name: "setpriority", args: [6]uint64{0, 0, 1<<32 | 4}}, retAllow},
		{"less, low half large", call{arch: x64, name: "setpriority", args: [6]uint64{0, 0, 0xffffffff}}, retAllow},
		{"less, equal", call{arch: x64, name: "setpriority", args: [6]uint64{0, 0, 1<<32 | 5}}, errnoRet(unix.EPERM)},
		{"less, high half", call{arch: x64, name: "setpriority", args: [6]uint64{0, 0, 2 << 32}}, errnoRet(unix.EPERM)},
		{"less or equal", call{arch: x64, name: "getpriority", args: [6]uint64{0, 1<<32 | 5}}, retAllow},
		{"less or equal, greater", call{arch: x64, name: "getpriority", args: [6]uint64{0, 1<<32 | 6}}, errnoRet(unix.EPERM)},
		{"two conditions", call{arch: x64, name: "mmap", args: [6]uint64{0, 0, 7, 0x32}}, retKillProcess},
		{"two conditions, one holds", call{arch: x64, name: "mmap", args: [6]uint64{0, 0, 7, 0x22}}, retAllow},
		{"two conditions, none holds", call{arch: x64, name: "mmap", args: [6]uint64{0, 0, 3, 0x32}}, retAllow},
		// i386 has its own numbers, and 32-bit arguments.
		{"i386 allowed", call{arch: i386, name: "read"}, retAllow},
		{"i386 not listed", call{arch: i386, name: "mount"}, errnoRet(unix.EPERM)},
		{"i386 clone3", call{arch: i386, name: "clone3"}, errnoRet(unix.ENOSYS)},
		{"i386 low half only", call{arch: i386, name: "personality", args: [6]uint64{1<<32 | 8}}, retAllow},
		{"i386 less", call{arch: i386, name: "setpriority", args: [6]uint64{0, 0, 4}}, retAllow},
		{"i386 less, truncated bound", call{arch: i386, name: "setpriority", args: [6]uint64{0, 0, 5}}, errnoRet(unix.EPERM)},
		// x32: x86-64's architecture, numbers with bit 30.
		{"x32 allowed", call{arch: x32, name: "read"}, retAllow},
		{"x32 not listed", call{arch: x32, name: "mount"}, errnoRet(unix.EPERM)},
		{"x32 masked equal", call{arch: x32, name: "clone", args: [6]uint64{unix.CLONE_NEWNS}}, errnoRet(unix.EPERM)},
		// An architecture the profile does not list.
		{"other architecture", call{arch: arch.AARCH64, name: "read"}, retKillProcess},
	} {
		if got := runFilter(t, prog, tc.call); got != tc.want {
			t.Errorf("%s: %s(%#x) on %s returns %#x, want %#x", tc.what, tc.call.name, tc.call.args, tc.call.arch.Name, got, tc.want)
		}
	}
}

func TestCompileSeccompRejects(t *testing.T) {
	for what, p := range map[string]*specs.LinuxSeccomp{
		"no architecture":     {DefaultAction: specs.ActErrno},
		"unknown action":      {DefaultAction: specs.ActNotify, Architectures: []specs.Arch{specs.ArchX86_64}},
		"unsupported machine": {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchS390X}},
		"bad operator": {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 0, Op: "SCMP_CMP_SOMETIMES"}}}}},
		"bad index": {DefaultAction: specs.ActErrno, Architectures: []specs.Arch{specs.ArchX86_64},
			Syscalls: []specs.LinuxSyscall{{Names: []string{"read"}, Action: specs.ActAllow, Args: []specs.LinuxSeccompArg{{Index: 6, Op: specs.OpEqualTo}}}}},
	} {
		if _, err := compileSeccomp(p); err == nil {
			t.Errorf("%s: compiled, want an error", what)
		}
	}
}
