package buildcontext

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"

	"github.com/kiln-build/kiln/pkg/rootfs/rootfstest"
)

// FuzzExtractContext opens a fuzzed tar context (see rootfstest.Tar for the
// script syntax; $OUT is a directory next to the work directory), gzipped
// when gz is set, from standard input. Whatever the archive holds, nothing
// next to the work directory may change, the context must be a directory
// inside it, its view must list without error, and Close must leave the
// work directory empty.
func FuzzExtractContext(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzExtractContext.
	f.Fuzz(func(t *testing.T, script string, gz bool) {
		outer := t.TempDir()
		out, work := filepath.Join(outer, "out"), filepath.Join(outer, "work")
		for _, d := range []string{out, work} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.WriteFile(filepath.Join(out, "secret"), []byte("*\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		before := describe(t, out)
		data := rootfstest.Tar(script, map[string]string{"$OUT": out})
		if gz {
			var buf bytes.Buffer
			w := gzip.NewWriter(&buf)
			w.Write(data)
			w.Close()
			data = buf.Bytes()
		}
		c, err := Open(context.Background(), "tar://stdin", WithStdin(bytes.NewReader(data)), WithWorkDir(work))
		if err == nil {
			if !strings.HasPrefix(c.Dir(), work+"/") {
				t.Fatalf("the context %q is not in the work directory", c.Dir())
			}
			if err := c.LoadIgnore(""); err != nil && !strings.Contains(err.Error(), "ignore file") {
				t.Fatalf("LoadIgnore: %v", err)
			}
			if _, err := list(c.FS(), "/"); err != nil && !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("listing the context: %v", err)
			}
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
		}
		if after := describe(t, out); after != before {
			t.Fatalf("the directory next to the work directory changed:\nbefore:\n%safter:\n%s", before, after)
		}
		if ents, _ := os.ReadDir(work); len(ents) != 0 {
			t.Fatalf("left %v in the work directory", ents)
		}
		if ents, _ := os.ReadDir(outer); len(ents) != 2 {
			t.Fatalf("created %v next to the work directory", ents)
		}
	})
}

// describe lists a directory tree with types, modes and contents.
func describe(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		b.WriteString(p + " " + fi.Mode().String() + " " + fi.ModTime().String())
		if fi.Mode().IsRegular() {
			c, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			b.WriteString(" " + string(c))
		}
		b.WriteString("\n")
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// ignoreTree is the context FuzzIgnore matches its fuzzed ignore files
// against: nested directories, names with pattern characters, links.
var ignoreTree = map[string]string{
	"Dockerfile":             "FROM scratch\n",
	"README.md":              "r",
	"docs/a.md":              "a",
	"docs/sub/b.md":          "b",
	"src/main.go":            "m",
	"src/vendor/x/x.go":      "x",
	"src/.env":               "secret",
	"odd/[x]":                "bracket",
	"odd/*":                  "star",
	"odd/a b":                "space",
	"odd/back\\slash":        "back",
	".git/config":            "c",
	"link-to-src":            "->src",
	"link-to-env":            "->/src/.env",
	"deep/1/2/3/4/5/file.in": "in",
}

// FuzzIgnore loads a fuzzed .dockerignore for a fixed context and checks the
// filtered view for consistency: loading either succeeds or names the
// ignore file; listing never fails; what ReadDir lists, Lstat finds, and
// files listed can be opened; what Lstat finds exists in the unfiltered
// context; a path hidden by Lstat is hidden from Open and ReadDir too; and
// without exception patterns, exactly what patternmatcher matches (or
// whose parent it matches) is hidden.
func FuzzIgnore(f *testing.F) {
	// Seeds: testdata/fuzz/FuzzIgnore (exceptions, pattern characters, bad
	// patterns, comments, a BOM, climbing patterns).
	dir := f.TempDir()
	ctxDir := filepath.Join(dir, "context")
	for name, content := range ignoreTree {
		p := filepath.Join(ctxDir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			f.Fatal(err)
		}
		var err error
		if target, ok := strings.CutPrefix(content, "->"); ok {
			err = os.Symlink(target, p)
		} else {
			err = os.WriteFile(p, []byte(content), 0o644)
		}
		if err != nil {
			f.Fatal(err)
		}
	}
	dfDir := filepath.Join(dir, "df")
	if err := os.Mkdir(dfDir, 0o755); err != nil {
		f.Fatal(err)
	}
	unfiltered, err := Open(context.Background(), ctxDir)
	if err != nil {
		f.Fatal(err)
	}
	all, err := list(unfiltered.FS(), "/")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, ignore string) {
		if err := os.WriteFile(filepath.Join(dfDir, "Dockerfile.dockerignore"), []byte(ignore), 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Open(context.Background(), ctxDir)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.LoadIgnore(filepath.Join(dfDir, "Dockerfile")); err != nil {
			if !strings.Contains(err.Error(), `ignore file "`+filepath.Join(dfDir, "Dockerfile.dockerignore")+`"`) {
				t.Fatalf("the error does not name the ignore file: %v", err)
			}
			return
		}
		shown, err := list(c.FS(), "/")
		if err != nil {
			t.Fatalf("listing: %v", err)
		}
		// Without exceptions the view is plain: a path is hidden when it or
		// a parent matches, which patternmatcher answers on its own.
		if patterns, err := ignorefile.ReadAll(strings.NewReader(ignore)); err == nil && !slices.ContainsFunc(patterns, func(p string) bool { return strings.HasPrefix(p, "!") }) {
			pm, err := patternmatcher.New(patterns)
			if err != nil {
				t.Fatalf("LoadIgnore accepted patterns patternmatcher refuses: %v", err)
			}
			for _, p := range all {
				name := strings.TrimSuffix(p, "/")
				excluded, err := pm.MatchesOrParentMatches(strings.TrimPrefix(name, "/"))
				if err != nil {
					t.Fatalf("LoadIgnore accepted a pattern that fails to match %q: %v", name, err)
				}
				if _, err := c.FS().Lstat(name); (err == nil) == excluded {
					t.Fatalf("%q: excluded %v by the patterns, but Lstat says %v", name, excluded, err)
				}
			}
		}
		for _, p := range shown {
			name := strings.TrimSuffix(p, "/")
			if _, err := c.FS().Lstat(name); err != nil {
				t.Fatalf("%q is listed but Lstat fails: %v", p, err)
			}
			if !slices.Contains(all, p) {
				t.Fatalf("%q is listed but not in the context", p)
			}
			if !strings.HasSuffix(p, "/") {
				if e, _ := c.FS().Lstat(name); e != nil && e.IsRegular() {
					rc, err := c.FS().Open(name)
					if err != nil {
						t.Fatalf("%q is listed but Open fails: %v", p, err)
					}
					rc.Close()
				}
			}
		}
		for _, p := range all {
			name := strings.TrimSuffix(p, "/")
			if slices.Contains(shown, p) {
				continue
			}
			_, err := c.FS().Lstat(name)
			if err == nil {
				// Shown by Lstat, so its parent must hide it from ReadDir
				// only if the parent itself is hidden.
				if parent := filepath.Dir(name); parent != "/" && !slices.Contains(shown, parent+"/") {
					continue
				}
				t.Fatalf("%q is found by Lstat but not listed", p)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Fatalf("Lstat(%q): %v", p, err)
			}
			if rc, err := c.FS().Open(name); err == nil {
				rc.Close()
				t.Fatalf("%q is hidden from Lstat but opens", p)
			}
		}
	})
}
