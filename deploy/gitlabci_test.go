package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
	"sigs.k8s.io/yaml"
)

// The GitLab CI keywords the files of deploy/ use, modelled so that they
// decode strictly: a misspelt or misplaced keyword is an error, as GitLab's
// linter would report it.

// gitlabInclude is an entry of include:. Only local includes are used.
type gitlabInclude struct {
	Local string `json:"local"`
}

// gitlabJob is a job, or a hidden job (".name") to extend.
type gitlabJob struct {
	Stage         string             `json:"stage,omitempty"`
	Extends       string             `json:"extends,omitempty"`
	Image         *gitlabImage       `json:"image,omitempty"`
	Variables     map[string]string  `json:"variables,omitempty"`
	Needs         []gitlabNeed       `json:"needs,omitempty"`
	Script        []string           `json:"script,omitempty"`
	Artifacts     *gitlabArtifacts   `json:"artifacts,omitempty"`
	Rules         []gitlabRule       `json:"rules,omitempty"`
	Tags          []string           `json:"tags,omitempty"`
	Parallel      *gitlabParallel    `json:"parallel,omitempty"`
	Environment   *gitlabEnvironment `json:"environment,omitempty"`
	ResourceGroup string             `json:"resource_group,omitempty"`
}

// gitlabImage is image:, a name or {name, entrypoint}.
type gitlabImage struct {
	Name       string   `json:"name"`
	Entrypoint []string `json:"entrypoint,omitempty"`
}

func (i *gitlabImage) UnmarshalJSON(data []byte) error {
	if len(data) > 0 && data[0] == '"' {
		return json.Unmarshal(data, &i.Name)
	}
	type plain gitlabImage
	return decodeStrictJSON(data, (*plain)(i))
}

type gitlabNeed struct {
	Job       string `json:"job"`
	Artifacts *bool  `json:"artifacts,omitempty"`
	Optional  bool   `json:"optional,omitempty"`
}

// wantsArtifacts reports whether the need downloads the job's artifacts
// (GitLab's default).
func (n gitlabNeed) wantsArtifacts() bool { return n.Artifacts == nil || *n.Artifacts }

type gitlabArtifacts struct {
	Paths    []string       `json:"paths,omitempty"`
	ExpireIn string         `json:"expire_in,omitempty"`
	Reports  *gitlabReports `json:"reports,omitempty"`
}

type gitlabReports struct {
	Dotenv string `json:"dotenv,omitempty"`
}

type gitlabRule struct {
	If        string            `json:"if"`
	When      string            `json:"when,omitempty"`
	Variables map[string]string `json:"variables,omitempty"`
}

type gitlabParallel struct {
	Matrix []map[string][]string `json:"matrix"`
}

type gitlabEnvironment struct {
	Name string `json:"name"`
}

// gitlabFile is one GitLab CI file as written: its global keywords and its
// jobs, each kept as decoded YAML for include and extends merging.
type gitlabFile struct {
	Include   []gitlabInclude
	Stages    []string
	Variables map[string]string
	Jobs      map[string]map[string]any
}

// gitlabKeywords are the global keywords; GitLab refuses them as job
// names. The files here use include, stages and variables only.
var gitlabKeywords = map[string]bool{
	"default": true, "include": true, "stages": true, "variables": true, "workflow": true,
	"image": true, "services": true, "cache": true, "before_script": true, "after_script": true, "types": true,
}

func parseGitLabFile(data []byte) (*gitlabFile, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, err
	}
	var top map[string]json.RawMessage
	if err := decodeStrictJSON(js, &top); err != nil {
		return nil, err
	}
	f := &gitlabFile{Jobs: map[string]map[string]any{}}
	for _, key := range sortedKeys(top) {
		raw := top[key]
		switch key {
		case "include":
			err = decodeStrictJSON(raw, &f.Include)
		case "stages":
			err = decodeStrictJSON(raw, &f.Stages)
		case "variables":
			err = decodeStrictJSON(raw, &f.Variables)
		default:
			if gitlabKeywords[key] {
				return nil, fmt.Errorf("%s: a keyword these tests do not model (and not a possible job name)", key)
			}
			var job gitlabJob
			if err = decodeStrictJSON(raw, &job); err == nil {
				var m map[string]any
				err = json.Unmarshal(raw, &m)
				f.Jobs[key] = m
			}
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", key, err)
		}
	}
	return f, nil
}

func decodeStrictJSON(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	return dec.Decode(v)
}

// gitlabPipeline is a GitLab CI file with its includes merged in and its
// jobs' extends resolved, as GitLab sees it.
type gitlabPipeline struct {
	Stages    []string
	Variables map[string]string
	Jobs      map[string]*gitlabJob
}

