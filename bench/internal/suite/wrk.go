package suite

import (
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
	route   string // "cached" or "bare"
	url     string
	rps     float64
	latency string // wrk's average latency
	non2xx  string // wrk's count of other responses, "" when it printed none
}

// wrkResult is the over-the-wire comparison.
type wrkResult struct {
	version  string
	threads  int
	conns    int
	duration time.Duration
	runs     []wrkRun
	body     int // bytes of the body both routes serve
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
func (w *wrkResult) ratio() float64 { return w.mean("cached") / w.mean("bare") }

var (
	rpsRe     = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	latencyRe = regexp.MustCompile(`Latency\s+(\S+)`)
	non2xxRe  = regexp.MustCompile(`Non-2xx or 3xx responses:\s+(\d+)`)
)

// runWrk builds _example/simple, serves it on a free loopback port and runs wrk against its cached route
// (/slow, a stored hit after the first request) and its bare route (/bare, the same bytes written by a
// handler with no middleware), in the order cached, bare, bare, cached so that drift hits both alike.
func runWrk(o options) (*wrkResult, error) {
	wrk, err := exec.LookPath("wrk")
	if err != nil {
		return nil, errors.New("wrk is not installed (Debian: apt-get install wrk); skipped")
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

	res := &wrkResult{threads: 1, conns: o.wrkConns, duration: o.wrkTime}
	if out, err := exec.Command(wrk, "-v").CombinedOutput(); err == nil || len(out) > 0 {
		if f := strings.Fields(string(out)); len(f) >= 2 {
			res.version = f[0] + " " + f[1] // "wrk debian/4.1.0-3+b2"
		}
	}
	base := "http://" + addr
	cachedURL := func(q string) string { return base + "/slow?q=" + q }
	bareURL := func(q string) string { return base + "/bare?q=" + q }

	// The cached route's entries live 10 s in the example, so each cached run gets a key stored just
	// before it: q=1 for the first, q=2 for the last.
	plan := []struct{ route, q string }{{"cached", "1"}, {"bare", "1"}, {"bare", "2"}, {"cached", "2"}}
	for _, p := range plan {
		url := bareURL(p.q)
		if p.route == "cached" {
			url = cachedURL(p.q)
			if err := primeCached(url, bareURL(p.q), &res.body); err != nil {
				return nil, err
			}
		}
		log.Printf("wrk: %s %s", p.route, url)
		cmd := exec.Command(wrk, "-t", strconv.Itoa(res.threads), "-c", strconv.Itoa(res.conns),
			"-d", fmt.Sprintf("%ds", int(res.duration.Seconds())), url)
		out, err := cmd.CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("wrk %s: %v\n%s", url, err, out)
		}
		run := wrkRun{route: p.route, url: strings.TrimPrefix(url, base)}
		m := rpsRe.FindSubmatch(out)
		if m == nil {
			return nil, fmt.Errorf("wrk %s: no Requests/sec in\n%s", url, out)
		}
		run.rps, _ = strconv.ParseFloat(string(m[1]), 64)
		if m := latencyRe.FindSubmatch(out); m != nil {
			run.latency = string(m[1])
		}
		if m := non2xxRe.FindSubmatch(out); m != nil {
			run.non2xx = string(m[1])
		}
		log.Printf("wrk: %s %.0f requests/s, latency %s", p.route, run.rps, run.latency)
		res.runs = append(res.runs, run)
	}
	log.Printf("wrk: cached/bare = %.3f", res.ratio())
	return res, nil
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
