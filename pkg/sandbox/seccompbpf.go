package sandbox

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/elastic/go-seccomp-bpf/arch"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// This file compiles a runtime-spec seccomp profile (what runc gets) into a
// classic BPF program for seccomp(2), without libseccomp: kiln is a static
// binary. The program follows libseccomp and runc where the profile leaves
// the semantics open:
//
//   - Architectures: the audit architecture of the call selects the
//     syscall table; x32 calls (x86-64 architecture, number with bit 30
//     set) use the x32 table. A call of an architecture the profile does
//     not list is killed, libseccomp's default.
//   - Syscall names unknown for an architecture are ignored there.
//   - A syscall's conditional rules are tried in profile order, the first
//     whose conditions all hold wins; then its unconditional rule, if any;
//     then the default action. (The conditions of one rule are ANDed; runc
//     ORs repeated conditions on one argument, which Docker's profile
//     never has.)
//   - Calls numbered above every syscall the profile names for the
//     architecture fail with ENOSYS, as runc does, so that programs newer
//     than the profile fall back to older calls instead of failing.
//   - Arguments are compared as 64-bit values on 64-bit architectures and
//     by their low 32 bits on 32-bit ones.

// The classic BPF return values of seccomp (linux/seccomp.h).
const (
	retKillProcess = 0x80000000
	retKillThread  = 0x00000000
	retTrap        = 0x00030000
	retErrno       = 0x00050000
	retTrace       = 0x7ff00000
	retLog         = 0x7ffc0000
	retAllow       = 0x7fff0000
)

// seccomp_data offsets (linux/seccomp.h).
const (
	offNr   = 0
	offArch = 4
	offArgs = 16
)

// x32Bit marks the syscall numbers of the x32 ABI.
const x32Bit = 0x40000000

// bpfMaxInstructions is the kernel's limit on a filter's length.
const bpfMaxInstructions = 4096

// seccompArch is one architecture a filter handles.
type seccompArch struct {
	info  *arch.Info
	is64  bool
	isX32 bool
}

// seccompArches maps the profile's architectures to syscall tables. Other
// architectures are not supported by the compiler.
var seccompArches = map[specs.Arch]seccompArch{
	specs.ArchX86_64:  {info: arch.X86_64, is64: true},
	specs.ArchX32:     {info: arch.X32, is64: true, isX32: true},
	specs.ArchX86:     {info: arch.I386},
	specs.ArchAARCH64: {info: arch.AARCH64, is64: true},
	specs.ArchARM:     {info: arch.ARM},
}

// errUnsupportedArch reports a native architecture the compiler has no
// syscall table for.
var errUnsupportedArch = errors.New("no syscall table for this architecture")

// rule is one rule of a syscall: an action under conditions.
type rule struct {
	ret  uint32
	args []specs.LinuxSeccompArg
}

// outcome is what a filter does with a syscall number.
type outcome struct {
	// rules are the conditional rules, tried in order.
	rules []rule
	// ret is the action when no conditional rule matches.
	ret uint32
	// unconditional says ret comes from an unconditional rule, not from
	// the default action.
	unconditional bool
}

func (o *outcome) simple() bool { return len(o.rules) == 0 }

// segment maps the syscall numbers lo to hi (inclusive) to an outcome.
type segment struct {
	lo, hi uint32
	out    *outcome
}

