// Package progress reports what a build does while it does it: steps that
// start and end, and transfers (pulls and pushes) as their bytes move.
//
// Producers (the executor, the registry client) send Events to a Sink.
// Sinks render them for a reader: Log writes the lines of a CI log (a
// transfer's percent and rate, at most every few seconds); TTY keeps a live
// view on a terminal (one line per running step, a bar per transfer) with
// the log scrolling above it; JSON writes one event per line.
package progress
