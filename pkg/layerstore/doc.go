// Package layerstore keeps image layers extracted, one directory each,
// keyed by their diffID, in a directory that builds share (a --kiln-dir on
// a node's volume): a layer extracted by one build is there for the next,
// which mounts the directories of its base layers as the lower layers of
// an overlay instead of extracting them again.
//
// Builds use the store at the same time. A layer is extracted once: the
// first build to need it holds its lock while it extracts into a temporary
// directory, checks the content against the diffID and renames it into
// place; the others wait for it. A build holds a shared lock on each layer
// it uses, so that trimming the store to its size limit, least recently
// used first, never removes a layer a build has mounted. The locks are
// flock(2)'s: a build that dies lets go of them.
package layerstore
