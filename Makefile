# vibe: build, install and test. `make check` is the whole test suite.
GO      ?= go
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS := -X github.com/vibesandbox/vibe/internal/version.Version=$(VERSION)
FUZZTIME ?= 30s
# Fuzzing runs on Go 1.27.3, which the go command fetches from the module
# proxy: on 1.26 a -fuzztime deadline can race the coordinator and fail a
# target that found nothing (go.dev/issue/75804, fixed in 1.27).
FUZZGO  ?= GOTOOLCHAIN=go1.27.3 $(GO)

.PHONY: all build install check lint test testenv unit deps fuzz bench golden clean

all: build

build:
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/vibe-build ./cmd/vibe-build
	$(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/vibe ./cmd/vibe

install: build
	install -d $(DESTDIR)$(BINDIR)
	install -m 0755 bin/vibe-build bin/vibe $(DESTDIR)$(BINDIR)/

# The whole suite: formatting, vet, shellcheck, and every test with the
# validators and namespace tests required (VIBE_TEST_STRICT=1 turns a missing
# tool or missing root into a failure, never a skip). Needs root and
# `make deps` (or scripts/test-deps) once.
check: lint testenv test

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi
	$(GO) vet ./...
	shellcheck scripts/test-deps scripts/testenv scripts/bench-bake scripts/bench-up scripts/bench-verify scripts/bench-gateway scripts/bench-workspace .ci/run cmd/vibe/testdata/root-writable.sh

# -p 1: the end-to-end packages share one incus daemon.
test:
	VIBE_TEST_STRICT=1 VIBE_E2E=1 $(GO) test -p 1 -count=1 -timeout 40m ./...

# A real incus daemon and the local base image for the end-to-end tests.
testenv:
	scripts/testenv

# Unit tests only: runs anywhere, skips what needs root or validators.
unit:
	$(GO) test ./...

deps:
	scripts/test-deps

fuzz:
	$(FUZZGO) test ./allowlist -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./config -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./config -run '^$$' -fuzz FuzzProjectKeys -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./sandbox -run '^$$' -fuzz FuzzParseMountinfo -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./sandbox -run '^$$' -fuzz FuzzCommandFiles -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./sandbox -run '^$$' -fuzz FuzzSplitAlias -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./sandbox -run '^$$' -fuzz FuzzIndexGitlinks -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./sandbox -run '^$$' -fuzz FuzzRefIDs -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./sandbox -run '^$$' -fuzz FuzzHasOffsetTable -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./workspace -run '^$$' -fuzz FuzzParseList -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./secrets -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./images -run '^$$' -fuzz FuzzReadMetaTarball -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./signing -run '^$$' -fuzz FuzzParseAllowedSigners -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./signing -run '^$$' -fuzz FuzzCheck -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./signing -run '^$$' -fuzz FuzzParseEnvelope -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./streams -run '^$$' -fuzz FuzzOpen -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./gateway -run '^$$' -fuzz FuzzRequest -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./gateway -run '^$$' -fuzz FuzzReadEntries -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./distro -run '^$$' -fuzz FuzzParseSources -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./sbom -run '^$$' -fuzz FuzzParseInventory -fuzztime $(FUZZTIME)
	$(FUZZGO) test ./sbom -run '^$$' -fuzz 'FuzzParse$$' -fuzztime $(FUZZTIME)

bench: build
	$(GO) test ./cloudinit -run '^$$' -bench . -benchmem
	$(GO) test ./sandbox -run '^$$' -bench GitHostRun -benchtime 5x
	scripts/bench-bake
	scripts/bench-up
	scripts/bench-verify
	$(GO) test ./gateway -run '^$$' -bench . -benchtime 3x
	scripts/bench-gateway
	scripts/bench-workspace

# Rewrite golden files after an intended change; review the diff.
golden:
	$(GO) test ./cloudinit -run TestGolden -update

clean:
	rm -rf bin
