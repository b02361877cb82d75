// Package rootfs gives kiln its one way to write to a directory on disk that
// nothing may escape: a container root filesystem, an extracted build
// context, anything built from untrusted names.
//
// A Root is such a directory. Its methods take container paths and resolve
// them with chroot semantics (symlinks in parent components are followed,
// absolute targets start again at the root, ".." stops there) through kernel
// handles: openat2 RESOLVE_IN_ROOT, or cyphar/filepath-securejoin's
// pathrs-lite where openat2 is missing. Nothing joins strings and then hands
// the result to os.Remove or os.Mkdir, so neither a hostile name nor a
// symlink swapped in meanwhile can reach the host:
//
//	root, err := rootfs.OpenRoot(dir)
//	...
//	defer root.Close()
//	created, err := root.MkdirAll("/run/secrets", 0o755, &rootfs.Owner{})
//	err = root.WriteFile("/run/secrets/token", data, 0o400)
//	err = root.RemoveAll("/tmp/cache")
//
// Extract unpacks a tar stream into a Root. By default it is an image layer,
// stacked the way a container runtime stacks layers: OCI whiteouts delete
// what lower layers left, an entry replaces whatever has its name (a
// directory with its whole content) except that a directory entry over an
// existing directory only updates its metadata, and hard links may point at
// entries of the same layer or at files already in the root. Options make it
// extract other archives the same safe way (a build context:
// WithoutOwners, WithoutSpecialFiles, WithLiteralWhiteouts) and skip paths
// (WithIgnore, WithFilter). Apply opens a directory and extracts one layer.
//
// Every tar name is resolved inside the root, final components are never
// followed, and names that climb out of the root with ".." are rejected
// (ErrPathEscapes), so no entry can create, change or link to anything
// outside the root. Extraction keeps a small cache of directory handles
// (openat from a parent's handle), which is what makes it fast.
package rootfs
