package copier

import (
	"io/fs"
	"testing"

	"github.com/kiln-build/kiln/pkg/fsview"
)

func TestChmod(t *testing.T) {
	cases := []struct {
		spec string
		in   fs.FileMode
		want int64 // numeric mode, special bits included
	}{
		{"755", 0o600, 0o755},
		{"0644", fs.ModeSetuid | 0o755, 0o644},
		{"4755", 0o600, 0o4755},
		{"1777", fs.ModeDir | 0o755, 0o1777},
		{"u+x", 0o644, 0o744},
		{"+x", 0o644, 0o755},
		{"a-w", 0o664, 0o444},
		{"go-rwx", 0o777, 0o700},
		{"u=rwX,go=rX", 0o600, 0o644},
		{"u=rwX,go=rX", 0o700, 0o755},
		{"u=rwX,go=rX", fs.ModeDir | 0o700, 0o755},
		{"a=rX", 0o666, 0o444},
		{"g=u", 0o640, 0o660},
		{"o=g", 0o750, 0o755},
		{"u+s", 0o755, 0o4755},
		{"g+s", fs.ModeDir | 0o755, 0o2755},
		{"o+s", 0o755, 0o755},
		{"+t", fs.ModeDir | 0o777, 0o1777},
		{"u-s", fs.ModeSetuid | 0o755, 0o755},
		{"u=rw", fs.ModeSetuid | 0o755, 0o655},
		{"u+rw-x", 0o100, 0o600},
		{"ug+w,o=", 0o644, 0o660},
	}
	for _, c := range cases {
		m, err := parseChmod(c.spec)
		if err != nil {
			t.Errorf("parseChmod(%q): %v", c.spec, err)
			continue
		}
		got := m.apply(c.in)
		if fsview.TarMode(got) != c.want || got.Type() != c.in.Type() {
			t.Errorf("%q on %v = %v (%o), want %o of the same type", c.spec, c.in, got, fsview.TarMode(got), c.want)
		}
	}
}
