// Package progress draws a progress bar on stderr for work counted by an atomic counter, so that the
// goroutines doing the work only bump the counter and never take the bar's lock.
package progress

import (
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/schollz/progressbar/v3"
)

// Bar redraws a bar of Done out of a total until Stop is called.
type Bar struct {
	// Done is what the workers increment.
	Done atomic.Int64

	bar          *progressbar.ProgressBar
	quit, exited chan struct{}
}

// Start draws a bar with description for total units on stderr (or nowhere when quiet) and redraws it
// ten times a second.
func Start(description string, total int64, quiet bool) *Bar {
	var w io.Writer = os.Stderr
	if quiet {
		w = io.Discard
	}
	b := &Bar{
		bar: progressbar.NewOptions64(total,
			progressbar.OptionSetWriter(w),
			progressbar.OptionSetDescription(description),
			progressbar.OptionShowCount(),
			progressbar.OptionSetWidth(30),
			progressbar.OptionThrottle(100*time.Millisecond),
			progressbar.OptionClearOnFinish(),
		),
		quit:   make(chan struct{}),
		exited: make(chan struct{}),
	}
	go b.loop()
	return b
}

// Describe changes the text shown beside the bar.
func (b *Bar) Describe(description string) { b.bar.Describe(description) }

func (b *Bar) loop() {
	defer close(b.exited)
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			_ = b.bar.Set64(b.Done.Load())
		case <-b.quit:
			_ = b.bar.Set64(b.Done.Load())
			_ = b.bar.Finish()
			return
		}
	}
}

// Stop draws the final state, clears the bar and returns once it is gone.
func (b *Bar) Stop() {
	close(b.quit)
	<-b.exited
}
