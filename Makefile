# kiln — see README.md. Every target works on a fresh Linux machine with Go.
GO        ?= go
# Version, commit and build date stamped into the binary (kiln version); the
# date is the commit's time, so a commit always gives the same binary.
VERSION   ?= $(shell hack/version.sh version)
LDFLAGS   := $(shell VERSION='$(VERSION)' hack/version.sh ldflags)
TEST_TIMEOUT ?= 20m

.PHONY: all build demo test test-deps unit bench bench-go bench-e2e conformance images release e2e-runtime lint clean

all: build

## build: static bin/kiln, also runnable as bin/executor (kaniko's name), stamped
## with version, commit and build date (bin/kiln version)
build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/kiln ./cmd/kiln
	ln -sf kiln bin/executor

## demo: the main job — build an example with RUN steps and push it to a local registry
demo:
	hack/demo.sh

## test: everything CI runs (installs test packages when root)
test: test-deps build
	KILN_BINARY=$(CURDIR)/bin/kiln $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./...

test-deps:
	hack/test-deps.sh

## unit: the fast tests only
unit:
	$(GO) test -short ./pkg/...

## bench: benchmarks (speed is measured here, never asserted in tests): the Go
## micro-benchmarks, then the end-to-end builds against buildah
bench:
	@$(MAKE) --no-print-directory bench-go
	@$(MAKE) --no-print-directory bench-e2e

## bench-go: the Go micro-benchmarks; BENCH_TMPFS=1 puts their temporary trees in /dev/shm
bench-go:
	@if [ "$(BENCH_TMPFS)" = 1 ]; then d=$$(mktemp -d /dev/shm/kiln-bench-go.XXXXXX) && trap 'rm -rf "$$d"' EXIT && export TMPDIR="$$d"; fi; \
	set -x; $(GO) test -run '^$$' -bench . -benchmem ./pkg/snapshot ./pkg/rootfs ./pkg/copier ./pkg/layer ./pkg/cache

## bench-e2e: four image shapes built by kiln and buildah against a local registry,
## side by side (hack/bench.sh: root; BENCH_RUNS, BENCH_SHAPES, BENCH_TMPFS=1...)
bench-e2e:
	hack/bench.sh

## images: kiln's executor images (kiln:executor, kiln:debug), built by kiln itself;
## PLATFORM=linux/arm64 BUSYBOX=... for another platform, PUSH=1 REPO=registry/kiln to push
images:
	hack/images.sh

## release: dist/: static kiln binaries for linux/amd64 and linux/arm64 with SHA256SUMS,
## the executor and debug images for both (one tag per platform, one manifest list per
## image) in the OCI layout dist/oci, reproducibly; PUSH=1 REPO=registry/kiln pushes them
release:
	VERSION='$(VERSION)' hack/release.sh

## e2e-runtime: the debug image under runc with a default Kubernetes pod's security (also part of test)
e2e-runtime: test-deps build
	KILN_BINARY=$(CURDIR)/bin/kiln $(GO) test -count=1 -v -run 'TestExecutorImageUnderRunc' ./integration/

## conformance: the Dockerfile corpus in ../shared/conformance, against buildah
conformance: build
	hack/conformance.sh

## fuzz: every fuzz target in turn, FUZZTIME each (one worker: the machine is shared);
## FUZZTIMEOUT bounds each run, so that an input that hangs is reported with its stacks
FUZZTIME ?= 1m
FUZZTIMEOUT ?= 1h
FUZZ_TARGETS := pkg/dockerfile:FuzzParsePlanExpand pkg/rootfs:FuzzApply pkg/buildcontext:FuzzExtractContext \
	pkg/buildcontext:FuzzIgnore pkg/registry:FuzzParseDockerConfig pkg/copier:FuzzAddArchive pkg/cache:FuzzReadHeaders
.PHONY: fuzz
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t##*:}; \
		echo "== $$name in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) -timeout $(FUZZTIMEOUT) -parallel 1 ./$$pkg; \
	done

lint:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...

clean:
	rm -rf bin dist
