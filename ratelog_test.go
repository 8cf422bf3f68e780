package stampede

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"
)

// lockedBuffer is a log target that many goroutines write.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSuffix(b.buf.String(), "\n"), "\n")
}

// fakeMono is a test clock for a logLimiter.
type fakeMono struct{ ns atomic.Int64 }

func (f *fakeMono) now() time.Duration      { return time.Duration(f.ns.Load()) }
func (f *fakeMono) advance(d time.Duration) { f.ns.Add(int64(d)) }

var suppressedRE = regexp.MustCompile(`suppressed=(\d+)`)

// suppressedOf returns the suppressed=N of a log line, 0 when it has none.
func suppressedOf(t *testing.T, line string) uint64 {
	t.Helper()
	m := suppressedRE.FindStringSubmatch(line)
	if m == nil {
		return 0
	}
	n, err := strconv.ParseUint(m[1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestLogLimiter: per kind, one line per logInterval; the next line written says how many were dropped
// since the previous one; kinds do not limit each other.
func TestLogLimiter(t *testing.T) {
	t.Parallel()
	type step struct {
		advance time.Duration
		kind    logKind
		calls   int
	}
	tests := []struct {
		name  string
		steps []step
		want  []string // "<kind>:<suppressed>" per line written
	}{
		{"first line at once", []step{{0, logKeyFunc, 1}}, []string{"0:0"}},
		{"repeats dropped", []step{{0, logKeyFunc, 5}}, []string{"0:0"}},
		{"next line counts the dropped", []step{{0, logKeyFunc, 5}, {logInterval, logKeyFunc, 1}}, []string{"0:0", "0:4"}},
		{"not before the interval", []step{{0, logKeyFunc, 1}, {logInterval - 1, logKeyFunc, 1}, {1, logKeyFunc, 1}},
			[]string{"0:0", "0:1"}},
		{"the count restarts after a line", []step{{0, logKeyFunc, 3}, {logInterval, logKeyFunc, 1}, {logInterval, logKeyFunc, 1}},
			[]string{"0:0", "0:2", "0:0"}},
		{"kinds apart", []step{{0, logKeyFunc, 3}, {0, logLeaseExpired, 2}, {logInterval, logLeaseExpired, 1}},
			[]string{"0:0", "4:0", "4:1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var buf lockedBuffer
			logger := slog.New(slog.NewTextHandler(&buf, nil))
			var clock fakeMono
			l := &logLimiter{now: clock.now}
			for _, s := range tt.steps {
				clock.advance(s.advance)
				for range s.calls {
					l.log(context.Background(), logger, s.kind, slog.LevelWarn, "line", "kind", int(s.kind))
				}
			}
			var got []string
			for _, line := range buf.lines() {
				kind := regexp.MustCompile(`kind=(\d+)`).FindStringSubmatch(line)[1]
				got = append(got, kind+":"+strconv.FormatUint(suppressedOf(t, line), 10))
			}
			if strings.Join(got, " ") != strings.Join(tt.want, " ") {
				t.Fatalf("lines %v, want %v:\n%s", got, tt.want, strings.Join(buf.lines(), "\n"))
			}
		})
	}
}

// TestLogLimiterConcurrent: under contention exactly one line is written per interval, and every call
// is either written or counted in a later line's suppressed=N.
func TestLogLimiterConcurrent(t *testing.T) {
	t.Parallel()
	const goroutines, perGoroutine, rounds = 16, 200, 3
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, nil))
	var clock fakeMono
	l := &logLimiter{now: clock.now}
	for range rounds {
		var wg sync.WaitGroup
		for range goroutines {
			wg.Go(func() {
				for range perGoroutine {
					l.log(context.Background(), logger, logKeyFunc, slog.LevelWarn, "line")
				}
			})
		}
		wg.Wait()
		clock.advance(logInterval)
	}
	l.log(context.Background(), logger, logKeyFunc, slog.LevelWarn, "line") // carries the last round's count
	lines := buf.lines()
	if len(lines) != rounds+1 {
		t.Fatalf("%d lines, want one per interval (%d):\n%s", len(lines), rounds+1, strings.Join(lines, "\n"))
	}
	var total uint64
	for _, line := range lines {
		total += 1 + suppressedOf(t, line)
	}
	if want := uint64(rounds*goroutines*perGoroutine + 1); total != want {
		t.Fatalf("lines and suppressed counts add up to %d calls, want %d", total, want)
	}
}

// TestLogLimiterDisabledLevel: a level the logger does not write is neither written nor counted.
func TestLogLimiterDisabledLevel(t *testing.T) {
	t.Parallel()
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelError}))
	var clock fakeMono
	l := &logLimiter{now: clock.now}
	for range 3 {
		l.log(context.Background(), logger, logKeyFunc, slog.LevelWarn, "warn")
	}
	l.log(context.Background(), logger, logKeyFunc, slog.LevelError, "error")
	if lines := buf.lines(); len(lines) != 1 || suppressedOf(t, lines[0]) != 0 {
		t.Fatalf("want one error line without suppressed=, got %q", lines)
	}
}

