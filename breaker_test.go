package stampede

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
		b := &breaker{threshold: 3, base: time.Second, logger: slog.New(slog.NewTextHandler(&logs, nil)), name: "t"}
		errDown := errors.New("down")
		for i := range 3 {
			if !b.allow(time.Now()) {
				t.Fatalf("closed breaker refused call %d", i)
			}
			b.done(time.Now(), errDown)
		}
		if b.allow(time.Now()) {
			t.Fatal("breaker must open after 3 failures")
		}
		time.Sleep(time.Second) // fake clock: the back-off passes
		if !b.allow(time.Now()) {
			t.Fatal("one probe must be let through after the back-off")
		}
		if b.allow(time.Now()) {
			t.Fatal("only one probe at a time")
		}
		b.done(time.Now(), errDown) // failed probe: back-off doubles
		time.Sleep(time.Second)
		if b.allow(time.Now()) {
			t.Fatal("back-off must have doubled to 2s")
		}
		time.Sleep(time.Second)
		if !b.allow(time.Now()) {
			t.Fatal("probe after doubled back-off")
		}
		b.done(time.Now(), nil)
		if !b.allow(time.Now()) {
			t.Fatal("successful probe closes the breaker")
		}
		open, trips := b.state()
		if open || trips != 1 {
			t.Fatalf("state open=%v trips=%d", open, trips)
		}
		out := logs.String()
		if strings.Count(out, "level=WARN") != 1 || strings.Count(out, "level=INFO") != 1 {
			t.Fatalf("want one warning and one info, got:\n%s", out)
		}
	})
}
