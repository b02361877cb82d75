package executor

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
)

// binfmtDir is where the kernel lists registered binfmt_misc handlers.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// qemuNames maps GOARCH names to the names qemu-user handlers register as.
var qemuNames = map[string]string{
	"amd64": "x86_64", "386": "i386", "arm64": "aarch64", "arm": "arm", "ppc64le": "ppc64le",
	"ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "mips64le": "mips64el", "loong64": "loongarch64",
}

// nativeAlso lists the architectures a host runs natively besides its own.
var nativeAlso = map[string][]string{"amd64": {"386"}, "arm64": {"arm"}}

// checkEmulation reports whether commands of architecture arch can run on
// this machine: natively, or through a registered binfmt_misc emulator with
// the F (fix binary) flag, which works inside a root filesystem that does
// not contain the emulator.
func checkEmulation(arch, dir string) error {
	host := runtime.GOARCH
	if arch == "" || arch == host {
		return nil
	}
	for _, a := range nativeAlso[host] {
		if a == arch {
			return nil
		}
	}
	name, known := qemuNames[arch]
	if !known {
		name = arch
	}
	handler := filepath.Join(dir, "qemu-"+name)
	f, err := os.Open(handler)
	if err != nil {
		return fmt.Errorf("RUN for linux/%s needs an emulator on this linux/%s machine, and no binfmt_misc handler %q is registered: "+
			"register qemu-user-static (with the F flag) on the node, e.g. with the tonistiigi/binfmt or multiarch/qemu-user-static installers, "+
			"or build this platform on a linux/%s machine", arch, host, handler, arch)
	}
	defer f.Close()
	enabled, fixBinary := false, false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "enabled":
			enabled = true
		case strings.HasPrefix(line, "flags:"):
			fixBinary = strings.Contains(strings.TrimPrefix(line, "flags:"), "F")
		}
	}
	if !enabled {
		return fmt.Errorf("RUN for linux/%s: the binfmt_misc handler %q is registered but disabled", arch, handler)
	}
	if !fixBinary {
		return fmt.Errorf("RUN for linux/%s: the binfmt_misc handler %q lacks the F (fix binary) flag, so its emulator cannot run inside the image's root filesystem; register it with the F flag", arch, handler)
	}
	return nil
}
