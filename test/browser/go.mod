module github.com/seed-a1426414/stampede/test/browser

go 1.25.0

require (
	github.com/chromedp/chromedp v0.23.0
	github.com/seed-a1426414/stampede v0.0.0-00010101000000-000000000000
	go.uber.org/goleak v1.3.0
)

require (
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/chromedp/cdproto v0.159.0 // indirect
	github.com/go-chi/chi/v5 v5.5.0 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/maypok86/otter/v2 v2.4.0 // indirect
)

replace github.com/seed-a1426414/stampede => ../..
