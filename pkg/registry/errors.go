package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"syscall"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// Kind classifies a registry failure by what fixes it.
type Kind int

const (
	KindOther             Kind = iota
	KindUnauthorized           // 401: no credentials, wrong ones, or too few rights
	KindDenied                 // 403: authenticated, not allowed
	KindNotFound               // 404: no such image, or (pushing) no such project
	KindUploadLost             // BLOB_UPLOAD_UNKNOWN
	KindImmutableTag           // the tag exists and may not be overwritten
	KindRateLimited            // 429 after every retry
	KindServer                 // 5xx after every retry
	KindUnknownAuthority       // TLS: certificate signed by an unknown CA
	KindCertificate            // TLS: certificate invalid for the host (name, dates)
	KindClientCertificate      // TLS: the registry wants a client certificate
	KindPlainHTTP              // the registry speaks HTTP where HTTPS was expected
	KindDNS                    // the host name does not resolve
	KindConnection             // refused, reset, timed out
)

// Error is a failed registry operation with what a user needs to fix it:
// the operation, the registry and repository, the credentials used and
// the likely fix.
type Error struct {
	Op         string // "pulling", "pushing", "checking push access to", ...
	Subject    string // the image reference or registry operated on
	Registry   string
	Repository string // "" for registry-wide operations
	// Credentials says which credentials were used, or where none were
	// found; never a secret.
	Credentials string
	Kind        Kind
	Reason      string // what went wrong, in the registry's terms
	Hint        string // the likely fix
	Err         error
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %q: %s", e.Op, e.Subject, e.Reason)
	if e.Credentials != "" {
		fmt.Fprintf(&b, "; %s", e.Credentials)
	}
	if e.Hint != "" {
		fmt.Fprintf(&b, ". %s", e.Hint)
	}
	if e.Err != nil && e.Kind != KindOther {
		fmt.Fprintf(&b, " (cause: %s)", redactedError(e.Err))
	}
	return b.String()
}

func (e *Error) Unwrap() error { return e.Err }

// immutableTagPhrases are how registries say a tag may not be overwritten.
var immutableTagPhrases = []string{
	"configured as immutable",                                   // Harbor
	"cannot be overwritten because the repository is immutable", // Amazon ECR
	"has enabled tag immutability",                              // Google Artifact Registry
	"tag is immutable",
}

func isImmutableTagError(err error) bool {
	var terr *transport.Error
	if errors.As(err, &terr) && terr.StatusCode == http.StatusPreconditionFailed {
		return true
	}
	msg := err.Error()
	for _, p := range immutableTagPhrases {
		if strings.Contains(msg, p) {
			return true
		}
	}
	return false
}

// explainRef explains err, which happened while doing op on ref.
func (c *Client) explainRef(op string, ref name.Reference, d direction, err error) error {
	return c.explain(op, ref.Name(), ref.Context().Registry, ref.Context().RepositoryStr(), d, err)
}

