package suite

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// wrkRun is one wrk run against one URL.
type wrkRun struct {
	route    string // "cached" or "bare" for _example/simple; the peer's name for the peer server
	url      string
	rps      float64
	requests int64         // requests wrk completed
	cpu      time.Duration // CPU time (user + system) the server process used during the run; -1: unknown
	latency  string        // wrk's average latency
	non2xx   string        // wrk's count of other responses, "" when it printed none
}

// wrkResult is one server's over-the-wire comparison.
type wrkResult struct {
	version  string
	threads  int
	conns    int
	duration time.Duration
	runs     []wrkRun
	body     int      // bytes of the body every route serves
	notes    []string // what the checks after the runs found wrong
}

func (w *wrkResult) mean(route string) float64 {
	var sum float64
	var n int
	for _, r := range w.runs {
		if r.route == route {
			sum += r.rps
			n++
		}
	}
	return sum / float64(n)
}

// ratio is the cached route's mean requests/s over the bare route's.
func (w *wrkResult) ratio() float64 { return w.ratioOf("cached") }

// ratioOf is route's mean requests/s over the bare route's.
func (w *wrkResult) ratioOf(route string) float64 { return w.mean(route) / w.mean("bare") }

// cpuPerRequest is the server's CPU time per request on route over all its runs; false when unknown.
func (w *wrkResult) cpuPerRequest(route string) (time.Duration, bool) {
	var cpu time.Duration
	var n int64
	for _, r := range w.runs {
		if r.route == route {
			if r.cpu < 0 {
				return 0, false
			}
			cpu += r.cpu
			n += r.requests
		}
	}
	if n == 0 {
		return 0, false
	}
	return cpu / time.Duration(n), true
}

// cpuAdded is route's server CPU per request minus the bare route's.
func (w *wrkResult) cpuAdded(route string) (time.Duration, bool) {
	c, ok1 := w.cpuPerRequest(route)
	b, ok2 := w.cpuPerRequest("bare")
	return c - b, ok1 && ok2
}

var (
	rpsRe      = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	requestsRe = regexp.MustCompile(`(\d+) requests in`)
	latencyRe  = regexp.MustCompile(`Latency\s+(\S+)`)
	non2xxRe   = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
)

// wrkStep is one run of a plan: route's URL, after prime when it is set.
type wrkStep struct {
	route, url string
	prime      func() error
}

