package sqlstore

import (
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Message kinds: what an announcement is about.
const (
	KindKey     = 'k' // a key was deleted or invalidated
	KindTag     = 't' // a tag was purged
	KindRelease = 'r' // a lease was released, or revoked ("miss")
)

// Message is one announcement.
type Message struct {
	Kind    byte
	Key     string // the key, or the tag for KindTag
	Outcome string // for KindRelease
}

// maxPayload is the longest NOTIFY payload PostgreSQL accepts (8000 bytes) less some room.
const maxPayload = 7900

// encodePayload is a Message as a NOTIFY payload: the kind, the key in base64 (so any bytes travel in
// a text payload), a space and the outcome. ok is false when it would not fit.
func encodePayload(m Message) (string, bool) {
	if m.Kind >= 0x80 || !utf8.ValidString(m.Outcome) || strings.IndexByte(m.Outcome, 0) >= 0 {
		return "", false // a payload is text: the kinds are ASCII, and so are stampede's outcomes
	}
	p := string([]byte{m.Kind}) + base64.RawURLEncoding.EncodeToString([]byte(m.Key)) + " " + m.Outcome
	return p, len(p) <= maxPayload
}

func decodePayload(p string) (Message, bool) {
	if len(p) < 2 {
		return Message{}, false
	}
	k, outcome, ok := strings.Cut(p[1:], " ")
	key, err := base64.RawURLEncoding.DecodeString(k)
	if !ok || err != nil {
		return Message{}, false
	}
	return Message{Kind: p[0], Key: string(key), Outcome: outcome}, true
}

// events are a Store's subscribers and lease waiters.
type events struct {
	mu      sync.Mutex
	waiters map[string][]chan string // each channel has room for one outcome
	keyFns  map[int]func(string)
	tagFns  map[int]func(string)
	nextID  int
	gen     chan struct{} // closed and replaced when announcements may have been missed
	ready   chan struct{} // closed once the listener first listens
	isReady bool
}

func (e *events) init() {
	e.waiters = map[string][]chan string{}
	e.keyFns = map[int]func(string){}
	e.tagFns = map[int]func(string){}
	e.gen = make(chan struct{})
	e.ready = make(chan struct{})
}

// generation returns a channel closed when announcements may have been missed from now on.
func (e *events) generation() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.gen
}

// listening marks the listener as (again) listening: waiters read their lease again, since what was
// announced before may have been missed.
func (e *events) listening() {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.isReady {
		e.isReady = true
		close(e.ready)
	}
	close(e.gen)
	e.gen = make(chan struct{})
}

func (e *events) wait(key string) (chan string, func()) {
	ch := make(chan string, 1)
	e.mu.Lock()
	e.waiters[key] = append(e.waiters[key], ch)
	e.mu.Unlock()
	return ch, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		ws := e.waiters[key]
		for i, w := range ws {
			if w == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(e.waiters, key)
		} else {
			e.waiters[key] = ws
		}
	}
}

func (e *events) subscribe(fns map[int]func(string), fn func(string)) func() {
	e.mu.Lock()
	id := e.nextID
	e.nextID++
	fns[id] = fn
	e.mu.Unlock()
	return func() {
		e.mu.Lock()
		delete(fns, id)
		e.mu.Unlock()
	}
}

// dispatch hands m to the waiters or subscribers it concerns.
func (e *events) dispatch(m Message) {
	e.mu.Lock()
	switch m.Kind {
	case KindRelease:
		ws := e.waiters[m.Key]
		delete(e.waiters, m.Key)
		e.mu.Unlock()
		for _, ch := range ws {
			select {
			case ch <- m.Outcome:
			default:
			}
		}
		return
	case KindKey, KindTag:
		src := e.keyFns
		if m.Kind == KindTag {
			src = e.tagFns
		}
		fns := make([]func(string), 0, len(src))
		for _, fn := range src {
			fns = append(fns, fn)
		}
		e.mu.Unlock()
		for _, fn := range fns {
			fn(m.Key)
		}
		return
	}
	e.mu.Unlock()
}

// announce sends msgs within the transaction q: NOTIFY, or rows of the events table.
func (s *Store) announce(ctx context.Context, q Querier, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	if s.d.Notify != nil {
		payloads := make([]string, 0, len(msgs))
		for _, m := range msgs {
			if p, ok := encodePayload(m); ok {
				payloads = append(payloads, p)
			}
		}
		return s.d.Notify(ctx, q, s.channel(), payloads)
	}
	at := s.now()
	for len(msgs) > 0 {
		chunk := msgs[:min(len(msgs), 100)]
		msgs = msgs[len(chunk):]
		var b strings.Builder
		b.WriteString(s.sql("INSERT INTO {p}events (origin, at, kind, k, outcome) VALUES "))
		args := make([]any, 0, 5*len(chunk))
		for i, m := range chunk {
			if i > 0 {
				b.WriteString(", ")
			}
			b.WriteString("(?, ?, ?, ?, ?)")
			args = append(args, s.origin, at, string(m.Kind), []byte(m.Key), m.Outcome)
		}
		if _, err := q.Exec(ctx, b.String(), args...); err != nil {
			return err
		}
	}
	return nil
}

