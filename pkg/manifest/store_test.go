package manifest

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/kiln-build/kiln/pkg/registry"
)

func entry(from, digestHex, platform string) Entry {
	p, _ := v1.ParsePlatform(platform)
	d := v1.Hash{Algorithm: "sha256", Hex: strings.Repeat(digestHex, 64)}
	return Entry{From: from, IndexEntry: registry.IndexEntry{
		Source:     "r.example/team/app@" + d.String(),
		Descriptor: v1.Descriptor{MediaType: "application/vnd.oci.image.manifest.v1+json", Digest: d, Size: 100, Platform: p},
	}}
}

func TestStoreRoundTrip(t *testing.T) {
	s := NewStore(filepath.Join(t.TempDir(), "kiln", "manifests"))
	target := "r.example/team/app:v1"
	if _, err := s.Load(target); !errors.Is(err, ErrNoList) || !strings.Contains(err.Error(), "kiln manifest create") {
		t.Fatalf("Load of a missing list: %v", err)
	}
	l := &List{Target: target}
	l.Add(entry("r.example/team/app:amd64", "a", "linux/amd64"), entry("r.example/team/app:arm64", "b", "linux/arm64"))
	if err := s.Save(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Save(&List{Target: "r.example/team/app:v2"}); err != nil {
		t.Fatal(err)
	}
	got, err := s.Load(target)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Entries) != 2 || got.Entries[1].From != "r.example/team/app:arm64" || got.Entries[1].Descriptor.Platform.Architecture != "arm64" {
		t.Fatalf("loaded %+v", got)
	}
	files, _ := os.ReadDir(s.dir)
	if len(files) != 2 {
		t.Fatalf("store holds %v, want a file per list", files)
	}
	if err := s.Remove(target); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Load(target); !errors.Is(err, ErrNoList) {
		t.Fatalf("after Remove: %v", err)
	}
	if err := s.Remove(target); !errors.Is(err, ErrNoList) || !strings.Contains(err.Error(), `manifest list "`+target+`"`) {
		t.Fatalf("removing twice: %v, want ErrNoList naming the list", err)
	}
	if _, err := s.Load("r.example/team/app:v2"); err != nil {
		t.Fatalf("removing one list touched another: %v", err)
	}
}

func TestAddReplacesSameDigest(t *testing.T) {
	l := &List{Target: "r.example/app:v1"}
	l.Add(entry("r.example/app:amd64", "a", "linux/amd64"))
	l.Add(entry("r.example/app:latest", "a", "linux/amd64"), entry("r.example/app:arm64", "b", "linux/arm64"))
	if len(l.Entries) != 2 || l.Entries[0].From != "r.example/app:latest" {
		t.Fatalf("entries %+v", l.Entries)
	}
	if got := l.IndexEntries(); len(got) != 2 || got[1].Descriptor.Platform.Architecture != "arm64" {
		t.Fatalf("index entries %+v", got)
	}
}

func TestAnnotate(t *testing.T) {
	l := &List{Target: "r.example/app:v1"}
	arm := entry("r.example/app:arm", "b", "linux/arm")
	l.Add(entry("r.example/app:amd64", "a", "linux/amd64"), arm,
		entry("r.example/multi:v1", "c", "linux/s390x"), entry("r.example/multi:v1", "d", "linux/ppc64le"))

	if err := l.Annotate("r.example/app:arm", v1.Platform{Variant: "v6"}); err != nil {
		t.Fatal(err)
	}
	if err := l.Annotate("r.example/app:amd64", v1.Platform{Architecture: "arm64", OSVersion: "1"}); err != nil {
		t.Fatal(err)
	}
	if got := l.Entries[1].Descriptor.Platform.String(); got != "linux/arm/v6" {
		t.Errorf("arm entry is %s, want linux/arm/v6", got)
	}
	if got := l.Entries[0].Descriptor.Platform; got.Architecture != "arm64" || got.OS != "linux" || got.OSVersion != "1" {
		t.Errorf("amd64 entry is %+v", got)
	}
	err := l.Annotate("r.example/multi:v1", v1.Platform{OS: "linux"})
	if err == nil || !strings.Contains(err.Error(), "gave 2 entries") || !strings.Contains(err.Error(), l.Entries[3].Source) {
		t.Fatalf("ambiguous source: %v", err)
	}
	if err := l.Annotate(l.Entries[3].Source, v1.Platform{Variant: "power9"}); err != nil {
		t.Fatal(err)
	}
	err = l.Annotate("r.example/app:missing", v1.Platform{OS: "linux"})
	if err == nil || !strings.Contains(err.Error(), `no entry from "r.example/app:missing"`) {
		t.Fatalf("unknown source: %v", err)
	}
}
