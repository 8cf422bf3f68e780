// Package browsertest holds tests that drive stampede's pages in a real headless Chromium. It has no
// code of its own: the tests live here, away from the root package, so that building the root package's
// tests does not compile the browser driver.
package browsertest
