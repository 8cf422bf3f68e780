#!/usr/bin/env bash
# Runs the HTTP caching test suite (http-tests/cache-tests, the suite behind cache-tests.fyi) against
# stampede in front of a reverse proxy, then summarises the results beside the reverse proxies and CDN
# whose results the suite ships. See conformance/README.md.
#
#   conformance/run.sh              # the whole suite; results JSON + Markdown summary in conformance/.cache/
#   conformance/run.sh TEST_ID      # one test, with the client's and the origin's request/response dumps
#
# Environment:
#   CACHE_TESTS_DIR           a checkout of http-tests/cache-tests to run instead of the npm package
#                             http-cache-tests 0.4.5. It is copied (without .git and node_modules) into
#                             conformance/.cache/checkout and its dependencies installed there, so the
#                             checkout itself may be read-only.
#   CONFORMANCE_PROXY_FLAGS   extra flags for the proxy, e.g. "-stale-while-revalidate=60s -honor-request-cc"
#   CONFORMANCE_RESULTS       where to write the results JSON (default conformance/.cache/stampede.json,
#                             stampede-checkout.json with CACHE_TESTS_DIR)
#   CONFORMANCE_SUMMARY       where to write the Markdown summary (default conformance/.cache/summary.md,
#                             summary-checkout.md with CACHE_TESTS_DIR)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/.." && pwd)"
SUITE_VERSION=0.4.5
CACHE_DIR="$HERE/.cache"
SUITE_DIR="${CACHE_TESTS_DIR:-}"
read -r -a PROXY_FLAGS <<<"${CONFORMANCE_PROXY_FLAGS:-}"
TEST_ID="${1:-}"

die() { echo "conformance: $*" >&2; exit 1; }

for tool in node npm go; do
	command -v "$tool" >/dev/null 2>&1 || die "'$tool' not found on PATH (this needs Node.js 20+, npm and Go)"
done

mkdir -p "$CACHE_DIR"

# 1. The suite: either the npm package, pinned, installed once into the git-ignored cache directory, or
# a copy of the checkout named by CACHE_TESTS_DIR with its dependencies installed beside it.
if [[ -z "$SUITE_DIR" ]]; then
	SUITE="$CACHE_DIR/node_modules/http-cache-tests"
	SUITE_LABEL="npm package http-cache-tests $SUITE_VERSION"
	installed="$(node -p "require(process.argv[1]).version" "$SUITE/package.json" 2>/dev/null || true)"
	if [[ "$installed" != "$SUITE_VERSION" ]]; then
		echo "conformance: installing http-cache-tests@$SUITE_VERSION into $(realpath --relative-to="$ROOT" "$CACHE_DIR")"
		npm install --prefix "$CACHE_DIR" --no-audit --no-fund --save-exact --loglevel=error \
			"http-cache-tests@$SUITE_VERSION" >/dev/null
	fi
else
	[[ -f "$SUITE_DIR/tests/index.mjs" && -f "$SUITE_DIR/package.json" ]] ||
		die "CACHE_TESTS_DIR=$SUITE_DIR is not a cache-tests checkout (no tests/index.mjs or package.json)"
	command -v rsync >/dev/null 2>&1 || die "'rsync' not found on PATH (needed to copy CACHE_TESTS_DIR)"
	SUITE="$CACHE_DIR/checkout"
	rev="$(git -C "$SUITE_DIR" rev-parse --short HEAD 2>/dev/null || true)"
	SUITE_LABEL="cache-tests checkout${rev:+ at $rev}"
	mkdir -p "$SUITE"
	rsync -a --delete --exclude .git --exclude node_modules "$SUITE_DIR/" "$SUITE/"
	# Dependencies are installed again only when the lock file changed since the last install.
	if ! cmp -s "$SUITE/package-lock.json" "$SUITE/node_modules/.conformance-lock.json" 2>/dev/null; then
		echo "conformance: installing the checkout's dependencies into $(realpath --relative-to="$ROOT" "$SUITE")"
		(cd "$SUITE" && if [[ -f package-lock.json ]]; then npm ci --omit=dev --no-audit --no-fund --loglevel=error; else
			npm install --omit=dev --no-audit --no-fund --loglevel=error; fi) >/dev/null
		cp "$SUITE/package-lock.json" "$SUITE/node_modules/.conformance-lock.json" 2>/dev/null || true
	fi
fi
# A checkout's results and summary are kept apart from the npm package's by default.
suffix=""
[[ -n "$SUITE_DIR" ]] && suffix="-checkout"
RESULTS="${CONFORMANCE_RESULTS:-$CACHE_DIR/stampede$suffix.json}"
SUMMARY="${CONFORMANCE_SUMMARY:-$CACHE_DIR/summary$suffix.md}"
# The npm package 0.4.5 keeps its engine at the top (cli.mjs, server/); later checkouts in test-engine/.
ENGINE="$SUITE"
[[ -f "$SUITE/test-engine/cli.mjs" ]] && ENGINE="$SUITE/test-engine"
[[ -f "$ENGINE/cli.mjs" && -f "$ENGINE/server/server.mjs" ]] || die "no cli.mjs and server/server.mjs in $SUITE"