// compileSeccomp compiles profile into a BPF program for the machine's
// architecture (which must be the profile's first one) and the others the
// profile lists.
func compileSeccomp(profile *specs.LinuxSeccomp) ([]bpf.RawInstruction, error) {
	if len(profile.Architectures) == 0 {
		return nil, errors.New("the seccomp profile lists no architecture")
	}
	if len(profile.Flags) > 0 {
		return nil, fmt.Errorf("seccomp flags %q are not supported", profile.Flags)
	}
	if profile.ListenerPath != "" {
		return nil, errors.New("seccomp notification listeners are not supported")
	}
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return nil, errors.New("seccomp filters are only compiled for little-endian machines")
	}
	defaultRet, err := actionValue(profile.DefaultAction, profile.DefaultErrnoRet, nil)
	if err != nil {
		return nil, fmt.Errorf("default action: %w", err)
	}

	// Per audit architecture: the table of each ABI that uses it.
	type abiBlock struct {
		arch seccompArch
		segs []segment
	}
	var order []uint32
	blocks := map[uint32][]abiBlock{}
	for i, a := range profile.Architectures {
		sa, ok := seccompArches[a]
		if !ok {
			if i == 0 {
				return nil, fmt.Errorf("%w: %s", errUnsupportedArch, a)
			}
			continue // its calls are killed as those of an unlisted architecture
		}
		segs, err := syscallSegments(profile, sa, defaultRet)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", a, err)
		}
		id := uint32(sa.info.ID)
		if _, seen := blocks[id]; !seen {
			order = append(order, id)
		}
		blocks[id] = append(blocks[id], abiBlock{arch: sa, segs: segs})
	}

	// The code of each audit architecture; A holds the syscall number.
	var bodies [][]bpf.Instruction
	for _, id := range order {
		var native, x32 []bpf.Instruction
		for _, b := range blocks[id] {
			code, err := emitTree(b.segs, b.arch.is64)
			if err != nil {
				return nil, err
			}
			if b.arch.isX32 {
				x32 = code
			} else {
				native = code
			}
		}
		body := []bpf.Instruction{bpf.LoadAbsolute{Off: offNr, Size: 4}}
		if id == uint32(arch.X86_64.ID) {
			// x32 calls are x86-64 calls with bit 30 set in the number.
			if native == nil {
				native = []bpf.Instruction{bpf.RetConstant{Val: retKillProcess}}
			}
			if x32 == nil {
				x32 = []bpf.Instruction{bpf.RetConstant{Val: retKillProcess}}
			}
			body = append(body, bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: x32Bit, SkipTrue: 0, SkipFalse: 1},
				bpf.Jump{Skip: uint32(len(native))})
			body = append(append(body, native...), x32...)
		} else {
			body = append(body, native...)
		}
		bodies = append(bodies, body)
	}

	// Dispatch on the audit architecture: two instructions per
	// architecture, then the kill for the others, then the bodies.
	head := []bpf.Instruction{bpf.LoadAbsolute{Off: offArch, Size: 4}}
	headLen := 1 + 2*len(order) + 1
	offset := headLen
	for i, id := range order {
		jumpAt := len(head) + 1 // index of the bpf.Jump
		head = append(head,
			bpf.JumpIf{Cond: bpf.JumpEqual, Val: id, SkipTrue: 0, SkipFalse: 1},
			bpf.Jump{Skip: uint32(offset - (jumpAt + 1))})
		offset += len(bodies[i])
	}
	head = append(head, bpf.RetConstant{Val: retKillProcess})
	prog := head
	for _, b := range bodies {
		prog = append(prog, b...)
	}
	if len(prog) > bpfMaxInstructions {
		return nil, fmt.Errorf("the seccomp filter has %d instructions, more than the kernel's limit of %d", len(prog), bpfMaxInstructions)
	}
	return bpf.Assemble(prog)
}

// syscallSegments maps every syscall number of an ABI to its outcome.
func syscallSegments(profile *specs.LinuxSeccomp, sa seccompArch, defaultRet uint32) ([]segment, error) {
	var mask uint32
	if sa.isX32 {
		mask = x32Bit
	}
	outcomes := map[uint32]*outcome{}
	for _, sc := range profile.Syscalls {
		ret, err := actionValue(sc.Action, sc.ErrnoRet, profile.DefaultErrnoRet)
		if err != nil {
			return nil, fmt.Errorf("syscalls %q: %w", sc.Names, err)
		}
		for _, a := range sc.Args {
			if a.Index > 5 {
				return nil, fmt.Errorf("syscalls %q: argument index %d out of range", sc.Names, a.Index)
			}
			if _, err := condition(a, sa.is64); err != nil {
				return nil, fmt.Errorf("syscalls %q: %w", sc.Names, err)
			}
		}
		for _, name := range sc.Names {
			nr, ok := sa.info.SyscallNames[name]
			if !ok {
				continue // not a syscall of this architecture
			}
			n := uint32(nr) | mask
			o := outcomes[n]
			if o == nil {
				o = &outcome{ret: defaultRet}
				outcomes[n] = o
			}
			switch {
			case len(sc.Args) > 0:
				o.rules = append(o.rules, rule{ret: ret, args: sc.Args})
			case !o.unconditional:
				// The first unconditional rule wins, as in libseccomp.
				o.ret, o.unconditional = ret, true
			}
		}
	}
	nrs := make([]uint32, 0, len(outcomes))
	for n := range outcomes {
		nrs = append(nrs, n)
	}
	slices.Sort(nrs)

	def := &outcome{ret: defaultRet}
	enosys := &outcome{ret: retErrno | uint32(unix.ENOSYS)}
	var segs []segment
	add := func(lo, hi uint32, o *outcome) {
		if n := len(segs); n > 0 && segs[n-1].hi+1 == lo && o.simple() && segs[n-1].out.simple() && segs[n-1].out.ret == o.ret {
			segs[n-1].hi = hi
			return
		}
		segs = append(segs, segment{lo: lo, hi: hi, out: o})
	}
	next := mask
	for _, n := range nrs {
		if n > next {
			add(next, n-1, def)
		}
		add(n, n, outcomes[n])
		next = n + 1
	}
	if len(nrs) == 0 {
		add(mask, ^uint32(0), def)
	} else if next != 0 { // 0: the last number was 0xffffffff
		add(next, ^uint32(0), enosys)
	}
	return segs, nil
}

