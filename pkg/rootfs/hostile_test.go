package rootfs

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestApplyHostileLayers extracts layers crafted to write, link or delete
// outside the root and checks that a sentinel directory next to the root is
// untouched and that nothing else appeared next to it.
func TestApplyHostileLayers(t *testing.T) {
	cases := []struct {
		name    string
		lower   func(sentinel string) []entry // applied first, as a trusted lower layer
		entries func(sentinel string) []entry
		wantErr string // substring of the error; "" when the layer is valid
		inside  string // a file the layer must have written inside the root instead
	}{
		{
			name:    "parent traversal",
			entries: func(string) []entry { return []entry{fileEntry("../../etc/passwd", "pwned")} },
			wantErr: `layer sha256:abc: entry "../../etc/passwd": path escapes the root`,
		},
		{
			name:    "traversal after a component",
			entries: func(string) []entry { return []entry{fileEntry("a/../../sentinel/pwned", "pwned")} },
			wantErr: "path escapes the root",
		},
		{
			name:    "absolute name is taken inside the root",
			entries: func(s string) []entry { return []entry{fileEntry(s+"/pwned", "pwned")} },
			inside:  "<sentinel>/pwned",
		},
		{
			name:    "absolute name climbing above the root",
			entries: func(string) []entry { return []entry{fileEntry("/../../../sentinel/pwned", "pwned")} },
			inside:  "sentinel/pwned",
		},
		{
			name: "symlink parent with an absolute target",
			entries: func(s string) []entry {
				return []entry{dirEntry(s, 0o755), symlinkEntry("link", s), fileEntry("link/pwned", "pwned")}
			},
			inside: "<sentinel>/pwned",
		},
		{
			name: "symlink parent with a climbing relative target",
			entries: func(s string) []entry {
				return []entry{dirEntry(s, 0o755), symlinkEntry("link", strings.Repeat("../", 12)+s), fileEntry("link/pwned", "pwned")}
			},
			inside: "<sentinel>/pwned",
		},
		{
			name: "chain of symlinks to the parent of the root",
			entries: func(string) []entry {
				return []entry{dirEntry("sentinel", 0o755), symlinkEntry("a", "b"), symlinkEntry("b", "/../sentinel"), fileEntry("a/pwned", "pwned")}
			},
			inside: "sentinel/pwned",
		},
		{
			name: "symlink parent created inside a directory",
			entries: func(s string) []entry {
				return []entry{dirEntry(s, 0o755), dirEntry("d", 0o755), symlinkEntry("d/up", "../../.."+s), dirEntry("d/up/newdir", 0o755), fileEntry("d/up/newdir/pwned", "pwned")}
			},
			inside: "<sentinel>/newdir/pwned",
		},
		{
			// Only the target exists outside the root: nothing is created
			// through a dangling symlink.
			name: "symlink parent dangling inside the root",
			entries: func(s string) []entry {
				return []entry{symlinkEntry("link", s+"/sub"), fileEntry("link/pwned", "pwned")}
			},
			wantErr: `entry "link/pwned": parent "/link" is a dangling symlink`,
		},
		{
			name: "file over a symlink to an outside file",
			entries: func(s string) []entry {
				return []entry{symlinkEntry("secret", s+"/secret"), fileEntry("secret", "overwritten")}
			},
			inside: "secret",
		},
		{
			name: "hard link climbing out",
			entries: func(string) []entry {
				return []entry{hardlinkEntry("h", "../sentinel/secret")}
			},
			wantErr: `hard link target "../sentinel/secret": path escapes the root`,
		},
		{
			name: "hard link to an absolute outside path",
			entries: func(s string) []entry {
				return []entry{hardlinkEntry("h", s+"/secret")}
			},
			wantErr: "does not exist",
		},
		{
			name: "hard link through a symlink",
			entries: func(s string) []entry {
				return []entry{symlinkEntry("esc", s), hardlinkEntry("h", "esc/secret")}
			},
			wantErr: "does not exist",
		},
		{
			name: "hard link through a relative symlink",
			entries: func(s string) []entry {
				return []entry{symlinkEntry("esc", strings.Repeat("../", 12)+s), hardlinkEntry("h", "esc/secret")}
			},
			wantErr: "does not exist",
		},
		{
			name:    "whiteout of dot-dot",
			entries: func(string) []entry { return []entry{whiteoutEntry(".wh..."), fileEntry("after", "x")} },
			wantErr: `invalid whiteout ".wh..."`,
		},
		{
			name:    "whiteout of dot-dot in a directory",
			entries: func(string) []entry { return []entry{dirEntry("d", 0o755), whiteoutEntry("d/.wh...")} },
			wantErr: "invalid whiteout",
		},
		{
			name:    "whiteout of dot",
			entries: func(string) []entry { return []entry{whiteoutEntry("d/.wh..")} },
			wantErr: "invalid whiteout",
		},
		{
			name:    "whiteout climbing out",
			entries: func(string) []entry { return []entry{whiteoutEntry("../sentinel/.wh.secret")} },
			wantErr: "path escapes the root",
		},
		{
			name: "whiteout through a symlink",
			entries: func(s string) []entry {
				return []entry{symlinkEntry("esc", s), whiteoutEntry("esc/.wh.secret"), whiteoutEntry("esc/.wh..wh..opq")}
			},
		},
		{
			name:  "whiteout of a symlink to a directory removes the link only",
			lower: func(s string) []entry { return []entry{symlinkEntry("esc", s)} },
			entries: func(string) []entry {
				return []entry{whiteoutEntry(".wh.esc"), fileEntry("after", "x")}
			},
			inside: "after",
		},
		{
			name: "opaque root over symlinks to the outside",
			lower: func(s string) []entry {
				return []entry{symlinkEntry("esc", s), symlinkEntry("file", s+"/secret"), dirEntry("d", 0o755), symlinkEntry("d/up", "../..")}
			},
			entries: func(string) []entry {
				return []entry{fileEntry("kept", "k"), whiteoutEntry(".wh..wh..opq")}
			},
			inside: "kept",
		},
		{
			name:  "whiteout below a file",
			lower: func(string) []entry { return []entry{fileEntry("file", "f")} },
			entries: func(string) []entry {
				return []entry{whiteoutEntry("file/.wh.x"), whiteoutEntry("file/.wh..wh..opq"), fileEntry("after", "x")}
			},
			inside: "file",
		},
		{
			name:  "whiteout below a symlink to the parent of the root",
			lower: func(string) []entry { return []entry{symlinkEntry("up", "..")} },
			entries: func(string) []entry {
				return []entry{whiteoutEntry("up/.wh.sentinel"), whiteoutEntry("up/up/.wh..wh..opq")}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			outer := t.TempDir()
			sentinel := filepath.Join(outer, "sentinel")
			root := filepath.Join(outer, "root")
			for _, d := range []string{sentinel, root, filepath.Join(sentinel, "sub")} {
				if err := os.Mkdir(d, 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(sentinel, "secret"), []byte("host secret"), 0o600); err != nil {
				t.Fatal(err)
			}
			before := describeTree(t, sentinel)
			if tc.lower != nil {
				apply(t, root, tc.lower(sentinel)...)
			}

			err := Apply(context.Background(), root, layer(t, tc.entries(sentinel)...), WithLayerName("sha256:abc"))
			switch {
			case tc.wantErr == "" && err != nil:
				t.Errorf("Apply: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Errorf("Apply error = %v, want one containing %q", err, tc.wantErr)
			}
			if strings.Contains(tc.wantErr, "escapes") && !errors.Is(err, ErrPathEscapes) {
				t.Errorf("error %v does not wrap ErrPathEscapes", err)
			}
			if after := describeTree(t, sentinel); after != before {
				t.Errorf("the sentinel directory changed:\nbefore:\n%safter:\n%s", before, after)
			}
			names, err := os.ReadDir(outer)
			if err != nil || len(names) != 2 {
				t.Errorf("next to the root: %v, %v", names, err)
			}
			if tc.inside != "" {
				p := filepath.Join(root, strings.ReplaceAll(tc.inside, "<sentinel>", sentinel))
				if !exists(p) {
					t.Errorf("%s was not written inside the root", p)
				}
			}
		})
	}
}
