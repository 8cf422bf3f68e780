package trace

import (
	"context"
	"log/slog"
	"strings"
	"sync/atomic"
)

// LogCounter is a slog handler that drops every record and counts the ones that say the middleware's
// circuit breaker opened, so a run reports how often its store was bypassed without flooding stderr.
type LogCounter struct {
	trips atomic.Int64
}

// Logger returns a logger that feeds l.
func (l *LogCounter) Logger() *slog.Logger { return slog.New(l) }

// Trips returns how many times the circuit breaker opened.
func (l *LogCounter) Trips() int64 { return l.trips.Load() }

// Enabled implements slog.Handler: only warnings and above are looked at.
func (l *LogCounter) Enabled(_ context.Context, level slog.Level) bool {
	return level >= slog.LevelWarn
}

// Handle implements slog.Handler.
func (l *LogCounter) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "circuit breaker open") {
		l.trips.Add(1)
	}
	return nil
}

// WithAttrs implements slog.Handler.
func (l *LogCounter) WithAttrs([]slog.Attr) slog.Handler { return l }

// WithGroup implements slog.Handler.
func (l *LogCounter) WithGroup(string) slog.Handler { return l }
