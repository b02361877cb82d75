package main

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
)

// summary is one shape, mode and builder over all its runs.
type summary struct {
	Shape   string `json:"shape"`
	Mode    string `json:"mode"`
	Builder string `json:"builder"`
	Runs    int    `json:"runs"`
	OK      int    `json:"ok"`
	// Medians over the successful runs.
	WallS         float64 `json:"wall_s"`
	WallMinS      float64 `json:"wall_min_s"`
	WallMaxS      float64 `json:"wall_max_s"`
	CPUS          float64 `json:"cpu_s"`
	PeakTreeRSSMB float64 `json:"peak_tree_rss_mb"`
	MaxProcRSSMB  float64 `json:"max_proc_rss_mb"`
	ImageMB       float64 `json:"image_mb,omitempty"`
	// For warm runs: how many pushed the same layers as their priming build.
	SameLayersAsPrime *int `json:"same_layers_as_prime,omitempty"`
}

// ratio is kiln's median over buildah's for one shape and mode.
type ratio struct {
	Shape       string  `json:"shape"`
	Mode        string  `json:"mode"`
	Wall        float64 `json:"wall"`
	CPU         float64 `json:"cpu"`
	PeakTreeRSS float64 `json:"peak_tree_rss"`
	MaxProcRSS  float64 `json:"max_proc_rss"`
}

type report struct {
	Meta      []metaItem `json:"meta"`
	Summaries []summary  `json:"summary"`
	Ratios    []ratio    `json:"ratios"`
	Records   []record   `json:"records"`
}

type metaItem struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func readRecords(r io.Reader) ([]record, error) {
	var recs []record
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for n := 1; sc.Scan(); n++ {
		if len(bytes.TrimSpace(sc.Bytes())) == 0 {
			continue
		}
		var rec record
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		recs = append(recs, rec)
	}
	return recs, sc.Err()
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	if n := len(s); n%2 == 1 {
		return s[n/2]
	} else {
		return (s[n/2-1] + s[n/2]) / 2
	}
}

// order puts known names first, in this order, the rest after, sorted.
func order(known ...string) func(a, b string) int {
	rank := func(s string) int {
		if i := slices.Index(known, s); i >= 0 {
			return i
		}
		return len(known)
	}
	return func(a, b string) int {
		return cmp.Or(cmp.Compare(rank(a), rank(b)), strings.Compare(a, b))
	}
}

var (
	modeOrder    = order("cold", "prime", "warm", "nodeprime", "node")
	builderOrder = order("kiln", "buildah")
)

func summarize(recs []record) ([]summary, []ratio) {
	type key struct{ shape, mode, builder string }
	groups := map[key][]record{}
	prime := map[string][]string{} // shape/builder/run -> layers of the priming build
	for _, r := range recs {
		k := key{r.Labels["shape"], r.Labels["mode"], r.Labels["builder"]}
		groups[k] = append(groups[k], r)
		if k.mode == "prime" && r.OK && r.Image != nil {
			prime[k.shape+"/"+k.builder+"/"+r.Labels["run"]] = r.Image.Layers
		}
	}
	keys := make([]key, 0, len(groups))
	for k := range groups {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b key) int {
		return cmp.Or(strings.Compare(a.shape, b.shape), modeOrder(a.mode, b.mode), builderOrder(a.builder, b.builder))
	})
	var sums []summary
	for _, k := range keys {
		s := summary{Shape: k.shape, Mode: k.mode, Builder: k.builder, Runs: len(groups[k])}
		var wall, cpu, tree, proc, image []float64
		same := 0
		for _, r := range groups[k] {
			if !r.OK {
				continue
			}
			s.OK++
			wall = append(wall, r.WallS)
			cpu = append(cpu, r.CPUS)
			tree = append(tree, float64(r.PeakTreeRSSKB)/1024)
			proc = append(proc, float64(r.MaxProcRSSKB)/1024)
			if r.Image != nil {
				image = append(image, float64(r.Image.Bytes)/(1<<20))
				if p, ok := prime[k.shape+"/"+k.builder+"/"+r.Labels["run"]]; ok && slices.Equal(p, r.Image.Layers) {
					same++
				}
			}
		}
		if s.OK > 0 {
			s.WallS, s.WallMinS, s.WallMaxS = median(wall), slices.Min(wall), slices.Max(wall)
			s.CPUS, s.PeakTreeRSSMB, s.MaxProcRSSMB = median(cpu), median(tree), median(proc)
			s.ImageMB = median(image)
		}
		if k.mode == "warm" {
			s.SameLayersAsPrime = &same
		}
		sums = append(sums, s)
	}
	var ratios []ratio
	for i, a := range sums {
		if a.Builder != "kiln" || a.OK == 0 {
			continue
		}
		for _, b := range sums[i+1:] {
			if b.Shape == a.Shape && b.Mode == a.Mode && b.Builder == "buildah" && b.OK > 0 {
				ratios = append(ratios, ratio{Shape: a.Shape, Mode: a.Mode,
					Wall: a.WallS / b.WallS, CPU: a.CPUS / b.CPUS,
					PeakTreeRSS: a.PeakTreeRSSMB / b.PeakTreeRSSMB, MaxProcRSS: a.MaxProcRSSMB / b.MaxProcRSSMB})
			}
		}
	}
	return sums, ratios
}

