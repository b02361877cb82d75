package testregistry

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/distribution/distribution/v3/registry/auth/token"
	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

const (
	tokenAlgorithm = "ES256"
	tokenTTL       = 30 * time.Minute
	publicPrefix   = "public/"
)

// tokenService is the bearer-token endpoint of the Docker token
// specification, as Harbor's core serves it: GET with optional basic auth
// and POST with an OAuth2 password or refresh_token grant. Its tokens are
// signed by a key generated for it, the only key the registry trusts.
type tokenService struct {
	issuer, service string
	accounts        map[string]account // user -> account
	signer          jose.Signer
	issued          atomic.Int64

	mu            sync.Mutex
	refreshTokens map[string]string // refresh token -> user
	subjects      map[string]string // issued token -> user, "" for anonymous
	scopes        []string          // every scope asked for, in order
}

// account is a user of the token service and what it may do: every action
// on every repository when prefix and actions are empty, else the actions
// on the repositories under prefix.
type account struct {
	password string
	prefix   string
	actions  []string
}

func (a account) allows(typ, name, action string) bool {
	if a.prefix == "" && a.actions == nil {
		return true
	}
	return typ == "repository" && strings.HasPrefix(name, a.prefix+"/") && slices.Contains(a.actions, action)
}

// newTokenService returns the service and the JWKS file content (its public
// key) for the registry's token access controller.
func newTokenService(issuer, service string, accounts map[string]account) (*tokenService, []byte, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("generating signing key: %w", err)
	}
	jwk := jose.JSONWebKey{Key: key, Algorithm: tokenAlgorithm, Use: "sig"}
	thumb, err := jwk.Thumbprint(crypto.SHA256)
	if err != nil {
		return nil, nil, err
	}
	// Tokens name their key by "kid"; the registry looks it up in the JWKS.
	jwk.KeyID = base64.RawURLEncoding.EncodeToString(thumb)
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: jwk}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		return nil, nil, err
	}
	jwks, err := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{jwk.Public()}})
	if err != nil {
		return nil, nil, err
	}
	return &tokenService{
		issuer:        issuer,
		service:       service,
		accounts:      accounts,
		signer:        signer,
		refreshTokens: map[string]string{},
		subjects:      map[string]string{},
	}, jwks, nil
}

// tokenRequest is what a GET or POST asks for, once authenticated.
type tokenRequest struct {
	subject string // "" for anonymous
	service string
	scopes  []string
	refresh bool // also hand out a refresh token
}

