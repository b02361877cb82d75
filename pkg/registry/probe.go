package registry

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"golang.org/x/sync/errgroup"
)

// CheckPush checks, before any build work, that the repository of every
// destination accepts a push with the credentials found for it, so that a
// wrong password fails in a second rather than after the build. It asks
// the token service for push rights and starts (then cancels) a blob
// upload: Docker Hub, Harbor and SWR grant a token with fewer rights than
// asked, and only refuse the upload. Every failing destination is
// reported.
func (c *Client) CheckPush(ctx context.Context, destinations []string) error {
	seen := map[string]bool{}
	var refs []name.Reference
	for _, d := range destinations {
		ref, err := c.parseReference(d, push)
		if err != nil {
			return fmt.Errorf("checking push access to %q: %w", d, err)
		}
		if !seen[ref.Context().String()] {
			seen[ref.Context().String()] = true
			refs = append(refs, ref)
		}
	}
	errs := make([]error, len(refs))
	var g errgroup.Group
	for i, ref := range refs {
		g.Go(func() error {
			errs[i] = c.checkPush(ctx, ref)
			return nil
		})
	}
	g.Wait()
	return errors.Join(errs...)
}

func (c *Client) checkPush(ctx context.Context, ref name.Reference) error {
	const op = "checking push access to"
	repo := ref.Context()
	auth, err := authn.Resolve(ctx, c.keychain, repo)
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, ref.Name(), err)
	}
	client, err := c.authorizedClient(ctx, repo.Registry, auth, []string{repo.Scope(transport.PushScope)})
	if err != nil {
		return c.explainRef(op, ref, push, err)
	}
	u := url.URL{Scheme: repo.Scheme(), Host: repo.RegistryStr(), Path: fmt.Sprintf("/v2/%s/blobs/uploads/", repo.RepositoryStr())}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return c.explainRef(op, ref, push, err)
	}
	err = transport.CheckError(resp, http.StatusAccepted, http.StatusCreated)
	resp.Body.Close()
	if err != nil {
		return c.explainRef(op, ref, push, err)
	}
	// The upload only reserved an ID; cancelling it frees that at once
	// rather than at the registry's next purge. A failure costs nothing.
	if loc, err := resp.Location(); err == nil {
		if del, err := http.NewRequestWithContext(ctx, http.MethodDelete, loc.String(), nil); err == nil {
			if resp, err := client.Do(del); err == nil {
				resp.Body.Close()
			}
		}
	}
	c.log.Infof("Push access to %q confirmed", repo.Name())
	return nil
}

// CheckCredentials logs in to registry ("host[:port]") with auth, as docker
// login does, so that wrong credentials are reported before they are
// stored.
func (c *Client) CheckCredentials(ctx context.Context, registry string, auth authn.AuthConfig) error {
	const op = "logging in to"
	reg, err := name.NewRegistry(registry, name.WeakValidation)
	if err == nil && c.access.allowsPlainHTTP(registryKey(reg), push) {
		reg, err = name.NewRegistry(registry, name.WeakValidation, name.Insecure)
	}
	if err != nil {
		return fmt.Errorf("%s %q: %w", op, registry, err)
	}
	client, err := c.authorizedClient(ctx, reg, authn.FromConfig(auth), nil)
	if err == nil {
		err = checkAPIRoot(ctx, client, reg)
	}
	if err != nil {
		return c.explainLogin(registry, reg, auth.Username, err)
	}
	return nil
}

// explainLogin explains a failed credential check. A rejection says who
// rejected which user and in the registry's words; its advice is about the
// credentials, not `kiln login`, which is what failed.
func (c *Client) explainLogin(registry string, reg name.Registry, user string, err error) error {
	err = c.explain("logging in to", registry, reg, "", push, err)
	var e *Error
	if !errors.As(err, &e) {
		return err
	}
	e.Credentials = fmt.Sprintf("as user %q", user)
	var terr *transport.Error
	if !errors.As(err, &terr) || (e.Kind != KindUnauthorized && e.Kind != KindDenied) {
		return err
	}
	e.Credentials = ""
	e.Reason = fmt.Sprintf("%s answered %d %s to user %q", answeredBy(terr, reg), terr.StatusCode, http.StatusText(terr.StatusCode), user)
	if text := registryText(terr); text != "" {
		e.Reason += fmt.Sprintf(": %q", text)
	}
	if e.Kind == KindDenied {
		e.Hint = "The account exists but may not log in here: check that it is enabled and not expired, and its rights on the registry"
		return err
	}
	e.Hint = fmt.Sprintf("Check the user name and the password as given: a Harbor robot account is named like \"robot$project+name\" (single-quote it for the shell, or its \"$\" part is lost) and its password is the secret shown when it was created; for Huawei SWR use --swr-region with --ak and --sk (or --password-stdin) instead of a user and password; --password-stdin reads the first line of standard input. An expired or disabled account is rejected the same way")
	return err
}

// answeredBy names who gave terr's answer: the registry itself or its
// token service (which Harbor and Docker Hub run at another URL).
func answeredBy(terr *transport.Error, reg name.Registry) string {
	registry := fmt.Sprintf("registry %q", reg.RegistryStr())
	if terr.Request == nil || terr.Request.URL == nil {
		return registry
	}
	u := *terr.Request.URL
	if strings.EqualFold(u.Host, reg.RegistryStr()) && strings.HasPrefix(u.Path, "/v2/") {
		return registry
	}
	u.RawQuery, u.Fragment, u.User = "", "", nil
	return fmt.Sprintf("the token service %q of %s", u.String(), registry)
}

// registryText is what the registry said about the failure: the messages
// of its error document, else the start of the body, else "".
func registryText(terr *transport.Error) string {
	var parts []string
	for _, d := range terr.Errors {
		if d.Message != "" {
			parts = append(parts, string(d.Code)+": "+d.Message)
		} else {
			parts = append(parts, string(d.Code))
		}
	}
	if len(parts) > 0 {
		return strings.Join(parts, "; ")
	}
	// transport.Error keeps a body it could not parse only in its message:
	// "... unexpected status code 401 Unauthorized: BODY".
	msg := terr.Error()
	marker := fmt.Sprintf("unexpected status code %d %s: ", terr.StatusCode, http.StatusText(terr.StatusCode))
	_, body, ok := strings.Cut(msg, marker)
	if !ok {
		return ""
	}
	body = strings.Join(strings.Fields(body), " ")
	if len(body) > 200 {
		body = body[:200] + "..."
	}
	return body
}

// checkAPIRoot reads /v2/, which needs valid credentials on a registry
// with basic auth; with token auth, getting the token checked them.
func checkAPIRoot(ctx context.Context, client *http.Client, reg name.Registry) error {
	u := url.URL{Scheme: reg.Scheme(), Host: reg.RegistryStr(), Path: "/v2/"}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	return transport.CheckError(resp, http.StatusOK)
}

// authorizedClient pings reg and authenticates for scopes with auth (a
// bearer token is fetched now), through the client's transport for pushes.
func (c *Client) authorizedClient(ctx context.Context, reg name.Registry, auth authn.Authenticator, scopes []string) (*http.Client, error) {
	t := transport.NewRetry(c.transport(registryKey(reg), push),
		transport.WithRetryBackoff(c.backoff(push)),
		transport.WithRetryPredicate(c.retryable),
		transport.WithRetryStatusCodes(retryStatusCodes...))
	t = transport.NewUserAgent(t, c.userAgent)
	rt, err := transport.NewWithContext(ctx, reg, auth, t, scopes)
	if err != nil {
		return nil, err
	}
	return &http.Client{Transport: rt}, nil
}
