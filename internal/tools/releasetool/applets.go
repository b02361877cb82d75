package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
)

func appletsCommand(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: applets FILE")
	}
	names, err := busyboxApplets(args[0])
	if err != nil {
		return err
	}
	for _, n := range names {
		fmt.Println(n)
	}
	return nil
}

// busyboxApplets returns the applets a busybox binary provides, without
// running it (it may be built for another CPU): busybox keeps their names
// in one table of NUL-terminated strings, sorted so that it can binary
// search them. That table is the longest run of ascending applet-like names
// in the file.
func busyboxApplets(path string) ([]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var best, cur [][]byte
	// Each string of the table follows a NUL byte (the first one follows
	// the previous symbol's terminator or padding).
	for _, tok := range bytes.Split(data, []byte{0}) {
		if isAppletName(tok) && (len(cur) == 0 || bytes.Compare(cur[len(cur)-1], tok) < 0) {
			cur = append(cur, tok)
		} else {
			cur = cur[:0:0]
			if isAppletName(tok) {
				cur = append(cur, tok)
			}
		}
		if len(cur) > len(best) {
			best = cur
		}
	}
	names := make([]string, len(best))
	hasSh := false
	for i, b := range best {
		names[i] = string(b)
		hasSh = hasSh || names[i] == "sh"
	}
	// A busybox without a shell is no use in the debug image, and a short
	// run means the table was not found.
	if len(names) < 10 || !hasSh {
		return nil, fmt.Errorf("%q: no busybox applet table with \"sh\" found: is it busybox?", path)
	}
	return names, nil
}

// isAppletName reports whether b looks like an applet name: "[", "[[",
// "sh", "run-parts", "ssl_client", "mkfs.vfat"...
func isAppletName(b []byte) bool {
	if len(b) == 0 || len(b) > 32 {
		return false
	}
	for _, c := range b {
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_', c == '.', c == '[':
		default:
			return false
		}
	}
	return true
}
