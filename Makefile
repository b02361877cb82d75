# kiln — see README.md. Every target works on a fresh Linux machine with Go.
GO        ?= go
VERSION   ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS   := -s -w -X github.com/kiln-build/kiln/pkg/cli.Version=$(VERSION)
TEST_TIMEOUT ?= 20m

.PHONY: all build demo test test-deps unit bench conformance images e2e-runtime lint clean

all: build

## build: static bin/kiln, also runnable as bin/executor (kaniko's name)
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

## bench: benchmarks (speed is measured here, never asserted in tests)
bench:
	$(GO) test -run '^$$' -bench . -benchmem ./pkg/snapshot ./pkg/rootfs ./pkg/copier ./pkg/layer

## images: kiln's executor images (kiln:executor, kiln:debug), built by kiln itself;
## PLATFORM=linux/arm64 BUSYBOX=... for another platform, PUSH=1 REPO=registry/kiln to push
images:
	hack/images.sh

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
	pkg/buildcontext:FuzzIgnore pkg/registry:FuzzParseDockerConfig pkg/copier:FuzzAddArchive
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
	rm -rf bin
