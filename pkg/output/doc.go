// Package output delivers a built image: pushed to registry destinations,
// written as a `docker load`-able tarball (--tar-path) or into an OCI layout
// (--oci-layout-path), and described in digest files. Every file is written
// to a temporary name and renamed into place, so a reader never sees half of
// one.
package output
