package redisstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/http"
	"testing"
	"time"

	"github.com/klauspost/compress/s2"

	"github.com/seed-a1426414/stampede/internal/entry"
	"github.com/seed-a1426414/stampede/internal/redistest"
)

func TestCompression(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin := srv.Client()
	ctx := context.Background()
	compressing := New(newClient(t, relaxed(srv.Addr())), WithCompression(4096), WithTimeout(5*time.Second))
	plain := New(newClient(t, relaxed(srv.Addr())), WithTimeout(5*time.Second))

	tests := []struct {
		name           string
		value          []byte
		wantCompressed bool
	}{
		{"compressible 64 KiB entry", makeEntry(64<<10, false, nil), true},
		{"Content-Encoding gzip", makeEntry(64<<10, false, http.Header{"Content-Encoding": {"gzip"}}), false},
		{"Content-Encoding identity", makeEntry(64<<10, false, http.Header{"Content-Encoding": {"identity"}}), true},
		{"incompressible entry", makeEntry(64<<10, true, nil), false},
		{"below threshold", makeEntry(100, false, nil), false},
		{"not an entry", bytes.Repeat([]byte("not an entry "), 5000), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := "c:" + tt.name
			if err := compressing.SetEx(ctx, key, tt.value, time.Minute); err != nil {
				t.Fatal(err)
			}
			n, err := admin.StrLen(ctx, key).Result()
			if err != nil {
				t.Fatal(err)
			}
			if compressed := int(n) < len(tt.value); compressed != tt.wantCompressed {
				t.Fatalf("stored %d bytes of %d: compressed = %v, want %v", n, len(tt.value), compressed, tt.wantCompressed)
			}
			// Both stores read it back bytes-identical, whatever their own compression option.
			for name, s := range map[string]*Store{"compressing": compressing, "plain": plain} {
				got, ok, err := s.Get(ctx, key)
				if err != nil || !ok || !bytes.Equal(got, tt.value) {
					t.Fatalf("%s store: Get = ok %v, err %v, %d bytes; want the %d stored", name, ok, err, len(got), len(tt.value))
				}
			}
		})
	}
}

func TestForeignValues(t *testing.T) {
	t.Parallel()
	srv := redistest.Start(t)
	admin := srv.Client()
	s := New(newClient(t, relaxed(srv.Addr())), WithCompression(DefaultCompressionThreshold), WithTimeout(5*time.Second))
	ctx := context.Background()

	hugeClaim := binary.AppendUvarint([]byte(compressedMagic), 1<<40) // claims 1 TiB once decoded
	validEntry := makeEntry(10<<10, false, nil)
	tests := []struct {
		name  string
		value []byte
	}{
		{"garbage after the magic", append([]byte(compressedMagic), "\xff\xfe garbage \x00\x01"...)},
		{"magic only", []byte(compressedMagic)},
		{"decoded length beyond the bound", append(hugeClaim, 0, 0, 0)},
		{"truncated compressed entry", func() []byte {
			v := compressed(validEntry)
			return v[:len(v)/2]
		}()},
		{"compressed non-entry", append([]byte(compressedMagic), s2.Encode(nil, bytes.Repeat([]byte("x"), 5000))...)},
		{"foreign bytes", []byte("hello from another app")},
		{"truncated raw entry", validEntry[:len(validEntry)-10]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			key := "f:" + tt.name
			if err := admin.Set(ctx, key, tt.value, time.Minute).Err(); err != nil {
				t.Fatal(err)
			}
			got, ok, err := s.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get: %v; foreign values are not store errors", err)
			}
			if !ok {
				t.Fatal("Get reported a miss; the decoder, not the store, decides")
			}
			if _, err := entry.Parse(got); err == nil {
				t.Fatal("a foreign value came back as a valid entry")
			}
			// The middleware overwrites it with a fresh entry, which then reads back.
			if err := s.SetEx(ctx, key, validEntry, time.Minute); err != nil {
				t.Fatal(err)
			}
			if got, _, _ := s.Get(ctx, key); !bytes.Equal(got, validEntry) {
				t.Fatal("overwritten value does not read back")
			}
		})
	}
}

// compressed returns value in the compressed envelope, as a compressing store writes it.
func compressed(value []byte) []byte {
	s := &Store{cfg: config{compress: true, threshold: 1, maxValue: DefaultMaxValueBytes}}
	return s.encode(value)
}

func FuzzDecode(f *testing.F) {
	f.Add([]byte("STMP"))
	f.Add([]byte(compressedMagic))
	f.Add(compressed(makeEntry(4096, false, nil)))
	f.Add(binary.AppendUvarint([]byte(compressedMagic), 1<<40))
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		out := decode(b, 1<<20)
		if !bytes.Equal(b, in) {
			t.Fatal("decode modified its input")
		}
		if !bytes.HasPrefix(b, []byte(compressedMagic)) && !bytes.Equal(out, b) {
			t.Fatal("a value without the magic was changed")
		}
		if len(out) > 1<<20 && !bytes.Equal(out, b) {
			t.Fatalf("decoded %d bytes, beyond the bound", len(out))
		}
	})
}

func FuzzCompressRoundTrip(f *testing.F) {
	f.Add([]byte(""), "text/plain")
	f.Add(bytes.Repeat([]byte("abc"), 1000), "text/html")
	f.Fuzz(func(t *testing.T, body []byte, contentType string) {
		h := http.Header{}
		if contentType != "" {
			h["Content-Type"] = []string{contentType}
		}
		e := &entry.Entry{Status: 200, Header: h, Body: body, StoredAt: time.Unix(1, 0)}
		if _, err := entry.Parse(entry.Encode(e)); err != nil {
			return // not a valid entry (a header value with CR or LF): stored raw, nothing to check
		}
		v := entry.Encode(e)
		s := &Store{cfg: config{compress: true, threshold: 1, maxValue: DefaultMaxValueBytes}}
		if got := decode(s.encode(v), DefaultMaxValueBytes); !bytes.Equal(got, v) {
			t.Fatalf("round trip changed a %d-byte entry", len(v))
		}
	})
}
