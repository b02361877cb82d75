package userdb

import (
	"errors"
	"io/fs"
	"reflect"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/pkg/fsview"
)

func file(data string) *fsview.MapFile {
	return &fsview.MapFile{Entry: fsview.Entry{Mode: 0o644}, Data: []byte(data)}
}

// debianLike has users with primary groups that differ from their uid and a
// user with supplementary groups, reached through a symlinked /etc.
func debianLike() fsview.MapFS {
	return fsview.MapFS{
		"/etc": &fsview.MapFile{Entry: fsview.Entry{Mode: fs.ModeSymlink | 0o777, Linkname: "/real/etc"}},
		"/real/etc/passwd": file(strings.Join([]string{
			"# comment",
			"root:x:0:0:root:/root:/bin/bash",
			"+nis",
			"daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
			"broken:x:notanumber:1::/:/bin/sh",
			"",
			"app:x:1001:100:App:/home/app:/bin/sh",
			"nohome:x:1002:1002",
		}, "\n")),
		"/real/etc/group": file(strings.Join([]string{
			"root:x:0:",
			"daemon:x:1:",
			"users:x:100:",
			"docker:x:999:app,other",
			"audio:x:29:other,app",
			"staff:x:50:",
		}, "\n")),
	}
}

func TestLookupUser(t *testing.T) {
	cases := []struct {
		spec string
		want User
	}{
		{"root", User{Name: "root", UID: 0, GID: 0, Home: "/root"}},
		{"", User{Name: "root", UID: 0, GID: 0, Home: "/root"}},
		{":staff", User{Name: "root", UID: 0, GID: 50, Home: "/root"}},
		{"app:", User{Name: "app", UID: 1001, GID: 100, Home: "/home/app", Groups: []int{999, 29}}},
		{"app", User{Name: "app", UID: 1001, GID: 100, Home: "/home/app", Groups: []int{999, 29}}},
		{"1001", User{Name: "app", UID: 1001, GID: 100, Home: "/home/app", Groups: []int{999, 29}}},
		// An explicit group replaces the primary gid and drops supplementary groups.
		{"app:staff", User{Name: "app", UID: 1001, GID: 50, Home: "/home/app"}},
		{"app:4242", User{Name: "app", UID: 1001, GID: 4242, Home: "/home/app"}},
		// A uid without an entry runs as gid 0 with home "/".
		{"4000", User{UID: 4000, GID: 0, Home: "/"}},
		{"4000:4001", User{UID: 4000, GID: 4001, Home: "/"}},
		{"nohome", User{Name: "nohome", UID: 1002, GID: 1002, Home: "/"}},
	}
	fsys := debianLike()
	for _, c := range cases {
		got, err := LookupUser(fsys, c.spec)
		if err != nil {
			t.Errorf("LookupUser(%q): %v", c.spec, err)
			continue
		}
		if !reflect.DeepEqual(*got, c.want) {
			t.Errorf("LookupUser(%q) = %+v, want %+v", c.spec, *got, c.want)
		}
	}
}

func TestLookupOwner(t *testing.T) {
	cases := []struct {
		spec     string
		uid, gid int
	}{
		// A name takes its primary group from /etc/passwd.
		{"app", 1001, 100},
		{"app:", 1001, 100},
		{"daemon", 1, 1},
		// A numeric uid is also the gid, whatever /etc/passwd says.
		{"1001", 1001, 1001},
		{"1001:", 1001, 1001},
		{"55:staff", 55, 50},
		{"app:docker", 1001, 999},
		{"10:11", 10, 11},
		{"app:7", 1001, 7},
		{":staff", 0, 50},
	}
	fsys := debianLike()
	for _, c := range cases {
		uid, gid, err := LookupOwner(fsys, c.spec)
		if err != nil || uid != c.uid || gid != c.gid {
			t.Errorf("LookupOwner(%q) = %d:%d, %v; want %d:%d", c.spec, uid, gid, err, c.uid, c.gid)
		}
	}
}

func TestNumericIDsNeedNoFiles(t *testing.T) {
	scratch := fsview.MapFS{}
	uid, gid, err := LookupOwner(scratch, "2367:3267")
	if err != nil || uid != 2367 || gid != 3267 {
		t.Fatalf("LookupOwner on scratch = %d:%d, %v", uid, gid, err)
	}
	u, err := LookupUser(scratch, "1000")
	if err != nil || u.UID != 1000 || u.GID != 0 || u.Home != "/" || u.Groups != nil {
		t.Fatalf("LookupUser on scratch = %+v, %v", u, err)
	}
}

