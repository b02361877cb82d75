package main

import (
	"bufio"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// contentKind is what a generated file holds; together they stress a
// builder's hashing and compression as real contexts do: random bytes do not
// compress, text compresses a few times, zeros almost entirely.
type contentKind int

const (
	kindRandom contentKind = iota
	kindText
	kindZeros
	numKinds
)

var kindNames = [numKinds]string{"random", "text", "zeros"}
var kindExts = [numKinds]string{"bin", "txt", "dat"}

// kindShare is each kind's target share of the bytes.
var kindShare = [numKinds]float64{0.4, 0.4, 0.2}

// contextEpoch is every generated file's mtime: the same seed gives the same
// tree, timestamps included, so a COPY of it gives the same layer each time.
var contextEpoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

type contextStats struct {
	Files int
	Dirs  int
	Bytes [numKinds]int64
}

func (s contextStats) total() int64 {
	var t int64
	for _, b := range s.Bytes {
		t += b
	}
	return t
}

// generateContext writes about total bytes of files under dir, deterministically
// from seed: mostly small files, some of a few hundred kilobytes, a few of
// several megabytes, spread over nested directories, the kinds of content
// mixed by byte share.
func generateContext(dir string, total int64, seed uint64) (contextStats, error) {
	var st contextStats
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return st, err
	}
	shape := rand.New(rand.NewPCG(seed, 0x6b696c6e2d62656e)) // sizes, kinds, words
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	random := rand.NewChaCha8(key) // random content
	dirs := map[string]bool{}
	for i := 0; st.total() < total; i++ {
		size := fileSize(shape)
		size = min(size, total-st.total())
		kind := nextKind(st, size)
		sub := fmt.Sprintf("d%02d", i%16)
		if i%3 == 0 {
			sub = filepath.Join(sub, fmt.Sprintf("s%d", (i/3)%5))
		}
		if !dirs[sub] {
			if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
				return st, err
			}
			dirs[sub] = true
		}
		name := filepath.Join(dir, sub, fmt.Sprintf("f%05d.%s", i, kindExts[kind]))
		if err := writeContent(name, kind, size, shape, random); err != nil {
			return st, err
		}
		st.Files++
		st.Bytes[kind] += size
	}
	// Directory mtimes last: creating their files changed them.
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && p != dir {
			st.Dirs++
		}
		return os.Chtimes(p, contextEpoch, contextEpoch)
	})
	return st, err
}

// fileSize draws a size: 90% small (512 B-32 KB), 9% medium (32 KB-1 MB),
// 1% large (1-16 MB); about 1,400 files make 200 MB.
func fileSize(r *rand.Rand) int64 {
	switch p := r.IntN(100); {
	case p < 90:
		return 512 + r.Int64N(32<<10-512)
	case p < 99:
		return 32<<10 + r.Int64N(1<<20-32<<10)
	default:
		return 1<<20 + r.Int64N(16<<20-1<<20)
	}
}

// nextKind picks the kind furthest below its share once size more bytes are
// written, so the mix holds whatever the sizes drawn.
func nextKind(st contextStats, size int64) contentKind {
	after := float64(st.total() + size)
	best, bestGap := kindRandom, -1e300
	for k := range numKinds {
		if gap := kindShare[k]*after - float64(st.Bytes[k]); gap > bestGap {
			best, bestGap = k, gap
		}
	}
	return best
}

func writeContent(name string, kind contentKind, size int64, shape *rand.Rand, random *rand.ChaCha8) error {
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 256<<10)
	switch kind {
	case kindRandom:
		_, err = io.CopyN(w, random, size)
	case kindText:
		err = writeText(w, size, shape)
	case kindZeros:
		_, err = io.CopyN(w, zeroReader{}, size)
	}
	if err == nil {
		err = w.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// words make source-like text lines.
var words = strings.Fields(`func return if else for range struct interface map string int64 error nil
	true false package import const var type defer go select case switch default break continue
	buffer reader writer layer image build context digest config manifest registry push pull stage
	snapshot rootfs copy run from workdir env arg label user volume expose entrypoint cmd shell
	the of and to in is that it with as for on was by at be this from or have not are but had`)

func writeText(w *bufio.Writer, size int64, r *rand.Rand) error {
	var line []byte
	for written := int64(0); written < size; {
		line = line[:0]
		for range r.IntN(4) {
			line = append(line, '\t')
		}
		for j, n := 0, 3+r.IntN(10); j < n; j++ {
			if j > 0 {
				line = append(line, ' ')
			}
			line = append(line, words[r.IntN(len(words))]...)
		}
		line = append(line, '\n')
		if rest := size - written; int64(len(line)) > rest {
			line = line[:rest]
		}
		if _, err := w.Write(line); err != nil {
			return err
		}
		written += int64(len(line))
	}
	return nil
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func genContextCmd(args []string) error {
	fs := flag.NewFlagSet("gencontext", flag.ExitOnError)
	dir := fs.String("dir", "", "directory to fill (created)")
	size := fs.Int64("bytes", 200<<20, "total size of the files")
	seed := fs.Uint64("seed", 1, "seed: the same seed gives the same files")
	fs.Parse(args)
	if *dir == "" {
		return fmt.Errorf("-dir is required")
	}
	start := time.Now()
	st, err := generateContext(*dir, *size, *seed)
	if err != nil {
		return err
	}
	fmt.Printf("%s: %d files in %d directories, %d MB (random %d MB, text %d MB, zeros %d MB) in %.1fs\n",
		*dir, st.Files, st.Dirs, st.total()>>20, st.Bytes[kindRandom]>>20, st.Bytes[kindText]>>20,
		st.Bytes[kindZeros]>>20, time.Since(start).Seconds())
	return nil
}
