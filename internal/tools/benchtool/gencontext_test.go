package main

import (
	"crypto/sha256"
	"encoding/hex"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
)

// treeDigest hashes every path, size, mtime and content of a tree.
func treeDigest(t *testing.T, dir string) string {
	t.Helper()
	h := sha256.New()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		h.Write([]byte(rel + "\x00" + info.Mode().String() + "\x00" + info.ModTime().UTC().String() + "\x00"))
		if d.Type().IsRegular() {
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			h.Write(b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

func TestGenerateContextIsDeterministic(t *testing.T) {
	const size = 24 << 20
	tmp := t.TempDir()
	a, b, c := filepath.Join(tmp, "a"), filepath.Join(tmp, "b"), filepath.Join(tmp, "c")
	sa, err := generateContext(a, size, 7)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := generateContext(b, size, 7); err != nil {
		t.Fatal(err)
	}
	if _, err := generateContext(c, size, 8); err != nil {
		t.Fatal(err)
	}
	if da, db := treeDigest(t, a), treeDigest(t, b); da != db {
		t.Errorf("same seed, different trees: %s and %s", da, db)
	}
	if treeDigest(t, a) == treeDigest(t, c) {
		t.Error("different seeds gave the same tree")
	}
	if sa.total() != size {
		t.Errorf("wrote %d bytes, want exactly %d", sa.total(), size)
	}
	for k, n := range sa.Bytes {
		if n == 0 {
			t.Errorf("no %s content", kindNames[k])
		}
	}
	if sa.Files < 50 || sa.Dirs < 16 {
		t.Errorf("%d files in %d directories: want many files spread over directories", sa.Files, sa.Dirs)
	}
}

func TestGenerateContextMix(t *testing.T) {
	// The share of each kind follows kindShare once the tree is large
	// against its largest file.
	st, err := generateContext(t.TempDir(), 96<<20, 1)
	if err != nil {
		t.Fatal(err)
	}
	for k, n := range st.Bytes {
		share := float64(n) / float64(st.total())
		if d := share - kindShare[k]; d < -0.1 || d > 0.1 {
			t.Errorf("%s is %.0f%% of the bytes, want %.0f%% +-10", kindNames[k], 100*share, 100*kindShare[k])
		}
	}
}