type tokenResponse struct {
	Token        string `json:"token"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresIn    int    `json:"expires_in"`
	IssuedAt     string `json:"issued_at"`
}

// tokenError is an error response in the registry's JSON error format, which
// clients print as "CODE: message".
type tokenError struct {
	status        int
	code, message string
}

func (s *tokenService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var (
		req  tokenRequest
		terr *tokenError
	)
	switch r.Method {
	case http.MethodGet:
		req, terr = s.parseGet(r)
	case http.MethodPost:
		req, terr = s.parsePost(r)
	default:
		terr = &tokenError{http.StatusMethodNotAllowed, "UNSUPPORTED", "use GET or POST"}
	}
	if terr == nil && req.service != "" && req.service != s.service {
		terr = &tokenError{http.StatusBadRequest, "DENIED", fmt.Sprintf("unknown service %q", req.service)}
	}
	if terr != nil {
		writeTokenError(w, terr)
		return
	}
	s.mu.Lock()
	s.scopes = append(s.scopes, req.scopes...)
	s.mu.Unlock()

	now := time.Now()
	signed, err := s.sign(req.subject, s.grant(req.subject, req.scopes), now)
	if err != nil {
		writeTokenError(w, &tokenError{http.StatusInternalServerError, "UNKNOWN", err.Error()})
		return
	}
	resp := tokenResponse{
		Token:       signed,
		AccessToken: signed,
		ExpiresIn:   int(tokenTTL.Seconds()),
		IssuedAt:    now.UTC().Format(time.RFC3339),
	}
	if req.refresh {
		resp.RefreshToken = s.newRefreshToken(req.subject)
	}
	s.mu.Lock()
	s.subjects[signed] = req.subject
	s.mu.Unlock()
	s.issued.Add(1)
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(resp)
}

// parseGet reads a token request as Docker's token specification has it:
// optional basic auth, scopes in (repeated, space-separated) query values.
func (s *tokenService) parseGet(r *http.Request) (tokenRequest, *tokenError) {
	q := r.URL.Query()
	req := tokenRequest{service: q.Get("service"), scopes: splitScopes(q["scope"])}
	if user, password, ok := r.BasicAuth(); ok {
		if !s.valid(user, password) {
			return req, badCredentials()
		}
		req.subject = user
		req.refresh = q.Get("offline_token") == "true"
	}
	return req, nil
}

// parsePost reads an OAuth2 token request, the flow Docker and containerd
// use for identity tokens.
func (s *tokenService) parsePost(r *http.Request) (tokenRequest, *tokenError) {
	if err := r.ParseForm(); err != nil {
		return tokenRequest{}, &tokenError{http.StatusBadRequest, "UNSUPPORTED", err.Error()}
	}
	f := r.PostForm
	req := tokenRequest{service: f.Get("service"), scopes: splitScopes(f["scope"])}
	switch f.Get("grant_type") {
	case "password":
		if !s.valid(f.Get("username"), f.Get("password")) {
			return req, badCredentials()
		}
		req.subject = f.Get("username")
		req.refresh = f.Get("access_type") == "offline"
	case "refresh_token":
		s.mu.Lock()
		user, ok := s.refreshTokens[f.Get("refresh_token")]
		s.mu.Unlock()
		if !ok {
			return req, &tokenError{http.StatusUnauthorized, "UNAUTHORIZED", "unknown refresh token"}
		}
		req.subject = user
	default:
		return req, &tokenError{http.StatusBadRequest, "UNSUPPORTED", fmt.Sprintf("unsupported grant_type %q", f.Get("grant_type"))}
	}
	return req, nil
}

func badCredentials() *tokenError {
	return &tokenError{http.StatusUnauthorized, "UNAUTHORIZED", "invalid username or password"}
}

func (s *tokenService) valid(user, password string) bool {
	a, ok := s.accounts[user]
	return ok && subtle.ConstantTimeCompare([]byte(password), []byte(a.password)) == 1
}

// subject is the user a token was issued to: "" for an anonymous token,
// ok false for a token this service did not issue.
func (s *tokenService) subject(token string) (user string, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	user, ok = s.subjects[token]
	return user, ok
}

// grant applies the policy: each account gets what it allows (see
// account), anonymous callers get pull on repositories under "public/" and
// nothing else.
func (s *tokenService) grant(subject string, scopes []string) []*token.ResourceActions {
	var out []*token.ResourceActions
	for _, scope := range scopes {
		// type:name:actions, where name may itself hold a colon.
		first, last := strings.Index(scope, ":"), strings.LastIndex(scope, ":")
		if first < 0 || last == first {
			continue
		}
		typ, name := scope[:first], scope[first+1:last]
		granted := []string{}
		for _, action := range strings.Split(scope[last+1:], ",") {
			anonymousOK := typ == "repository" && action == "pull" && strings.HasPrefix(name, publicPrefix)
			if anonymousOK || subject != "" && s.accounts[subject].allows(typ, name, action) {
				granted = append(granted, action)
			}
		}
		out = append(out, &token.ResourceActions{Type: typ, Name: name, Actions: granted})
	}
	return out
}

func (s *tokenService) sign(subject string, access []*token.ResourceActions, now time.Time) (string, error) {
	claims := token.ClaimSet{
		Issuer:     s.issuer,
		Subject:    subject,
		Audience:   token.AudienceList{s.service},
		Expiration: now.Add(tokenTTL).Unix(),
		NotBefore:  now.Unix(),
		IssuedAt:   now.Unix(),
		JWTID:      rand.Text(),
		Access:     access,
	}
	return jwt.Signed(s.signer).Claims(claims).Serialize()
}

func (s *tokenService) newRefreshToken(user string) string {
	t := rand.Text()
	s.mu.Lock()
	s.refreshTokens[t] = user
	s.mu.Unlock()
	return t
}

func splitScopes(values []string) []string {
	var scopes []string
	for _, v := range values {
		scopes = append(scopes, strings.Fields(v)...)
	}
	return scopes
}

func writeTokenError(w http.ResponseWriter, e *tokenError) {
	if e.status == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", `Basic realm="testregistry token service"`)
	}
	writeRegistryError(w, e.status, e.code, e.message)
}