// explain turns err into an *Error; an *Error passes through and a
// cancellation is only named, as there is nothing to fix.
func (c *Client) explain(op, subject string, reg name.Registry, repository string, d direction, err error) error {
	var already *Error
	if errors.As(err, &already) {
		return err
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s %q: %w", op, subject, err)
	}
	registry := reg.RegistryStr()
	e := &Error{Op: op, Subject: subject, Registry: registry, Repository: repository, Err: err}
	e.Kind, e.Reason = classify(err, registry)
	// Credentials matter when the registry answered; not for a failed
	// connection or a local decision.
	var (
		terr      *transport.Error
		anonymous bool
	)
	if errors.As(err, &terr) {
		e.Credentials, anonymous = c.keychain.describe(target{registry: strings.ToLower(registry), repository: repository})
	}
	action := "pull from"
	if d == push {
		action = "push to"
	}
	project, _, _ := strings.Cut(repository, "/")
	switch e.Kind {
	case KindUnauthorized:
		e.Reason += fmt.Sprintf(" for repository %q", repository)
		if anonymous {
			user, password := CredentialEnvVars(registry)
			e.Hint = fmt.Sprintf("The registry needs credentials: run `kiln login %s`, give --docker-config DIR, mount a config.json at /kiln/.docker/config.json, or set %s and %s", registry, user, password)
		} else {
			e.Hint = fmt.Sprintf("The registry rejected these credentials, or they may not %s %q: check the user name and password (a Harbor robot account is named like \"robot$project+name\", an SWR login like \"REGION@AK\" from `kiln login --swr-region`) and the account's rights", action, repository)
		}
	case KindDenied:
		e.Reason += fmt.Sprintf(": the account may not %s repository %q", action, repository)
		e.Hint = fmt.Sprintf("Give the account (a Harbor robot account or project member) the right to %s project %q; on Huawei SWR, grant the user access to organization %q", action, project, project)
	case KindNotFound:
		if d == push {
			e.Reason += fmt.Sprintf(" for repository %q: its project or organization %q probably does not exist", repository, project)
			e.Hint = fmt.Sprintf("Create the Harbor project or SWR organization %q first (they are not created on push), or correct the destination", project)
		} else {
			e.Reason += fmt.Sprintf(": %q not found", subject)
			e.Hint = "Check the repository name and the tag or digest"
		}
	case KindUploadLost:
		e.Hint = "The upload began on one registry instance and continued on another that does not know it: a load-balanced registry needs storage shared by every instance (and one http.secret), or sticky sessions; or push to a single instance"
	case KindImmutableTag:
		e.Reason += fmt.Sprintf(" for repository %q", repository)
		e.Hint = "Push under a new tag, or pass --push-ignore-immutable-tag-errors to keep the existing one and succeed"
	case KindRateLimited:
		e.Hint = "Retry later, authenticate (anonymous pulls have lower limits), raise --push-retry or --image-download-retry, or pull through a mirror (--registry-mirror)"
	case KindServer:
		e.Hint = "The registry is failing; retries are set with --push-retry and --image-download-retry"
	case KindUnknownAuthority:
		e.Hint = fmt.Sprintf("Trust its CA with --registry-certificate %s=ca.pem, or add the CA to SSL_CERT_FILE or SSL_CERT_DIR; --skip-tls-verify-registry %s turns verification off (insecure)", registry, registry)
	case KindCertificate:
		e.Hint = fmt.Sprintf("Reach the registry by a name its certificate covers, renew the certificate, or --skip-tls-verify-registry %s (insecure)", registry)
	case KindClientCertificate:
		e.Hint = fmt.Sprintf("Give one with --registry-client-cert %s=client.pem,client-key.pem", registry)
	case KindPlainHTTP:
		e.Hint = fmt.Sprintf("If it is meant to be reached over plain HTTP, allow that with --insecure-registry %q", registry)
	case KindDNS:
		e.Hint = "Check the registry name (a typo, a stray space?) and the DNS configuration of this machine or pod"
	case KindConnection:
		e.Hint = "Check the host and port, and that the registry runs and is reachable from here (firewall, HTTPS_PROXY and NO_PROXY)"
	}
	return e
}

