#!/usr/bin/env bash
# Instructions per op of the function-API benchmarks (bench/funcapi_test.go), counted by
# valgrind --tool=callgrind, which a busy machine does not disturb. Each benchmark runs twice with a
# fixed -test.benchtime (N and 2N ops, GOMAXPROCS 1); instructions per op = (Ir at 2N - Ir at N) / N, so
# the set-up both runs share cancels. It cancels only up to its own noise (the scheduler and the
# collector do not run a set-up of 65,536 loads the same way twice: a few million instructions apart),
# so N is large enough to make that noise a few instructions per op: 200,000 hits at 1,024 keys,
# 400,000 at 65,536 (each key read about 6 times per run), 3,000 GetMany calls. Prints a Markdown
# table. Usage:
#
#   scripts/callgrind.sh                 # every contender, hit at 1k and 64k keys and GetMany
#   scripts/callgrind.sh 'stampede-.*'   # only the contenders whose name matches (a regexp)
#
# Needs valgrind (3.19 works with GODEBUG=asyncpreemptoff=1: Go's preemption signals otherwise
# crash it). Some ten minutes.
set -euo pipefail
cd "$(dirname "$0")/../bench"
only=${1:-.*}
command -v valgrind >/dev/null || { echo "callgrind.sh: valgrind is not installed" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
go test -c -o "$work/bench.test" .

# ir BENCH N: total instructions of one run of BENCH with N ops.
ir() {
	STAMPEDE_BENCH_REDIS=none GODEBUG=asyncpreemptoff=1 valgrind --tool=callgrind \
		--callgrind-out-file="$work/cg.out" "$work/bench.test" -test.run='^$' -test.bench="$1" \
		-test.benchtime="$2x" -test.cpu=1 -test.benchmem -test.v >"$work/run.log" 2>&1 ||
		{ cat "$work/run.log" >&2; exit 1; }
	if grep -q -- '--- FAIL\|--- SKIP' "$work/run.log"; then echo skip; return; fi
	awk '/^totals:/ {print $2}' "$work/cg.out"
}

# per BENCH N: instructions per op.
per() {
	local a b
	a=$(ir "$1" "$2")
	b=$(ir "$1" $(($2 * 2)))
	if [ "$a" = skip ] || [ "$b" = skip ]; then echo "–"; return; fi
	echo $(((b - a) / $2))
}

echo "| instructions per op | hit, 1,024 keys | hit, 65,536 keys | GetMany(100, 80 cached) |"
echo "|---|---|---|---|"
for c in stampede-loader stampede-do otter sturdyc floor; do
	[[ $c =~ ^($only)$ ]] || continue
	h1=$(per "^BenchmarkFuncHit\$/^$c\$/^keys=1024\$" 200000)
	h64=$(per "^BenchmarkFuncHit\$/^$c\$/^keys=65536\$" 400000)
	gm=$(per "^BenchmarkFuncGetMany\$/^$c\$" 3000)
	echo "| $c | $h1 | $h64 | $gm |"
done
