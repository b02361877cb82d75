package deploy_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"unicode"

	"github.com/spf13/pflag"

	"github.com/kiln-build/kiln/pkg/cli"
)

// markdownFiles are the README, the docs and the documents of deploy/,
// where deploy material is described.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(repoRoot, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	if readme := filepath.Join(repoRoot, "README.md"); fileExists(readme) {
		files = append(files, readme)
	}
	return append(files, deployFiles(t, kindDoc)...)
}

var (
	reLink    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	reHeading = regexp.MustCompile(`(?m)^#{1,6} +(.+?) *$`)
)

// anchors are the GitHub anchors of a Markdown file's headings.
func anchors(md string) map[string]bool {
	out := map[string]bool{}
	for _, m := range reHeading.FindAllStringSubmatch(md, -1) {
		var b strings.Builder
		for _, r := range strings.ToLower(m[1]) {
			switch {
			case r == ' ':
				b.WriteRune('-')
			case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
				b.WriteRune(r)
			}
		}
		out[b.String()] = true
	}
	return out
}

// TestDocsLinks: every relative link of the docs leads to a file of the
// repository, and every #anchor to a heading of its file.
func TestDocsLinks(t *testing.T) {
	links := 0
	for _, f := range markdownFiles(t) {
		md := readFile(t, f)
		// Code blocks hold no links.
		for _, b := range codeBlocks(md) {
			md = strings.Replace(md, b.text, "", 1)
		}
		for _, m := range reLink.FindAllStringSubmatch(md, -1) {
			target := m[1]
			if strings.Contains(target, "://") || strings.HasPrefix(target, "mailto:") {
				continue
			}
			links++
			file, anchor, _ := strings.Cut(target, "#")
			p := f
			if file != "" {
				p = filepath.Join(filepath.Dir(f), file)
				if !fileExists(p) {
					t.Errorf("%s: link %q: no such file", f, target)
					continue
				}
			}
			if anchor != "" && !anchors(readFile(t, p))[anchor] {
				t.Errorf("%s: link %q: no heading with that anchor in %s", f, target, p)
			}
		}
	}
	if links == 0 {
		t.Error("no relative link in the docs")
	}
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}

// codeBlock is a fenced code block of a Markdown file.
type codeBlock struct {
	lang string
	line int // of its first line of code
	text string
}

var fence = regexp.MustCompile("^(```+)\\s*(\\S*)")

func codeBlocks(md string) []codeBlock {
	var blocks []codeBlock
	var cur *codeBlock
	var open string
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		switch m := fence.FindStringSubmatch(trimmed); {
		case cur == nil && m != nil:
			cur, open = &codeBlock{lang: m[2], line: i + 2}, m[1]
		case cur != nil && strings.HasPrefix(trimmed, open) && strings.Trim(trimmed, "`") == "":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		}
	}
	return blocks
}

// TestDocsCommands parses the kiln command lines of the docs' shell and
// Jenkinsfile examples.
func TestDocsCommands(t *testing.T) {
	c := docsChecker()
	commands := 0
	for _, f := range markdownFiles(t) {
		for _, b := range codeBlocks(readFile(t, f)) {
			where := f + ":" + strings.TrimSpace(strings.SplitN(b.text, "\n", 2)[0])
			switch b.lang {
			case "sh", "shell", "bash", "console":
				commands += c.checkScript(t, where, b.text)
			case "groovy":
				src, err := lexGroovy(b.text)
				if err != nil {
					t.Errorf("%s: %v", where, err)
					continue
				}
				for _, m := range reShStep.FindAllStringSubmatch(src.code, -1) {
					commands += c.checkScript(t, where, src.str(m[1]).value)
				}
			}
		}
	}
	if commands == 0 {
		t.Errorf("no kiln command line in the docs")
	}
}

var (
	reTableRow = regexp.MustCompile(`^\|(.*)\|\s*$`)
	reFlagCode = regexp.MustCompile("`(--?[a-z0-9-]+)`")
)

