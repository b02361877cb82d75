package copier

import (
	"archive/tar"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/kiln-build/kiln/pkg/fsview"
)

func TestGlobs(t *testing.T) {
	ctx := fsview.MapFS{
		"/a.txt":         file("a", 0o644),
		"/b.txt":         file("b", 0o644),
		"/c.md":          file("c", 0o644),
		"/src/x.go":      file("x", 0o644),
		"/src/sub/y.go":  file("y", 0o644),
		"/other/z.go":    file("z", 0o644),
		"/lit/arr[0].md": file("arr", 0o644),
	}
	cases := []struct {
		sources []string
		dest    string
		want    []string
	}{
		{[]string{"*.txt"}, "/out/", []string{"d out 755 0:0", "f out/a.txt 644 0:0 a", "f out/b.txt 644 0:0 b"}},
		// Each component is matched on its own: "*" never crosses a "/".
		{[]string{"src/*.go"}, "/out/", []string{"d out 755 0:0", "f out/x.go 644 0:0 x"}},
		{[]string{"*/*.go"}, "/out/", []string{"d out 755 0:0", "f out/z.go 644 0:0 z", "f out/x.go 644 0:0 x"}},
		{[]string{"?.md", "lit/arr[[]0].md"}, "/out/", []string{"d out 755 0:0", "f out/c.md 644 0:0 c", "f out/arr[0].md 644 0:0 arr"}},
		// One glob matching several files onto a path that does not exist
		// writes each match there in turn, as buildah and BuildKit do.
		{[]string{"*.txt"}, "/testdir", []string{"f testdir 644 0:0 a", "f testdir 644 0:0 b"}},
	}
	for _, c := range cases {
		got := mustCopy(t, &Request{Sources: c.sources, Dest: c.dest, Src: ctx, FromContext: true})
		equal(t, c.dest+" <- "+c.sources[0], got, c.want)
	}
}

func TestMissingSources(t *testing.T) {
	ctx := fsview.MapFS{"/a.txt": file("a", 0o644), "/notdir": file("x", 0o644)}
	cases := []struct {
		src, want   string
		fromContext bool
	}{
		{"foo.txt", `"foo.txt": no such file or directory in the build context`, true},
		{"/notdir/x", `"/notdir/x": no such file or directory in the build context`, true},
		{"/data", `"/data": no such file or directory`, false},
		{"*foo", `"*foo": no file matches the pattern in the build context`, true},
	}
	for _, c := range cases {
		_, _, err := copyTo(t, &Request{Sources: []string{"a.txt", c.src}, Dest: "/x/", Src: ctx, FromContext: c.fromContext})
		if err == nil || err.Error() != c.want || !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("source %q: got %v, want %q (fs.ErrNotExist)", c.src, err, c.want)
		}
	}
	// A file left out by .dockerignore is absent from the context FS, so it
	// is reported the same way.
	_, _, err := copyTo(t, &Request{Sources: []string{"test1.txt"}, Dest: "/upload/", Src: fsview.MapFS{"/test2.txt": file("", 0o644)}, FromContext: true})
	wantErr(t, "ignored file", err, `"test1.txt": no such file or directory in the build context`)
}

// stage is a destination tree with the cases the destination rules care
// about: an existing directory with its own metadata, symlinks to
// directories (merged /usr, dest-symlink), a dangling one and a file link.
func stage() fsview.MapFS {
	return fsview.MapFS{
		"/existing":        owned(dir(0o700), 5, 5),
		"/etc/passwd":      file("root:x:0:0::/root:/bin/sh\n", 0o644),
		"/etc/plink":       symlink("/etc/passwd"),
		"/etc/hbase":       symlink("/usr/local/hbase"),
		"/usr/local/hbase": dir(0o755),
		"/usr/bin/ls":      file("ls", 0o755),
		"/bin":             symlink("usr/bin"),
		"/src":             symlink("/symlink"),
		"/work":            dir(0o755),
	}
}

