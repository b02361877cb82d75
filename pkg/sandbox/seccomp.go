package sandbox

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"unsafe"

	"github.com/moby/profiles/seccomp"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// runSeccompFilter is Docker's default seccomp profile, as Docker applies
// it to a container with the capabilities of a RUN (runCapabilities):
// system calls that only those capabilities allow stay allowed, those of
// CAP_SYS_ADMIN, CAP_SYS_PTRACE and the others are denied, for the
// machine's architecture and the ones it can run (i386 and x32 on x86-64,
// arm on arm64). It is compiled once, to raw BPF.
var runSeccompFilter = sync.OnceValues(func() ([]byte, error) {
	return dockerSeccompFilter(runCapabilities)
})

// dockerSeccompFilter compiles Docker's default profile for a container
// with the capabilities caps.
func dockerSeccompFilter(caps capSet) ([]byte, error) {
	spec := &specs.Spec{Process: &specs.Process{Capabilities: &specs.LinuxCapabilities{Bounding: caps.names()}}}
	profile, err := seccomp.GetDefaultProfile(spec)
	if err != nil {
		return nil, fmt.Errorf("Docker's default seccomp profile: %w", err)
	}
	prog, err := compileSeccomp(profile)
	if err != nil {
		return nil, fmt.Errorf("compiling Docker's default seccomp profile for %s: %w", runtime.GOARCH, err)
	}
	return encodeBPF(prog), nil
}

// encodeBPF packs a program in the kernel's sock_filter layout (8 bytes an
// instruction, native byte order), for the helper's configuration.
func encodeBPF(prog []bpf.RawInstruction) []byte {
	b := make([]byte, 0, 8*len(prog))
	for _, ins := range prog {
		b = binary.NativeEndian.AppendUint16(b, ins.Op)
		b = append(b, ins.Jt, ins.Jf)
		b = binary.NativeEndian.AppendUint32(b, ins.K)
	}
	return b
}

func decodeBPF(b []byte) ([]unix.SockFilter, error) {
	if len(b) == 0 || len(b)%8 != 0 || len(b)/8 > bpfMaxInstructions {
		return nil, fmt.Errorf("malformed seccomp filter of %d bytes", len(b))
	}
	filter := make([]unix.SockFilter, len(b)/8)
	for i := range filter {
		ins := b[8*i:]
		filter[i] = unix.SockFilter{
			Code: binary.NativeEndian.Uint16(ins),
			Jt:   ins[2],
			Jf:   ins[3],
			K:    binary.NativeEndian.Uint32(ins[4:]),
		}
	}
	return filter, nil
}

// installSeccomp applies the filter to the calling thread, and so to the
// processes it starts from now on. The thread must have CAP_SYS_ADMIN (or
// no_new_privs set, which kiln never sets: Docker does not either).
func installSeccomp(raw []byte) error {
	filter, err := decodeBPF(raw)
	if err != nil {
		return err
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	// No SECCOMP_FILTER_FLAG_TSYNC: only this thread, not the helper's
	// other threads.
	_, _, errno := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, 0, uintptr(unsafe.Pointer(&prog)))
	runtime.KeepAlive(filter)
	if errno != 0 {
		return fmt.Errorf("installing the seccomp filter: %w", errno)
	}
	return nil
}

// seccompPlan is whether and why RUN commands get kiln's seccomp filter.
type seccompPlan struct {
	// filter is the raw filter; nil for none.
	filter []byte
	// note says why there is none, or that the container's filter applies
	// anyway; warn marks a note that deserves a warning.
	note string
	warn bool
}

// planSeccomp decides on the seccomp filter of RUN commands. canInstall
// says whether kiln may install one: it may in chroot and rootless
// isolation (it has CAP_SYS_ADMIN in its namespace), and in in-place
// isolation only with CAP_SYS_ADMIN, since kiln does not set no_new_privs
// (which would stop set-user-ID programs in RUN, unlike Docker).
func planSeccomp(canInstall bool) seccompPlan {
	if !canInstall {
		if mode, err := seccompMode(); err == nil && mode == 2 {
			return seccompPlan{note: "RUN commands stay under the seccomp filter kiln's container runs with (kiln may not add Docker's own without CAP_SYS_ADMIN)"}
		}
		return seccompPlan{warn: true, note: "RUN commands run without a seccomp filter: kiln's container has none " +
			"and kiln may not add one without CAP_SYS_ADMIN; run kiln's pod with seccompProfile RuntimeDefault"}
	}
	filter, err := runSeccompFilter()
	if err != nil {
		// An architecture without a syscall table (errUnsupportedArch):
		// only amd64 and arm64 builds of kiln can filter.
		return seccompPlan{warn: true, note: fmt.Sprintf("RUN commands run without a seccomp filter: %v", err)}
	}
	return seccompPlan{filter: filter, note: "RUN commands run under Docker's default seccomp profile"}
}

// seccompMode is the Seccomp field of /proc/self/status: 0 none, 1 strict,
// 2 filter.
func seccompMode() (int, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Seccomp:"); ok {
			var mode int
			_, err := fmt.Sscan(strings.TrimSpace(v), &mode)
			return mode, err
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("/proc/self/status has no Seccomp field")
}

// hasEffectiveCapability reports whether the calling thread has capability
// c in its effective set.
func hasEffectiveCapability(c int) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(c%32)) != 0
}
