package main

import (
	"bytes"
	"debug/elf"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/kiln-build/kiln/internal/testregistry"
)

// writeELF writes a minimal 64-bit little-endian ELF file: a header and one
// program header of type prog (PT_INTERP with interp as its content).
func writeELF(t *testing.T, machine elf.Machine, typ elf.Type, prog elf.ProgType, interp string) string {
	t.Helper()
	const ehsize, phsize = 64, 56
	var buf bytes.Buffer
	h := elf.Header64{
		Type: uint16(typ), Machine: uint16(machine), Version: uint32(elf.EV_CURRENT), Entry: 0x401000,
		Phoff: ehsize, Ehsize: ehsize, Phentsize: phsize, Phnum: 1,
	}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS] = byte(elf.ELFCLASS64)
	h.Ident[elf.EI_DATA] = byte(elf.ELFDATA2LSB)
	h.Ident[elf.EI_VERSION] = byte(elf.EV_CURRENT)
	binary.Write(&buf, binary.LittleEndian, h)
	p := elf.Prog64{Type: uint32(prog), Off: ehsize + phsize, Filesz: uint64(len(interp) + 1), Memsz: uint64(len(interp) + 1)}
	binary.Write(&buf, binary.LittleEndian, p)
	buf.WriteString(interp + "\x00")
	path := filepath.Join(t.TempDir(), "elf")
	if err := os.WriteFile(path, buf.Bytes(), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCheckStaticELF(t *testing.T) {
	static := writeELF(t, elf.EM_AARCH64, elf.ET_EXEC, elf.PT_LOAD, "")
	if err := checkStaticELF(static, "arm64"); err != nil {
		t.Errorf("static arm64 executable: %v", err)
	}
	staticPIE := writeELF(t, elf.EM_AARCH64, elf.ET_DYN, elf.PT_LOAD, "")
	if err := checkStaticELF(staticPIE, "arm64"); err != nil {
		t.Errorf("static-pie arm64 executable: %v", err)
	}
	text := filepath.Join(t.TempDir(), "busybox")
	os.WriteFile(text, []byte("#!/bin/sh\necho not busybox\n"), 0o755)
	for _, c := range []struct {
		path, arch, want string
	}{
		{static, "amd64", "is built for EM_AARCH64, not amd64"},
		{writeELF(t, elf.EM_X86_64, elf.ET_EXEC, elf.PT_LOAD, ""), "arm64", "is built for EM_X86_64, not arm64"},
		{writeELF(t, elf.EM_AARCH64, elf.ET_EXEC, elf.PT_INTERP, "/lib/ld-linux-aarch64.so.1"), "arm64", `is dynamically linked (it needs "/lib/ld-linux-aarch64.so.1")`},
		{writeELF(t, elf.EM_AARCH64, elf.ET_REL, elf.PT_LOAD, ""), "arm64", "not an executable"},
		{text, "arm64", "is not an ELF executable"},
		{filepath.Join(t.TempDir(), "missing"), "arm64", "is not an ELF executable"},
		{static, "sparc", `unknown architecture "sparc"`},
	} {
		err := checkStaticELF(c.path, c.arch)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s for %s: %v, want an error with %q", c.path, c.arch, err, c.want)
		}
	}
}

func TestBusyboxApplets(t *testing.T) {
	file := filepath.Join(t.TempDir(), "busybox")
	// A decoy run of sorted names before the table, and names that are
	// not applet-like after it.
	table := "\x7fELF\x00GLIBC\x00abc\x00abd\x00\x00[\x00[[\x00ash\x00cat\x00mkfs.vfat\x00run-parts\x00sh\x00ssl_client\x00tar\x00vi\x00wget\x00zcat\x00Usage: %s\x00"
	os.WriteFile(file, []byte(table), 0o755)
	got, err := busyboxApplets(file)
	want := []string{"[", "[[", "ash", "cat", "mkfs.vfat", "run-parts", "sh", "ssl_client", "tar", "vi", "wget", "zcat"}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("applets %q, %v; want %q", got, err, want)
	}
	os.WriteFile(file, []byte(strings.Replace(table, "\x00sh\x00", "\x00", 1)), 0o755)
	if _, err := busyboxApplets(file); err == nil || !strings.Contains(err.Error(), `no busybox applet table with "sh"`) {
		t.Errorf("no sh: %v", err)
	}

	// The real one: the same list as it prints itself.
	if _, err := os.Stat("/bin/busybox"); err != nil {
		t.Skip("/bin/busybox not found: install the Debian package busybox-static (make test-deps does)")
	}
	out, err := exec.Command("/bin/busybox", "--list").Output()
	if err != nil {
		t.Fatal(err)
	}
	listed := strings.Fields(string(out))
	sort.Strings(listed)
	got, err = busyboxApplets("/bin/busybox")
	if err != nil || !slices.Equal(got, listed) {
		t.Errorf("/bin/busybox: read %d applets (%v), it lists %d", len(got), err, len(listed))
	}
}

func TestLayout(t *testing.T) {
	reg := testregistry.Start(t)
	idx, err := random.Index(64, 1, 2)
	if err != nil {
		t.Fatal(err)
	}
	img, err := random.Image(64, 1)
	if err != nil {
		t.Fatal(err)
	}
	for ref, w := range map[string]func(name.Reference) error{
		reg.Ref("kiln:v1"):       func(r name.Reference) error { return remote.WriteIndex(r, idx) },
		reg.Ref("kiln:v1-amd64"): func(r name.Reference) error { return remote.Write(r, img) },
	} {
		r, err := name.ParseReference(ref, name.Insecure)
		if err != nil {
			t.Fatal(err)
		}
		if err := w(r); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(t.TempDir(), "oci")
	if err := layoutCommand([]string{"-dir", dir, "-insecure", reg.Ref("kiln:v1") + "=v1", reg.Ref("kiln:v1-amd64") + "=v1-amd64"}); err != nil {
		t.Fatal(err)
	}
	p, err := layout.FromPath(dir)
	if err != nil {
		t.Fatal(err)
	}
	top, err := p.ImageIndex()
	if err != nil {
		t.Fatal(err)
	}
	m, err := top.IndexManifest()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]v1.Hash{"v1": digest(t, idx), "v1-amd64": digest(t, img)}
	if len(m.Manifests) != len(want) {
		t.Fatalf("layout lists %d manifests, want %d", len(m.Manifests), len(want))
	}
	for _, d := range m.Manifests {
		refName := d.Annotations["org.opencontainers.image.ref.name"]
		if want[refName] != d.Digest {
			t.Errorf("%q: digest %s, want %s", refName, d.Digest, want[refName])
		}
	}
	// The index came with its images and their blobs.
	child, err := top.ImageIndex(want["v1"])
	if err != nil {
		t.Fatal(err)
	}
	cm, _ := child.IndexManifest()
	for _, d := range cm.Manifests {
		i, err := child.Image(d.Digest)
		if err != nil {
			t.Fatal(err)
		}
		layers, _ := i.Layers()
		for _, l := range layers {
			ld, _ := l.Digest()
			if _, err := os.Stat(filepath.Join(dir, "blobs", ld.Algorithm, ld.Hex)); err != nil {
				t.Errorf("layer of %s: %v", d.Digest, err)
			}
		}
	}
	if err := layoutCommand([]string{"-dir", dir, "-insecure", reg.Ref("kiln:nope") + "=x"}); err == nil || !strings.Contains(err.Error(), `"`+reg.Ref("kiln:nope")+`"`) {
		t.Errorf("a missing image: %v", err)
	}
}

func digest(t *testing.T, d interface{ Digest() (v1.Hash, error) }) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}
