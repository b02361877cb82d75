// Package faultproxy is a reverse proxy on 127.0.0.1 that injects, between
// a client and real upstream servers, the failures registries show in
// production: connection resets, error answers (500, 503, 429 with
// Retry-After), bodies that trickle in or break off half-way, and upstreams
// that do not share state (a load balancer over registries without shared
// storage). Tests use it to check that a client retries what is transient
// and fails cleanly on what is not.
//
// Rules match requests by method and path and apply a fault a set number
// of times; everything else is proxied untouched, with the client's Host
// header, so that the upstream's absolute Location URLs lead back through
// the proxy.
package faultproxy
