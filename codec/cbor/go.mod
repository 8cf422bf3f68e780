module github.com/seed-a1426414/stampede/codec/cbor

go 1.25.0

replace github.com/seed-a1426414/stampede => ../..

require (
	github.com/fxamacker/cbor/v2 v2.10.0
	github.com/seed-a1426414/stampede v0.0.0-00010101000000-000000000000
	github.com/stretchr/testify v1.12.1
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/go-chi/chi/v5 v5.5.0 // indirect
	github.com/maypok86/otter/v2 v2.4.0 // indirect
	github.com/x448/float16 v0.8.4 // indirect
	go.yaml.in/yaml/v3 v3.0.5 // indirect
)
