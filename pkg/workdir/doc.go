// Package workdir manages kiln's work directory (--kiln-dir), which builds
// may share (a volume of a CI node, the executor image's /kiln).
//
// Each build gets a private directory, build-ID, and holds a lock on
// build-ID.lock for as long as it runs. The lock is flock(2)'s, which the
// kernel drops when the process dies, however it dies: a build that starts
// removes the directories of builds whose lock is free — dead ones, never a
// live one, whatever their age. Secrets given to RUN live in a memory-backed
// directory (/dev/shm) when the machine has one, so that a killed build
// leaves no secret on a disk.
package workdir
