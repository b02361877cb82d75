package integration

import (
	"crypto/sha256"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/containerd/stargz-snapshotter/estargz"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/types"
	digest "github.com/opencontainers/go-digest"

	"github.com/kiln-build/kiln/internal/testutil"
)

// TestEstargzLayers builds with --compression estargz, pushes, pulls the
// image back and checks each new layer as the stargz snapshotter would:
// the TOC against the digest annotated on the layer's descriptor, every
// file chunk against the TOC, the uncompressed size annotation and the
// diffID. Two reproducible builds give the same digest.
func TestEstargzLayers(t *testing.T) {
	e := newEnv(t)
	base := pushBase(e) // a Docker image: plain gzip layers, no annotations
	files := map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY big /data/big\nCOPY small.txt /etc/small.txt\nWORKDIR /work/dir\n",
		"small.txt":  "small\n",
	}
	// Bigger than the estargz chunk (4 MiB) and the size from which kiln
	// compresses in parallel: several chunks and parts.
	rng := rand.New(rand.NewPCG(1, 2))
	var big strings.Builder
	for big.Len() < 9<<20 {
		if rng.IntN(2) == 0 {
			fmt.Fprintf(&big, "line %d of a text file\n", rng.Int())
		} else {
			b := make([]byte, 4096)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			big.Write(b)
		}
	}
	files["big"] = big.String()

	var digests []string
	for i := 0; i < 2; i++ {
		dir := writeFiles(t, files)
		digestFile := filepath.Join(t.TempDir(), "digest")
		e.build(dir, "-d", e.ref("test/estargz:1"), "--compression", "estargz", "--reproducible", "--digest-file", digestFile)
		d, err := os.ReadFile(digestFile)
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, string(d))
	}
	if digests[0] != digests[1] {
		t.Errorf("two reproducible eStargz builds gave %s and %s", digests[0], digests[1])
	}

	img := e.pull(e.ref("test/estargz:1"))
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	if m.MediaType != types.DockerManifestSchema2 || len(m.Layers) != 4 {
		t.Fatalf("manifest %s with %d layers, want a Docker manifest with the base's layer and 3", m.MediaType, len(m.Layers))
	}
	if len(m.Layers[0].Annotations) != 0 {
		t.Errorf("base layer annotated %v", m.Layers[0].Annotations)
	}
	diffIDs := config(t, img).RootFS.DiffIDs
	for i, desc := range m.Layers[1:] {
		if desc.MediaType != types.DockerLayer {
			t.Errorf("layer %d: media type %s, want %s", i+1, desc.MediaType, types.DockerLayer)
		}
		checkEstargzLayer(t, img, desc, diffIDs[i+1])
	}
	fs := flatten(t, img)
	wantFile(t, fs, "/data/big", files["big"], 0o644, 0, 0)
	wantFile(t, fs, "/etc/small.txt", "small\n", 0o644, 0, 0)
	if d, ok := fs["/work/dir"]; !ok || !d.hdr.FileInfo().IsDir() {
		t.Error("WORKDIR /work/dir: no directory")
	}

	// With OCI media types: OCI gzip layers, the same annotations.
	dest := e.ref("test/estargz:oci")
	e.build(writeFiles(t, files), "-d", dest, "--compression", "estargz", "--image-format", "oci")
	img = e.pull(dest)
	if m, err = img.Manifest(); err != nil {
		t.Fatal(err)
	}
	diffIDs = config(t, img).RootFS.DiffIDs
	for i, desc := range m.Layers[1:] {
		if desc.MediaType != types.OCILayer {
			t.Errorf("OCI layer %d: media type %s, want %s", i+1, desc.MediaType, types.OCILayer)
		}
		checkEstargzLayer(t, img, desc, diffIDs[i+1])
	}
}

