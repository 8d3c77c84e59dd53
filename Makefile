# keyd: build, run, test.
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X main.version=$(VERSION)
BUILD   := build

export CGO_ENABLED := 1

# Build times. The first build compiles Go's standard library, the
# dependencies and SQLite's C amalgamation (cgo, one 9 MB file that takes
# gcc 40-45 s of CPU): about 145 s of CPU in all, so over a minute on 2 idle
# cores, and 3.5 and 6 minutes measured on 2 cores busy with other work;
# later builds take seconds. vet gets build's BUILDFLAGS so that it reuses
# build's cached packages instead of compiling SQLite again (vet after
# build: 20 s of CPU, not 155-175 s). make test's -race build cannot share
# them and compiles everything once more the first time. Measured with a
# cold cache, twice each, and not taken: CGO_CFLAGS=-O2 without -g saves
# 6-10 s of gcc's CPU but parts make's cache from that of plain go
# commands; -O1 saves 30 s but optimises less the SQLite that every write
# runs through; -tags libsqlite3 (Debian's libsqlite3-dev) saves 40 s but
# swaps the SQLite keyd is tested with (3.54) for the system's (3.40 on
# Debian 12).
BUILDFLAGS := -trimpath

.PHONY: build run test test-postgres postgresql lint vet fmt-check fmt clean e2e bench bench-large bench-cluster soak fuzz

## build: compile keyd into build/keyd, version stamped
build:
	@echo "building keyd; the first build compiles SQLite (cgo) and Go's standard library: 1 to 6 minutes on 2 cores, depending on load; later builds take seconds"
	$(GO) build $(BUILDFLAGS) -ldflags "$(LDFLAGS)" -o $(BUILD)/keyd ./cmd/keyd

## run: start keyd on 127.0.0.1:8080 with ./keyd.db (created and migrated on start)
run: build
	./$(BUILD)/keyd serve

## test: vet, gofmt check and every test with the race detector
test: lint
	@echo "testing with the race detector; the first run compiles everything (SQLite too) once more for it: several minutes on 2 cores"
	$(GO) test -race -count=1 ./...

## test-postgres: the tests again on PostgreSQL (build tag postgres), each
## test binary against a private PostgreSQL server of its own
## (store/postgres/pgtest), then the cluster tests (three keyd processes on
## one PostgreSQL); installs Debian's postgresql package when no initdb is
## found. Add a package whose tests run on both engines to POSTGRES_PKGS.
POSTGRES_PKGS := \
	./store \
	./store/postgres \
	./store/postgres/pgtest \
	./plugin-api \
	./plugin-api/console \
	./webhooks
test-postgres: postgresql
	$(GO) vet $(BUILDFLAGS) -tags postgres $(POSTGRES_PKGS) ./cmd/keyd
	$(GO) test -race -count=1 -tags postgres $(POSTGRES_PKGS)
	$(GO) test -race -count=1 -tags postgres -run '^TestCluster' ./cmd/keyd

# postgresql: the PostgreSQL server binaries that test-postgres and
# bench-cluster start a private server from; Debian's postgresql package
# is installed when no initdb is found (its own server is left stopped).
postgresql:
	@if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then \
		echo "installing PostgreSQL (Debian's postgresql package)"; \
		apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq postgresql && \
		{ service postgresql stop >/dev/null 2>&1 || true; }; \
	fi

## fuzz: run every fuzz target for FUZZTIME each (their seeds also run in make test)
FUZZTIME ?= 30s
FUZZ_TARGETS := \
	plugin-api:FuzzValidateRequest plugin-api:FuzzPlainValidImpliesValid plugin-api:FuzzDurationFieldsAgree \
	plugin-api:FuzzValidateFormAgreesWithParseQuery plugin-api:FuzzAliasBodies plugin-api:FuzzGracePeriod \
	store:FuzzScopeRules store:FuzzSiteMatching store:FuzzParseDuration \
	webhooks:FuzzValidateURL webhooks:FuzzMatchEventPattern
fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; name=$${t#*:}; \
		echo "== $$name ./$$pkg ($(FUZZTIME))"; \
		$(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) ./$$pkg; \
	done

## e2e: the WordPress stub in a real WordPress (MariaDB, PHP, headless Chromium)
## against a real keyd, then the owner console in headless Chromium (with
## axe-core; screenshots in build/e2e/console); installs what is missing
## (Debian packages, npm)
e2e: build
	bash wp-plugin-stub/e2e/run.sh
	bash plugin-api/console/e2e/run.sh

## soak: mixed load against the real binary for SOAK_DURATION (default 10m);
## keyd's memory, goroutines, threads and open files must stay level and no
## request may fail other than by design
SOAK_DURATION ?= 10m
soak:
	KEYD_SOAK=$(SOAK_DURATION) $(GO) test -tags soak -run '^TestSoak$$' -count=1 -timeout 0 -v ./cmd/keyd

## lint: go vet and a gofmt check
lint: vet fmt-check

vet:
	$(GO) vet $(BUILDFLAGS) ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf $(BUILD)

## bench: seed 1M keys, start keyd (defaults) beside a bare gin floor, load both over loopback; table and build/bench/bench.json
bench: build
	$(GO) build $(BUILDFLAGS) -o $(BUILD)/keyd-load ./cmd/keyd-load
	./$(BUILD)/keyd-load bench --keyd $(BUILD)/keyd --out $(BUILD)/bench --keys 1000000 $(BENCH_FLAGS)

## bench-large: the same at 10M keys against 10k (seeding takes minutes); build/bench/bench-large.json
bench-large: build
	$(GO) build $(BUILDFLAGS) -o $(BUILD)/keyd-load ./cmd/keyd-load
	./$(BUILD)/keyd-load bench --keyd $(BUILD)/keyd --out $(BUILD)/bench --keys 10000000 --name bench-large $(BENCH_FLAGS)

## bench-cluster: a private PostgreSQL and three keyd replicas on it: validate and usage load on all of them, revocation trials under validate load against one keyd on SQLite; table and build/bench/bench-cluster.json (installs PostgreSQL like test-postgres)
bench-cluster: build postgresql
	$(GO) build $(BUILDFLAGS) -o $(BUILD)/keyd-load ./cmd/keyd-load
	./$(BUILD)/keyd-load cluster --keyd $(BUILD)/keyd --out $(BUILD)/bench $(BENCH_FLAGS)
