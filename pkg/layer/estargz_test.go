package layer

import (
	"archive/tar"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/containerd/stargz-snapshotter/estargz"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"
)

// verifyEstargz checks a blob the way the stargz snapshotter does: the TOC
// against the digest of the annotation, then every file chunk against the
// TOC. It returns the number of regular files with content.
func verifyEstargz(t *testing.T, path, tocDigest string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	info, _ := f.Stat()
	r, err := estargz.Open(io.NewSectionReader(f, 0, info.Size()))
	if err != nil {
		t.Fatalf("opening eStargz blob: %v", err)
	}
	d, err := digest.Parse(tocDigest)
	if err != nil {
		t.Fatalf("TOC digest annotation %q: %v", tocDigest, err)
	}
	v, err := r.VerifyTOC(d)
	if err != nil {
		t.Fatalf("verifying the TOC: %v", err)
	}
	root, ok := r.Lookup("")
	if !ok {
		t.Fatal("no root in the TOC")
	}
	files := 0
	var walk func(dir string, e *estargz.TOCEntry)
	walk = func(dir string, e *estargz.TOCEntry) {
		e.ForeachChild(func(base string, ent *estargz.TOCEntry) bool {
			name := filepath.Join(dir, base)
			switch ent.Type {
			case "dir":
				walk(name, ent)
			case "reg":
				if ent.Size == 0 {
					return true
				}
				files++
				sr, err := r.OpenFile(name)
				if err != nil {
					t.Fatalf("%s: %v", name, err)
				}
				for off := int64(0); off < ent.Size; {
					ce, ok := r.ChunkEntryForOffset(name, off)
					if !ok {
						t.Fatalf("%s: no chunk at %d", name, off)
					}
					cv, err := v.Verifier(ce)
					if err != nil {
						t.Fatalf("%s: %v", name, err)
					}
					// One read per chunk: each read decompresses from
					// the start of the chunk.
					chunk := make([]byte, ce.ChunkSize)
					if _, err := sr.ReadAt(chunk, ce.ChunkOffset); err != nil && err != io.EOF {
						t.Fatalf("%s: reading chunk at %d: %v", name, ce.ChunkOffset, err)
					}
					cv.Write(chunk)
					if !cv.Verified() {
						t.Fatalf("%s: chunk at %d does not match the TOC", name, off)
					}
					off += ce.ChunkSize
				}
			}
			return true
		})
	}
	walk("", root)
	return files
}

func TestEstargzLayer(t *testing.T) {
	payload := mixedPayload(parallelThreshold+parallelThreshold/2, 9) // cut into parts
	epoch := time.Unix(0, 0)
	for _, oci := range []bool{false, true} {
		l := writeFiles(t, t.TempDir(), payload, WithCompression(Estargz, 0), WithOCIMediaTypes(oci), WithEpoch(epoch))
		want := types.DockerLayer
		if oci {
			want = types.OCILayer
		}
		if mt, _ := l.MediaType(); mt != want {
			t.Errorf("oci=%v: media type %s, want %s", oci, mt, want)
		}
		ann := l.Annotations()
		if files := verifyEstargz(t, l.Path(), ann[AnnotationTOCDigest]); files < 6 {
			t.Errorf("%d files verified", files)
		}
		// The digests are those of the blob and of the tar it decompresses
		// to, and the size annotation is that tar's size.
		d, _ := l.Digest()
		if got := sum(t, l.Compressed); got != d.String() {
			t.Errorf("digest %s, blob hashes to %s", d, got)
		}
		id, _ := l.DiffID()
		if got := sum(t, l.Uncompressed); got != id.String() {
			t.Errorf("diffID %s, content hashes to %s", id, got)
		}
		rc, _ := l.Uncompressed()
		n, _ := io.Copy(io.Discard, rc)
		rc.Close()
		if ann[AnnotationUncompressedSize] != strconv.FormatInt(n, 10) {
			t.Errorf("uncompressed size annotation %q, content is %d bytes", ann[AnnotationUncompressedSize], n)
		}
		ann[AnnotationTOCDigest] = "changed"
		if l.Annotations()[AnnotationTOCDigest] == "changed" {
			t.Error("Annotations returns the layer's own map")
		}
	}
}