// actionValue is the BPF return value of a profile action. errno is the
// rule's errno, fallback the profile's default one; EPERM without either.
func actionValue(a specs.LinuxSeccompAction, errno, fallback *uint) (uint32, error) {
	e := uint32(unix.EPERM)
	switch {
	case errno != nil:
		e = uint32(*errno)
	case fallback != nil:
		e = uint32(*fallback)
	}
	if e > 0xffff {
		return 0, fmt.Errorf("errno %d out of range", e)
	}
	switch a {
	case specs.ActAllow:
		return retAllow, nil
	case specs.ActErrno:
		return retErrno | e, nil
	case specs.ActKill, specs.ActKillThread:
		return retKillThread, nil
	case specs.ActKillProcess:
		return retKillProcess, nil
	case specs.ActTrap:
		return retTrap, nil
	case specs.ActLog:
		return retLog, nil
	case specs.ActTrace:
		return retTrace | e, nil
	}
	return 0, fmt.Errorf("seccomp action %q is not supported", a)
}

// emitTree emits a binary search over the segments, which cover every
// number from the first one on in order; A holds the syscall number. All
// jumps go forward within the code, so the code can be placed anywhere.
func emitTree(segs []segment, is64 bool) ([]bpf.Instruction, error) {
	if len(segs) == 1 {
		return emitOutcome(segs[0].out, is64)
	}
	mid := len(segs) / 2
	left, err := emitTree(segs[:mid], is64)
	if err != nil {
		return nil, err
	}
	right, err := emitTree(segs[mid:], is64)
	if err != nil {
		return nil, err
	}
	var code []bpf.Instruction
	if len(left) <= 255 {
		code = []bpf.Instruction{bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: segs[mid].lo, SkipTrue: uint8(len(left))}}
	} else {
		code = []bpf.Instruction{
			bpf.JumpIf{Cond: bpf.JumpGreaterOrEqual, Val: segs[mid].lo, SkipTrue: 0, SkipFalse: 1},
			bpf.Jump{Skip: uint32(len(left))},
		}
	}
	return append(append(code, left...), right...), nil
}

// emitOutcome emits the rules of one syscall: each rule returns its action
// if its conditions hold and falls through to the next one otherwise.
func emitOutcome(o *outcome, is64 bool) ([]bpf.Instruction, error) {
	var code []bpf.Instruction
	for _, r := range o.rules {
		body, err := emitRule(r, is64)
		if err != nil {
			return nil, err
		}
		code = append(code, body...)
	}
	return append(code, bpf.RetConstant{Val: o.ret}), nil
}

// target is where a branch of a condition's jump goes.
type target uint8

const (
	toNext    target = iota // the next instruction
	toCondEnd               // past the condition: it holds
	toFail                  // past the rule: it does not apply
)

// condInsn is an instruction of a condition; the targets are those of a
// bpf.JumpIf's two branches.
type condInsn struct {
	ins    bpf.Instruction
	jt, jf target
}

// emitRule emits the conditions of r, then its return.
func emitRule(r rule, is64 bool) ([]bpf.Instruction, error) {
	type jump struct{ at, condEnd int }
	var body []bpf.Instruction
	var targets []condInsn
	var jumps []jump
	for _, a := range r.args {
		cond, err := condition(a, is64)
		if err != nil {
			return nil, err
		}
		start := len(body)
		for i, c := range cond {
			body = append(body, c.ins)
			targets = append(targets, c)
			if _, ok := c.ins.(bpf.JumpIf); ok {
				jumps = append(jumps, jump{at: start + i, condEnd: start + len(cond)})
			}
		}
	}
	body = append(body, bpf.RetConstant{Val: r.ret})
	ruleEnd := len(body)
	for _, j := range jumps {
		skip := func(t target) (uint8, error) {
			dest := j.at + 1
			switch t {
			case toCondEnd:
				dest = j.condEnd
			case toFail:
				dest = ruleEnd
			}
			if n := dest - (j.at + 1); n <= 255 {
				return uint8(n), nil
			}
			return 0, errors.New("a seccomp rule has too many conditions")
		}
		ins := body[j.at].(bpf.JumpIf)
		var err1, err2 error
		ins.SkipTrue, err1 = skip(targets[j.at].jt)
		ins.SkipFalse, err2 = skip(targets[j.at].jf)
		if err := errors.Join(err1, err2); err != nil {
			return nil, err
		}
		body[j.at] = ins
	}
	return body, nil
}

