// Package compression recognises the compression of a stream from its
// first bytes — gzip, bzip2, xz or zstd — and undoes it. Archives are
// recognised by content, never by file name: stdin has no name, and a
// ".tar" may well be gzipped.
package compression
