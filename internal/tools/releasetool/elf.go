package main

import (
	"debug/elf"
	"errors"
	"flag"
	"fmt"
)

// elfMachines are the ELF machines of the Go architectures kiln is
// released for.
var elfMachines = map[string]elf.Machine{
	"amd64":   elf.EM_X86_64,
	"arm64":   elf.EM_AARCH64,
	"386":     elf.EM_386,
	"arm":     elf.EM_ARM,
	"ppc64le": elf.EM_PPC64,
	"s390x":   elf.EM_S390,
	"riscv64": elf.EM_RISCV,
}

func elfCommand(args []string) error {
	fs := flag.NewFlagSet("elf", flag.ContinueOnError)
	arch := fs.String("arch", "", "Go architecture the file must be built for (amd64, arm64, ...)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 || *arch == "" {
		return errors.New("usage: elf -arch ARCH FILE")
	}
	return checkStaticELF(fs.Arg(0), *arch)
}

// checkStaticELF fails unless path is an ELF executable for linux/arch that
// runs without a dynamic loader: in a FROM scratch image there is none.
func checkStaticELF(path, arch string) error {
	want, ok := elfMachines[arch]
	if !ok {
		return fmt.Errorf("unknown architecture %q", arch)
	}
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("%q is not an ELF executable: %w", path, err)
	}
	defer f.Close()
	if f.Machine != want {
		return fmt.Errorf("%q is built for %s, not %s (%s)", path, f.Machine, arch, want)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("%q is an ELF %s, not an executable", path, f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp := make([]byte, p.Filesz)
			if _, err := p.ReadAt(interp, 0); err != nil {
				return fmt.Errorf("%q: reading its program interpreter: %w", path, err)
			}
			return fmt.Errorf("%q is dynamically linked (it needs %q): a statically linked build is needed", path, trimNUL(interp))
		}
	}
	if f.Type == elf.ET_DYN && f.Entry == 0 {
		return fmt.Errorf("%q is a shared library, not an executable", path)
	}
	return nil
}

func trimNUL(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
