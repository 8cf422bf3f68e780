package sqlstore

import (
	"errors"
	"strings"
	"testing"
)

// The store's behaviour is tested against real databases by the store modules (internal/storetest);
// these are the parsers and encoders that need none.

func TestValidPrefix(t *testing.T) {
	for _, tc := range []struct {
		name, prefix string
		ok           bool
	}{
		{"default", DefaultPrefix, true},
		{"letters digits underscores", "app_2_cache_", true},
		{"empty", "", false},
		{"leading digit", "1app", false},
		{"upper case", "App", false},
		{"quote", `a"b`, false},
		{"space", "a b", false},
		{"semicolon", "a;drop", false},
		{"dash", "a-b", false},
		{"too long", strings.Repeat("a", 41), false},
		{"longest", strings.Repeat("a", 40), true},
		{"non-ASCII", "cafè", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidPrefix(tc.prefix)
			if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrInvalidPrefix)) {
				t.Fatalf("ValidPrefix(%q) = %v, want ok=%v", tc.prefix, err, tc.ok)
			}
		})
	}
}

func TestTicketRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind      byte
		clock, id int64
	}{{ticketKind, 0, 0}, {ticketKind, 42, -7}, {leaseKind, 1 << 62, 1<<63 - 1}, {leaseKind, 3, -1 << 63}} {
		kind, clock, id, ok := parseTicket(formatTicket(tc.kind, tc.clock, tc.id))
		if !ok || kind != tc.kind || clock != tc.clock || id != tc.id {
			t.Fatalf("round trip of %c/%d/%d = %c/%d/%d/%v", tc.kind, tc.clock, tc.id, kind, clock, id, ok)
		}
	}
}

func FuzzParseTicket(f *testing.F) {
	for _, s := range []string{"", "t", "t1.2", "l-1.-2", "x1.2", "t1.", "t.2", "t1.2.3", "t99999999999999999999.1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		kind, clock, id, ok := parseTicket(s)
		if ok && formatTicket(kind, clock, id) != s {
			// Accepted forms other than the canonical one ("t+1.2", "t01.2") are harmless: the id
			// must still match a row, and the clock only ever refuses more.
			if _, _, _, ok2 := parseTicket(formatTicket(kind, clock, id)); !ok2 {
				t.Fatalf("%q parsed, but its canonical form does not", s)
			}
		}
	})
}

func FuzzPayload(f *testing.F) {
	f.Add(byte(KindKey), "key", "")
	f.Add(byte(KindRelease), "a key with spaces", "stored")
	f.Add(byte(KindTag), "\x00\xff", "out come")
	f.Fuzz(func(t *testing.T, kind byte, key, outcome string) {
		p, ok := encodePayload(Message{Kind: kind, Key: key, Outcome: outcome})
		if !ok {
			return
		}
		m, ok := decodePayload(p)
		if !ok || m.Kind != kind || m.Key != key || m.Outcome != outcome {
			t.Fatalf("round trip of %q/%q/%q = %+v, %v", kind, key, outcome, m, ok)
		}
		decodePayload(key) // anything else decodes or not, without panicking
	})
}

func TestKeyBytes(t *testing.T) {
	short := "short key"
	if string(keyBytes(short)) != short {
		t.Fatal("a short key is not stored as it is")
	}
	long := strings.Repeat("x", MaxKeyBytes+1)
	if kb := keyBytes(long); len(kb) != 33 || kb[0] != 0 {
		t.Fatalf("a long key is stored as %d bytes", len(kb))
	}
	// A short key starting with NUL is hashed too, so that no stored key can equal another's digest.
	if kb := keyBytes("\x00abc"); len(kb) != 33 {
		t.Fatalf("a key starting with NUL is stored as %q", kb)
	}
	if string(keyBytes(long)) == string(keyBytes(long+"y")) {
		t.Fatal("two long keys share a digest")
	}
}
