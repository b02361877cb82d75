package main

import (
	"bytes"
	"math"
	"strings"
	"testing"
)

func rec(shape, mode, builder, run string, wall, cpu float64, rssKB int64, ok bool, layers ...string) record {
	r := record{Labels: map[string]string{"shape": shape, "mode": mode, "builder": builder, "run": run},
		WallS: wall, CPUS: cpu, PeakTreeRSSKB: rssKB, MaxProcRSSKB: rssKB / 2, OK: ok}
	if layers != nil {
		r.Image = &imageInfo{Layers: layers, Bytes: 1 << 20}
	}
	return r
}

func TestSummarizeMediansAndRatios(t *testing.T) {
	recs := []record{
		rec("a", "cold", "buildah", "1", 2.0, 1.0, 40<<10, true),
		rec("a", "cold", "kiln", "1", 0.3, 0.2, 20<<10, true),
		rec("a", "cold", "kiln", "2", 0.1, 0.1, 10<<10, true),
		rec("a", "cold", "kiln", "3", 0.2, 0.3, 30<<10, true),
		rec("a", "cold", "kiln", "4", 99, 99, 99<<10, false), // failed: not in the medians
		rec("a", "cold", "buildah", "2", 4.0, 3.0, 60<<10, true),
	}
	sums, ratios := summarize(recs)
	if len(sums) != 2 || sums[0].Builder != "kiln" || sums[1].Builder != "buildah" {
		t.Fatalf("summaries %+v, want kiln then buildah", sums)
	}
	k, b := sums[0], sums[1]
	if k.Runs != 4 || k.OK != 3 {
		t.Errorf("kiln runs %d ok %d, want 4 and 3", k.Runs, k.OK)
	}
	if k.WallS != 0.2 || k.WallMinS != 0.1 || k.WallMaxS != 0.3 || k.CPUS != 0.2 || k.PeakTreeRSSMB != 20 {
		t.Errorf("kiln medians %+v", k)
	}
	if b.WallS != 3.0 || b.CPUS != 2.0 || b.PeakTreeRSSMB != 50 { // even count: mean of the middle two
		t.Errorf("buildah medians %+v", b)
	}
	if len(ratios) != 1 {
		t.Fatalf("ratios %+v, want one", ratios)
	}
	r := ratios[0]
	if math.Abs(r.Wall-0.2/3.0) > 1e-9 || math.Abs(r.CPU-0.1) > 1e-9 || math.Abs(r.PeakTreeRSS-0.4) > 1e-9 {
		t.Errorf("ratio %+v", r)
	}
}

func TestSummarizeWarmLayersAgainstPrime(t *testing.T) {
	recs := []record{
		rec("c", "prime", "kiln", "1", 5, 5, 1, true, "sha256:a", "sha256:b"),
		rec("c", "warm", "kiln", "1", 1, 1, 1, true, "sha256:a", "sha256:b"),
		rec("c", "prime", "kiln", "2", 5, 5, 1, true, "sha256:a", "sha256:c"),
		rec("c", "warm", "kiln", "2", 1, 1, 1, true, "sha256:a", "sha256:d"),
	}
	sums, _ := summarize(recs)
	var warm *summary
	for i := range sums {
		if sums[i].Mode == "warm" {
			warm = &sums[i]
		}
	}
	if warm == nil || warm.SameLayersAsPrime == nil || *warm.SameLayersAsPrime != 1 {
		t.Fatalf("warm summary %+v, want 1 run with the prime's layers", warm)
	}
	if sums[0].Mode != "prime" {
		t.Errorf("prime should come before warm: %+v", sums)
	}
}

func TestReadRecordsNamesTheBadLine(t *testing.T) {
	_, err := readRecords(strings.NewReader("{\"ok\":true}\n\n{oops\n"))
	if err == nil || !strings.Contains(err.Error(), "line 3") {
		t.Errorf("error %v, want one naming line 3", err)
	}
}

func TestTableShowsFailuresAndRatio(t *testing.T) {
	recs := []record{
		rec("b", "cold", "kiln", "1", 5, 4, 30<<10, true),
		rec("b", "cold", "buildah", "1", 10, 8, 300<<10, true),
		rec("d", "cold", "kiln", "1", 1, 1, 1, false),
	}
	sums, ratios := summarize(recs)
	var out bytes.Buffer
	if err := writeTable(&out, report{Meta: []metaItem{{"runs", "1"}}, Summaries: sums, Ratios: ratios}); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	for _, want := range []string{"runs: 1", "kiln/buildah", "0.50", "0.10", "FAILED"} {
		if !strings.Contains(s, want) {
			t.Errorf("table lacks %q:\n%s", want, s)
		}
	}
}
