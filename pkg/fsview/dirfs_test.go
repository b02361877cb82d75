package fsview

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestDirFSStaysInsideRoot(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("host"), 0o644); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "usr/bin"), 0o755))
	must(os.WriteFile(filepath.Join(root, "usr/bin/ls"), []byte("ls"), 0o755))
	must(os.Symlink("usr/bin", filepath.Join(root, "bin")))
	// Absolute and climbing links must resolve inside the root, never to the host.
	must(os.Symlink(outside, filepath.Join(root, "abs")))
	must(os.Symlink("../../../../../../"+outside+"/secret", filepath.Join(root, "climb")))

	d, err := NewDirFS(root)
	must(err)
	e, err := d.Lstat("/bin/ls")
	if err != nil || e.Path != "/usr/bin/ls" || e.Size != 2 {
		t.Fatalf("Lstat(/bin/ls) = %+v, %v", e, err)
	}
	for _, p := range []string{"/abs/secret", "/climb"} {
		if rc, err := d.Open(p); err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			t.Fatalf("Open(%q) read %q from outside the root", p, b)
		}
	}
	ents, err := d.ReadDir("/bin")
	if err != nil || len(ents) != 1 || ents[0].Name() != "ls" {
		t.Fatalf("ReadDir(/bin) = %v, %v", ents, err)
	}
}
