// Package depcheck freezes the package rules of docs/architecture.md in a
// test: which kiln packages each package may import, which packages must
// never reach the registry or the sandbox, and that only pkg/cli knows about
// flags. A change to the package map changes this test and the document
// together.
package depcheck