func context1() fsview.MapFS {
	return fsview.MapFS{
		"/f":         file("F", 0o640),
		"/g":         file("G", 0o644),
		"/d/x":       file("X", 0o600),
		"/d/sub/y":   file("Y", 0o644),
		"/t/bin/new": file("N", 0o755),
	}
}

func TestDestinationRules(t *testing.T) {
	cases := []struct {
		name    string
		sources []string
		dest    string
		workdir string
		want    []string
	}{
		{"file into existing dir", []string{"f"}, "/existing", "",
			[]string{"d existing 700 5:5", "f existing/f 640 0:0 F"}},
		{"file to new path", []string{"f"}, "/new", "",
			[]string{"f new 640 0:0 F"}},
		{"file to new dir", []string{"f"}, "/new/", "",
			[]string{"d new 755 0:0", "f new/f 640 0:0 F"}},
		{"dir contents", []string{"d"}, "/newdir", "",
			[]string{"d newdir 755 0:0", "d newdir/sub 755 0:0", "f newdir/sub/y 644 0:0 Y", "f newdir/x 600 0:0 X"}},
		{"several sources make a dir", []string{"f", "g"}, "/multi", "",
			[]string{"d multi 755 0:0", "f multi/f 640 0:0 F", "f multi/g 644 0:0 G"}},
		{"dot is the workdir", []string{"f"}, ".", "/work",
			[]string{"d work 755 0:0", "f work/f 640 0:0 F"}},
		{"relative to workdir", []string{"f"}, "rel/", "/work",
			[]string{"d work 755 0:0", "d work/rel 755 0:0", "f work/rel/f 640 0:0 F"}},
		{"relative without workdir", []string{"f"}, "lib/custom/f.cfg", "",
			[]string{"d lib 755 0:0", "d lib/custom 755 0:0", "f lib/custom/f.cfg 640 0:0 F"}},
		{"dest symlink to dir", []string{"f"}, "/etc/hbase", "",
			[]string{"d usr 755 0:0", "d usr/local 755 0:0", "d usr/local/hbase 755 0:0", "f usr/local/hbase/f 640 0:0 F"}},
		{"dangling symlink with slash", []string{"f"}, "/src/", "",
			[]string{"d symlink 755 0:0", "f symlink/f 640 0:0 F"}},
		{"parent through symlink", []string{"f"}, "/bin/tool", "",
			[]string{"d usr 755 0:0", "d usr/bin 755 0:0", "f usr/bin/tool 640 0:0 F"}},
		{"file replaces a symlink to a file", []string{"f"}, "/etc/plink", "",
			[]string{"d etc 755 0:0", "f etc/plink 640 0:0 F"}},
		{"dir into symlink to dir", []string{"d"}, "/bin", "",
			[]string{"d usr 755 0:0", "d usr/bin 755 0:0", "d usr/bin/sub 755 0:0", "f usr/bin/sub/y 644 0:0 Y", "f usr/bin/x 600 0:0 X"}},
		// A tree copied onto a merged-/usr root fills /usr/bin and leaves the
		// /bin link alone.
		{"tree through symlink to dir", []string{"t"}, "/", "",
			[]string{"d usr 755 0:0", "d usr/bin 755 0:0", "f usr/bin/new 755 0:0 N"}},
	}
	for _, c := range cases {
		got := mustCopy(t, &Request{Sources: c.sources, Dest: c.dest, Workdir: c.workdir, Src: context1(), Dst: stage(), FromContext: true})
		equal(t, c.name, got, c.want)
	}
}