// condition emits the test of one argument condition. On a 64-bit
// architecture the high and low halves of the argument are compared in
// turn; on a 32-bit one only the low half exists.
func condition(a specs.LinuxSeccompArg, is64 bool) ([]condInsn, error) {
	if a.Index > 5 {
		return nil, fmt.Errorf("argument index %d out of range", a.Index)
	}
	// Little-endian: the low half comes first.
	lo := uint32(offArgs + 8*a.Index)
	ldLo := condInsn{ins: bpf.LoadAbsolute{Off: lo, Size: 4}}
	ldHi := condInsn{ins: bpf.LoadAbsolute{Off: lo + 4, Size: 4}}
	jump := func(cond bpf.JumpTest, k uint32, jt, jf target) condInsn {
		return condInsn{ins: bpf.JumpIf{Cond: cond, Val: k}, jt: jt, jf: jf}
	}
	and := func(k uint32) condInsn { return condInsn{ins: bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: k}} }
	eq, gt, ge := bpf.JumpEqual, bpf.JumpGreaterThan, bpf.JumpGreaterOrEqual
	vlo, vhi := uint32(a.Value), uint32(a.Value>>32)
	if !is64 {
		switch a.Op {
		case specs.OpEqualTo:
			return []condInsn{ldLo, jump(eq, vlo, toNext, toFail)}, nil
		case specs.OpNotEqual:
			return []condInsn{ldLo, jump(eq, vlo, toFail, toNext)}, nil
		case specs.OpGreaterThan:
			return []condInsn{ldLo, jump(gt, vlo, toNext, toFail)}, nil
		case specs.OpGreaterEqual:
			return []condInsn{ldLo, jump(ge, vlo, toNext, toFail)}, nil
		case specs.OpLessThan:
			return []condInsn{ldLo, jump(ge, vlo, toFail, toNext)}, nil
		case specs.OpLessEqual:
			return []condInsn{ldLo, jump(gt, vlo, toFail, toNext)}, nil
		case specs.OpMaskedEqual:
			return []condInsn{ldLo, and(vlo), jump(eq, uint32(a.ValueTwo), toNext, toFail)}, nil
		}
		return nil, fmt.Errorf("seccomp operator %q is not supported", a.Op)
	}
	switch a.Op {
	case specs.OpEqualTo:
		return []condInsn{ldHi, jump(eq, vhi, toNext, toFail), ldLo, jump(eq, vlo, toNext, toFail)}, nil
	case specs.OpNotEqual:
		return []condInsn{ldHi, jump(eq, vhi, toNext, toCondEnd), ldLo, jump(eq, vlo, toFail, toNext)}, nil
	case specs.OpGreaterThan:
		return []condInsn{ldHi, jump(gt, vhi, toCondEnd, toNext), jump(eq, vhi, toNext, toFail), ldLo, jump(gt, vlo, toNext, toFail)}, nil
	case specs.OpGreaterEqual:
		return []condInsn{ldHi, jump(gt, vhi, toCondEnd, toNext), jump(eq, vhi, toNext, toFail), ldLo, jump(ge, vlo, toNext, toFail)}, nil
	case specs.OpLessThan:
		return []condInsn{ldHi, jump(gt, vhi, toFail, toNext), jump(eq, vhi, toNext, toCondEnd), ldLo, jump(ge, vlo, toFail, toNext)}, nil
	case specs.OpLessEqual:
		return []condInsn{ldHi, jump(gt, vhi, toFail, toNext), jump(eq, vhi, toNext, toCondEnd), ldLo, jump(gt, vlo, toFail, toNext)}, nil
	case specs.OpMaskedEqual:
		whi, wlo := uint32(a.ValueTwo>>32), uint32(a.ValueTwo)
		return []condInsn{ldHi, and(vhi), jump(eq, whi, toNext, toFail), ldLo, and(vlo), jump(eq, wlo, toNext, toFail)}, nil
	}
	return nil, fmt.Errorf("seccomp operator %q is not supported", a.Op)
}
