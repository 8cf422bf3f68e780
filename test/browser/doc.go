// Package browser holds tests that drive stampede's pages in a real headless Chromium. It has no
// code of its own and is a module of its own (with a replace directive to this checkout), so that
// neither the root module nor its users depend on the browser driver. It uses only stampede's public
// API.
package browser
