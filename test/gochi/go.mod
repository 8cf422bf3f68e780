module github.com/seed-a1426414/stampede/test/gochi

go 1.25.0

require (
	github.com/goware/cachestore2 v0.12.2
	github.com/seed-a1426414/stampede v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/go-chi/chi/v5 v5.5.0 // indirect
	github.com/maypok86/otter/v2 v2.4.0 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)

replace github.com/seed-a1426414/stampede => ../..