// classify returns the kind of err and what went wrong at registry. TLS
// comes first: when both schemes were tried, the HTTPS failure is the one
// that matters.
func classify(err error, registry string) (Kind, string) {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		terr      *transport.Error
		dnsErr    *net.DNSError
		refused   *plainHTTPRefusedError
		record    tls.RecordHeaderError
		netErr    net.Error
	)
	switch {
	case errors.As(err, &unknownCA):
		return KindUnknownAuthority, fmt.Sprintf("the TLS certificate of registry %q is signed by an unknown authority", registry)
	case errors.As(err, &hostname):
		return KindCertificate, fmt.Sprintf("the TLS certificate of registry %q is not valid for it: %v", registry, hostname)
	case errors.As(err, &invalid):
		return KindCertificate, fmt.Sprintf("the TLS certificate of registry %q is not valid: %v", registry, invalid)
	case isClientCertRejection(err):
		return KindClientCertificate, fmt.Sprintf("registry %q refused the TLS connection: it requires a client certificate it trusts", registry)
	case errors.As(err, &terr):
		return classifyResponse(terr, err, registry)
	case errors.Is(err, http.ErrSchemeMismatch), errors.As(err, &record):
		return KindPlainHTTP, fmt.Sprintf("registry %q speaks plain HTTP, which kiln uses only for registries marked insecure", registry)
	// A registry that HTTPS could not reach at all (refused, unresolvable,
	// silent) is unreachable, whatever the refused plain-HTTP attempt that
	// go-containerregistry makes for private addresses would have found.
	case errors.As(err, &dnsErr):
		return KindDNS, fmt.Sprintf("cannot resolve the host %q of registry %q", dnsErr.Name, registry)
	case errors.Is(err, syscall.ECONNREFUSED):
		return KindConnection, fmt.Sprintf("cannot connect to registry %q: connection refused", registry)
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return KindConnection, fmt.Sprintf("the connection to registry %q was reset, on every retry", registry)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		return KindConnection, fmt.Sprintf("the connection to registry %q broke off, on every retry", registry)
	case errors.As(err, &netErr) && netErr.Timeout():
		return KindConnection, fmt.Sprintf("registry %q did not answer in time", registry)
	case errors.As(err, &refused):
		return KindPlainHTTP, fmt.Sprintf("registry %q could not be reached over HTTPS, and kiln uses plain HTTP only for registries marked insecure", registry)
	}
	return KindOther, redactedError(err)
}

func classifyResponse(terr *transport.Error, err error, registry string) (Kind, string) {
	codes := map[transport.ErrorCode]bool{}
	for _, d := range terr.Errors {
		codes[d.Code] = true
	}
	answered := fmt.Sprintf("registry %q answered %d %s", registry, terr.StatusCode, http.StatusText(terr.StatusCode))
	switch {
	case isImmutableTagError(err):
		return KindImmutableTag, answered + ": the tag is immutable"
	case codes[transport.BlobUploadUnknownErrorCode]:
		return KindUploadLost, fmt.Sprintf("registry %q lost the session of a blob upload (BLOB_UPLOAD_UNKNOWN)", registry)
	case terr.StatusCode == http.StatusUnauthorized:
		return KindUnauthorized, answered
	case terr.StatusCode == http.StatusForbidden || codes[transport.DeniedErrorCode]:
		return KindDenied, answered
	case terr.StatusCode == http.StatusNotFound:
		return KindNotFound, answered
	case terr.StatusCode == http.StatusTooManyRequests || codes[transport.TooManyRequestsErrorCode]:
		return KindRateLimited, answered + " on every retry"
	case terr.StatusCode >= 500:
		return KindServer, answered + " on every retry"
	}
	return KindOther, answered + ": " + redactedError(err)
}

// isClientCertRejection recognises the TLS alerts a server sends when it
// wants a client certificate and got none or one it does not trust.
func isClientCertRejection(err error) bool {
	msg := err.Error()
	for _, alert := range []string{"certificate required", "bad certificate", "unknown certificate authority", "certificate unknown"} {
		if strings.Contains(msg, "remote error: tls: "+alert) {
			return true
		}
	}
	return false
}

// urlQuery matches the query string of a URL in an error message.
var urlQuery = regexp.MustCompile(`(https?://[^\s"?]+)\?[^\s"]*`)

// redactedError is err's message without URL query strings: pre-signed
// blob storage URLs carry credentials there.
func redactedError(err error) string {
	return urlQuery.ReplaceAllString(err.Error(), "$1?REDACTED")
}
