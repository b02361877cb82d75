// Package layer writes image layers.
//
// A producer (COPY, a RUN snapshot) writes tar entries to a Writer, which
// normalises each header, compresses, and computes the layer's digest and
// diffID in the same streaming pass while spooling the compressed blob to a
// file. Commit returns a v1.Layer backed by that file, so a layer is never
// held in memory and never read twice to be hashed.
//
// Big layers are compressed in parallel, with bytes that do not depend on
// the core count (compress.go). eStargz layers are the exception to the
// single pass: they are built from the whole tar once it is written
// (estargz.go). Decompress reads layers back ahead of their consumer
// (decompress.go).
package layer
