package userdb

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"
	"syscall"

	"github.com/kiln-build/kiln/pkg/fsview"
)

// Where the databases live inside the root filesystem.
const (
	passwdPath = "/etc/passwd"
	groupPath  = "/etc/group"
)

// maxLine bounds one line of a database file; real lines are far shorter.
const maxLine = 1 << 20

type passwdEntry struct {
	name     string
	uid, gid int
	home     string
}

type groupEntry struct {
	name    string
	gid     int
	members []string
}

// readPasswd parses /etc/passwd. A missing file (scratch images) is an empty
// database, not an error.
func readPasswd(fsys fsview.FS) ([]passwdEntry, error) {
	var out []passwdEntry
	err := readLines(fsys, passwdPath, func(fields []string) {
		// name:password:uid:gid:gecos:home:shell
		if len(fields) < 4 {
			return
		}
		uid, err1 := parseID(fields[2])
		gid, err2 := parseID(fields[3])
		if err1 != nil || err2 != nil {
			return
		}
		e := passwdEntry{name: fields[0], uid: uid, gid: gid}
		if len(fields) > 5 {
			e.home = fields[5]
		}
		out = append(out, e)
	})
	return out, err
}

// readGroup parses /etc/group. A missing file is an empty database.
func readGroup(fsys fsview.FS) ([]groupEntry, error) {
	var out []groupEntry
	err := readLines(fsys, groupPath, func(fields []string) {
		// name:password:gid:member,member
		if len(fields) < 3 {
			return
		}
		gid, err := parseID(fields[2])
		if err != nil {
			return
		}
		e := groupEntry{name: fields[0], gid: gid}
		if len(fields) > 3 && fields[3] != "" {
			e.members = strings.Split(fields[3], ",")
		}
		out = append(out, e)
	})
	return out, err
}

// readLines calls fn with the colon-separated fields of each entry of the
// database file name. Comments, blank lines and NIS compat entries ("+", "-")
// are skipped, and so are malformed lines, as the C library does.
func readLines(fsys fsview.FS, name string, fn func(fields []string)) error {
	rc, err := fsys.Open(name)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("reading %s: %w", name, err)
	}
	defer rc.Close()
	sc := bufio.NewScanner(rc)
	sc.Buffer(make([]byte, 0, 4096), maxLine)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == '+' || line[0] == '-' {
			continue
		}
		fn(strings.Split(line, ":"))
	}
	if err := sc.Err(); err != nil && err != io.EOF {
		return fmt.Errorf("reading %s: %w", name, err)
	}
	return nil
}

// parseID parses a numeric uid or gid.
func parseID(s string) (int, error) {
	n, err := strconv.ParseUint(s, 10, 31)
	if err != nil {
		return 0, err
	}
	return int(n), nil
}
