// Command syscallprobe tries system calls and prints, for each check named
// on its command line, "NAME=OK" or "NAME=ERRNO" (EPERM, ENOSYS...). The
// sandbox tests run it as a RUN command to see what the sandbox allows. It
// is built statically for the machine's architecture, and for i386 to try
// the 32-bit system call table.
//
// Checks: add_key, keyctl, unshare-user, clone3, personality, mknod-char,
// mknod-fifo, raw-socket, vsock-socket, chroot, open:PATH (open and read at
// most one byte).
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	for _, check := range os.Args[1:] {
		fmt.Printf("%s=%s\n", check, result(try(check)))
	}
}

func result(err error) string {
	if err == nil {
		return "OK"
	}
	var errno unix.Errno
	if errors.As(err, &errno) {
		return unix.ErrnoName(errno)
	}
	return "error " + strings.ReplaceAll(err.Error(), " ", "_")
}

func try(check string) error {
	name, arg, _ := strings.Cut(check, ":")
	switch name {
	case "add_key":
		_, err := unix.AddKey("user", "kiln-probe", []byte("x"), unix.KEY_SPEC_PROCESS_KEYRING)
		return err
	case "keyctl":
		_, err := unix.KeyctlGetKeyringID(unix.KEY_SPEC_SESSION_KEYRING, false)
		return err
	case "unshare-user":
		// In a multi-threaded process the kernel answers EINVAL; a
		// seccomp filter answers first.
		return unix.Unshare(unix.CLONE_NEWUSER)
	case "clone3":
		// Without a filter the kernel rejects the empty arguments with
		// EINVAL; Docker's profile answers ENOSYS.
		_, _, errno := unix.Syscall(unix.SYS_CLONE3, 0, 0, 0)
		return errnoErr(errno)
	case "personality":
		// ADDR_NO_RANDOMIZE: not one of the personalities Docker allows.
		_, _, errno := unix.Syscall(unix.SYS_PERSONALITY, 0x0040000, 0, 0)
		return errnoErr(errno)
	case "mknod-char":
		p := "/tmp/probe-char"
		err := unix.Mknod(p, unix.S_IFCHR|0o666, int(unix.Mkdev(1, 3)))
		os.Remove(p)
		return err
	case "mknod-fifo":
		p := "/tmp/probe-fifo"
		err := unix.Mknod(p, unix.S_IFIFO|0o644, 0)
		os.Remove(p)
		return err
	case "raw-socket":
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_RAW, unix.IPPROTO_ICMP)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "vsock-socket":
		fd, err := unix.Socket(unix.AF_VSOCK, unix.SOCK_STREAM, 0)
		if err == nil {
			unix.Close(fd)
		}
		return err
	case "chroot":
		return unix.Chroot("/")
	case "open":
		f, err := os.Open(arg)
		if err != nil {
			return unwrap(err)
		}
		defer f.Close()
		if _, err := f.Read(make([]byte, 1)); err != nil && err != io.EOF {
			return unwrap(err)
		}
		return nil
	}
	return fmt.Errorf("unknown check %q", check)
}

func errnoErr(errno unix.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

func unwrap(err error) error {
	var errno unix.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
