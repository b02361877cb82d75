package testregistry

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// harborRules are what Harbor (and Huawei SWR) do that plain distribution
// does not, and that kiln must explain to its users: projects that must
// exist, immutable tags, 403 denials.
type harborRules struct {
	projects  []string
	immutable bool
	forbidden bool
	tokens    *tokenService

	mu   sync.Mutex
	tags map[string]bool // "repository:tag" set so far
}

func (h *harborRules) wrap(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		repo, kind, ref := parseV2Path(r.URL.Path)
		if repo != "" && len(h.projects) > 0 {
			project, _, nested := strings.Cut(repo, "/")
			if !nested || !slices.Contains(h.projects, project) {
				writeRegistryError(w, http.StatusNotFound, "NOT_FOUND", fmt.Sprintf("project %s not found", project))
				return
			}
		}
		tagPut := kind == "manifests" && r.Method == http.MethodPut && !strings.Contains(ref, ":")
		if tagPut && h.immutable && h.tagged(repo, ref) {
			writeRegistryError(w, http.StatusPreconditionFailed, "PRECONDITION",
				fmt.Sprintf("Failed to process request due to '%s:%s' configured as immutable.", repo, ref))
			return
		}
		hw := &harborWriter{ResponseWriter: w, deny: h.forbidden && h.authenticated(r)}
		next.ServeHTTP(hw, r)
		if tagPut && hw.status == http.StatusCreated {
			h.mu.Lock()
			h.tags[repo+":"+ref] = true
			h.mu.Unlock()
		}
	})
}

func (h *harborRules) tagged(repo, tag string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.tags[repo+":"+tag]
}

// authenticated reports whether r carries a bearer token issued to a user.
func (h *harborRules) authenticated(r *http.Request) bool {
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || h.tokens == nil {
		return false
	}
	user, _ := h.tokens.subject(token)
	return user != ""
}

// harborWriter records the status and, when deny is set, answers a 401
// with 403 DENIED instead.
type harborWriter struct {
	http.ResponseWriter
	deny, denied bool
	status       int
}

func (w *harborWriter) WriteHeader(code int) {
	w.status = code
	if code == http.StatusUnauthorized && w.deny {
		w.denied = true
		w.Header().Del("WWW-Authenticate")
		w.Header().Del("Content-Length")
		writeRegistryError(w.ResponseWriter, http.StatusForbidden, "DENIED", "requested access to the resource is denied")
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *harborWriter) Write(b []byte) (int, error) {
	if w.denied {
		return len(b), nil // distribution's 401 body
	}
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// parseV2Path splits "/v2/team/app/manifests/v1" into the repository, the
// kind of resource and its reference.
func parseV2Path(p string) (repo, kind, ref string) {
	rest, ok := strings.CutPrefix(p, "/v2/")
	if !ok {
		return "", "", ""
	}
	for _, k := range []string{"manifests", "blobs", "tags", "referrers"} {
		if i := strings.LastIndex(rest, "/"+k+"/"); i > 0 {
			return rest[:i], k, rest[i+len(k)+2:]
		}
	}
	return "", "", ""
}

// writeRegistryError answers in the registry's JSON error format.
func writeRegistryError(w http.ResponseWriter, status int, code, message string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{
		"errors": []map[string]string{{"code": code, "message": message}},
	})
}