func TestDestinationConflicts(t *testing.T) {
	cases := []struct {
		name string
		ctx  fsview.MapFS
		src  string
		dest string
		want string
	}{
		{"dir onto a file", context1(), "d", "/etc/passwd", `destination "/etc/passwd": "/etc/passwd" is not a directory`},
		{"file onto a dir in a tree", fsview.MapFS{"/t/etc": file("x", 0o644)}, "t", "/", `cannot replace the directory "/etc" with a file`},
		{"dir onto a file in a tree", fsview.MapFS{"/t/passwd/x": file("x", 0o644)}, "t", "/etc/", `cannot copy a directory over the file "/etc/passwd"`},
		{"dir onto a dangling link in a tree", fsview.MapFS{"/t/src/x": file("x", 0o644)}, "t", "/", `cannot copy a directory to "/src": it is a symlink to "/symlink"`},
		{"below a file", context1(), "f", "/etc/passwd/x", `"/etc/passwd" is not a directory`},
	}
	for _, c := range cases {
		_, _, err := copyTo(t, &Request{Sources: []string{c.src}, Dest: c.dest, Src: c.ctx, Dst: stage(), FromContext: true})
		wantErr(t, c.name, err, c.want)
	}
}

func TestParentDirectories(t *testing.T) {
	dst := fsview.MapFS{"/opt": owned(dir(0o700), 3, 4)}
	ctx := fsview.MapFS{"/f": file("F", 0o640)}
	// Existing parents keep their metadata; created ones are 0755 and owned
	// by --chown (as BuildKit and buildah do).
	got := mustCopy(t, &Request{Sources: []string{"f"}, Dest: "/opt/a/b/f", Src: ctx, Dst: dst, Chown: &Owner{7, 8}, FromContext: true})
	equal(t, "chown", got, []string{"d opt 700 3:4", "d opt/a 755 7:8", "d opt/a/b 755 7:8", "f opt/a/b/f 640 7:8 F"})

	got = mustCopy(t, &Request{Sources: []string{"f"}, Dest: "/opt/a/f", Src: ctx, Dst: dst, FromContext: true})
	equal(t, "no chown", got, []string{"d opt 700 3:4", "d opt/a 755 0:0", "f opt/a/f 640 0:0 F"})

	// --link never looks at the stage: the parents are created fresh.
	got = mustCopy(t, &Request{Sources: []string{"f"}, Dest: "/opt/a/f", Src: ctx, Dst: dst, Link: true, FromContext: true})
	equal(t, "link", got, []string{"d opt 755 0:0", "d opt/a 755 0:0", "f opt/a/f 640 0:0 F"})
}

func TestOwnership(t *testing.T) {
	src := fsview.MapFS{
		"/app/bin/tool": owned(file("tool", fs.ModeSetuid|0o755), 33, 44),
		"/app/lib":      owned(dir(0o750), 33, 44),
		"/app/link":     owned(symlink("bin/tool"), 33, 44),
	}
	dst := fsview.MapFS{"/existing": owned(dir(0o755), 1, 1)}
	cases := []struct {
		name        string
		fromContext bool
		chown       *Owner
		dest        string
		want        []string
	}{
		{"other stage keeps ids", false, nil, "/dst", []string{
			"d dst 755 0:0", "d dst/bin 755 0:0", "f dst/bin/tool 4755 33:44 tool", "d dst/lib 750 33:44", "l dst/link -> bin/tool 33:44"}},
		{"context is root-owned", true, nil, "/dst", []string{
			"d dst 755 0:0", "d dst/bin 755 0:0", "f dst/bin/tool 4755 0:0 tool", "d dst/lib 750 0:0", "l dst/link -> bin/tool 0:0"}},
		{"chown applies to all copied and created", false, &Owner{7, 8}, "/dst", []string{
			"d dst 755 7:8", "d dst/bin 755 7:8", "f dst/bin/tool 4755 7:8 tool", "d dst/lib 750 7:8", "l dst/link -> bin/tool 7:8"}},
		{"chown leaves an existing destination alone", false, &Owner{7, 8}, "/existing", []string{
			"d existing 755 1:1", "d existing/bin 755 7:8", "f existing/bin/tool 4755 7:8 tool", "d existing/lib 750 7:8", "l existing/link -> bin/tool 7:8"}},
	}
	for _, c := range cases {
		got := mustCopy(t, &Request{Sources: []string{"/app"}, Dest: c.dest, Src: src, Dst: dst, Chown: c.chown, FromContext: c.fromContext})
		equal(t, c.name, got, c.want)
	}
}