# 2. Processes, stopped by PID however the script ends.
ORIGIN_PID=""
PROXY_PID=""
stop() {
	local pid
	for pid in "$PROXY_PID" "$ORIGIN_PID"; do
		if [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null; then
			kill -TERM "$pid" 2>/dev/null || true
			wait "$pid" 2>/dev/null || true
		fi
	done
	PROXY_PID=""
	ORIGIN_PID=""
}
trap stop EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# wait_for PID LOGFILE REGEX: prints the first line of LOGFILE matching REGEX, once it appears.
wait_for() {
	local pid="$1" log="$2" re="$3" i line
	for ((i = 0; i < 300; i++)); do
		line="$(grep -m1 -E "$re" "$log" 2>/dev/null || true)"
		if [[ -n "$line" ]]; then
			echo "$line"
			return 0
		fi
		kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; die "process $pid exited before it listened"; }
		sleep 0.1
	done
	cat "$log" >&2
	die "process $pid did not listen within 30 s"
}

# 3. The suite's origin server, on a free loopback port (port 0; it logs the one it got).
ORIGIN_LOG="$CACHE_DIR/origin.log"
(
	cd "$ENGINE"
	exec env npm_config_protocol=http npm_config_port=0 npm_config_pidfile="$CACHE_DIR/origin.pid" \
		node --require "$HERE/loopback.cjs" server/server.mjs
) >"$ORIGIN_LOG" 2>&1 &
ORIGIN_PID=$!
origin_line="$(wait_for "$ORIGIN_PID" "$ORIGIN_LOG" '^Listening on http://')"
ORIGIN_PORT="$(sed -E 's|.*:([0-9]+)/?$|\1|' <<<"$origin_line")"
ORIGIN="http://127.0.0.1:$ORIGIN_PORT"

# 4. The proxy: stampede in front of httputil.ReverseProxy, on a free loopback port.
PROXY_BIN="$CACHE_DIR/stampede-proxy"
(cd "$ROOT" && go build -o "$PROXY_BIN" ./conformance/proxy)
PROXY_LOG="$CACHE_DIR/proxy.log"
"$PROXY_BIN" -listen 127.0.0.1:0 -origin "$ORIGIN" ${PROXY_FLAGS[@]+"${PROXY_FLAGS[@]}"} >"$PROXY_LOG" 2>&1 &
PROXY_PID=$!
proxy_line="$(wait_for "$PROXY_PID" "$PROXY_LOG" '^listening on ')"
PROXY="http://${proxy_line#listening on }"
echo "conformance: suite: $SUITE_LABEL"
echo "conformance: origin $ORIGIN (pid $ORIGIN_PID), stampede proxy $PROXY (pid $PROXY_PID)${PROXY_FLAGS[*]+ flags: ${PROXY_FLAGS[*]}}"

# 5. The suite's client. cli.mjs reads its configuration the way `npm run cli --base=... --id=...`
# passes it: npm_config_base and npm_config_id (falling back to npm_package_config_*).
run_cli() {
	cd "$ENGINE"
	npm_config_base="$PROXY" npm_package_config_base="$PROXY" \
		npm_config_id="$TEST_ID" npm_package_config_id="$TEST_ID" \
		node --no-warnings cli.mjs
}

if [[ -n "$TEST_ID" ]]; then
	out="$(run_cli)"
	echo "$out"
	grep -q '==== Results' <<<"$out" || die "no test with id '$TEST_ID' (ids are in $SUITE/tests/*.mjs)"
	echo
	echo "=== origin log (the server's view: requests it received, responses it sent)"
	cat "$ORIGIN_LOG"
	exit 0
fi

echo "conformance: running the suite (about 15 s; many tests pause for 3 s)"
start=$SECONDS
run_cli >"$RESULTS.tmp"
node -e 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"))' "$RESULTS.tmp" 2>/dev/null ||
	{ head -c 2000 "$RESULTS.tmp" >&2; die "the suite's client did not print JSON results"; }
mv "$RESULTS.tmp" "$RESULTS"
echo "conformance: suite finished in $((SECONDS - start)) s; results in $(realpath --relative-to="$ROOT" "$RESULTS")"
stop

# 6. The summary.
note="at commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
if [[ ${#PROXY_FLAGS[@]} -gt 0 ]]; then note+=", proxy flags \`${PROXY_FLAGS[*]}\`"; else note+=", no extra options"; fi
node "$HERE/summarize.mjs" --suite "$SUITE" --suite-label "$SUITE_LABEL" --results "$RESULTS" --out "$SUMMARY" --note "$note"