// TestLogLimiterSynctest: inside a testing/synctest bubble, whose fake time reads as long before the
// process started, the limiter still writes a first line and one per interval of fake time.
func TestLogLimiterSynctest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var buf lockedBuffer
		logger := slog.New(slog.NewTextHandler(&buf, nil))
		var l logLimiter
		l.log(context.Background(), logger, logKeyFunc, slog.LevelWarn, "line")
		l.log(context.Background(), logger, logKeyFunc, slog.LevelWarn, "line")
		time.Sleep(logInterval)
		l.log(context.Background(), logger, logKeyFunc, slog.LevelWarn, "line")
		lines := buf.lines()
		if len(lines) != 2 || suppressedOf(t, lines[1]) != 1 {
			t.Fatalf("want two lines, the second with suppressed=1, got %q", lines)
		}
	})
}

// TestKeyFuncWarningRateLimited: a key function that fails for every request (clients choose how many
// send what it refuses) writes one warning per interval, not one per request, with the source of the
// call in the cache; every request still passes through and is counted.
func TestKeyFuncWarningRateLimited(t *testing.T) {
	t.Parallel()
	const n = 50
	var buf lockedBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{AddSource: true, Level: slog.LevelWarn}))
	errRefused := errors.New("no tenant")
	c := New(logger, nil, 0, WithKeyFunc(func(*http.Request) (string, error) { return "", errRefused }))
	var clock fakeMono
	c.stats.logs.now = clock.now
	srv := httptest.NewServer(c.Handler(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = io.WriteString(w, "ok")
	})))
	t.Cleanup(srv.Close)
	client := srv.Client()
	t.Cleanup(client.CloseIdleConnections)
	get := func() {
		resp, err := client.Get(srv.URL + "/k")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
		if resp.Header.Get("X-Cache") != "BYPASS" {
			t.Fatalf("X-Cache %q, want BYPASS", resp.Header.Get("X-Cache"))
		}
	}
	for range n {
		get()
	}
	clock.advance(logInterval)
	get()

	lines := buf.lines()
	if len(lines) != 2 {
		t.Fatalf("want 2 warnings for %d refusals, got %d:\n%s", n+1, len(lines), strings.Join(lines, "\n"))
	}
	for _, line := range lines {
		for _, want := range []string{"level=WARN", "key function failed", "error=\"no tenant\"", "handler.go:"} {
			if !strings.Contains(line, want) {
				t.Errorf("line %q lacks %q", line, want)
			}
		}
	}
	if got := suppressedOf(t, lines[1]); got != n-1 {
		t.Errorf("second warning says suppressed=%d, want %d", got, n-1)
	}
	if s := c.Snapshot(); s.Requests != n+1 || s.PassReasons[reasonKeyError] != n+1 {
		t.Errorf("requests %d, key-error passes %d; want %d each", s.Requests, s.PassReasons[reasonKeyError], n+1)
	}
}
