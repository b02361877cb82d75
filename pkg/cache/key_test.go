package cache

import (
	"strings"
	"testing"
)

func TestKeyFraming(t *testing.T) {
	sums := map[string]string{}
	add := func(label string, k *Key) {
		t.Helper()
		s := k.Sum()
		if prev, ok := sums[s]; ok {
			t.Errorf("%s and %s have the same key", label, prev)
		}
		sums[s] = label
		if len(s) != 64 {
			t.Errorf("%s: key %q", label, s)
		}
	}
	add("a+bc", NewKey("RUN").String("x", "a").String("y", "bc"))
	add("ab+c", NewKey("RUN").String("x", "ab").String("y", "c"))
	add("name/value swap", NewKey("RUN").String("xa", "").String("y", "bc"))
	add("list [a b]", NewKey("RUN").Strings("l", []string{"a", "b"}))
	add("list [ab]", NewKey("RUN").Strings("l", []string{"ab"}))
	add("list [a b] + empty", NewKey("RUN").Strings("l", []string{"a", "b", ""}))
	add("COPY kind", NewKey("COPY").String("x", "a").String("y", "bc"))
	add("map", NewKey("RUN").Map("m", map[string]string{"a": "b"}))
	add("map as list", NewKey("RUN").Strings("m", []string{"a", "b"}).String("", ""))
	k, err := NewKey("RUN").Reader("r", strings.NewReader("data"))
	if err != nil {
		t.Fatal(err)
	}
	add("reader", k)
	if NewKey("RUN").Map("m", map[string]string{"a": "1", "b": "2"}).Sum() != NewKey("RUN").Map("m", map[string]string{"b": "2", "a": "1"}).Sum() {
		t.Error("a map's key depends on its iteration order")
	}
	if NewKey("RUN").String("x", "a").Sum() != NewKey("RUN").String("x", "a").Sum() {
		t.Error("keys are not deterministic")
	}
}
