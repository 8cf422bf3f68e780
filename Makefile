# stampede: `make test` is what CI runs; `make demo` is the main job (no server needed).
SHELL := /bin/bash
GO ?= go
EXAMPLES := $(patsubst %/,%,$(wildcard _example/*/))

.PHONY: test demo deps vet build-examples fuzz bench bench-deps

test: deps vet build-examples
	$(GO) test -race -count=1 -timeout 8m ./...
	cd bench && $(GO) vet ./... && $(GO) build ./... && $(GO) test -count=1 ./internal/...

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./... $(addprefix ./,$(EXAMPLES))

# _example is ignored by ./... patterns, so each example is built on purpose.
build-examples:
	@for d in $(EXAMPLES); do echo "build ./$$d"; $(GO) build -o /dev/null ./$$d || exit 1; done

# The tests start their own redis-server processes on free loopback ports; install it where we can.
deps:
	@command -v redis-server >/dev/null 2>&1 || { \
		echo "installing redis-server"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server) >/dev/null 2>&1 \
		|| sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server' >/dev/null 2>&1 \
		|| echo "could not install redis-server: Redis tests will fail under CI=true"; }
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (for the stats page test)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium' >/dev/null 2>&1 \
		|| echo "could not install chromium: the browser test will fail under CI=true"; }

# The Zipf trace with and without the middleware, in-memory store, no server; about half a minute.
demo:
	cd bench && $(GO) run ./cmd/demo

# Longer fuzzing than the seed-corpus runs in `make test`.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./internal/entry
	$(GO) test -run=^$$ -fuzz=FuzzQueryCanonical -fuzztime=$(FUZZTIME) .
	$(GO) test -run=^$$ -fuzz=FuzzPathCanonical -fuzztime=$(FUZZTIME) .
	$(GO) test -run=^$$ -fuzz=FuzzParseCacheControl -fuzztime=$(FUZZTIME) .

# A longer soak than the 10 s one in `make test`: a real server under mixed hits, misses and one-off
# keys against a 4 MiB memory store; prints the heap and goroutine figures.
SOAK ?= 60s
.PHONY: soak
soak:
	STAMPEDE_SOAK=$(SOAK) $(GO) test -count=1 -timeout 30m -run '^TestSoak$$' -v .

# The full suite: the root benchmarks, then bench/ (a module of its own), which writes BENCHMARKS.md and
# docs/bench-*.png, with Redis through a redis-server it starts and stops. GOCHI_STAMPEDE=DIR also
# measures go-chi/stampede from a checkout of it (git clone -b v0.9.1 https://github.com/go-chi/stampede
# DIR); without it that column of the report is skipped.
GOCHI_STAMPEDE ?=
bench: bench-deps
	$(GO) test -run=^$$ -bench=. -benchmem -count=5 . ./backends/...
	cd bench && $(GO) run ./cmd/bench -redis auto $(if $(GOCHI_STAMPEDE),-gochi $(abspath $(GOCHI_STAMPEDE)))

bench-deps:
	@for p in redis-server wrk; do command -v $$p >/dev/null 2>&1 || { \
		echo "installing $$p"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$p) >/dev/null 2>&1 \
		|| sudo -n sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$p" >/dev/null 2>&1 \
		|| echo "could not install $$p: the parts that need it are skipped"; }; done