func TestChmodCopy(t *testing.T) {
	ctx := fsview.MapFS{
		"/d/f": file("f", 0o644),
		"/d/x": file("x", 0o750),
		"/d/s": dir(0o700),
		"/d/l": symlink("f"),
	}
	cases := []struct {
		chmod string
		want  []string
	}{
		// The destination directory is created, not copied: --chmod leaves
		// it 0755; symlinks have no mode of their own.
		{"755", []string{"d out 755 0:0", "f out/f 755 0:0 f", "l out/l -> f 0:0", "d out/s 755 0:0", "f out/x 755 0:0 x"}},
		{"0640", []string{"d out 755 0:0", "f out/f 640 0:0 f", "l out/l -> f 0:0", "d out/s 640 0:0", "f out/x 640 0:0 x"}},
		{"u=rwX,go=rX", []string{"d out 755 0:0", "f out/f 644 0:0 f", "l out/l -> f 0:0", "d out/s 755 0:0", "f out/x 755 0:0 x"}},
		{"+x,g-r", []string{"d out 755 0:0", "f out/f 715 0:0 f", "l out/l -> f 0:0", "d out/s 711 0:0", "f out/x 711 0:0 x"}},
		{"4755", []string{"d out 755 0:0", "f out/f 4755 0:0 f", "l out/l -> f 0:0", "d out/s 4755 0:0", "f out/x 4755 0:0 x"}},
	}
	for _, c := range cases {
		got := mustCopy(t, &Request{Sources: []string{"d"}, Dest: "/out", Src: ctx, Chmod: c.chmod, FromContext: true})
		equal(t, "--chmod="+c.chmod, got, c.want)
	}
	for _, bad := range []string{"999", "17777", "u+q", "z+x", "u", "+x,", "g=uo"} {
		_, _, err := copyTo(t, &Request{Sources: []string{"d"}, Dest: "/out", Src: ctx, Chmod: bad})
		wantErr(t, "--chmod="+bad, err, "invalid --chmod value", bad)
	}
}

func TestSourceSymlinks(t *testing.T) {
	ctx := fsview.MapFS{
		"/real/data/f": file("F", 0o644),
		"/data":        symlink("/real/data"),
		"/lnk.txt":     symlink("real/data/f"),
		"/tree/l":      symlink("../x"),
		"/tree/abs":    symlink("/etc/passwd"),
		"/dangling":    symlink("/nope"),
	}
	cases := []struct {
		name    string
		sources []string
		dest    string
		want    []string
	}{
		// A symlink named by the source is followed: its target's contents or
		// content, under the name as written.
		{"link to a dir", []string{"data"}, "/data", []string{"d data 755 0:0", "f data/f 644 0:0 F"}},
		{"link to a file", []string{"lnk.txt"}, "/etc/", []string{"d etc 755 0:0", "f etc/lnk.txt 644 0:0 F"}},
		{"glob match", []string{"lnk*"}, "/g/", []string{"d g 755 0:0", "f g/lnk.txt 644 0:0 F"}},
		// Inside a copied tree, symlinks stay symlinks whatever they point to.
		{"links in a tree", []string{"tree"}, "/t", []string{"d t 755 0:0", "l t/abs -> /etc/passwd 0:0", "l t/l -> ../x 0:0"}},
	}
	for _, c := range cases {
		got := mustCopy(t, &Request{Sources: c.sources, Dest: c.dest, Src: ctx, FromContext: true})
		equal(t, c.name, got, c.want)
	}
	_, _, err := copyTo(t, &Request{Sources: []string{"dangling"}, Dest: "/x", Src: ctx, FromContext: true})
	wantErr(t, "dangling", err, `"dangling": no such file or directory in the build context`)
}

