package storecall

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func TestBreaker(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var logs bytes.Buffer
		b := NewBreaker(3, time.Second, slog.New(slog.NewTextHandler(&logs, nil)), "t")
		errDown := errors.New("down")
		allowed := func() bool { ok, _ := b.Allow(time.Now()); return ok }
		for i := range 3 {
			if !allowed() {
				t.Fatalf("closed breaker refused call %d", i)
			}
		}
		for range 3 {
			b.Done(time.Now(), false, errDown)
		}
		if !allowed() {
			t.Fatal("3 failures at once are not yet a run that lasted MinFailingSpan")
		}
		time.Sleep(MinFailingSpan) // fake clock
		b.Done(time.Now(), false, errDown)
		if allowed() {
			t.Fatal("breaker must open after 3 failures over MinFailingSpan")
		}
		for range 50 { // calls that started before it opened fail late: they must not extend the back-off
			b.Done(time.Now(), false, errDown)
		}
		time.Sleep(time.Second) // fake clock: the back-off passes
		ok, probe := b.Allow(time.Now())
		if !ok || !probe {
			t.Fatal("one probe must be let through after the back-off")
		}
		if allowed() {
			t.Fatal("only one probe at a time")
		}
		b.Abandon(probe) // the probe's client left: the token comes back
		ok, probe = b.Allow(time.Now())
		if !ok || !probe {
			t.Fatal("an abandoned probe must not block the next one")
		}
		for range 5 { // failed probes: the back-off stays what it was, so a recovered store is found soon
			b.Done(time.Now(), probe, errDown)
			time.Sleep(time.Second - time.Millisecond)
			if allowed() {
				t.Fatal("no probe inside the back-off")
			}
			time.Sleep(time.Millisecond)
			ok, probe = b.Allow(time.Now())
			if !ok || !probe {
				t.Fatal("a probe after each back-off")
			}
		}
		b.Done(time.Now(), probe, nil)
		if !allowed() {
			t.Fatal("successful probe closes the breaker")
		}
		open, trips := b.State()
		if open || trips != 1 {
			t.Fatalf("state open=%v trips=%d", open, trips)
		}
		out := logs.String()
		if strings.Count(out, "level=WARN") != 1 || strings.Count(out, "level=INFO") != 1 {
			t.Fatalf("want one warning and one info, got:\n%s", out)
		}
	})
}

// A store that answers part of its calls (a cluster with one node down) keeps breaking the run of
// failures: the breaker stays closed however long it lasts.
func TestBreakerPartialFailure(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		b := NewBreaker(5, time.Second, slog.New(slog.NewTextHandler(&bytes.Buffer{}, nil)), "t")
		errDown := errors.New("node down")
		for i := range 3000 { // a third of the calls fail, one every millisecond, for 3 s
			var err error
			if i%3 == 0 {
				err = errDown
			}
			b.Done(time.Now(), false, err)
			time.Sleep(time.Millisecond)
		}
		if open, trips := b.State(); open || trips != 0 {
			t.Fatalf("a partly answering store must not be skipped: open=%v trips=%d", open, trips)
		}
	})
}
