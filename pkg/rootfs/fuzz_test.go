package rootfs

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/pkg/rootfs/rootfstest"
)

// lowerScript is the trusted layer every fuzzed one is applied over: links
// out of the root by absolute host path ($OUT) and by climbing, a protected
// directory, files to replace and white out.
const lowerScript = `d etc
f etc/passwd root:x:0:0::/root:/bin/sh
l esc $OUT
l up ../../../../..
l secret $OUT/secret
d protected
f protected/keep kept
l var/run /run
d run
h etc/passwd.bak etc/passwd
`

// FuzzApply extracts a fuzzed layer (see rootfstest.Tar for the script
// syntax; $OUT is a directory next to the root) with fuzzed options, and
// checks that nothing outside the root changed: the directory next to it
// and what it holds, and the directory holding both. Bits of opts select
// WithLiteralWhiteouts, WithoutOwners, WithoutSpecialFiles and WithIgnore
// of /protected, which must then be left as it was.
func FuzzApply(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzApply (names and links out of the root,
	// hard links out, whiteouts through links, ignored paths, loops).
	f.Fuzz(func(t *testing.T, script string, flags uint8) {
		outer := t.TempDir()
		out := filepath.Join(outer, "out")
		root := filepath.Join(outer, "root")
		for _, d := range []string{out, root, filepath.Join(out, "sub")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(out, "secret"), []byte("host secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		vars := map[string]string{"$OUT": out}
		// Without root the layers' owners cannot be set; that is not what
		// this target looks for, so it keeps the extracting user's.
		notRoot := WithChownErrorsIgnored(os.Geteuid() != 0)
		if err := Apply(context.Background(), root, bytes.NewReader(rootfstest.Tar(lowerScript, vars)), notRoot); err != nil {
			t.Fatalf("the lower layer: %v", err)
		}
		before := describeTree(t, out)
		opts := []Option{notRoot}
		if flags&1 != 0 {
			opts = append(opts, WithLiteralWhiteouts())
		}
		if flags&2 != 0 {
			opts = append(opts, WithoutOwners())
		}
		if flags&4 != 0 {
			opts = append(opts, WithoutSpecialFiles())
		}
		protected := flags&8 != 0
		if protected {
			opts = append(opts, WithIgnore(func(p string) bool { return p == "/protected" }))
		}
		// Errors are fine (a hostile layer should fail); escaping is not.
		_ = Apply(context.Background(), root, bytes.NewReader(rootfstest.Tar(script, vars)), opts...)

		if after := describeTree(t, out); after != before {
			t.Fatalf("the directory next to the root changed:\nbefore:\n%safter:\n%s", before, after)
		}
		names, err := os.ReadDir(outer)
		if err != nil || len(names) != 2 {
			t.Fatalf("next to the root: %v, %v", names, err)
		}
		if protected {
			if got, err := os.ReadFile(filepath.Join(root, "protected/keep")); err != nil || string(got) != "kept" {
				t.Fatalf("an ignored path changed: %q, %v", got, err)
			}
		}
	})
}
