// Package buildcontext provides the build context: the files COPY and ADD
// read, given as a directory, as a tar archive (a file, standard input or a
// URL) or as a git repository, with the files a .dockerignore excludes
// hidden the way Docker hides them.
//
// Open turns a context spec into a directory on disk (extracting archives
// safely, and cloning repositories with go-git, into a work directory);
// LoadIgnore reads the ignore file for the Dockerfile in use; FS returns the
// filtered view that the copier reads.
package buildcontext
