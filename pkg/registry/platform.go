package registry

import (
	"fmt"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
)

// NormalizePlatform spells p as registries list it: architecture aliases
// resolved ("aarch64" is "arm64", "x86_64" is "amd64", "armhf" is arm/v7),
// an architecture's default variant explicit for arm ("v7") and implicit
// where manifests usually omit it (arm64's "v8", amd64's "v1").
func NormalizePlatform(p v1.Platform) v1.Platform {
	p.OS = strings.ToLower(p.OS)
	p.Architecture = strings.ToLower(p.Architecture)
	p.Variant = strings.ToLower(p.Variant)
	switch p.Architecture {
	case "x86_64", "x86-64":
		p.Architecture = "amd64"
	case "aarch64":
		p.Architecture = "arm64"
	case "armhf":
		p.Architecture, p.Variant = "arm", "v7"
	case "armel":
		p.Architecture, p.Variant = "arm", "v6"
	case "i386", "i686":
		p.Architecture = "386"
	}
	if len(p.Variant) == 1 && p.Variant[0] >= '1' && p.Variant[0] <= '9' {
		p.Variant = "v" + p.Variant // "7" is "v7"
	}
	switch {
	case p.Architecture == "arm64" && p.Variant == "v8",
		p.Architecture == "amd64" && p.Variant == "v1":
		p.Variant = ""
	case p.Architecture == "arm" && p.Variant == "":
		p.Variant = "v7"
	}
	return p
}

// platformRank says how well an index entry for platform have serves
// want (both normalized): 0 is no match, higher is better. The exact
// variant is best; an arm or amd64 CPU also runs the lower variants of its
// architecture, the closest preferred.
func platformRank(have, want v1.Platform) int {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return 0
	}
	if want.OSVersion != "" && have.OSVersion != want.OSVersion {
		return 0
	}
	if have.Variant == want.Variant || want.Variant == "" && have.Architecture != "amd64" {
		return 100
	}
	switch want.Architecture {
	case "arm", "amd64":
		h, w := variantLevel(have.Variant), variantLevel(want.Variant)
		if h > 0 && h < w {
			return h
		}
	}
	return 0
}

// variantLevel is N for "vN" (1 for amd64's implicit "v1"), 0 otherwise.
func variantLevel(v string) int {
	if v == "" {
		return 1
	}
	var n int
	if _, err := fmt.Sscanf(v, "v%d", &n); err != nil {
		return 0
	}
	return n
}

// selectManifest picks the entry of index that best serves platform; it
// skips entries without an image platform (attestations are
// "unknown/unknown"). An entry without a platform is taken as linux/amd64,
// as go-containerregistry does.
func selectManifest(index *v1.IndexManifest, platform v1.Platform) (v1.Descriptor, error) {
	want := NormalizePlatform(platform)
	best, bestRank := -1, 0
	var have []string
	for i, d := range index.Manifests {
		p := v1.Platform{OS: "linux", Architecture: "amd64"}
		if d.Platform != nil {
			p = NormalizePlatform(*d.Platform)
		}
		if p.OS == "unknown" {
			continue
		}
		have = append(have, p.String())
		if r := platformRank(p, want); r > bestRank {
			best, bestRank = i, r
		}
	}
	if best < 0 {
		return v1.Descriptor{}, fmt.Errorf("no image for %s in the index (it has %s)", want, strings.Join(have, ", "))
	}
	return index.Manifests[best], nil
}