// TestEstargzWithRun: RUN snapshots are eStargz layers too, and a RUN sees
// the files of an eStargz COPY layer (kiln applies it to the root).
func TestEstargzWithRun(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY data /data\nRUN wc -c < /data > /size && mkdir -p /opt/x && echo made > /opt/x/file\n",
		"data":       strings.Repeat("0123456789abcdef", 1<<16),
	})
	dest := e.ref("test/estargz-run:1")
	e.build(dir, "-d", dest, "--compression", "estargz")
	img := e.pull(dest)
	m, err := img.Manifest()
	if err != nil {
		t.Fatal(err)
	}
	diffIDs := config(t, img).RootFS.DiffIDs
	if len(m.Layers) != 3 {
		t.Fatalf("%d layers, want busybox's, COPY's and RUN's", len(m.Layers))
	}
	for i, desc := range m.Layers[1:] {
		checkEstargzLayer(t, img, desc, diffIDs[i+1])
	}
	fs := flatten(t, img)
	wantFile(t, fs, "/size", strconv.Itoa(16<<16)+"\n", 0o644, 0, 0)
	wantFile(t, fs, "/opt/x/file", "made\n", 0o644, 0, 0)
}

// checkEstargzLayer verifies one pulled layer against its descriptor.
func checkEstargzLayer(t *testing.T, img v1.Image, desc v1.Descriptor, diffID v1.Hash) {
	t.Helper()
	tocDigest, err := digest.Parse(desc.Annotations[estargz.TOCJSONDigestAnnotation])
	if err != nil {
		t.Errorf("layer %s: TOC digest annotation: %v (annotations %v)", desc.Digest, err, desc.Annotations)
		return
	}
	l, err := img.LayerByDigest(desc.Digest)
	if err != nil {
		t.Fatal(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	blob, err := os.Create(filepath.Join(t.TempDir(), "blob"))
	if err != nil {
		t.Fatal(err)
	}
	defer blob.Close()
	n, err := io.Copy(blob, rc)
	rc.Close()
	if err != nil {
		t.Fatalf("layer %s: %v", desc.Digest, err)
	}
	r, err := estargz.Open(io.NewSectionReader(blob, 0, n))
	if err != nil {
		t.Fatalf("layer %s: not an eStargz blob: %v", desc.Digest, err)
	}
	verifier, err := r.VerifyTOC(tocDigest)
	if err != nil {
		t.Fatalf("layer %s: %v", desc.Digest, err)
	}
	root, ok := r.Lookup("")
	if !ok {
		t.Fatalf("layer %s: no root in the TOC", desc.Digest)
	}
	var walk func(dir string, ent *estargz.TOCEntry)
	walk = func(dir string, ent *estargz.TOCEntry) {
		ent.ForeachChild(func(base string, ent *estargz.TOCEntry) bool {
			name := path.Join(dir, base)
			if ent.Type == "dir" {
				walk(name, ent)
			}
			if ent.Type != "reg" || ent.Size == 0 {
				return true
			}
			sr, err := r.OpenFile(name)
			if err != nil {
				t.Fatalf("layer %s: %s: %v", desc.Digest, name, err)
			}
			for off := int64(0); off < ent.Size; {
				ce, ok := r.ChunkEntryForOffset(name, off)
				if !ok {
					t.Fatalf("layer %s: %s: no chunk at %d", desc.Digest, name, off)
				}
				v, err := verifier.Verifier(ce)
				if err != nil {
					t.Fatalf("layer %s: %s: %v", desc.Digest, name, err)
				}
				chunk := make([]byte, ce.ChunkSize)
				if _, err := sr.ReadAt(chunk, ce.ChunkOffset); err != nil && err != io.EOF {
					t.Fatalf("layer %s: %s: %v", desc.Digest, name, err)
				}
				v.Write(chunk)
				if !v.Verified() {
					t.Errorf("layer %s: %s: chunk at %d does not match the TOC", desc.Digest, name, off)
				}
				off += ce.ChunkSize
			}
			return true
		})
	}
	walk("", root)

	// The diffID and the size annotation are those of the decompressed blob.
	u, err := l.Uncompressed()
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	h := sha256.New()
	size, err := io.Copy(h, u)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprintf("sha256:%x", h.Sum(nil)); got != diffID.String() {
		t.Errorf("layer %s: content hashes to %s, the config's diffID is %s", desc.Digest, got, diffID)
	}
	if a := desc.Annotations[estargz.StoreUncompressedSizeAnnotation]; a != strconv.FormatInt(size, 10) {
		t.Errorf("layer %s: uncompressed size annotation %q, content is %d bytes", desc.Digest, a, size)
	}
}
