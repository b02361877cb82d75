// Package testregistry runs a real registry (distribution/v3, the code behind
// Docker's registry and Harbor's) in the test process, on 127.0.0.1 with a
// random port and storage in a temporary directory.
//
// Variants compose: plain HTTP, TLS with a generated CA (WithTLS), client
// certificates (WithClientCertAuth), htpasswd basic auth (WithBasicAuth) and
// Harbor-style bearer tokens (WithTokenAuth, with restricted accounts from
// WithTokenAccount), whose token service shares the registry's host:port as
// in Harbor. WithProjects, WithImmutableTags and WithForbiddenDenials add
// the Harbor and SWR behaviours plain distribution lacks.
//
// distribution logs through logrus's standard logger and cannot be given
// another one. It logs every request at info level and every 404 at error
// level, so the first Start discards the standard logger's output unless
// its level is debug or trace: a developer chasing a registry problem sets
// logrus.SetLevel(logrus.DebugLevel) in the test to see it.
package testregistry
