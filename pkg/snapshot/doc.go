// Package snapshot turns the filesystem changes a RUN instruction made into
// the entries of the next layer.
//
// A Snapshotter records the metadata of every file under a root (Baseline),
// and after the command ran walks the tree again and writes what changed
// (Diff): added and modified files with their content, metadata-only
// changes, deletions as OCI whiteouts. Change detection compares metadata
// only (inode, size, mode, owner, mtime, ctime, link target), never file
// content, so a snapshot costs one parallel lstat walk plus reading the
// files that did change.
//
// The layers have the shape Docker and BuildKit produce: entries sorted by
// path with every parent directory present, a deleted file or directory as
// one ".wh.NAME" entry, and an entry whose type changed (a directory that
// became a file, a file that became a directory) written as itself without a
// whiteout, since extractors replace whatever is at an entry's path.
//
// FromOverlayUpper converts an overlayfs upper directory, which already
// holds exactly the changes, into layer entries the same way.
package snapshot
