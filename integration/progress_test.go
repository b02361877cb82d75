package integration

import (
	"bufio"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/kiln-build/kiln/internal/testutil"
)

// report is the part of --report-file the test reads.
type report struct {
	Image string `json:"image"`
	Steps []struct {
		Stage       string `json:"stage"`
		Step        int    `json:"step"`
		Instruction string `json:"instruction"`
		DurationMS  *int64 `json:"duration_ms"`
		Cached      *bool  `json:"cached"`
		Layer       string `json:"layer"`
		LayerSize   int64  `json:"layer_size"`
	} `json:"steps"`
	Pulled []struct{ Ref, Digest string } `json:"pulled"`
	Pushed []struct{ Ref, Digest string } `json:"pushed"`
	Cache  *struct{ Hits, Misses int }    `json:"cache"`
}

func readReport(t *testing.T, path string) report {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r report
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatalf("%v\n%s", err, data)
	}
	return r
}

func TestReportFileAndProgress(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nENV A=1\nCOPY f /f\nRUN echo hi > /hi\n",
		"f":          "content",
	})
	dest := e.ref("test/report:1")
	reportPath := filepath.Join(t.TempDir(), "report.json")
	cache := "oci:" + t.TempDir()
	out := e.build(dir, "-d", dest, "--report-file", reportPath, "--cache", "--cache-repo", cache)
	r := readReport(t, reportPath)
	digest, err := head(e.reg, "test/report:1")
	if err != nil {
		t.Fatal(err)
	}
	if r.Image != digest.String() || len(r.Pushed) != 1 || r.Pushed[0].Digest != digest.String() || r.Pushed[0].Ref != dest {
		t.Errorf("image %s, pushed %+v; the registry has %s", r.Image, r.Pushed, digest)
	}
	if len(r.Pulled) != 1 || !strings.HasSuffix(base, strings.TrimPrefix(r.Pulled[0].Ref, e.reg.Host)) {
		t.Errorf("pulled %+v, base %s", r.Pulled, base)
	}
	// COPY and RUN, each with a layer; ENV has no step of its own.
	if len(r.Steps) != 2 || r.Steps[0].Instruction != "COPY f /f" || r.Steps[0].Layer == "" || r.Steps[0].LayerSize == 0 ||
		r.Steps[1].DurationMS == nil || r.Steps[1].Cached == nil || *r.Steps[1].Cached {
		t.Errorf("steps %+v", r.Steps)
	}
	if r.Cache == nil || r.Cache.Hits != 0 || r.Cache.Misses != 2 {
		t.Errorf("cache %+v", r.Cache)
	}
	if !strings.Contains(out, "Summary of the build of "+digest.String()) || !strings.Contains(out, "pushed "+dest+"@"+digest.String()) {
		t.Errorf("no summary:\n%s", out)
	}

	// Again, the RUN from the cache, with the progress as JSON events.
	res := e.tryBuild(dir, "-d", dest, "--report-file", reportPath, "--cache", "--cache-repo", cache, "--progress", "json")
	if res.err != nil {
		t.Fatalf("%v\n%s", res.err, res.out)
	}
	r = readReport(t, reportPath)
	if r.Cache == nil || r.Cache.Hits != 1 || !*r.Steps[1].Cached {
		t.Errorf("cached rebuild: cache %+v, steps %+v", r.Cache, r.Steps)
	}
	events := 0
	sc := bufio.NewScanner(strings.NewReader(res.out))
	for sc.Scan() {
		line := sc.Text()
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Errorf("not JSON: %q", line)
			continue
		}
		if m["kind"] == "step-done" {
			events++
		}
	}
	if events != 2 {
		t.Errorf("%d step-done events:\n%s", events, res.out)
	}

	// tty needs a terminal.
	res = e.tryBuild(dir, "-d", dest, "--progress", "tty")
	wantOutput(t, res, false, "--progress=tty: standard error is not a terminal")
}

// The image's layers are uploaded while the build goes on; the push then
// finds them: each blob is sent once, and the tag is set last.
func TestLayersUploadedAheadOfThePush(t *testing.T) {
	testutil.RequireRoot(t, "RUN with chroot isolation")
	e := newEnv(t)
	base := pushBusybox(e)
	dir := writeFiles(t, map[string]string{
		"Dockerfile": "FROM " + base + "\nCOPY f /f\nRUN echo one > /one\nRUN echo two > /two\n",
		"f":          "content",
	})
	mark := len(e.reg.Requests())
	e.build(dir, "-d", e.ref("test/ahead:1"))
	uploads := map[string]int{}
	lastBlob, tagAt := -1, -1
	for i, r := range e.reg.Requests()[mark:] {
		switch {
		case r.Method == http.MethodPut && strings.Contains(r.Path, "/blobs/uploads/"):
			d := r.Query[strings.Index(r.Query, "digest=")+len("digest="):]
			uploads[d]++
			lastBlob = i
		case r.Method == http.MethodPut && strings.HasSuffix(r.Path, "/manifests/1"):
			tagAt = i
		}
	}
	if len(uploads) != 4 { // three layers and the config
		t.Errorf("uploads %v", uploads)
	}
	for d, n := range uploads {
		if n != 1 {
			t.Errorf("%s uploaded %d times", d, n)
		}
	}
	if tagAt < lastBlob {
		t.Error("the tag was set before every blob was there")
	}
}
