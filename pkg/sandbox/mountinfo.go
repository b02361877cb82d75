package sandbox

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
)

// MountInfo is one line of /proc/PID/mountinfo (proc(5)).
type MountInfo struct {
	ID, ParentID int
	Major, Minor int
	// Root is the path, in its filesystem, of the directory mounted.
	Root string
	// MountPoint is where the filesystem is mounted.
	MountPoint string
	// Options are the per-mount options ("rw,nosuid,relatime").
	Options string
	// Optional holds the optional fields ("shared:1", "master:2").
	Optional []string
	FSType   string
	Source   string
	// SuperOptions are the per-superblock options ("rw,size=65536k").
	SuperOptions string
}

// ParseMountinfo parses the format of /proc/PID/mountinfo. Paths are
// unescaped: the kernel writes space, tab, newline and backslash as octal
// escapes ("\040").
func ParseMountinfo(r io.Reader) ([]MountInfo, error) {
	var mounts []MountInfo
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	for n := 1; sc.Scan(); n++ {
		if sc.Text() == "" {
			continue
		}
		m, err := parseMountinfoLine(sc.Text())
		if err != nil {
			return nil, fmt.Errorf("mountinfo line %d: %w", n, err)
		}
		mounts = append(mounts, m)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return mounts, nil
}

func parseMountinfoLine(line string) (MountInfo, error) {
	fields := strings.Fields(line)
	sep := slices.Index(fields, "-")
	if sep < 6 || len(fields) < sep+4 {
		return MountInfo{}, fmt.Errorf("malformed line %q", line)
	}
	var m MountInfo
	var err error
	if m.ID, err = strconv.Atoi(fields[0]); err != nil {
		return MountInfo{}, fmt.Errorf("mount ID in %q: %w", line, err)
	}
	if m.ParentID, err = strconv.Atoi(fields[1]); err != nil {
		return MountInfo{}, fmt.Errorf("parent ID in %q: %w", line, err)
	}
	major, minor, ok := strings.Cut(fields[2], ":")
	if !ok {
		return MountInfo{}, fmt.Errorf("device %q in %q is not major:minor", fields[2], line)
	}
	if m.Major, err = strconv.Atoi(major); err != nil {
		return MountInfo{}, fmt.Errorf("device in %q: %w", line, err)
	}
	if m.Minor, err = strconv.Atoi(minor); err != nil {
		return MountInfo{}, fmt.Errorf("device in %q: %w", line, err)
	}
	m.Root = unescapeMountinfo(fields[3])
	m.MountPoint = unescapeMountinfo(fields[4])
	m.Options = fields[5]
	if sep > 6 {
		m.Optional = fields[6:sep]
	}
	m.FSType = unescapeMountinfo(fields[sep+1])
	m.Source = unescapeMountinfo(fields[sep+2])
	m.SuperOptions = fields[sep+3]
	return m, nil
}

// unescapeMountinfo decodes the kernel's "\ooo" octal escapes.
func unescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && '0' <= s[i+1] && s[i+1] <= '3' && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return '0' <= c && c <= '7' }

// Protected returns the mount points of kiln's mount namespace other than
// "/", sorted: in in-place isolation they are not part of the image being
// built (the workspace volume, mounted secrets, the service account token,
// /proc, /etc/hosts, ...) and must be left out of snapshots and never be
// deleted.
func Protected() ([]string, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return protected(f)
}

func protected(r io.Reader) ([]string, error) {
	mounts, err := ParseMountinfo(r)
	if err != nil {
		return nil, err
	}
	var points []string
	for _, m := range mounts {
		if m.MountPoint != "/" {
			points = append(points, m.MountPoint)
		}
	}
	slices.Sort(points)
	return slices.Compact(points), nil
}
