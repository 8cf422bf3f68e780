package browser

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"go.uber.org/goleak"

	"github.com/seed-a1426414/stampede"
	"github.com/seed-a1426414/stampede/backends/memstore"
)

var screenshot = flag.String("screenshot", "",
	"also write the stats page screenshot to this file, after some live traffic (e.g. ../../docs/stats-page.png)")

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// chromium returns the path of the browser, or ends the test: a failure under CI=true, where the
// Makefile's deps target installs it, and a skip elsewhere.
func chromium(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if path, err := exec.LookPath(name); err == nil {
			return path
		}
	}
	const msg = "chromium not found: install Debian's chromium package (`make deps` does it)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// site is a server with two caches behind the middleware and the stats page at /debug/stampede.
type site struct {
	srv             *httptest.Server
	products, users *stampede.Cache
	store           *memstore.Store
}

func newSite(t *testing.T) *site {
	t.Helper()
	store, err := memstore.New(64 << 20)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	s := &site{
		store:    store,
		products: stampede.New(nil, store, time.Minute, stampede.WithName("products")),
		users:    stampede.New(nil, nil, 0, stampede.WithName("users")),
	}
	origin := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case strings.HasSuffix(r.URL.Path, "/fail"):
			w.WriteHeader(http.StatusInternalServerError)
		case strings.HasSuffix(r.URL.Path, "/private"):
			w.Header().Set("Cache-Control", "private")
		}
		_, _ = io.WriteString(w, "body of "+r.URL.Path)
	})
	mux := http.NewServeMux()
	mux.Handle("/p/", s.products.Handler(origin))
	mux.Handle("/u/", s.users.Handler(origin))
	mux.Handle("/debug/stampede", stampede.StatsHandler(s.products, s.users))
	mux.HandleFunc("/favicon.ico", func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)
	t.Cleanup(s.srv.Client().CloseIdleConnections)
	return s
}

// send makes requests "METHOD /path" one after the other, each after the previous one's store write.
func (s *site) send(t *testing.T, requests ...string) {
	t.Helper()
	for _, r := range requests {
		method, path, _ := strings.Cut(r, " ")
		req, err := http.NewRequest(method, s.srv.URL+path, nil)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := s.srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		s.products.Wait()
		s.users.Wait()
	}
	s.store.CleanUp() // settle the store's byte count, so the page and the JSON read the same
}