// runWrk builds _example/simple, serves it on a free loopback port and runs wrk against its cached route
// (/slow, a stored hit after the first request) and its bare route (/bare, the same bytes written by a
// handler with no middleware), in the order cached, bare, bare, cached so that drift hits both alike.
func runWrk(o options) (*wrkResult, error) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return nil, errWrkMissing
	}
	dir, err := os.MkdirTemp("", "stampede-bench-wrk-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "simple")
	build := exec.Command("go", "build", "-o", bin, "./_example/simple")
	build.Dir = o.root
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("build _example/simple: %v\n%s", err, out)
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	srv := exec.Command(bin, "-addr", addr)
	logf, err := os.Create(filepath.Join(dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	srv.Stdout, srv.Stderr = logf, logf
	if err := srv.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = srv.Process.Kill()
		_ = srv.Wait()
	}()
	if err := waitListening(addr, 10*time.Second); err != nil {
		return nil, err
	}

	base := "http://" + addr
	res := newWrkResult(o, wrk)
	cachedURL := func(q string) string { return base + "/slow?q=" + q }
	bareURL := func(q string) string { return base + "/bare?q=" + q }
	// The cached route's entries live 10 s in the example, so each cached run gets a key stored just
	// before it: q=1 for the first, q=2 for the last.
	var steps []wrkStep
	for _, p := range []struct{ route, q string }{{"cached", "1"}, {"bare", "1"}, {"bare", "2"}, {"cached", "2"}} {
		step := wrkStep{route: p.route, url: bareURL(p.q)}
		if p.route == "cached" {
			step.url = cachedURL(p.q)
			step.prime = func() error { return primeCached(cachedURL(p.q), bareURL(p.q), &res.body) }
		}
		steps = append(steps, step)
	}
	if err := res.run(wrk, base, srv.Process.Pid, steps); err != nil {
		return nil, err
	}
	log.Printf("wrk: cached/bare = %.3f", res.ratio())
	return res, nil
}

var errWrkMissing = errors.New("wrk is not installed (Debian: apt-get install wrk); skipped")

func newWrkResult(o options, wrk string) *wrkResult {
	res := &wrkResult{threads: 1, conns: o.wrkConns, duration: o.wrkTime}
	if out, err := exec.Command(wrk, "-v").CombinedOutput(); err == nil || len(out) > 0 {
		if f := strings.Fields(string(out)); len(f) >= 2 {
			res.version = f[0] + " " + f[1] // "wrk debian/4.1.0-3+b2"
		}
	}
	return res
}

// run runs wrk once per step against the server at base, process pid, whose CPU time it reads before
// and after each run.
func (res *wrkResult) run(wrk, base string, pid int, steps []wrkStep) error {
	for _, s := range steps {
		if s.prime != nil {
			if err := s.prime(); err != nil {
				return err
			}
		}
		log.Printf("wrk: %s %s", s.route, s.url)
		cmd := exec.Command(wrk, "-t", strconv.Itoa(res.threads), "-c", strconv.Itoa(res.conns),
			"-d", fmt.Sprintf("%ds", max(1, int(res.duration.Seconds()))), s.url)
		cpu0, cpuErr := procCPU(pid)
		out, err := cmd.CombinedOutput()
		cpu1, cpuErr2 := procCPU(pid)
		if err != nil {
			return fmt.Errorf("wrk %s: %v\n%s", s.url, err, out)
		}
		run := wrkRun{route: s.route, url: strings.TrimPrefix(s.url, base), cpu: cpu1 - cpu0}
		if cpuErr != nil || cpuErr2 != nil {
			run.cpu = -1
		}
		m := rpsRe.FindSubmatch(out)
		if m == nil {
			return fmt.Errorf("wrk %s: no Requests/sec in\n%s", s.url, out)
		}
		run.rps, _ = strconv.ParseFloat(string(m[1]), 64)
		if m := requestsRe.FindSubmatch(out); m != nil {
			run.requests, _ = strconv.ParseInt(string(m[1]), 10, 64)
		}
		if m := latencyRe.FindSubmatch(out); m != nil {
			run.latency = string(m[1])
		}
		if m := non2xxRe.FindSubmatch(out); m != nil {
			run.non2xx = string(m[1])
		}
		log.Printf("wrk: %s %.0f requests/s, latency %s, server CPU %v for %d requests", s.route, run.rps, run.latency, run.cpu, run.requests)
		res.runs = append(res.runs, run)
	}
	return nil
}

// runPeersWrk serves the peer routes (serveWrkPeers) from a child process of this program and runs wrk
// against each: the bare route first and last, the peers in between, in the order a, b, c, c, b, a.
func runPeersWrk(o options) (*wrkResult, error) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return nil, errWrkMissing
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(exe, "-peer-server")
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe() // the server exits when this closes, also if we die
	if err != nil {
		return nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	defer func() {
		_ = stdin.Close()
		_ = cmd.Wait()
	}()
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		return nil, fmt.Errorf("peer server: %w", err)
	}
	base := "http://" + strings.TrimSpace(line)

	res := newWrkResult(o, wrk)
	routes := wrkPeerRoutes()
	for _, r := range routes[1:] {
		if err := primePeer(base, r, &res.body); err != nil {
			return nil, err
		}
	}
	var steps []wrkStep
	for _, r := range append(routes, reversed(routes)...) {
		steps = append(steps, wrkStep{route: r, url: peerURL(base, r)})
	}
	if err := res.run(wrk, base, cmd.Process.Pid, steps); err != nil {
		return nil, err
	}
	for _, r := range routes[1:] {
		if n, err := originRuns(base, r); err != nil || n != 1 {
			res.notes = append(res.notes, fmt.Sprintf("wrk, %s route: the handler ran %d times in all (want 1, the priming request; %v): some measured requests were not hits", r, n, err))
		}
		log.Printf("wrk: %s / bare = %.3f", r, res.ratioOf(r))
	}
	return res, nil
}

