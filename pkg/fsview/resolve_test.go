package fsview

import (
	"errors"
	"io/fs"
	"testing"
)

func link(target string) *MapFile {
	return &MapFile{Entry: Entry{Mode: fs.ModeSymlink | 0o777, Linkname: target}}
}

func file(data string) *MapFile {
	return &MapFile{Entry: Entry{Mode: 0o644}, Data: []byte(data)}
}

func TestResolve(t *testing.T) {
	m := MapFS{
		"/usr/bin/ls":      file("ls"),
		"/bin":             link("usr/bin"),
		"/abs":             link("/usr"),
		"/escape":          link("../../../usr"),
		"/etc/hbase":       link("/usr/local/hbase"),
		"/dangling":        link("/nowhere/dir"),
		"/loop1":           link("/loop2"),
		"/loop2":           link("/loop1"),
		"/usr/local/hbase": &MapFile{Entry: Entry{Mode: fs.ModeDir | 0o755}},
		"/usr/lib/rel":     link("../bin"),
		"/notdir/x":        file("x"),
	}
	cases := []struct {
		in, want string
		follow   bool
	}{
		{"/bin/ls", "/usr/bin/ls", true},
		{"/bin", "/usr/bin", true},
		{"/bin", "/bin", false},
		{"/bin/", "/usr/bin", false},
		{"/abs/bin/ls", "/usr/bin/ls", true},
		{"/escape/bin", "/usr/bin", true},
		{"/../../bin/ls", "/usr/bin/ls", true},
		{"/etc/hbase/Dockerfile", "/usr/local/hbase/Dockerfile", true},
		{"/dangling/file", "/nowhere/dir/file", true},
		{"/dangling", "/nowhere/dir", true},
		{"/usr/lib/rel/ls", "/usr/bin/ls", true},
		{"/missing/../bin", "/usr/bin", true},
		{"/notdir/x/y", "/notdir/x/y", true},
	}
	for _, c := range cases {
		got, err := Resolve(m, c.in, c.follow)
		if err != nil || got != c.want {
			t.Errorf("Resolve(%q, %v) = %q, %v; want %q", c.in, c.follow, got, err, c.want)
		}
	}
	if _, err := Resolve(m, "/loop1/x", true); !errors.Is(err, ErrLoop) {
		t.Errorf("loop: got %v, want ErrLoop", err)
	}
}

func TestMapFSThroughSymlinks(t *testing.T) {
	m := MapFS{"/usr/bin/ls": file("ls"), "/bin": link("usr/bin")}
	e, err := m.Lstat("/bin/ls")
	if err != nil || e.Path != "/usr/bin/ls" || e.Size != 2 {
		t.Fatalf("Lstat through symlink: %+v, %v", e, err)
	}
	if e, err := m.Lstat("/bin"); err != nil || !e.IsSymlink() {
		t.Fatalf("Lstat of the link itself: %+v, %v", e, err)
	}
	ents, err := m.ReadDir("/bin")
	if err != nil || len(ents) != 1 || ents[0].Path != "/usr/bin/ls" {
		t.Fatalf("ReadDir through symlink: %v, %v", ents, err)
	}
	if _, err := m.Lstat("/nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing: %v", err)
	}
}
