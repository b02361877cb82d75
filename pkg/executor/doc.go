// Package executor builds the stages of a dockerfile.Plan into images.
//
// Each stage starts from its base (scratch, an image pulled through an
// ImageSource, or an earlier stage) and runs its instructions in order:
// metadata instructions change the config and history, COPY/ADD and WORKDIR
// write layers straight from the build context and the stage's tree view
// (fsview) without extracting anything, and RUN materialises the stage's
// root filesystem, runs the command in a sandbox and snapshots the changes.
// Independent stages run concurrently when the sandbox allows it.
package executor
