package sandbox

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseSubIDs(t *testing.T) {
	const file = `alice:100000:65536
bob:165536:65536

1000:300000:10
alice:400000:0
alice:x:10
alice:500000:1000:extra
alice:231072:65536
`
	got := parseSubIDs(strings.NewReader(file), "alice", 1000)
	want := idRanges{{Host: 100000, Size: 65536}, {Host: 300000, Size: 10}, {Host: 231072, Size: 65536}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseSubIDs(alice, 1000) = %v, want %v", got, want)
	}
	if got := parseSubIDs(strings.NewReader(file), "", 2000); got != nil {
		t.Errorf("a user without a name or entries got %v", got)
	}
}

func TestStackSubIDs(t *testing.T) {
	got := stack(idRanges{{Host: 100000, Size: 65536}, {Host: 300000, Size: 10}})
	want := idRanges{{NS: 1, Host: 100000, Size: 65536}, {NS: 65537, Host: 300000, Size: 10}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stack = %v, want %v", got, want)
	}
	if args := strings.Join(want.args(), " "); args != "1 100000 65536 65537 300000 10" {
		t.Errorf("args %q", args)
	}
}

func TestPlanIDMaps(t *testing.T) {
	etc := t.TempDir()
	for name, content := range map[string]string{"subuid": "alice:100000:65536\n", "subgid": "alice:200000:1000\n"} {
		if err := os.WriteFile(filepath.Join(etc, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	tools := t.TempDir()
	for _, tool := range []string{"newuidmap", "newgidmap"} {
		if err := os.WriteFile(filepath.Join(tools, tool), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	single := idMapPlan{uids: idRanges{{0, 1000, 1}}, gids: idRanges{{0, 1001, 1}}}

	t.Setenv("PATH", tools)
	want := idMapPlan{
		uids:    idRanges{{0, 1000, 1}, {1, 100000, 65536}},
		gids:    idRanges{{0, 1001, 1}, {1, 200000, 1000}},
		helpers: true,
	}
	if got := planIDMaps(1000, 1001, "alice", etc); !reflect.DeepEqual(got, want) {
		t.Errorf("with helpers and subordinate ids: %+v, want %+v", got, want)
	}
	if got := planIDMaps(1002, 1002, "carol", etc); !reflect.DeepEqual(got, idMapPlan{uids: idRanges{{0, 1002, 1}}, gids: idRanges{{0, 1002, 1}}}) {
		t.Errorf("without subordinate ids: %+v", got)
	}
	t.Setenv("PATH", t.TempDir())
	if got := planIDMaps(1000, 1001, "alice", etc); !reflect.DeepEqual(got, single) {
		t.Errorf("without newuidmap: %+v, want %+v", got, single)
	}
}

func TestReadIDMaps(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"uid_map":   "         0       1000          1\n         1     100000      65536\n",
		"gid_map":   "0 1000 1\n",
		"setgroups": "deny\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	m, err := readIDMaps(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !m.setgroupsDenied || !m.uids.maps(0) || !m.uids.maps(65536) || m.uids.maps(65537) || m.gids.maps(1) {
		t.Errorf("maps %+v", m)
	}
	err = m.unmapped("gid", 5)
	if err == nil || !strings.Contains(err.Error(), "gid 5 is not mapped in kiln's user namespace, which maps 0→1000") || !strings.Contains(err.Error(), "uidmap") {
		t.Errorf("unmapped: %v", err)
	}
	if got := m.uids.String(); got != "0→1000, 1-65536→100000-165535" {
		t.Errorf("String() = %q", got)
	}

	if err := os.WriteFile(filepath.Join(dir, "uid_map"), []byte("0 x 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readIDMaps(dir); err == nil || !strings.Contains(err.Error(), `"0 x 1"`) {
		t.Errorf("malformed uid_map: %v", err)
	}
}

func TestIDMapsOfThisProcess(t *testing.T) {
	m, err := readIDMaps("/proc/self")
	if err != nil {
		t.Fatal(err)
	}
	if !m.uids.maps(uint32(os.Getuid())) || !m.gids.maps(uint32(os.Getgid())) {
		t.Errorf("this process's own ids are not mapped: %+v", m)
	}
}

func TestStatParent(t *testing.T) {
	for stat, want := range map[string]int{
		"1234 (sleep) S 1 1234 1234 0 -1": 1,
		"42 (a) b (c) S 7 42 42 0 -1":     7,
		"43 (with space)) R 9 43":         9,
	} {
		if got, ok := statParent([]byte(stat)); !ok || got != want {
			t.Errorf("statParent(%q) = %d, %v; want %d", stat, got, ok, want)
		}
	}
	if _, ok := statParent([]byte("garbage")); ok {
		t.Error("statParent(garbage) succeeded")
	}
}
