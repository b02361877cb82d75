package rootfstest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"strings"
	"testing"
)

func TestTar(t *testing.T) {
	data := Tar("f a/b hi\\nthere\nx tool #!\nd dir\nl link $OUT/x\nh hard a/b\np fifo\nc null\nb sda\no owned 7:8\nnonsense\nf\nz z z", map[string]string{"$OUT": "/host"})
	tr := tar.NewReader(bytes.NewReader(data))
	var got []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(tr)
		got = append(got, fmt.Sprintf("%c %s %o %d:%d %s %q", h.Typeflag, h.Name, h.Mode, h.Uid, h.Gid, h.Linkname, body))
	}
	want := []string{
		`0 a/b 644 0:0  "hi\nthere"`,
		`0 tool 4755 0:0  "#!"`,
		`5 dir 755 0:0  ""`,
		`2 link 777 0:0 /host/x ""`,
		`1 hard 644 0:0 a/b ""`,
		`6 fifo 644 0:0  ""`,
		`3 null 644 0:0  ""`,
		`4 sda 644 0:0  ""`,
		`0 owned 644 7:8  ""`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("entries:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}