// TestMigrationTable checks the flag table of "Migrating from kaniko":
// kiln's column names real flags, the flags it says kiln does not support
// yet are ones kiln knows and refuses, and every flag of `kiln build`
// appears.
func TestMigrationTable(t *testing.T) {
	var section string
	for _, f := range markdownFiles(t) {
		md := readFile(t, f)
		if i := strings.Index(md, "## Migrating from kaniko"); i >= 0 {
			if section != "" {
				t.Fatalf("two sections \"Migrating from kaniko\"")
			}
			section = md[i:]
			if j := strings.Index(section[3:], "\n## "); j >= 0 {
				section = section[:j+3]
			}
		}
	}
	if section == "" {
		t.Fatal("no section \"Migrating from kaniko\" in the docs")
	}
	flagsAt := strings.Index(section, "### Flags")
	if flagsAt < 0 {
		t.Fatal("no \"### Flags\" table")
	}
	build, _, err := cli.NewRootCommand().Find([]string{"build"})
	if err != nil {
		t.Fatal(err)
	}
	lookup := func(flag string) *pflag.Flag {
		if strings.HasPrefix(flag, "--") {
			if f := build.Flags().Lookup(flag[2:]); f != nil {
				return f
			}
			return build.InheritedFlags().Lookup(flag[2:])
		}
		return build.Flags().ShorthandLookup(flag[1:])
	}
	mentioned := map[string]bool{}
	rows := 0
	for _, line := range strings.Split(section[flagsAt:], "\n") {
		m := reTableRow.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		cells := strings.Split(m[1], "|")
		if len(cells) != 3 || strings.TrimSpace(cells[0]) == "kaniko" || strings.HasPrefix(strings.TrimSpace(cells[0]), "---") {
			continue
		}
		rows++
		kiln := strings.TrimSpace(cells[1])
		if kiln == "not yet" {
			for _, k := range reFlagCode.FindAllStringSubmatch(cells[0], -1) {
				if f := lookup(k[1]); f == nil || !f.Hidden {
					t.Errorf("%s: the table says kiln refuses it, but kiln does not know it as an unsupported flag", k[1])
				}
			}
			continue
		}
		flags := reFlagCode.FindAllStringSubmatch(kiln, -1)
		if len(flags) == 0 {
			t.Errorf("row %q: no kiln flag", line)
		}
		for _, k := range flags {
			f := lookup(k[1])
			if f == nil {
				t.Errorf("%s: not a flag of kiln build", k[1])
				continue
			}
			mentioned[f.Name] = true
		}
	}
	if rows == 0 {
		t.Fatal("the flag table has no rows")
	}
	for _, fs := range []*pflag.FlagSet{build.Flags(), build.InheritedFlags()} {
		fs.VisitAll(func(f *pflag.Flag) {
			if !f.Hidden && !mentioned[f.Name] {
				t.Errorf("--%s: a flag of kiln build missing from the migration table", f.Name)
			}
		})
	}
}

// TestCIRecipes: the README's "CI recipes" section links every file of
// deploy/, so that none is missing from the index users read.
func TestCIRecipes(t *testing.T) {
	md := readFile(t, filepath.Join(repoRoot, "README.md"))
	start := strings.Index(md, "\n## CI recipes\n")
	if start < 0 {
		t.Fatal(`README.md: no section "## CI recipes"`)
	}
	section := md[start+1:]
	if end := strings.Index(section, "\n## "); end >= 0 {
		section = section[:end]
	}
	linked := map[string]bool{}
	for _, m := range reLink.FindAllStringSubmatch(section, -1) {
		file, _, _ := strings.Cut(m[1], "#")
		linked[filepath.Clean(file)] = true
	}
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(path, ".go") {
			return err
		}
		if !linked[filepath.Join("deploy", path)] {
			t.Errorf("deploy/%s: not linked from the README's CI recipes", filepath.ToSlash(path))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
