#!/usr/bin/env bash
# check-modules.sh: how many modules a user of stampede gets. It builds, in a temporary directory, a
# consumer module that imports only the root package and backends/memstore (with a replace directive
# to this checkout), runs go mod tidy and go list -m all, prints the count and the list, and fails when
# the count is above MAX_MODULES (default 12; the consumer and stampede themselves are counted).
set -euo pipefail

max=${MAX_MODULES:-12}
root=$(cd "$(dirname "$0")/.." && pwd)
go=${GO:-go}
module=$(sed -n 's/^module //p' "$root/go.mod")
goversion=$(sed -n 's/^go //p' "$root/go.mod")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

cat >"$tmp/go.mod" <<EOF
module example.com/stampede-consumer

go $goversion

require $module v0.0.0-00010101000000-000000000000

replace $module => $root
EOF

cat >"$tmp/main.go" <<EOF
// A program that uses stampede with its memory store and nothing else.
package main

import (
	"log"
	"net/http"
	"time"

	"$module"
	"$module/backends/memstore"
)

func main() {
	store, err := memstore.New(64 << 20)
	if err != nil {
		log.Fatal(err)
	}
	http.Handle("/", stampede.Handler(nil, store, time.Minute)(http.NotFoundHandler()))
}
EOF

cd "$tmp"
export GOWORK=off GOFLAGS=-mod=mod
"$go" mod tidy
"$go" build -o /dev/null .
list=$("$go" list -m all)
count=$(printf '%s\n' "$list" | wc -l)
echo "modules of a consumer of $module and backends/memstore: $count (at most $max)"
printf '%s\n' "$list" | sed 's/^/  /'
if [ "$count" -gt "$max" ]; then
	echo "check-modules: $count modules, more than $max: a dependency of the root module leaked into its users" >&2
	exit 1
fi
