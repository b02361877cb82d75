package copier

import (
	"strings"
	"testing"
)

func TestHasMeta(t *testing.T) {
	for s, want := range map[string]bool{
		"file.txt": false, "*.txt": true, "a?c": true, "arr[[]0]": true,
		`a\*b`: false, `dir/\[x`: false, "dir/*/x": true,
	} {
		if got := hasMeta(s); got != want {
			t.Errorf("hasMeta(%q) = %v", s, got)
		}
	}
}

func TestPattern(t *testing.T) {
	cases := []struct {
		pattern    string
		doubleStar bool
		path       string
		match      bool
		below      bool // a path below it may match
	}{
		{"*.go", false, "a.go", true, false},
		{"*.go", false, "d/a.go", false, false},
		{"*/*.go", false, "d", false, true},
		{"*/*.go", false, "d/a.go", true, false},
		{"**/*.go", false, "d/a.go", true, false}, // "**" is "*" without --parents
		{"**/*.go", false, "d/e/a.go", false, false},
		{"src/**/*.txt", true, "src/a.txt", true, false},
		{"src/**/*.txt", true, "src/x/y/c.txt", true, false},
		{"src/**/*.txt", true, "src/x/y", false, true},
		{"src/**/*.txt", true, "other", false, false},
		{"src/**", true, "src/x/y", true, false},
		{"**", true, "a/b", true, false},
	}
	for _, c := range cases {
		p, err := newPattern(c.pattern, c.doubleStar)
		if err != nil {
			t.Fatal(err)
		}
		name := strings.Split(c.path, "/")
		if got := p.match(name); got != c.match {
			t.Errorf("%q (doubleStar=%v) match %q = %v", c.pattern, c.doubleStar, c.path, got)
		}
		if got := p.mayMatchBelow(name); got != c.below && !c.match {
			t.Errorf("%q (doubleStar=%v) mayMatchBelow %q = %v", c.pattern, c.doubleStar, c.path, got)
		}
	}
	if _, err := newPattern("a/[", false); err == nil {
		t.Error("bad pattern accepted")
	}
}
