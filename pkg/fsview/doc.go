// Package fsview gives read access to a container root filesystem with the
// path semantics of a chroot, whether the filesystem is a directory on disk
// (DirFS) or the flattened view of an image's layers (LayerFS).
//
// Builders need to look at the tree an instruction lands in: does the COPY
// destination exist and is it a directory, is a parent a symlink, what does
// /etc/passwd say. LayerFS answers those questions from the layers' tar
// headers, so a COPY-only stage never extracts its base image to disk.
package fsview
