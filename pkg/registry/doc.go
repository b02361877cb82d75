// Package registry is everything kiln says to a container registry, on
// go-containerregistry: credentials (docker config files, credential
// helpers, environment variables, path-scoped keys), transports (TLS, extra
// CAs, client certificates, plain HTTP only where allowed), mirrors, retries
// and resumed downloads, Pull with platform selection and an on-disk layer
// cache, Push to several destinations that tags nothing until every blob is
// in, the push permission check, manifest lists (ResolveEntries,
// PushIndex), `docker login`-style credential storage, and errors that say
// what went wrong and what fixes it (*Error).
//
// A Client is built once from functional options and shared; it holds the
// credential sources and one HTTP transport per TLS configuration, so
// connections are reused across pulls and pushes.
package registry
