// Package manifest keeps the manifest lists that `kiln manifest create`
// and `kiln manifest annotate` assemble until `kiln manifest push` sends
// them, as `docker manifest` keeps its own: one JSON file per list, in a
// directory beside the docker config (see DefaultDir). A list holds, for
// each manifest, where it came from and its digest-pinned descriptor with
// the platform the list gives it, so that pushing needs no guesswork and
// annotating needs no registry.
package manifest
