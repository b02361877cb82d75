package copier

import (
	"archive/tar"
	"bytes"
	"os"
	"strings"
	"testing"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// tarOf builds a tar archive from headers; a regular file's content is its
// Linkname field of the spec, to keep the tables short.
func tarOf(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		h := *h
		var body []byte
		if h.Typeflag == tar.TypeReg {
			body, h.Linkname = []byte(h.Linkname), ""
			h.Size = int64(len(body))
		}
		if h.ModTime.IsZero() && h.Typeflag != tar.TypeXGlobalHeader {
			h.ModTime = mtime
		}
		if err := tw.WriteHeader(&h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(body); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t *testing.T, kind string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	var err error
	switch kind {
	case "tar":
		return data
	case "gzip":
		w := gzip.NewWriter(&buf)
		_, err = w.Write(data)
		if err == nil {
			err = w.Close()
		}
	case "xz":
		var w *xz.Writer
		if w, err = xz.NewWriter(&buf); err == nil {
			if _, err = w.Write(data); err == nil {
				err = w.Close()
			}
		}
	case "zstd":
		var w *zstd.Encoder
		if w, err = zstd.NewWriter(&buf); err == nil {
			if _, err = w.Write(data); err == nil {
				err = w.Close()
			}
		}
	default:
		t.Fatalf("unknown compression %q", kind)
	}
	if err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// sampleArchive is like the add-local-tar-xz case: a global header (as git
// archive writes), a root entry, ownership that is not root, an executable,
// a symlink, a hard link and an absolute name.
func sampleArchive(t *testing.T) []byte {
	return tarOf(t,
		&tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "0123abc"}},
		&tar.Header{Name: "./", Typeflag: tar.TypeDir, Mode: 0o700, Uid: 9, Gid: 9},
		&tar.Header{Name: "bud/", Typeflag: tar.TypeDir, Mode: 0o755},
		&tar.Header{Name: "bud/test", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "test content"},
		&tar.Header{Name: "bud/script.sh", Typeflag: tar.TypeReg, Mode: 0o755, Uid: 1000, Gid: 1000, Linkname: "#!/bin/sh"},
		&tar.Header{Name: "bud/link", Typeflag: tar.TypeSymlink, Linkname: "test", Mode: 0o777},
		&tar.Header{Name: "bud/hard", Typeflag: tar.TypeLink, Linkname: "./bud/test", Mode: 0o644},
		&tar.Header{Name: "/abs/file", Typeflag: tar.TypeReg, Mode: 0o600, Uid: 5, Gid: 6, Linkname: "abs"},
	)
}

func TestAddExtractsArchives(t *testing.T) {
	// Ownership and modes come from the archive: --chown and --chmod do not
	// apply to extracted entries (Docker, buildah); the destination directory
	// the copy creates does get the --chown owner.
	want := []string{
		"d x 755 1:1",
		"d x/bud 755 0:0",
		"f x/bud/test 644 0:0 test content",
		"f x/bud/script.sh 755 1000:1000 #!/bin/sh",
		"l x/bud/link -> test 0:0",
		"h x/bud/hard => x/bud/test",
		"d x/abs 755 1:1",
		"f x/abs/file 600 5:6 abs",
	}
	for _, kind := range []string{"tar", "gzip", "xz", "zstd"} {
		// The name says nothing: detection is by content.
		ctx := fsview.MapFS{"/archive.bin": file(string(compress(t, kind, sampleArchive(t))), 0o644)}
		got := mustCopy(t, &Request{Sources: []string{"archive.bin"}, Dest: "/x", Src: ctx, Add: true, Chown: &Owner{1, 1}, Chmod: "777", FromContext: true})
		equal(t, kind, got, want)
	}

	fixture, err := os.ReadFile("testdata/hello.tar.bz2")
	if err != nil {
		t.Fatal(err)
	}
	ctx := fsview.MapFS{"/hello.tar.bz2": file(string(fixture), 0o644)}
	got := mustCopy(t, &Request{Sources: []string{"hello.tar.bz2"}, Dest: "/", Src: ctx, Add: true, FromContext: true})
	equal(t, "bzip2", got, []string{"f hello.txt 644 1000:1000 hello from bzip2\n"})
}

func TestAddArchiveEdgeCases(t *testing.T) {
	tarball := string(tarOf(t, &tar.Header{Name: "testdir/testfile.txt", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "in"}))
	notTar := string(compress(t, "gzip", []byte("just text, compressed")))
	ctx := fsview.MapFS{
		"/tarball.tar":        file(tarball, 0o644),
		"/tarball_latest.tar": symlink("tarball.tar"),
		"/notatar.gz":         file(notTar, 0o644),
		"/empty.tar.gz":       file("", 0o644),
		"/dir/inner.tar":      file(tarball, 0o644),
	}
	cases := []struct {
		name    string
		sources []string
		dest    string
		add     bool
		want    []string
	}{
		// A symlink to an archive is followed and extracted (add-tar-via-symlink).
		{"via symlink", []string{"tarball_latest.tar"}, "/tmp/", true, []string{
			"d tmp 755 0:0", "d tmp/testdir 755 0:0", "f tmp/testdir/testfile.txt 644 0:0 in"}},
		{"compressed, not a tar", []string{"notatar.gz"}, "/x/", true, []string{"d x 755 0:0", "f x/notatar.gz 644 0:0 " + notTar}},
		{"empty", []string{"empty.tar.gz"}, "/x/", true, []string{"d x 755 0:0", "f x/empty.tar.gz 644 0:0 "}},
		{"COPY does not extract", []string{"tarball.tar"}, "/x/", false, []string{"d x 755 0:0", "f x/tarball.tar 644 0:0 " + tarball}},
		// Only a source named directly is extracted, not archives in a tree.
		{"inside a directory", []string{"dir"}, "/x/", true, []string{"d x 755 0:0", "f x/inner.tar 644 0:0 " + tarball}},
	}
	for _, c := range cases {
		got := mustCopy(t, &Request{Sources: c.sources, Dest: c.dest, Src: ctx, Add: c.add, FromContext: true})
		equal(t, c.name, got, c.want)
	}
	_, _, err := copyTo(t, &Request{Sources: []string{"tarball.tar"}, Dest: "/etc/passwd", Src: ctx, Dst: stage(), Add: true})
	wantErr(t, "onto a file", err, `destination "/etc/passwd"`, "not a directory")
}

func TestAddHostileArchives(t *testing.T) {
	cases := []struct {
		name string
		hdrs []*tar.Header
		want []string
	}{
		{"dotdot", []*tar.Header{{Name: "../evil", Typeflag: tar.TypeReg, Linkname: "x"}},
			[]string{`entry "../evil" escapes the destination`}},
		{"dotdot inside", []*tar.Header{{Name: "a/../../evil", Typeflag: tar.TypeReg, Linkname: "x"}},
			[]string{`entry "a/../../evil" escapes the destination`}},
		{"hard link out", []*tar.Header{{Name: "ok", Typeflag: tar.TypeLink, Linkname: "../../etc/shadow"}},
			[]string{`hard link "ok"`, `"../../etc/shadow" escapes the destination`}},
		{"hard link to nothing", []*tar.Header{{Name: "l", Typeflag: tar.TypeLink, Linkname: "missing"}},
			[]string{`hard link "l" points to "missing", which is not a file earlier in the archive`}},
		{"whiteout", []*tar.Header{{Name: "etc/.wh.passwd", Typeflag: tar.TypeReg, Linkname: ""}},
			[]string{`entry "etc/.wh.passwd"`, "mark deletions"}},
		{"unsupported", []*tar.Header{{Name: "vol", Typeflag: 'V'}},
			[]string{`entry "vol": unsupported type 'V'`}},
	}
	for _, c := range cases {
		ctx := fsview.MapFS{"/evil.tar": file(string(tarOf(t, c.hdrs...)), 0o644)}
		_, _, err := copyTo(t, &Request{Sources: []string{"evil.tar"}, Dest: "/x/", Src: ctx, Add: true})
		wantErr(t, c.name, err, append([]string{`archive "/evil.tar"`}, c.want...)...)
	}
}

// TestAddArchiveSymlinksStayInRoot: symlinks the archive creates are
// followed with the destination as their root, as when BuildKit extracts
// chrooted there: whatever they point to, writes stay in the destination.
func TestAddArchiveSymlinksStayInRoot(t *testing.T) {
	data := tarOf(t,
		&tar.Header{Name: "up", Typeflag: tar.TypeSymlink, Linkname: "../../../../../../"},
		&tar.Header{Name: "up/etc/motd", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "hi"},
	)
	ctx := fsview.MapFS{"/a.tar": file(string(data), 0o644)}
	got := mustCopy(t, &Request{Sources: []string{"a.tar"}, Dest: "/opt/", Src: ctx, Add: true, Dst: fsview.MapFS{"/etc": dir(0o755)}})
	equal(t, "entries", got, []string{"d opt 755 0:0", "l opt/up -> ../../../../../../ 0:0", "d opt/etc 755 0:0", "f opt/etc/motd 644 0:0 hi"})
}

// TestAddArchiveConfinedToDestination: an entry "s -> /etc" followed by
// "s/x" must not write /etc/x into the image. Like Docker, kiln resolves
// the link inside the destination, where it leads nowhere unless the
// destination has an etc directory.
func TestAddArchiveConfinedToDestination(t *testing.T) {
	image := fsview.MapFS{"/etc": dir(0o755), "/etc/passwd": file("root", 0o644), "/opt/app": dir(0o755),
		"/opt/app/out": symlink("/etc"), "/opt/app/up": symlink("../../..")}
	withEtc := fsview.MapFS{"/etc": dir(0o755), "/opt/app/etc": dir(0o700)}
	for _, tc := range []struct {
		name string
		dst  fsview.MapFS
		hdrs []*tar.Header
		want []string // entries, or error fragments when err
		err  bool
	}{
		{"link then file", image, []*tar.Header{
			{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "s/x", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "pwned"},
		}, []string{`entry "s/x"`, `"s" leads, through a symlink, to "/opt/app/etc", which does not exist`}, true},
		{"link then file, the destination has etc", withEtc, []*tar.Header{
			{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "s/x", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "inside"},
		}, []string{"d opt 755 0:0", "d opt/app 755 0:0", "l opt/app/s -> /etc 0:0", "d opt/app/etc 700 0:0", "f opt/app/etc/x 644 0:0 inside"}, false},
		{"link then deeper file", image, []*tar.Header{
			{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "s/cron.d/job", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "pwned"},
		}, []string{`entry "s/cron.d/job"`, "dangling symlink"}, true},
		{"link then directory", image, []*tar.Header{
			{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "s/", Typeflag: tar.TypeDir, Mode: 0o777},
		}, []string{`entry "s/"`, "leads to no directory inside the destination"}, true},
		{"a link the image had", image, []*tar.Header{
			{Name: "out/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "pwned"},
		}, []string{`entry "out/passwd"`, "dangling symlink"}, true},
		{"a climbing link the image had", image, []*tar.Header{
			{Name: "up/etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "inside"},
		}, []string{"d opt 755 0:0", "d opt/app 755 0:0", "d opt/app/etc 755 0:0", "f opt/app/etc/passwd 644 0:0 inside"}, false},
		{"relative link to a missing sibling", image, []*tar.Header{
			{Name: "d/", Typeflag: tar.TypeDir, Mode: 0o755},
			{Name: "d/s", Typeflag: tar.TypeSymlink, Linkname: "../s"},
			{Name: "d/s/x", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "x"},
		}, []string{`entry "d/s/x"`, "dangling symlink"}, true},
		{"hard link below a link", image, []*tar.Header{
			{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Linkname: "f"},
			{Name: "s", Typeflag: tar.TypeSymlink, Linkname: "/etc"},
			{Name: "s/passwd", Typeflag: tar.TypeLink, Linkname: "f"},
		}, []string{`entry "s/passwd"`, "dangling symlink"}, true},
	} {
		ctx := fsview.MapFS{"/a.tar": file(string(tarOf(t, tc.hdrs...)), 0o644)}
		req := &Request{Sources: []string{"a.tar"}, Dest: "/opt/app/", Src: ctx, Add: true, Dst: tc.dst}
		_, ents, err := copyTo(t, req)
		if tc.err {
			wantErr(t, tc.name, err, append([]string{`archive "/a.tar"`}, tc.want...)...)
			for _, e := range ents {
				if !strings.HasPrefix(e.hdr.Name, "opt") {
					t.Errorf("%s: wrote %q outside the destination", tc.name, e.hdr.Name)
				}
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		equal(t, tc.name, describe(ents), tc.want)
	}
}

func TestArchiveModesKeepSpecialBits(t *testing.T) {
	data := tarOf(t, &tar.Header{Name: "su", Typeflag: tar.TypeReg, Mode: 0o4755, Linkname: "x"},
		&tar.Header{Name: "tmp/", Typeflag: tar.TypeDir, Mode: 0o1777})
	ctx := fsview.MapFS{"/a.tar": file(string(data), 0o644)}
	_, ents, err := copyTo(t, &Request{Sources: []string{"a.tar"}, Dest: "/", Src: ctx, Add: true})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "entries", describe(ents), []string{"f su 4755 0:0 x", "d tmp 1777 0:0"})
}