func TestEstargzKeepsEntriesAndEpoch(t *testing.T) {
	epoch := time.Unix(1234567890, 0)
	l := writeFiles(t, t.TempDir(), mixedPayload(200<<10, 10), WithCompression(Estargz, 0), WithEpoch(epoch))
	rc, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	tr := tar.NewReader(rc)
	var names []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, h.Name)
		switch h.Name {
		case estargz.TOCTarName:
			toc, _ := io.ReadAll(tr)
			if d := fmt.Sprintf("sha256:%x", sha256.Sum256(toc)); d != l.Annotations()[AnnotationTOCDigest] {
				t.Errorf("the TOC hashes to %s, the annotation says %s", d, l.Annotations()[AnnotationTOCDigest])
			}
			continue
		case estargz.NoPrefetchLandmark:
			continue
		}
		if !h.ModTime.Equal(epoch) {
			t.Errorf("%s: mtime %s, want the epoch %s", h.Name, h.ModTime, epoch)
		}
		if h.Uname != "" || !h.AccessTime.IsZero() {
			t.Errorf("%s: uname %q, atime %s", h.Name, h.Uname, h.AccessTime)
		}
	}
	// The landmark first (no prefetch), the producer's order, the TOC last.
	want := []string{estargz.NoPrefetchLandmark, "usr", "usr/lib", "usr/lib/f0", "usr/lib/f1", "usr/lib/f2"}
	if len(names) < len(want)+1 || fmt.Sprint(names[:len(want)]) != fmt.Sprint(want) || names[len(names)-1] != estargz.TOCTarName {
		t.Errorf("entries %q", names)
	}
	if names[len(names)-4] != "usr/lib/link" || names[len(names)-2] != "usr/.wh.gone" {
		t.Errorf("last entries %q", names[len(names)-4:])
	}
}

func TestEstargzIsReproducible(t *testing.T) {
	payload := mixedPayload(2*parallelThreshold, 11)
	epoch := time.Unix(0, 0)
	var first *File
	for _, procs := range []int{1, 4} {
		func() {
			defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(procs))
			l := writeFiles(t, t.TempDir(), payload, WithCompression(Estargz, 0), WithEpoch(epoch))
			if first == nil {
				first = l
				return
			}
			d1, _ := first.Digest()
			d2, _ := l.Digest()
			id1, _ := first.DiffID()
			id2, _ := l.DiffID()
			if d1 != d2 || id1 != id2 || fmt.Sprint(first.Annotations()) != fmt.Sprint(l.Annotations()) {
				t.Errorf("GOMAXPROCS 1 and %d: digests %s and %s, diffIDs %s and %s, annotations %v and %v",
					procs, d1, d2, id1, id2, first.Annotations(), l.Annotations())
			}
		}()
	}
	// Without an epoch the files' own mtimes are in the TOC and the blob.
	other := writeFiles(t, t.TempDir(), payload, WithCompression(Estargz, 0))
	if d, _ := other.Digest(); d == must(first.Digest()) {
		t.Error("the epoch did not change the layer")
	}
}

func TestEstargzLeavesOnlyTheBlob(t *testing.T) {
	dir := t.TempDir()
	l := writeFiles(t, dir, mixedPayload(parallelThreshold, 12), WithCompression(Estargz, 0))
	left, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(left) != 1 || left[0] != l.Path() {
		t.Errorf("layer dir holds %q, want only the blob", left)
	}
	w, err := NewWriter(dir, WithCompression(Estargz, 0))
	if err != nil {
		t.Fatal(err)
	}
	w.WriteHeader(&tar.Header{Name: "x", Typeflag: tar.TypeReg, Mode: 0o644})
	w.Abort()
	if left, _ := filepath.Glob(filepath.Join(dir, "*")); len(left) != 1 {
		t.Errorf("after Abort the layer dir holds %q", left)
	}
}

func TestTOCVerificationFailsOnAnotherDigest(t *testing.T) {
	l := writeFiles(t, t.TempDir(), mixedPayload(100<<10, 13), WithCompression(Estargz, 0))
	f, _ := os.Open(l.Path())
	defer f.Close()
	info, _ := f.Stat()
	r, err := estargz.Open(io.NewSectionReader(f, 0, info.Size()))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.VerifyTOC(digest.FromString("not the TOC")); err == nil {
		t.Error("VerifyTOC accepted a wrong digest")
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}
