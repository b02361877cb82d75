// Package buildcontext provides the build context: the files COPY and ADD
// read, given as a directory or as a tar archive (a file or standard input),
// with the files a .dockerignore excludes hidden the way Docker hides them.
//
// Open turns a context spec into a directory on disk (extracting archives
// safely into a work directory); LoadIgnore reads the ignore file for the
// Dockerfile in use; FS returns the filtered view that the copier reads.
package buildcontext