func TestHardLinks(t *testing.T) {
	ctx := fsview.MapFS{
		"/subdir/test1.txt": hardlink("test1", "i1"),
		"/subdir/test2.txt": hardlink("test1", "i1"),
		"/test3.txt":        hardlink("test1", "i1"),
		"/test4.txt":        hardlink("test1", "i1"),
		"/other.txt":        hardlink("other", "i2"),
	}
	want := []string{
		"f other.txt 644 0:0 other",
		"d subdir 755 0:0",
		"f subdir/test1.txt 644 0:0 test1",
		"h subdir/test2.txt => subdir/test1.txt",
		"h test3.txt => subdir/test1.txt",
		"h test4.txt => subdir/test1.txt",
	}
	res, ents, err := copyTo(t, &Request{Sources: []string{"."}, Dest: ".", Src: ctx, FromContext: true})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "first copy", describe(ents), want)
	if res.Files != 5 || res.Bytes != int64(len("test1")+len("other")) {
		t.Errorf("Files=%d Bytes=%d, want 5 and %d", res.Files, res.Bytes, len("test1")+len("other"))
	}
	// Copying the same tree again onto the result keeps one group.
	after := fsview.MapFS{}
	for k, v := range ctx {
		after[k] = v
	}
	got := mustCopy(t, &Request{Sources: []string{"."}, Dest: ".", Src: ctx, Dst: after, FromContext: true})
	equal(t, "second copy", got, want)

	// Files named by different sources are copied separately, as Docker does.
	got = mustCopy(t, &Request{Sources: []string{"subdir/test1.txt", "test3.txt"}, Dest: "/s/", Src: ctx, FromContext: true})
	equal(t, "separate sources", got, []string{"d s 755 0:0", "f s/test1.txt 644 0:0 test1", "f s/test3.txt 644 0:0 test1"})
}

// TestDirFSContext copies a real directory: hard links found by inode,
// symlinks, modes and times as on disk.
func TestDirFSContext(t *testing.T) {
	root := t.TempDir()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "subdir"), 0o755))
	must(os.WriteFile(filepath.Join(root, "subdir/test1.txt"), []byte("test1\n"), 0o644))
	must(os.Link(filepath.Join(root, "subdir/test1.txt"), filepath.Join(root, "subdir/test2.txt")))
	must(os.Link(filepath.Join(root, "subdir/test1.txt"), filepath.Join(root, "test3.txt")))
	must(os.Symlink("subdir/test1.txt", filepath.Join(root, "link")))
	must(os.WriteFile(filepath.Join(root, "run.sh"), []byte("#!/bin/sh\n"), 0o755))
	must(os.Chmod(filepath.Join(root, "run.sh"), 0o755))
	must(os.Chtimes(filepath.Join(root, "run.sh"), mtime, mtime))
	src, err := fsview.NewDirFS(root)
	must(err)

	_, ents, err := copyTo(t, &Request{Sources: []string{"."}, Dest: "/app/", Src: src, FromContext: true})
	must(err)
	equal(t, "entries", describe(ents), []string{
		"d app 755 0:0",
		"l app/link -> subdir/test1.txt 0:0",
		"f app/run.sh 755 0:0 #!/bin/sh\n",
		"d app/subdir 755 0:0",
		"f app/subdir/test1.txt 644 0:0 test1\n",
		"h app/subdir/test2.txt => app/subdir/test1.txt",
		"h app/test3.txt => app/subdir/test1.txt",
	})
	for _, e := range ents {
		if e.hdr.Name == "app/run.sh" && !e.hdr.ModTime.Equal(mtime) {
			t.Errorf("run.sh mtime %v, want %v", e.hdr.ModTime, mtime)
		}
	}
}

