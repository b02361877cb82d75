package rootfs_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/kiln-build/kiln/pkg/rootfs"
)

// A RUN mount target is created inside a stage's root, used, and the
// directories created for it removed again. The image made /var/run a
// symlink to /run: the target lands in /run, whatever the link says,
// and nothing is ever created outside the root.
func ExampleRoot_MkdirAll() {
	dir, _ := os.MkdirTemp("", "root-")
	defer os.RemoveAll(dir)
	os.MkdirAll(filepath.Join(dir, "run"), 0o755)
	os.MkdirAll(filepath.Join(dir, "var"), 0o755)
	os.Symlink("/run", filepath.Join(dir, "var/run"))

	root, err := rootfs.OpenRoot(dir)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer root.Close()
	created, err := root.MkdirAll("/var/run/secrets/app", 0o755, &rootfs.Owner{UID: os.Getuid(), GID: os.Getgid()})
	fmt.Println(created, err)
	// ... mount, run, unmount ...
	for i := len(created) - 1; i >= 0; i-- {
		if err := root.Remove(created[i]); err != nil {
			fmt.Println(err)
		}
	}
	_, err = root.Lstat("/run/secrets")
	fmt.Println(errors.Is(err, fs.ErrNotExist))
	// Output:
	// [/run/secrets /run/secrets/app] <nil>
	// true
}

// A build context archive is extracted like a layer, but without owners,
// device nodes or whiteouts: a ".wh." name is just a file there.
func ExampleRoot_Extract() {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct{ name, body string }{{"app/main.go", "package main\n"}, {"app/.wh.notes", "kept\n"}} {
		tw.WriteHeader(&tar.Header{Name: f.name, Mode: 0o644, Size: int64(len(f.body)), Uid: 1000, Typeflag: tar.TypeReg})
		tw.Write([]byte(f.body))
	}
	tw.Close()

	dir, _ := os.MkdirTemp("", "context-")
	defer os.RemoveAll(dir)
	root, _ := rootfs.OpenRoot(dir)
	defer root.Close()
	err := root.Extract(context.Background(), &buf, rootfs.WithoutOwners(), rootfs.WithoutSpecialFiles(), rootfs.WithLiteralWhiteouts())
	fmt.Println(err)
	data, err := root.ReadFile("/app/.wh.notes", 1<<20)
	fmt.Printf("%q %v\n", data, err)
	// Output:
	// <nil>
	// "kept\n" <nil>
}