// delivered hands msgs, just committed, to this Store's own subscribers and waiters when the dialect
// announces through the events table (whose poller skips this Store's rows). NOTIFY reaches this
// Store's listener like any other.
func (s *Store) delivered(msgs []Message) {
	if s.d.Notify != nil {
		return
	}
	for _, m := range msgs {
		s.ev.dispatch(m)
	}
}

// channel is the NOTIFY channel of the store's prefix.
func (s *Store) channel() string { return s.cfg.Prefix + "events" }

// Invalidations calls fn with every key deleted or invalidated through any Store with the same tables
// until stop is called. fn runs on the listener's goroutine and must not block.
func (s *Store) Invalidations(fn func(key string)) (stop func()) {
	stop = s.ev.subscribe(s.ev.keyFns, fn)
	_ = s.listen(context.Background())
	return stop
}

// TagInvalidations calls fn with every tag purged through any Store with the same tables until stop is
// called. fn runs on the listener's goroutine and must not block.
func (s *Store) TagInvalidations(fn func(tag string)) (stop func()) {
	stop = s.ev.subscribe(s.ev.tagFns, fn)
	_ = s.listen(context.Background())
	return stop
}

// listen starts the listener (NOTIFY) or the poller (events table) on first use, and waits until it
// listens, at most the store's timeout: when the database is unreachable a waiter goes on, woken by
// its lease's expiry.
func (s *Store) listen(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	if !s.started {
		s.started = true
		s.wg.Add(1)
		if s.d.Listen != nil {
			go s.runListener(s.bgCtx)
		} else {
			go s.runPoller(s.bgCtx)
		}
	}
	s.mu.Unlock()
	t := time.NewTimer(s.cfg.Timeout)
	defer t.Stop()
	select {
	case <-s.ev.ready:
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
	}
	return nil
}

// runListener keeps a NOTIFY listener up, reconnecting with a back-off, until ctx ends.
func (s *Store) runListener(ctx context.Context) {
	defer s.wg.Done()
	backoff := 50 * time.Millisecond
	for ctx.Err() == nil {
		err := s.d.Listen(ctx, s.channel(), func() { backoff = 50 * time.Millisecond; s.ev.listening() }, func(p string) {
			if m, ok := decodePayload(p); ok {
				s.ev.dispatch(m)
			}
		})
		_ = err // the listener retries; waiters are woken by their leases' expiry meanwhile
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
			backoff = min(2*backoff, 2*time.Second)
		}
	}
}

// runPoller reads the events table every PollEvery and dispatches the announcements of other Stores,
// until ctx ends.
//
// Row ids are not committed in order (MySQL assigns them at insert, transactions commit later), so a
// poll does not resume after the last id seen: it reads every event stamped within a look-back window
// (each transaction that writes one is bounded by the store's timeout, so it commits within that of its
// stamp) and skips the ids it already dispatched.
func (s *Store) runPoller(ctx context.Context) {
	defer s.wg.Done()
	lookback := max(2*time.Second, 4*s.cfg.Timeout).Milliseconds()
	start := s.now()
	seen := map[int64]int64{} // event id -> its stamp, for the ids within the look-back window
	t := time.NewTicker(s.cfg.PollEvery)
	defer t.Stop()
	first := true
	for {
		from := max(start, s.now()-lookback)
		if err := s.pollOnce(ctx, from, seen); err == nil && first {
			first = false
			s.ev.listening()
		} else if err != nil && !first {
			s.ev.listening() // events may have been missed: waiters read their leases again
		}
		for id, at := range seen {
			if at < from {
				delete(seen, id)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Store) pollOnce(ctx context.Context, from int64, seen map[int64]int64) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	var after int64
	for {
		rows, err := s.db.Query(ctx, s.sql("SELECT id, origin, at, kind, k, outcome FROM {p}events WHERE at >= ? AND id > ? ORDER BY id LIMIT 1000"), from, after)
		if err != nil {
			return err
		}
		n := 0
		var batch []Message
		for rows.Next() {
			var (
				id, origin, at int64
				kind, outcome  string
				k              []byte
			)
			if err := rows.Scan(&id, &origin, &at, &kind, &k, &outcome); err != nil {
				rows.Close()
				return err
			}
			n++
			after = id
			if _, ok := seen[id]; ok {
				continue
			}
			seen[id] = at
			if origin != s.origin && kind != "" {
				batch = append(batch, Message{Kind: kind[0], Key: string(k), Outcome: outcome})
			}
		}
		err = rows.Err()
		rows.Close()
		for _, m := range batch {
			s.ev.dispatch(m)
		}
		if err != nil {
			return err
		}
		if n < 1000 {
			return nil
		}
	}
}

// Close stops the background sweeper and the listener or poller and waits for them. It does not close
// the database handle. Calls made afterwards still work, except that WaitRelease and the subscriptions
// no longer hear announcements.
func (s *Store) Close() error {
	s.mu.Lock()
	s.closed = true
	s.mu.Unlock()
	s.stop()
	s.wg.Wait()
	return nil
}
