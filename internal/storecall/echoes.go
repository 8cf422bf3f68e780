package storecall

import (
	"sync"
	"time"
)

// Echoes remembers the invalidations this process made through a store that announces them to every
// replica, this one included, so that their announcements, when they come back, are not applied a
// second time: applied late, an echo would reach flights that started after the invalidation and
// refuse their writes for nothing, which costs a second load. An invalidation made elsewhere is never
// skipped for long: an echo consumes one announcement of its key, and is forgotten after echoTTL.
type Echoes struct {
	mu      sync.Mutex
	pending map[string]echo // guarded by mu
}

type echo struct {
	n     int
	since time.Time
}

// echoTTL is how long an invalidation waits for its echo; maxEchoes caps what is remembered (past it,
// echoes are applied like any announcement: harmless). An echo normally comes back within milliseconds;
// one later than echoTTL is applied, which costs at most a second load of its key, while an echo that
// never comes back (sent before the subscription was confirmed, or lost with a connection) makes another
// replica's announcement of the key within echoTTL pass for it: the shorter, the smaller that window.
const (
	echoTTL   = 2 * time.Second
	maxEchoes = 1 << 16
)

// Expect records that this process is about to invalidate key.
func (e *Echoes) Expect(key string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	now := time.Now()
	if e.pending == nil {
		e.pending = make(map[string]echo)
	}
	if len(e.pending) >= maxEchoes {
		for k, p := range e.pending {
			if now.Sub(p.since) > echoTTL {
				delete(e.pending, k)
			}
		}
		if len(e.pending) >= maxEchoes {
			return
		}
	}
	p := e.pending[key]
	p.n++
	p.since = now
	e.pending[key] = p
}

// Own reports whether an announcement of key is the echo of an invalidation this process made, and
// consumes it.
func (e *Echoes) Own(key string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	p, ok := e.pending[key]
	if !ok {
		return false
	}
	if time.Since(p.since) > echoTTL {
		delete(e.pending, key)
		return false
	}
	if p.n--; p.n == 0 {
		delete(e.pending, key)
	} else {
		e.pending[key] = p
	}
	return true
}
