// Package cache is kiln's layer cache (kaniko's --cache): a step of a build
// whose inputs were built before is served from the cache instead of run.
//
// A step's Key is computed from its inputs only — the key of the step
// before it (the base image's digest and the platform at the root), the
// instruction as expanded, and what the instruction can see — with every
// field framed by its length, so that different inputs never serialise to
// the same bytes. docs/caching.md defines which inputs each instruction
// contributes. A Store keeps one Entry per key: the layer the step produced,
// or the fact that it produced none. Stores live in a registry repository
// (pkg/registry) or in a local OCI image layout (LayoutStore), which builds
// on one node can share. The same stores keep the tar headers of large
// layers (HeadersLayer, under HeadersKey), so that a build can see a base's
// tree without downloading it.
//
// A cache must never fail a build: a missing, expired, corrupt or
// unreadable entry is a miss, and an entry that cannot be written is a
// warning.
package cache
