// Package copier implements COPY and ADD: it decides what an instruction
// adds to a stage and writes it as tar entries into a layer, without the
// stage's filesystem on disk.
//
// The destination is only read through an fsview.FS (the flattened layers
// of the base image, or a directory), so a COPY-only stage never extracts
// its base. Sources come from another fsview.FS: the build context, with
// .dockerignore applied, or a stage or image for COPY --from.
//
// The semantics are Docker's, checked against BuildKit and buildah:
// globs with path.Match rules, a directory's contents copied rather than
// the directory, trailing-slash and existing-directory destination rules,
// destinations resolved through the stage's symlinks with chroot
// semantics, root ownership for context files unless --chown, hard links
// kept, --chmod in octal or symbolic form, --exclude, --parents, --link,
// local archives extracted by ADD (tar, gzip, bzip2, xz, zstd, recognised
// by content) and URLs downloaded by ADD with an optional --checksum.
package copier
