// Package rootfs materialises container root filesystems on disk.
//
// Apply extracts one image layer (an uncompressed tar stream) onto a
// directory the way a container runtime stacks layers: OCI whiteouts delete
// what lower layers left, an entry replaces whatever has its name (a
// directory with its whole content) except that a directory entry over an
// existing directory only updates its metadata, and hard links may point at
// entries of the same layer or at files already in the root.
//
// The tar is untrusted. Every name is resolved with chroot semantics inside
// the root (symlinks in parent components are followed, absolute targets
// start again at the root, ".." stops there), final components are never
// followed, and names that climb out of the root with ".." are rejected, so
// no entry can create, change or link to anything outside the root.
// Resolution goes through kernel handles (openat from a cached directory
// handle, cyphar/filepath-securejoin for symlinked parents), not through
// string paths that a later entry could redirect.
package rootfs
