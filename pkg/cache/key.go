package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"io"
	"sort"
	"strings"
)

// Key accumulates the inputs of a step. Each field is written as its name
// and its value, both prefixed with their length, and lists with their
// count: "a"+"bc" and "ab"+"c" give different keys.
type Key struct {
	h     hash.Hash
	buf   [binary.MaxVarintLen64]byte
	trail []string
	quiet bool // keeps no trail (the entries of a TarDigest)
}

// NewKey starts the key of a step of the given kind ("RUN", "COPY", ...).
// The version is part of every key: a change in what kiln puts in a layer
// for the same inputs bumps it.
func NewKey(kind string) *Key {
	k := &Key{h: sha256.New()}
	return k.String("kiln-cache", keyVersion).String("kind", kind)
}

// keyVersion changes when the meaning of a key changes.
const keyVersion = "1"

func (k *Key) frame(b []byte) {
	n := binary.PutUvarint(k.buf[:], uint64(len(b)))
	k.h.Write(k.buf[:n])
	k.h.Write(b)
}

// String adds a named value.
func (k *Key) String(name, value string) *Key {
	k.frame([]byte(name))
	k.frame([]byte(value))
	k.note(name, value)
	return k
}

// note records a field for Inputs: its name and a short digest of its
// value, never the value (build arguments may be secret).
func (k *Key) note(name, value string) {
	if k.quiet {
		return
	}
	d := sha256.Sum256([]byte(value))
	k.trail = append(k.trail, name+"="+hex.EncodeToString(d[:4]))
}

// Inputs lists the fields of the key as name=digest, for the log line
// that says why a step missed: two builds' lines show which input changed.
func (k *Key) Inputs() string {
	return strings.Join(k.trail, " ")
}

// Bool adds a named flag.
func (k *Key) Bool(name string, v bool) *Key {
	if v {
		return k.String(name, "true")
	}
	return k.String(name, "false")
}

// Strings adds a named list, in its order.
func (k *Key) Strings(name string, values []string) *Key {
	k.frame([]byte(name))
	n := binary.PutUvarint(k.buf[:], uint64(len(values)))
	k.h.Write(k.buf[:n])
	for _, v := range values {
		k.frame([]byte(v))
	}
	k.note(name, strings.Join(values, "\x00"))
	return k
}

// Map adds a named map, sorted by key.
func (k *Key) Map(name string, m map[string]string) *Key {
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	sort.Strings(keys)
	flat := make([]string, 0, 2*len(keys))
	for _, key := range keys {
		flat = append(flat, key, m[key])
	}
	return k.Strings(name, flat)
}

// Reader adds a named stream of any length through its own digest.
func (k *Key) Reader(name string, r io.Reader) (*Key, error) {
	d := sha256.New()
	if _, err := io.Copy(d, r); err != nil {
		return k, err
	}
	return k.String(name, hex.EncodeToString(d.Sum(nil))), nil
}

// Sum returns the key: 64 hex digits, usable as a registry tag.
func (k *Key) Sum() string { return hex.EncodeToString(k.h.Sum(nil)) }
