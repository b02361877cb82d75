// Package cli holds kiln's commands. It is the only package that knows
// about flags: it turns them into the options of the packages that do the
// work (buildcontext, dockerfile, registry, sandbox, executor, output).
package cli
