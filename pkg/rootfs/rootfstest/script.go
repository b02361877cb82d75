// Package rootfstest builds tar streams for tests and fuzz targets of code
// that extracts them (rootfs, buildcontext, copier) from a short script, so
// that a fuzzer mutating the script mutates entries rather than breaking
// tar checksums.
package rootfstest

import (
	"archive/tar"
	"bytes"
	"strconv"
	"strings"
	"time"
)

// Tar builds a tar stream from script, one entry a line:
//
//	f NAME [CONTENT]   regular file, mode 0644 ("\n" in CONTENT is a newline)
//	x NAME [CONTENT]   regular file, mode 04755
//	d NAME             directory, mode 0755
//	l NAME TARGET      symlink
//	h NAME TARGET      hard link
//	p NAME             named pipe
//	c NAME             character device 1:3
//	b NAME             block device 8:0
//	o NAME UID:GID     regular file owned by UID:GID
//
// Every occurrence of a key of vars is replaced by its value first (a test
// passes "$OUT" as the path of a directory outside the root, say). Lines
// that do not parse are skipped: any script gives a valid stream.
func Tar(script string, vars map[string]string) []byte {
	for k, v := range vars {
		script = strings.ReplaceAll(script, k, v)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, line := range strings.Split(script, "\n") {
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 || f[1] == "" {
			continue
		}
		arg := ""
		if len(f) == 3 {
			arg = f[2]
		}
		h := &tar.Header{Name: f[1], Mode: 0o644, ModTime: mtime, Format: tar.FormatPAX}
		var body []byte
		switch f[0] {
		case "f", "x":
			h.Typeflag = tar.TypeReg
			body = []byte(strings.ReplaceAll(arg, `\n`, "\n"))
			if f[0] == "x" {
				h.Mode = 0o4755
			}
		case "o":
			h.Typeflag = tar.TypeReg
			uid, gid, _ := strings.Cut(arg, ":")
			h.Uid, _ = strconv.Atoi(uid)
			h.Gid, _ = strconv.Atoi(gid)
			if h.Uid < 0 || h.Gid < 0 || h.Uid > 1<<20 || h.Gid > 1<<20 {
				continue
			}
		case "d":
			h.Typeflag, h.Mode = tar.TypeDir, 0o755
		case "l":
			h.Typeflag, h.Linkname, h.Mode = tar.TypeSymlink, arg, 0o777
		case "h":
			h.Typeflag, h.Linkname = tar.TypeLink, arg
		case "p":
			h.Typeflag = tar.TypeFifo
		case "c":
			h.Typeflag, h.Devmajor, h.Devminor = tar.TypeChar, 1, 3
		case "b":
			h.Typeflag, h.Devmajor = tar.TypeBlock, 8
		default:
			continue
		}
		h.Size = int64(len(body))
		if tw.WriteHeader(h) != nil {
			continue // a name tar cannot store (a NUL byte)
		}
		tw.Write(body) //nolint:errcheck // a bytes.Buffer does not fail
	}
	tw.Close() //nolint:errcheck // a bytes.Buffer does not fail
	return buf.Bytes()
}