func TestTimestamps(t *testing.T) {
	ctx := fsview.MapFS{"/d/f": file("f", 0o644), "/d/sub": dir(0o755), "/d/l": symlink("f")}
	_, ents, err := copyTo(t, &Request{Sources: []string{"d"}, Dest: "/new/x", Src: ctx, FromContext: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		switch e.hdr.Name {
		case "new", "new/x":
			if e.hdr.ModTime.IsZero() || e.hdr.ModTime.Equal(mtime) {
				t.Errorf("created %q has mtime %v, want the time of the copy", e.hdr.Name, e.hdr.ModTime)
			}
		default:
			if !e.hdr.ModTime.Equal(mtime) {
				t.Errorf("copied %q has mtime %v, want the source's %v", e.hdr.Name, e.hdr.ModTime, mtime)
			}
		}
	}
}

func TestExclude(t *testing.T) {
	ctx := fsview.MapFS{
		"/dir1/a.png":        file("a", 0o644),
		"/dir1/b.txt":        file("b", 0o644),
		"/dir2/c.png":        file("c", 0o644),
		"/dir2/keep/d.png":   file("d", 0o644),
		"/dir2/skip/e.txt":   file("e", 0o644),
		"/home.txt":          file("h", 0o644),
		"/home.md":           file("m", 0o644),
		"/dir3/link-to.txt":  symlink("nowhere"),
		"/dir3/keep-me.mpeg": file("k", 0o644),
	}
	cases := []struct {
		name    string
		exclude []string
		sources []string
		dest    string
		want    []string
	}{
		// Patterns are relative to the directory copied.
		{"relative to the context", []string{"*/*.png", "dir2/skip"}, []string{"."}, "/1", []string{
			"d 1 755 0:0", "d 1/dir1 755 0:0", "f 1/dir1/b.txt 644 0:0 b", "d 1/dir2 755 0:0", "d 1/dir2/keep 755 0:0",
			"f 1/dir2/keep/d.png 644 0:0 d", "d 1/dir3 755 0:0", "f 1/dir3/keep-me.mpeg 644 0:0 k", "l 1/dir3/link-to.txt -> nowhere 0:0",
			"f 1/home.md 644 0:0 m", "f 1/home.txt 644 0:0 h"}},
		{"relative to a source dir", []string{"*.png"}, []string{"dir2/"}, "/2/", []string{
			"d 2 755 0:0", "d 2/keep 755 0:0", "f 2/keep/d.png 644 0:0 d", "d 2/skip 755 0:0", "f 2/skip/e.txt 644 0:0 e"}},
		// Glob matches are excluded too; symlinks are matched by name.
		{"glob matches", []string{"*.txt"}, []string{"hom*", "dir3"}, "/3/", []string{
			"d 3 755 0:0", "f 3/home.md 644 0:0 m", "f 3/keep-me.mpeg 644 0:0 k"}},
		// An exception brings a file back from an excluded directory.
		{"exception", []string{"dir*", "home*", "!dir1/b.txt"}, []string{"."}, "/4/", []string{
			"d 4 755 0:0", "d 4/dir1 755 0:0", "f 4/dir1/b.txt 644 0:0 b"}},
		{"exception below", []string{"dir2/*", "!dir2/keep/*"}, []string{"."}, "/5/", []string{
			"d 5 755 0:0", "d 5/dir1 755 0:0", "f 5/dir1/a.png 644 0:0 a", "f 5/dir1/b.txt 644 0:0 b",
			"d 5/dir2 755 0:0", "d 5/dir2/keep 755 0:0", "f 5/dir2/keep/d.png 644 0:0 d",
			"d 5/dir3 755 0:0", "f 5/dir3/keep-me.mpeg 644 0:0 k", "l 5/dir3/link-to.txt -> nowhere 0:0", "f 5/home.md 644 0:0 m", "f 5/home.txt 644 0:0 h"}},
		// Everything excluded: the destination directory is still made.
		{"all", []string{"*"}, []string{"dir*"}, "/6/", []string{"d 6 755 0:0"}},
	}
	for _, c := range cases {
		got := mustCopy(t, &Request{Sources: c.sources, Dest: c.dest, Src: ctx, Exclude: c.exclude, FromContext: true})
		equal(t, c.name, got, c.want)
	}
	_, _, err := copyTo(t, &Request{Sources: []string{"."}, Dest: "/x", Src: ctx, Exclude: []string{"["}})
	wantErr(t, "bad pattern", err, "invalid --exclude pattern")
}

func TestParents(t *testing.T) {
	src := fsview.MapFS{
		"/x":              owned(dir(0o700), 3, 3),
		"/x/a.txt":        file("xa", 0o644),
		"/y/a.txt":        file("ya", 0o644),
		"/x/y/b.txt":      file("b", 0o644),
		"/x/y/c.md":       file("c", 0o644),
		"/src/a.txt":      file("sa", 0o644),
		"/src/p/q/c.txt":  file("sc", 0o644),
		"/src/p/d.md":     file("sd", 0o644),
		"/src/p/q/r/e.go": file("se", 0o644),
	}
	cases := []struct {
		name    string
		sources []string
		dest    string
		want    []string
	}{
		{"plain paths", []string{"./x/a.txt", "./y/a.txt"}, "/parents/", []string{
			"d parents 755 0:0", "d parents/x 700 3:3", "f parents/x/a.txt 644 0:0 xa", "d parents/y 755 0:0", "f parents/y/a.txt 644 0:0 ya"}},
		{"pivot", []string{"x/./y/*.txt"}, "/p/", []string{"d p 755 0:0", "d p/y 755 0:0", "f p/y/b.txt 644 0:0 b"}},
		{"double star", []string{"src/**/*.txt"}, "/r/", []string{
			"d r 755 0:0", "d r/src 755 0:0", "f r/src/a.txt 644 0:0 sa", "d r/src/p 755 0:0", "d r/src/p/q 755 0:0", "f r/src/p/q/c.txt 644 0:0 sc"}},
		{"directory match", []string{"/src/p/q"}, "/d", []string{
			"d d 755 0:0", "d d/src 755 0:0", "d d/src/p 755 0:0", "d d/src/p/q 755 0:0", "f d/src/p/q/c.txt 644 0:0 sc", "d d/src/p/q/r 755 0:0", "f d/src/p/q/r/e.go 644 0:0 se"}},
	}
	for _, c := range cases {
		got := mustCopy(t, &Request{Sources: c.sources, Dest: c.dest, Src: src, Parents: true})
		equal(t, c.name, got, c.want)
	}
	_, _, err := copyTo(t, &Request{Sources: []string{"x/missing.txt"}, Dest: "/p/", Src: src, Parents: true})
	wantErr(t, "missing", err, `"x/missing.txt": no such file or directory`)
}

func TestHeredocs(t *testing.T) {
	docs := []Inline{{Name: "robots.txt", Data: []byte("(robots)\n")}, {Name: "humans.txt", Data: []byte("(humans)\n")}}
	got := mustCopy(t, &Request{Heredocs: docs, Dest: "/test/"})
	equal(t, "into a dir", got, []string{"d test 755 0:0", "f test/robots.txt 644 0:0 (robots)\n", "f test/humans.txt 644 0:0 (humans)\n"})

	got = mustCopy(t, &Request{Heredocs: docs[:1], Dest: "/index.html", Chmod: "755", Chown: &Owner{1, 2}})
	equal(t, "to a file", got, []string{"f index.html 755 1:2 (robots)\n"})

	got = mustCopy(t, &Request{Heredocs: docs[:1], Dest: "/existing", Dst: stage()})
	equal(t, "into an existing dir", got, []string{"d existing 700 5:5", "f existing/robots.txt 644 0:0 (robots)\n"})
}

func TestSpecialFiles(t *testing.T) {
	dev := &fsview.MapFile{Entry: fsview.Entry{Mode: fs.ModeDevice | fs.ModeCharDevice | 0o666, Devmajor: 1, Devminor: 3}}
	fifo := &fsview.MapFile{Entry: fsview.Entry{Mode: fs.ModeNamedPipe | 0o644}}
	sock := &fsview.MapFile{Entry: fsview.Entry{Mode: fs.ModeSocket | 0o755}}
	ctx := fsview.MapFS{"/d/null": dev, "/d/pipe": fifo, "/d/sock": sock, "/sock": sock}
	_, ents, err := copyTo(t, &Request{Sources: []string{"d"}, Dest: "/dev", Src: ctx})
	if err != nil {
		t.Fatal(err)
	}
	// Sockets cannot be stored in a tar: Docker skips them.
	equal(t, "devices", describe(ents), []string{"d dev 755 0:0", "3 dev/null 666 0:0", "6 dev/pipe 644 0:0"})
	if ents[1].hdr.Typeflag != tar.TypeChar || ents[1].hdr.Devmajor != 1 || ents[1].hdr.Devminor != 3 {
		t.Errorf("device header %+v", ents[1].hdr)
	}
	_, _, err = copyTo(t, &Request{Sources: []string{"sock"}, Dest: "/s", Src: ctx})
	wantErr(t, "socket named", err, `"/sock" is a socket`)
}

func TestWhiteoutNamesRefused(t *testing.T) {
	ctx := fsview.MapFS{"/d/.wh.passwd": file("x", 0o644)}
	_, _, err := copyTo(t, &Request{Sources: []string{"d"}, Dest: "/etc/", Src: ctx})
	wantErr(t, "whiteout", err, `"/etc/.wh.passwd"`, "mark deletions")
}

func TestResult(t *testing.T) {
	ctx := fsview.MapFS{"/a": file("aaa", 0o644), "/d/b": file("bb", 0o644), "/d/l": symlink("b")}
	req := func(src fsview.FS) *Request {
		return &Request{Sources: []string{"a", "d"}, Heredocs: []Inline{{Name: "h", Data: []byte("h")}}, Dest: "/bin/", Src: src, Dst: stage(), FromContext: true}
	}
	res, _, err := copyTo(t, req(ctx))
	if err != nil {
		t.Fatal(err)
	}
	// usr, usr/bin, a, b, l, h
	if res.Files != 3 || res.Bytes != 6 || res.Entries != 6 {
		t.Errorf("Files=%d Bytes=%d Entries=%d, want 3, 6, 6", res.Files, res.Bytes, res.Entries)
	}
	equal(t, "paths", res.Paths, []string{"/usr/bin/a", "/usr/bin", "/usr/bin/h"})

	// The digest ignores times but not content.
	later := fsview.MapFS{}
	for k, v := range ctx {
		c := *v
		c.ModTime = mtime.AddDate(1, 0, 0)
		later[k] = &c
	}
	res2, _, err := copyTo(t, req(later))
	if err != nil {
		t.Fatal(err)
	}
	if res2.Digest != res.Digest {
		t.Errorf("digest changed with mtimes: %s vs %s", res.Digest, res2.Digest)
	}
	later["/d/b"] = file("bc", 0o644)
	res3, _, err := copyTo(t, req(later))
	if err != nil {
		t.Fatal(err)
	}
	if res3.Digest == res.Digest {
		t.Errorf("digest %s did not change with content", res.Digest)
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := Copy(ctx, &Request{Sources: []string{"d"}, Dest: "/x", Src: context1()}, tar.NewWriter(io.Discard))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
}

// BenchmarkCopyTree copies a context directory of 1,000 small files.
func BenchmarkCopyTree(b *testing.B) {
	root := b.TempDir()
	for i := range 1000 {
		d := filepath.Join(root, "pkg", fmt.Sprintf("d%02d", i%20))
		if err := os.MkdirAll(d, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%04d", i)), []byte("content of a small source file\n"), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	src, err := fsview.NewDirFS(root)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for b.Loop() {
		if _, err := Copy(context.Background(), &Request{Sources: []string{"."}, Dest: "/app/", Src: src, FromContext: true}, tar.NewWriter(io.Discard)); err != nil {
			b.Fatal(err)
		}
	}
}
