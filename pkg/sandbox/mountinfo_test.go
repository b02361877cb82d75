package sandbox

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

const mountinfoFixture = `22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw,discard
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime - proc proc rw
31 22 0:40 / /workspace\040dir rw,relatime master:3 propagate_from:2 - nfs4 server:/export\011x rw,vers=4.2
32 22 0:41 / /var/run/secrets/kubernetes.io/serviceaccount ro,relatime - tmpfs tmpfs rw,size=65536k
33 22 254:0 /var/lib/kubelet/pods/0a1b/etc-hosts /etc/hosts rw,relatime - ext4 /dev/vda rw
34 22 0:42 / /back\134slash\012newline rw - tmpfs tmpfs rw
35 23 0:21 / /proc rw - proc proc rw
`

func TestParseMountinfo(t *testing.T) {
	mounts, err := ParseMountinfo(strings.NewReader(mountinfoFixture))
	if err != nil {
		t.Fatal(err)
	}
	if len(mounts) != 7 {
		t.Fatalf("%d mounts, want 7", len(mounts))
	}
	want := MountInfo{
		ID: 31, ParentID: 22, Major: 0, Minor: 40,
		Root: "/", MountPoint: "/workspace dir", Options: "rw,relatime",
		Optional: []string{"master:3", "propagate_from:2"},
		FSType:   "nfs4", Source: "server:/export\tx", SuperOptions: "rw,vers=4.2",
	}
	if !reflect.DeepEqual(mounts[2], want) {
		t.Errorf("got %+v\nwant %+v", mounts[2], want)
	}
	if mounts[0].Optional[0] != "shared:1" || mounts[1].Optional != nil {
		t.Errorf("optional fields %q, %q", mounts[0].Optional, mounts[1].Optional)
	}
	if got := mounts[5].MountPoint; got != "/back\\slash\nnewline" {
		t.Errorf("unescaped %q", got)
	}
	if got := mounts[4].Root; got != "/var/lib/kubelet/pods/0a1b/etc-hosts" {
		t.Errorf("root %q", got)
	}
}

func TestParseMountinfoMalformed(t *testing.T) {
	for _, line := range []string{
		"22 1 254:0 / / rw,relatime ext4 /dev/vda rw",
		"x 1 254:0 / / rw - ext4 /dev/vda rw",
		"22 1 254 / / rw - ext4 /dev/vda rw",
		"22 1 254:0 / / rw - ext4",
	} {
		if _, err := ParseMountinfo(strings.NewReader(mountinfoFixture + line + "\n")); err == nil || !strings.Contains(err.Error(), "line 8") {
			t.Errorf("%q: error %v, want one naming line 8", line, err)
		}
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	for in, want := range map[string]string{
		`/plain`:        "/plain",
		`/a\040b`:       "/a b",
		`/trailing\04`:  `/trailing\04`,
		`/not\999octal`: `/not\999octal`,
		`/\134\134`:     `/\\`,
		`/high\400`:     `/high\400`,
	} {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestProtected(t *testing.T) {
	got, err := protected(strings.NewReader(mountinfoFixture))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"/back\\slash\nnewline", "/etc/hosts", "/proc", "/var/run/secrets/kubernetes.io/serviceaccount", "/workspace dir"}
	if !slices.Equal(got, want) {
		t.Errorf("protected() = %q, want %q", got, want)
	}
}

func TestProtectedOfThisProcess(t *testing.T) {
	points, err := Protected()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(points, "/proc") || slices.Contains(points, "/") {
		t.Errorf("Protected() = %q, want /proc and not /", points)
	}
}