// The peer server's routes, bare first: /<route>/1 serves what /bare/1 does.
const (
	wrkBare     = "bare"
	wrkFloor    = "floor"
	wrkGoChi    = "go-chi/stampede"
	wrkStampede = "stampede"
)

// wrkPath is a route's path prefix on the peer server.
var wrkPath = map[string]string{wrkBare: "/bare/", wrkFloor: "/floor/", wrkGoChi: "/gochi/", wrkStampede: "/stampede/"}

func peerURL(base, route string) string { return base + wrkPath[route] + "1" }

func reversed(s []string) []string {
	r := make([]string, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

// primePeer requests route twice and checks that the handler ran once and that the answer is the bare
// route's body.
func primePeer(base, route string, bodyLen *int) error {
	var got []byte
	for range 2 {
		resp, err := http.Get(peerURL(base, route))
		if err != nil {
			return err
		}
		got, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
	}
	time.Sleep(50 * time.Millisecond) // stampede writes its store just after the first response
	n, err := originRuns(base, route)
	if err != nil {
		return err
	}
	if n != 1 {
		return fmt.Errorf("wrk: the %s route ran its handler %d times for 2 requests: not cached", route, n)
	}
	resp, err := http.Get(peerURL(base, wrkBare))
	if err != nil {
		return err
	}
	bare, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return err
	}
	if !bytes.Equal(got, bare) {
		return fmt.Errorf("wrk: the %s and bare routes serve different bodies: %q vs %q", route, got, bare)
	}
	*bodyLen = len(bare)
	return nil
}

func originRuns(base, route string) (int64, error) {
	resp, err := http.Get(base + "/runs" + wrkPath[route] + "1")
	if err != nil {
		return 0, err
	}
	b, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
}

// primeCached stores the cached route's response and checks that it is now a hit with the same body as
// the bare route's.
func primeCached(cachedURL, bareURL string, bodyLen *int) error {
	get := func(url string) (string, []byte, error) {
		resp, err := http.Get(url)
		if err != nil {
			return "", nil, err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return resp.Header.Get("X-Cache"), b, err
	}
	if _, _, err := get(cachedURL); err != nil {
		return err
	}
	var xc string
	var cached []byte
	var err error
	for range 50 { // the store write happens just after the first response
		if xc, cached, err = get(cachedURL); err != nil || xc == "HIT" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	if xc != "HIT" {
		return fmt.Errorf("%s is not a stored hit after priming (X-Cache %q)", cachedURL, xc)
	}
	_, bare, err := get(bareURL)
	if err != nil {
		return err
	}
	if !bytes.Equal(cached, bare) {
		return fmt.Errorf("the routes serve different bodies: %q vs %q", cached, bare)
	}
	*bodyLen = len(bare)
	return nil
}

// procCPU returns the CPU time (user + system, all threads) process pid has used, from /proc/<pid>/stat,
// whose utime and stime count clock ticks of USER_HZ, 100 a second on Linux: 10 ms resolution.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, field 2, is in parentheses and may hold spaces: count from the last ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, errors.New("unexpected /proc stat format")
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0, errors.New("unexpected /proc stat format")
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return 0, errors.New("unexpected /proc stat format")
	}
	const userHZ = 100
	return time.Duration(utime+stime) * time.Second / userHZ, nil
}

func waitListening(addr string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout("tcp", addr, 100*time.Millisecond)
		if err == nil {
			return c.Close()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s: %w", addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
