// Package registry is everything kiln says to a container registry, on
// go-containerregistry: credentials (Keychain), transports (TLS, extra CAs,
// plain HTTP only where allowed), Pull with platform selection and an on-disk
// layer cache, and Push to several destinations with progress logs.
//
// A Client is built once from functional options and shared; it holds the
// credentials read from docker config files and one HTTP transport per TLS
// configuration, so connections are reused across pulls and pushes.
package registry
