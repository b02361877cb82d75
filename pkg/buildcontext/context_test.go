package buildcontext

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenDirectory(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"Dockerfile": "FROM scratch\n", "sub/file": "f"})
	for _, spec := range []string{dir, "dir://" + dir} {
		c, err := Open(context.Background(), spec)
		if err != nil {
			t.Fatalf("Open(%q): %v", spec, err)
		}
		if c.Dir() != dir {
			t.Errorf("Dir() = %q, want %q", c.Dir(), dir)
		}
		wantListing(t, c.FS(), "/Dockerfile", "/sub/", "/sub/file")
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(filepath.Join(dir, "Dockerfile")); err != nil {
			t.Fatalf("Close removed the directory context: %v", err)
		}
	}
}

func TestOpenRelativeDirectory(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	writeTree(t, dir, map[string]string{"ctx/file": "f"})
	c, err := Open(context.Background(), "ctx")
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir() != filepath.Join(dir, "ctx") {
		t.Errorf("Dir() = %q", c.Dir())
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{"file": "f", "ctx/file": "f"})
	for _, tc := range []struct {
		spec string
		opts []Option
		want string
	}{
		{filepath.Join(dir, "missing"), nil, "no such file or directory"},
		{filepath.Join(dir, "file"), nil, "is not a directory (an archive is given as tar://PATH)"},
		{"dir://", nil, "no directory given"},
		{"tar://", nil, "no archive given"},
		{"tar://" + filepath.Join(dir, "missing.tar"), nil, "no such file or directory"},
		{"ftp://host/context.tar", nil, `unsupported scheme "ftp"`},
		{dir, []Option{WithSubPath("missing")}, `context sub-path "missing"`},
		{dir, []Option{WithSubPath("file")}, `context sub-path "file" is not a directory`},
	} {
		_, err := Open(context.Background(), tc.spec, tc.opts...)
		if err == nil {
			t.Errorf("Open(%q) succeeded", tc.spec)
			continue
		}
		if prefix := "build context \"" + tc.spec + "\": "; !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Open(%q) = %q, want %q...%q", tc.spec, err, prefix, tc.want)
		}
	}
}

func TestOpenSubPath(t *testing.T) {
	outside := t.TempDir()
	dir := t.TempDir()
	writeTree(t, dir, map[string]string{
		"app/Dockerfile":    "FROM scratch\n",
		"app/.dockerignore": "secret\n",
		"app/secret":        "s",
		".dockerignore":     "Dockerfile\n",
		"escape":            "->" + outside,
		"up":                "->../../..",
		// Where links and ".." out of the context land instead.
		strings.TrimPrefix(outside, "/") + "/marker": "inside",
	})
	c, err := Open(context.Background(), dir, WithSubPath("app"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Dir() != filepath.Join(dir, "app") {
		t.Errorf("Dir() = %q", c.Dir())
	}
	// The ignore file at the root of the sub-path applies.
	if err := c.LoadIgnore(""); err != nil {
		t.Fatal(err)
	}
	wantListing(t, c.FS(), "/.dockerignore", "/Dockerfile")

	// A sub-path cannot lead outside the context, through links or "..".
	for _, sub := range []string{"escape", "up" + outside, "../.." + outside} {
		c, err := Open(context.Background(), dir, WithSubPath(sub))
		if err != nil {
			t.Errorf("sub-path %q: %v", sub, err)
			continue
		}
		if want := filepath.Join(dir, outside); c.Dir() != want {
			t.Errorf("sub-path %q opened %q, want %q", sub, c.Dir(), want)
		}
	}
}

func TestRedactSpec(t *testing.T) {
	for spec, want := range map[string]string{
		"/srv/ctx":             "/srv/ctx",
		"dir:///srv/user@host": "dir:///srv/user@host",
		"tar://user@host.tar":  "tar://user@host.tar",
		"git://TOKEN@github.com/org/repo.git#main":  "git://github.com/org/repo.git#main",
		"https://u:p@host:8443/repo.git#a#b":        "https://host:8443/repo.git#a#b",
		"https://host/@scope/ctx.tar.gz":            "https://host/@scope/ctx.tar.gz",
		"https://u:p@host?x=a@b":                    "https://host?x=a@b",
		"https://host/ctx.tar.gz":                   "https://host/ctx.tar.gz",
		"HTTPS://user:p%40ss@host/ctx.tar.gz#frag@": "HTTPS://host/ctx.tar.gz#frag@",
	} {
		if got := redactSpec(spec); got != want {
			t.Errorf("redactSpec(%q) = %q, want %q", spec, got, want)
		}
	}
}
