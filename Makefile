# stampede: `make test` is what CI runs; `make demo` is the main job (no server needed).
SHELL := /bin/bash
GO ?= go
# Examples in the root module; _example/loader is a module of its own (pgx), in SUBMODULES.
EXAMPLES := $(filter-out _example/loader,$(patsubst %/,%,$(wildcard _example/*/)))
# Modules of their own, so that the root module does not require what only they need (Prometheus, a
# browser driver, goware/cachestore2 for go-chi's tests, CBOR, pgx and a PostgreSQL for the loader
# example, the SQL stores' drivers). Each has a replace directive to this checkout. bench/ is one too,
# handled apart.
SQLSTORES := backends/pgstore backends/mysqlstore backends/sqlitestore
SUBMODULES := metrics/prometheus metrics/otel test/browser test/gochi test/linearizable codec/cbor _example/loader $(SQLSTORES)

.PHONY: test test-go125 demo deps vet lint build-examples fuzz bench bench-deps conformance tidy check-modules check-refs failover check-linearizable bench-instr

# -timeout applies to each package's test binary. The tests assert behaviour, never speed, and each
# catches its own hangs with deadlines of a minute or two that fail with a message; this limit is only the
# last resort, set so that a loaded 2-core machine (the root package under -race takes several minutes
# there, beside the fleet tests' replica processes) never reaches it.
TEST_TIMEOUT ?= 25m
test: deps vet lint check-refs check-modules build-examples test-go125
	$(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...
	@for m in $(SUBMODULES); do echo "test ./$$m (module)"; (cd $$m && $(GO) test -race -count=1 -timeout $(TEST_TIMEOUT) ./...) || exit 1; done
	cd bench && $(GO) vet ./... && $(GO) build ./... && $(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./internal/...

# The root package's tests on the oldest Go the root module supports (go.mod says 1.25.0), without
# -race to keep CI's time down. GOTOOLCHAIN makes the go command fetch that toolchain from the module
# proxy the first time (about 70 MB); GO125 is the newest 1.25 release the proxy serves.
GO125 ?= go1.25.14
test-go125:
	GOTOOLCHAIN=$(GO125) $(GO) test -count=1 -short -timeout $(TEST_TIMEOUT) .

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))" || { gofmt -l .; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./... $(addprefix ./,$(EXAMPLES))
	@for m in $(SUBMODULES); do echo "vet ./$$m (module)"; (cd $$m && $(GO) vet ./...) || exit 1; done

# staticcheck over every module and example, installed from the module proxy into .tools/ on first use
# (about 30 s; a minute or two to check everything with a cold cache).
STATICCHECK_VERSION ?= v0.8.2
STATICCHECK := $(CURDIR)/.tools/staticcheck-$(STATICCHECK_VERSION)
$(STATICCHECK):
	GOBIN=$(CURDIR)/.tools $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	mv $(CURDIR)/.tools/staticcheck $@
lint: $(STATICCHECK)
	$(STATICCHECK) ./... $(addprefix ./,$(EXAMPLES))
	@for m in $(SUBMODULES) bench; do echo "staticcheck ./$$m (module)"; (cd $$m && $(STATICCHECK) ./...) || exit 1; done

# go mod tidy in every module of the repository.
tidy:
	@for m in . $(SUBMODULES) bench; do echo "tidy ./$$m"; (cd $$m && $(GO) mod tidy) || exit 1; done

# Markdown links, images and anchors, and repository paths in code spans, resolve inside the repository;
# no file mentions the directory next to the checkout.
check-refs:
	$(GO) run ./internal/tools/checkrefs .

# A program that imports only the root package and backends/memstore gets at most 12 modules.
check-modules:
	GO=$(GO) scripts/check-modules.sh

# _example is ignored by ./... patterns, so each example is built on purpose.
build-examples:
	@for d in $(EXAMPLES); do echo "build ./$$d"; $(GO) build -o /dev/null ./$$d || exit 1; done

# The tests start their own redis-server processes on free loopback ports (clusters through redis-cli,
# Sentinel as redis-server --sentinel); install them where we can.
deps:
	@command -v redis-server >/dev/null 2>&1 && command -v redis-cli >/dev/null 2>&1 || { \
		echo "installing redis-server"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools) >/dev/null 2>&1 \
		|| sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools' >/dev/null 2>&1 \
		|| echo "could not install redis-server: Redis tests will fail under CI=true"; }
	@pg_isready -q -h 127.0.0.1 -p 5432 >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "installing postgresql (for _example/loader's test)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql) >/dev/null 2>&1 \
		|| sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql' >/dev/null 2>&1 \
		|| echo "could not install postgresql: _example/loader's test will fail under CI=true"; }
	@test -x /usr/sbin/mariadbd -o -x /usr/bin/mariadbd || command -v mariadbd >/dev/null 2>&1 || { \
		echo "installing mariadb-server (for backends/mysqlstore's tests)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server) >/dev/null 2>&1 \
		|| sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server' >/dev/null 2>&1 \
		|| echo "could not install mariadb-server: backends/mysqlstore's tests will fail under CI=true"; }
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing chromium (for the stats page test in test/browser)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >/dev/null 2>&1 \
		|| sudo -n sh -c 'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium' >/dev/null 2>&1 \
		|| echo "could not install chromium: the browser test will fail under CI=true"; }

# The Zipf trace with and without the middleware, in-memory store, no server; about half a minute.
demo:
	cd bench && $(GO) run ./cmd/demo

# Longer fuzzing than the seed-corpus runs in `make test`.
FUZZTIME ?= 30s
fuzz:
	$(GO) test -run=^$$ -fuzz='^FuzzParse$$' -fuzztime=$(FUZZTIME) ./internal/entry
	@for f in FuzzParseCacheControl FuzzParseTargeted FuzzParseRange FuzzDates FuzzAgeValue FuzzParseStrictDate; do \
		$(GO) test -run=^$$ -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) ./internal/httpcache || exit 1; done
	$(GO) test -run=^$$ -fuzz='^FuzzDifferential$$' -fuzztime=$(FUZZTIME) .
	$(GO) test -run=^$$ -fuzz='^FuzzConditional$$' -fuzztime=$(FUZZTIME) .
	@for f in FuzzQueryCanonical FuzzPathCanonical FuzzKeyView FuzzRecordDecode FuzzMemoHash; do \
		$(GO) test -run=^$$ -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) . || exit 1; done
	@for f in FuzzParseTicket FuzzPayload; do \
		$(GO) test -run=^$$ -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) ./internal/sqlstore || exit 1; done
	@for f in FuzzDecode FuzzCompressRoundTrip; do \
		$(GO) test -run=^$$ -fuzz="^$$f\$$" -fuzztime=$(FUZZTIME) ./backends/redisstore || exit 1; done

# A longer soak than the 10 s one in `make test`: a real server under mixed hits, misses and one-off
# keys against a 4 MiB memory store; prints the heap and goroutine figures.
SOAK ?= 60s
.PHONY: soak
soak:
	STAMPEDE_SOAK=$(SOAK) $(GO) test -count=1 -timeout 30m -run '^TestSoak$$' -v .

# The full suite: the root, backend and fleet benchmarks (latency under Redis faults and across replicas
# is measured here, not asserted by the tests), then bench/ (a module of its own), which writes BENCHMARKS.md and
# docs/bench-*.png, with Redis through a redis-server it starts and stops. GOCHI_STAMPEDE=DIR also
# measures go-chi/stampede from a checkout of it (git clone -b v0.9.1 https://github.com/go-chi/stampede
# DIR); without it that column of the report is skipped.
GOCHI_STAMPEDE ?=
bench: bench-deps
	$(GO) test -run=^$$ -bench=. -skip=FloodHeap -benchmem -count=5 . ./backends/... ./internal/fleetreplica
	$(GO) test -run=^$$ -bench=FloodHeap -benchtime=1x -count=1 .
	cd bench && $(GO) run ./cmd/bench -redis auto $(if $(GOCHI_STAMPEDE),-gochi $(abspath $(GOCHI_STAMPEDE)))
	cd bench && STAMPEDE_BENCH_REDIS=none $(GO) test -run=^$$ -bench='^BenchmarkFunc' -benchmem -cpu=1 -count=1 .

# The function API (Loader, Do) beside otter v2, sturdyc and the floor in instructions per op, counted by
# valgrind's callgrind (scripts/callgrind.sh; docs/bench-function-api.md), then the chart of that table
# against otter v2 (bench/cmd/funcchart, docs/bench-function-api.png). Needs valgrind.
bench-instr:
	@t=$$(mktemp) && scripts/callgrind.sh | tee $$t && (cd bench && $(GO) run ./cmd/funcchart -out ../docs/bench-function-api.png < $$t); s=$$?; rm -f $$t; exit $$s

# The SQL stores (not part of make test): in each store module, a hit and a BatchGet of 100 keys beside
# memstore and redisstore (a redis-server of its own); then bench/sqlbench: the Zipf trace through the
# middleware on each store, a flood of STAMPEDE_FLOOD (default 1,000,000) one-off keys against a bound
# of 10,000 rows, and PostgreSQL and MariaDB killed and restarted mid-trace (servers of its own).
# About 15 minutes on 2 cores; STAMPEDE_FLOOD=100000 makes it a few.
.PHONY: bench-sql
bench-sql: deps
	@for m in $(SQLSTORES); do echo "bench ./$$m (module)"; (cd $$m && $(GO) test -run='^$$' -bench=. -benchmem -count=1 ./...) || exit 1; done
	cd bench && $(GO) test -count=1 -v -timeout 60m -run 'TestTrace|TestFlood|TestKilledMidTrace' ./sqlbench

bench-deps:
	@for p in redis-server wrk; do command -v $$p >/dev/null 2>&1 || { \
		echo "installing $$p"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$p) >/dev/null 2>&1 \
		|| sudo -n sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$p" >/dev/null 2>&1 \
		|| echo "could not install $$p: the parts that need it are skipped"; }; done

# Redis Sentinel and Redis Cluster failing over under load (kill -9, SIGSTOP, planned failovers) while
# three replicas serve 1,000 requests a second: real redis-server processes on free loopback ports,
# about eleven minutes; writes docs/failover.md (bench/cmd/failover; not part of `make test`).
# Some scenarios: make failover FAILOVER_FLAGS='-scenarios cluster-kill,sentinel-stop -out -'
FAILOVER_FLAGS ?=
failover: deps
	cd bench && $(GO) run ./cmd/failover $(FAILOVER_FLAGS)

# The HTTP caching test suite (npm package http-cache-tests 0.4.5, the suite behind cache-tests.fyi)
# against stampede in front of a reverse proxy, summarised beside the caches whose results the suite
# ships; see conformance/README.md. Needs Node.js 20+ and npm (not part of `make test`).
# One test, verbosely: make conformance ID=freshness-max-age
# A checkout of http-tests/cache-tests instead of the npm package: make conformance CACHE_TESTS_DIR=<dir>
ID ?=
CACHE_TESTS_DIR ?=
conformance:
	@command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || { \
		echo "make conformance needs Node.js (20 or later) and npm on PATH; install them (Debian: apt-get install nodejs npm) and rerun" >&2; \
		exit 1; }
	CACHE_TESTS_DIR="$(CACHE_TESTS_DIR)" bash conformance/run.sh $(ID)

# The linearizability check of test/linearizable at full size: 10,000 random histories per store kind
# (make test runs a few hundred), and each kept failing history under test/linearizable/testdata
# replayed as many times. LINEARIZABLE_SEED=N replays a seed; a failing history is written under
# LINEARIZABLE_KEEP (default the system's temporary directory), its path in the report.
LINEARIZABLE_HISTORIES ?= 10000
check-linearizable:
	cd test/linearizable && LINEARIZABLE_HISTORIES=$(LINEARIZABLE_HISTORIES) $(GO) test -count=1 -timeout 3h -v -run . ./...