// stats fetches the JSON the page polls.
func (s *site) stats(t *testing.T) []stampede.Snapshot {
	t.Helper()
	resp, err := s.srv.Client().Get(s.srv.URL + "/debug/stampede?format=json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Caches []stampede.Snapshot `json:"caches"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return body.Caches
}

// pageState is what the page shows: for each cache, the text (or data-value) of each data-field cell.
type pageState struct {
	Updates int                          `json:"updates"`
	Time    int64                        `json:"time"`
	Caches  map[string]map[string]string `json:"caches"`
	Samples map[string]int               `json:"samples"`
	Points  map[string]int               `json:"points"`
}

const readPage = `(() => {
  const st = document.getElementById("status");
  const out = {updates: +st.dataset.updates, time: +(st.dataset.time || 0), caches: {}, samples: {}, points: {}};
  document.querySelectorAll("section.cache").forEach(s => {
    const m = {};
    s.querySelectorAll("[data-field]").forEach(td => {
      if (td.closest("tbody").hidden) return;
      m[td.dataset.field] = td.dataset.value !== undefined ? td.dataset.value : td.textContent;
    });
    out.caches[s.dataset.cache] = m;
    out.samples[s.dataset.cache] = +(s.querySelector("svg").dataset.samples || 0);
    const pts = s.querySelector("polyline.runs-per-second").getAttribute("points") || "";
    out.points[s.dataset.cache] = pts.trim() === "" ? 0 : pts.trim().split(/\s+/).length;
  });
  return out;
})()`

// shown is what the page must show for snapshot s: every counter exactly, the non-zero reasons, and
// the rates as the numbers the JSON holds.
func shown(s stampede.Snapshot) map[string]string {
	u := func(v uint64) string { return strconv.FormatUint(v, 10) }
	m := map[string]string{
		"requests": u(s.Requests), "hits": u(s.Hits), "stale_hits": u(s.StaleHits), "misses": u(s.Misses),
		"coalesced": u(s.Coalesced), "abandoned": u(s.Abandoned), "passes": u(s.Passes), "runs": u(s.Runs),
		"failures": u(s.Failures), "panics": u(s.Panics), "store_get_errors": u(s.StoreGetErrors),
		"store_set_errors": u(s.StoreSetErrors), "breaker_trips": u(s.BreakerTrips), "breaker_open": "closed",
		"hit_rate": num(s.HitRate), "miss_rate": num(s.MissRate), "load_failure_rate": num(s.LoadFailureRate),
		"collapse_ratio": num(s.CollapseRatio), "avg_handler_time_ns": strconv.FormatInt(int64(s.AvgHandlerTime), 10),
	}
	if s.BreakerOpen {
		m["breaker_open"] = "open"
	}
	if s.Memory != nil {
		m["memory.entries"] = strconv.Itoa(s.Memory.Entries)
		m["memory.bytes"] = strconv.FormatInt(s.Memory.Bytes, 10)
		m["memory.evictions"] = u(s.Memory.Evictions)
	}
	for r, n := range s.PassReasons {
		if n > 0 {
			m["pass_reasons."+r] = u(n)
		}
	}
	for r, n := range s.Unshareable {
		if n > 0 {
			m["unshareable."+r] = u(n)
		}
	}
	return m
}

// num formats a rate as the page's data-value does (JavaScript's String(number)) for the values of this
// test; compared as numbers by same.
func num(f float64) string { return strconv.FormatFloat(f, 'g', -1, 64) }

// same compares what the page shows with what it should, numbers as numbers.
func same(got, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for k, w := range want {
		g, ok := got[k]
		if !ok {
			return false
		}
		if g == w {
			continue
		}
		gf, err1 := strconv.ParseFloat(g, 64)
		wf, err2 := strconv.ParseFloat(w, 64)
		if err1 != nil || err2 != nil || gf != wf {
			return false
		}
	}
	return true
}

// counts is the part of a snapshot the traffic decides exactly.
func counts(s stampede.Snapshot) string {
	return fmt.Sprintf("requests=%d hits=%d misses=%d coalesced=%d passes=%d runs=%d failures=%d",
		s.Requests, s.Hits, s.Misses, s.Coalesced, s.Passes, s.Runs, s.Failures)
}

// TestStatsPage loads the stats page in headless Chromium, sends known traffic twice, and checks each
// time that the page comes to show exactly the new numbers, the same as the JSON, in later polls.
// A page that stops refreshing, or shows a figure wrong, fails it.
func TestStatsPage(t *testing.T) {
	path := chromium(t)
	s := newSite(t)

	// Only catches a browser that hangs: a loaded machine may take long to start Chromium and to poll.
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(allocCtx)
	defer cancelBrowser()
	defer func() { _ = chromedp.Cancel(browser) }() // close the browser and wait for it to exit

	// Record what the page writes to the console: a script error or a CSP violation fails the test.
	consoleCtx, stopConsole := context.WithCancel(browser)
	var (
		mu       sync.Mutex
		problems []string
		done     = make(chan struct{})
	)
	if err := chromedp.Do(browser); err != nil { // start the browser, so Console has a target
		t.Fatal(err)
	}
	messages := chromedp.Console(consoleCtx)
	go func() {
		defer close(done)
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.IsException() || m.Type == chromedp.ConsoleError || m.Type == chromedp.ConsoleWarning {
				mu.Lock()
				problems = append(problems, m.String())
				mu.Unlock()
			}
		}
	}()
	defer func() { stopConsole(); <-done }()

	if err := chromedp.Do(browser, chromedp.Navigate(s.srv.URL+"/debug/stampede")); err != nil {
		t.Fatal(err)
	}

	// waitFor polls the page until it shows exactly the JSON's numbers for every cache, and they are the
	// expected ones.
	waitFor := func(phase string, want map[string]string) pageState {
		t.Helper()
		snaps := s.stats(t)
		for _, snap := range snaps {
			if got := counts(snap); got != want[snap.Name] {
				t.Fatalf("%s: JSON for %s: %s, want %s", phase, snap.Name, got, want[snap.Name])
			}
		}
		// The page polls every second; a page that stopped refreshing fails after the deadline, which
		// only has to outlast a loaded machine's slow polls.
		deadline := time.Now().Add(2 * time.Minute)
		var last pageState
		for {
			st, err := chromedp.Run(browser, chromedp.Evaluate[pageState](readPage))
			if err != nil {
				t.Fatalf("%s: reading the page: %v", phase, err)
			}
			last = st
			ok := len(st.Caches) == len(snaps)
			for _, snap := range snaps {
				ok = ok && same(st.Caches[snap.Name], shown(snap))
			}
			if ok {
				return st
			}
			if time.Now().After(deadline) {
				for _, snap := range snaps {
					t.Errorf("%s: cache %s: page shows\n%v\nwant (the JSON)\n%v", phase, snap.Name,
						st.Caches[snap.Name], shown(snap))
				}
				t.Fatalf("%s: the page did not show the current numbers after %d updates", phase, last.Updates)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}

	start := time.Now()
	first := waitFor("before traffic", map[string]string{
		"products": "requests=0 hits=0 misses=0 coalesced=0 passes=0 runs=0 failures=0",
		"users":    "requests=0 hits=0 misses=0 coalesced=0 passes=0 runs=0 failures=0",
	})

	s.send(t, "GET /p/a", "GET /p/a", "GET /p/a", "GET /p/fail", "GET /p/private", "GET /p/private", "POST /p/other",
		"GET /u/a", "GET /u/a")
	second := waitFor("after the first traffic", map[string]string{
		"products": "requests=7 hits=2 misses=3 coalesced=0 passes=2 runs=3 failures=1",
		"users":    "requests=2 hits=0 misses=2 coalesced=0 passes=0 runs=2 failures=0",
	})
	if got := second.Caches["products"]["pass_reasons.hit-for-pass"]; got != "1" {
		t.Errorf("page shows %q hit-for-pass passes, want 1", got)
	}

	s.send(t, "GET /p/a", "GET /p/a", "GET /p/a", "GET /p/a", "GET /p/a", "GET /u/b")
	third := waitFor("after the second traffic", map[string]string{
		"products": "requests=12 hits=7 misses=3 coalesced=0 passes=2 runs=3 failures=1",
		"users":    "requests=3 hits=0 misses=3 coalesced=0 passes=0 runs=3 failures=0",
	})
	if !(first.Time < second.Time && second.Time < third.Time) || third.Updates <= first.Updates {
		t.Errorf("the page did not refresh: times %d, %d, %d; updates %d, %d", first.Time, second.Time, third.Time,
			first.Updates, third.Updates)
	}
	for _, name := range []string{"products", "users"} {
		if third.Samples[name] < 2 || third.Points[name] != third.Samples[name] {
			t.Errorf("chart of %s: %d samples, %d points; want at least 2 of each, equal", name,
				third.Samples[name], third.Points[name])
		}
	}
	t.Logf("page followed two rounds of traffic in %v (%d polls)", time.Since(start).Round(time.Millisecond),
		third.Updates)

	out := t.TempDir() + "/stats-page.png"
	if *screenshot != "" {
		out = *screenshot
		liveTraffic(t, s, 8*time.Second) // give the chart something to draw
	}
	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, png, 0o644); err != nil {
		t.Fatal(err)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, p := range problems {
		t.Errorf("page console: %s", p)
	}
}

// liveTraffic sends a varying mix of requests for d, for the screenshot.
func liveTraffic(t *testing.T, s *site, d time.Duration) {
	t.Helper()
	end := time.Now().Add(d)
	for i := 0; time.Now().Before(end); i++ {
		second := int(time.Until(end) / time.Second)
		paths := []string{"GET /p/a", "GET /p/b", fmt.Sprintf("GET /p/item/%d", i%(3+second)), "GET /u/a"}
		if i%7 == 0 {
			paths = append(paths, "GET /p/private", "POST /p/other")
		}
		s.send(t, paths...)
		time.Sleep(time.Duration(20+10*second) * time.Millisecond)
	}
	time.Sleep(1500 * time.Millisecond) // one more poll
}
