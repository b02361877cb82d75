// Package testutil has small helpers for kiln's tests: skipping tests that
// need root or a Debian package, and building the kiln binary once.
package testutil