func TestUnknownNames(t *testing.T) {
	cases := []struct {
		spec, want string
		sentinel   error
		owner      bool
	}{
		{"myuser", `unable to find user "myuser": no matching entries in passwd file`, ErrNoSuchUser, true},
		{"myuser", `unable to find user "myuser": no matching entries in passwd file`, ErrNoSuchUser, false},
		{"app:nogroup", `unable to find group "nogroup": no matching entries in group file`, ErrNoSuchGroup, true},
		{"1000:nogroup", `unable to find group "nogroup": no matching entries in group file`, ErrNoSuchGroup, false},
	}
	for _, fsys := range []fsview.MapFS{debianLike(), {}} {
		scratch := fsys["/etc"] == nil
		for _, c := range cases {
			if scratch && strings.HasPrefix(c.spec, "app:") {
				continue // "app" itself is unknown on scratch
			}
			want := c.want
			if scratch && c.sentinel == ErrNoSuchUser {
				want += " (/etc/passwd is missing or empty: use a numeric uid such as 1000, or create the user first)"
			} else if scratch {
				want += " (/etc/group is missing or empty: use a numeric gid)"
			}
			var err error
			if c.owner {
				_, _, err = LookupOwner(fsys, c.spec)
			} else {
				_, err = LookupUser(fsys, c.spec)
			}
			if err == nil || err.Error() != want || !errors.Is(err, c.sentinel) {
				t.Errorf("spec %q (owner=%v): got %v, want %q", c.spec, c.owner, err, want)
			}
		}
	}
}

// The name root is uid 0 and gid 0 where /etc/passwd and /etc/group do not
// have it (a scratch or distroless stage), as Docker resolves "root:root";
// other names still fail.
func TestRootWithoutDatabase(t *testing.T) {
	withoutRoot := fsview.MapFS{
		"/etc/passwd": file("app:x:1000:1000::/home/app:/bin/sh\n"),
		"/etc/group":  file("app:x:1000:\n"),
	}
	for name, fsys := range map[string]fsview.MapFS{"scratch": {}, "no root entry": withoutRoot} {
		for _, spec := range []string{"root", "root:root", "0", "0:0", "root:0", "0:root"} {
			u, err := LookupUser(fsys, spec)
			if err != nil || !reflect.DeepEqual(*u, User{UID: 0, GID: 0, Home: "/"}) {
				t.Errorf("%s: LookupUser(%q) = %+v, %v; want uid 0, gid 0, home /", name, spec, u, err)
			}
			uid, gid, err := LookupOwner(fsys, spec)
			if err != nil || uid != 0 || gid != 0 {
				t.Errorf("%s: LookupOwner(%q) = %d:%d, %v; want 0:0", name, spec, uid, gid, err)
			}
		}
		for _, spec := range []string{"admin", "Root", "root:wheel", "toor:root"} {
			if _, err := LookupUser(fsys, spec); err == nil {
				t.Errorf("%s: LookupUser(%q) succeeded", name, spec)
			}
		}
	}
	// A root entry that says otherwise is what the image means.
	odd := fsview.MapFS{"/etc/passwd": file("root:x:0:10:root:/root:/bin/sh\n"), "/etc/group": file("root:x:5:\n")}
	if u, err := LookupUser(odd, "root:root"); err != nil || u.GID != 5 || u.Home != "/root" {
		t.Errorf("LookupUser(root:root) with entries = %+v, %v; want gid 5 from /etc/group", u, err)
	}
	if uid, gid, err := LookupOwner(odd, "root"); err != nil || uid != 0 || gid != 10 {
		t.Errorf("LookupOwner(root) with entries = %d:%d, %v; want 0:10", uid, gid, err)
	}
}

func TestInvalidSpecs(t *testing.T) {
	fsys := debianLike()
	for _, spec := range []string{"", ":", "99999999999"} {
		if _, _, err := LookupOwner(fsys, spec); err == nil {
			t.Errorf("LookupOwner(%q): no error", spec)
		}
	}
	for _, spec := range []string{"99999999999", "1:99999999999"} {
		if _, err := LookupUser(fsys, spec); err == nil {
			t.Errorf("LookupUser(%q): no error", spec)
		}
	}
}

func TestUnreadableDatabase(t *testing.T) {
	// /etc/passwd is a directory: that is not "no such user", it is an error.
	fsys := fsview.MapFS{"/etc/passwd/x": file("")}
	_, _, err := LookupOwner(fsys, "app")
	if err == nil || errors.Is(err, ErrNoSuchUser) || !strings.Contains(err.Error(), "/etc/passwd") {
		t.Fatalf("got %v, want a read error naming /etc/passwd", err)
	}
}
