// Package layer writes image layers.
//
// A producer (COPY, a RUN snapshot) writes tar entries to a Writer, which
// normalises each header, compresses, and computes the layer's digest and
// diffID in the same streaming pass while spooling the compressed blob to a
// file. Commit returns a v1.Layer backed by that file, so a layer is never
// held in memory and never read twice to be hashed.
package layer