// loadGitLabPipeline reads the file at path (relative to this directory)
// and what it includes; read gives a file's content.
func loadGitLabPipeline(path string, read func(path string) ([]byte, error)) (*gitlabPipeline, error) {
	merged, err := mergeIncludes(path, read, map[string]bool{})
	if err != nil {
		return nil, err
	}
	p := &gitlabPipeline{Stages: merged.Stages, Variables: merged.Variables, Jobs: map[string]*gitlabJob{}}
	for name := range merged.Jobs {
		resolved, err := resolveExtends(merged.Jobs, name, nil)
		if err != nil {
			return nil, fmt.Errorf("job %q: %w", name, err)
		}
		data, err := json.Marshal(resolved)
		if err != nil {
			return nil, err
		}
		var job gitlabJob
		if err := decodeStrictJSON(data, &job); err != nil {
			return nil, fmt.Errorf("job %q after extends: %w", name, err)
		}
		p.Jobs[name] = &job
	}
	return p, nil
}

// mergeIncludes merges a file over what it includes: GitLab merges the
// jobs and variables key by key, the including file winning; stages are
// replaced.
func mergeIncludes(path string, read func(string) ([]byte, error), seen map[string]bool) (*gitlabFile, error) {
	if seen[path] {
		return nil, fmt.Errorf("%s: included twice", path)
	}
	seen[path] = true
	data, err := read(path)
	if err != nil {
		return nil, err
	}
	f, err := parseGitLabFile(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	out := &gitlabFile{Variables: map[string]string{}, Jobs: map[string]map[string]any{}}
	for _, inc := range f.Include {
		if inc.Local == "" {
			return nil, fmt.Errorf("%s: include without local:", path)
		}
		sub, err := mergeIncludes(path2repo(inc.Local), read, seen)
		if err != nil {
			return nil, fmt.Errorf("%s: include %q: %w", path, inc.Local, err)
		}
		if sub.Stages != nil {
			out.Stages = sub.Stages
		}
		for k, v := range sub.Variables {
			out.Variables[k] = v
		}
		for name, job := range sub.Jobs {
			out.Jobs[name] = deepMerge(out.Jobs[name], job)
		}
	}
	if f.Stages != nil {
		out.Stages = f.Stages
	}
	for k, v := range f.Variables {
		out.Variables[k] = v
	}
	for name, job := range f.Jobs {
		out.Jobs[name] = deepMerge(out.Jobs[name], job)
	}
	return out, nil
}

// path2repo turns an include:local path (from the repository root) into a
// path from this directory.
func path2repo(local string) string { return path.Join(repoRoot, strings.TrimPrefix(local, "/")) }

// resolveExtends returns a job merged over what it extends.
func resolveExtends(jobs map[string]map[string]any, name string, chain []string) (map[string]any, error) {
	for _, c := range chain {
		if c == name {
			return nil, fmt.Errorf("extends loop %v", append(chain, name))
		}
	}
	job, ok := jobs[name]
	if !ok {
		return nil, fmt.Errorf("extends %q: no such job", name)
	}
	parent, _ := job["extends"].(string)
	if parent == "" {
		return job, nil
	}
	base, err := resolveExtends(jobs, parent, append(chain, name))
	if err != nil {
		return nil, err
	}
	merged := deepMerge(base, job)
	delete(merged, "extends")
	return merged, nil
}

// deepMerge merges over onto base as GitLab does: maps key by key,
// anything else (lists included) replaced.
func deepMerge(base, over map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range base {
		out[k] = v
	}
	for k, v := range over {
		bm, bok := out[k].(map[string]any)
		om, ook := v.(map[string]any)
		if bok && ook {
			out[k] = deepMerge(bm, om)
		} else {
			out[k] = v
		}
	}
	return out
}

// resolveVariables expands the variables of a job as GitLab does: a value
// may refer to any other variable. An undefined reference is an error.
func resolveVariables(raw map[string]string) (map[string]string, error) {
	out := map[string]string{}
	var resolve func(name string, depth int) (string, bool, error)
	resolve = func(name string, depth int) (string, bool, error) {
		if v, ok := out[name]; ok {
			return v, true, nil
		}
		value, ok := raw[name]
		if !ok {
			return "", false, nil
		}
		if depth > len(raw) {
			return "", false, fmt.Errorf("variable %s refers to itself", name)
		}
		word, err := syntax.NewParser().Document(strings.NewReader(value))
		if err != nil {
			return "", false, fmt.Errorf("variable %s: %w", name, err)
		}
		var inner error
		env := lookupEnviron(func(n string) (string, bool) {
			v, ok, err := resolve(n, depth+1)
			if err != nil && inner == nil {
				inner = err
			}
			return v, ok
		})
		v, err := expand.Document(&expand.Config{Env: env, NoUnset: true}, word)
		if inner != nil {
			return "", false, inner
		}
		if err != nil {
			return "", false, fmt.Errorf("variable %s: %w", name, err)
		}
		out[name] = v
		return v, true, nil
	}
	for _, name := range sortedKeys(raw) {
		if _, _, err := resolve(name, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// lookupEnviron is an expand.Environ over a lookup function.
type lookupEnviron func(name string) (string, bool)

func (l lookupEnviron) Get(name string) expand.Variable {
	v, ok := l(name)
	if !ok {
		return expand.Variable{}
	}
	return expand.Variable{Set: true, Exported: true, Kind: expand.String, Str: v}
}

func (l lookupEnviron) Each(func(string, expand.Variable) bool) {}
