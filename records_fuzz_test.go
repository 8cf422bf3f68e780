package stampede

import (
	"errors"
	"testing"
	"time"
)

type fuzzRow struct {
	ID   int
	Name string
	Tags []string
}

// FuzzRecordDecode: whatever bytes a store hands back, decoding a loader's record never panics; bytes
// that decode are a record whose re-encoding decodes to the same record; bytes that do not are reported
// (logged once, a miss), never a value.
func FuzzRecordDecode(f *testing.F) {
	b := &bytesRecords[fuzzRow]{codec: JSON}
	b.bad = func(error) {}
	seed := func(rec record[fuzzRow]) {
		raw, err := b.encode(&rec)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	now := time.Unix(1_700_000_000, 0)
	seed(record[fuzzRow]{val: fuzzRow{ID: 1, Name: "a", Tags: []string{"x"}}, storedAt: now, ttl: time.Minute, swr: time.Second})
	seed(record[fuzzRow]{err: ErrNotFound, storedAt: now, ttl: time.Minute})
	seed(record[fuzzRow]{err: errors.New("store panicked"), storedAt: now, ttl: time.Second})
	f.Add([]byte("not an entry"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, raw []byte) {
		bad := 0
		b := &bytesRecords[fuzzRow]{codec: JSON, bad: func(error) { bad++ }}
		rec, ok := b.decode(raw)
		if !ok {
			if bad != 1 {
				t.Fatalf("a rejected value was reported %d times", bad)
			}
			return
		}
		again, err := b.encode(&rec)
		if err != nil {
			t.Fatalf("a decoded record does not encode: %v", err)
		}
		rec2, ok := b.decode(again)
		if !ok || (rec.err == nil) != (rec2.err == nil) || rec.ttl != rec2.ttl || !rec.storedAt.Equal(rec2.storedAt) ||
			rec.val.ID != rec2.val.ID || rec.val.Name != rec2.val.Name {
			t.Fatalf("round trip changed the record: %+v -> %+v", rec, rec2)
		}
	})
}