func writeTable(w io.Writer, rep report) error {
	for _, m := range rep.Meta {
		fmt.Fprintf(w, "%s: %s\n", m.Key, m.Value)
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "shape\tmode\tbuilder\tok\twall s\t(min-max)\tcpu s\trss MB tree\trss MB largest\timage MB\t")
	for _, s := range rep.Summaries {
		if s.OK == 0 {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\tFAILED\t\t\t\t\t\t\n", s.Shape, s.Mode, s.Builder, s.OK, s.Runs)
			continue
		}
		extra := ""
		if s.SameLayersAsPrime != nil {
			extra = fmt.Sprintf("  layers as prime: %d/%d", *s.SameLayersAsPrime, s.OK)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%.2f\t(%.2f-%.2f)\t%.2f\t%.0f\t%.0f\t%.1f\t%s\n", s.Shape, s.Mode, s.Builder,
			s.OK, s.Runs, s.WallS, s.WallMinS, s.WallMaxS, s.CPUS, s.PeakTreeRSSMB, s.MaxProcRSSMB, s.ImageMB, extra)
		for _, r := range rep.Ratios {
			if r.Shape == s.Shape && r.Mode == s.Mode && s.Builder == "buildah" {
				fmt.Fprintf(tw, "%s\t%s\tkiln/buildah\t\t%.2f\t\t%.2f\t%.2f\t%.2f\t\t\n", r.Shape, r.Mode,
					r.Wall, r.CPU, r.PeakTreeRSS, r.MaxProcRSS)
			}
		}
	}
	return tw.Flush()
}

func reportCmd(args []string) error {
	fs := flag.NewFlagSet("report", flag.ExitOnError)
	recordsPath := fs.String("records", "", "records written by measure (JSON lines)")
	txtPath := fs.String("txt", "", "write the table here (and print it)")
	jsonPath := fs.String("json", "", "write the summary, ratios and every record here")
	var meta kvFlag
	fs.Var(&meta, "meta", "KEY=VALUE printed above the table and stored (repeatable, in order)")
	fs.Parse(args)
	if *recordsPath == "" {
		return fmt.Errorf("-records is required")
	}
	f, err := os.Open(*recordsPath)
	if err != nil {
		return err
	}
	recs, err := readRecords(f)
	f.Close()
	if err != nil {
		return fmt.Errorf("%s: %w", *recordsPath, err)
	}
	rep := report{Records: recs}
	for _, kv := range meta {
		k, v, _ := strings.Cut(kv, "=")
		rep.Meta = append(rep.Meta, metaItem{k, v})
	}
	rep.Summaries, rep.Ratios = summarize(recs)
	var table bytes.Buffer
	if err := writeTable(&table, rep); err != nil {
		return err
	}
	os.Stdout.Write(table.Bytes())
	if *txtPath != "" {
		if err := os.WriteFile(*txtPath, table.Bytes(), 0o644); err != nil {
			return err
		}
	}
	if *jsonPath != "" {
		b, err := json.MarshalIndent(rep, "", "  ")
		if err != nil {
			return err
		}
		if err := os.WriteFile(*jsonPath, append(b, '\n'), 0o644); err != nil {
			return err
		}
	}
	return nil
}
