module github.com/seed-a1426414/stampede/backends/mysqlstore

go 1.26.0

replace github.com/seed-a1426414/stampede => ../..

require (
	github.com/go-sql-driver/mysql v1.10.2
	github.com/redis/go-redis/v9 v9.23.0
	github.com/seed-a1426414/stampede v0.0.0-00010101000000-000000000000
)

require (
	filippo.io/edwards25519 v1.2.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/go-chi/chi/v5 v5.5.0 // indirect
	github.com/klauspost/compress v1.20.3 // indirect
	github.com/maypok86/otter/v2 v2.4.0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)
