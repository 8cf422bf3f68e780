# stampede: `make test` is what CI runs; `make demo` is the main job (no server needed).
SHELL := /bin/bash
GO ?= go
EXAMPLES := $(patsubst %/,%,$(wildcard _example/*/))

.PHONY: test demo deps vet build-examples fuzz bench

test: deps vet build-examples
	$(GO) test -race -count=1 -timeout 8m ./...

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

demo:
	$(GO) run ./_example/simple -demo

# Longer fuzzing than the seed-corpus runs in `make test`.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=^$$ -fuzz=FuzzParse -fuzztime=$(FUZZTIME) ./internal/entry
	$(GO) test -run=^$$ -fuzz=FuzzQueryCanonical -fuzztime=$(FUZZTIME) .
	$(GO) test -run=^$$ -fuzz=FuzzPathCanonical -fuzztime=$(FUZZTIME) .
	$(GO) test -run=^$$ -fuzz=FuzzParseCacheControl -fuzztime=$(FUZZTIME) .

bench:
	$(GO) test -run=^$$ -bench=. -benchmem -count=5 . ./backends/...
