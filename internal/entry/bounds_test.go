package entry

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"hash/crc32"
	"net/http"
	"runtime"
	"runtime/metrics"
	"sync"
	"testing"
	"time"
)

// The decoder's allocation bound. Parse allocates nothing; Decode allocates the Entry, a header map of
// at most len/3 entries (every header costs at least 3 encoded bytes), one string slot per value (at most
// len values), a copy of the body and the vary fields. That is well under allocPerByte bytes per input
// byte, plus a constant for the Entry and the map's fixed part.
const (
	allocPerByte = 128
	allocFixed   = 64 << 10
	// allocSlack covers the imprecision of the cheap counter used while fuzzing: runtime/metrics counts a
	// small-object span when it is handed back, so up to one span per size class lags or leads. Large
	// allocations (> 32 KiB), the ones an unchecked declared length would cause, are counted exactly.
	allocSlack = 1 << 20
)

// fuzzWorker reports whether this process is a `go test -fuzz` worker, where a stop-the-world
// runtime.ReadMemStats per input would cut the execution rate tenfold.
var fuzzWorker = sync.OnceValue(func() bool {
	f := flag.Lookup("test.fuzzworker")
	return f != nil && f.Value.String() == "true"
})

// allocatedBytes returns the bytes fn allocated: exactly (ReadMemStats) in a normal test run, and from
// runtime/metrics, which does not stop the world, while fuzzing.
func allocatedBytes(fn func()) (n uint64, exact bool) {
	if fuzzWorker() {
		s := []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}
		metrics.Read(s)
		before := s[0].Value.Uint64()
		fn()
		metrics.Read(s)
		return s[0].Value.Uint64() - before, false
	}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	fn()
	runtime.ReadMemStats(&m1)
	return m1.TotalAlloc - m0.TotalAlloc, true
}

// sealed returns b followed by its CRC-32C, so that fuzzed bytes get past the checksum and exercise the
// structure behind it (a random mutation of a sealed entry almost never has a valid checksum).
func sealed(b []byte) []byte {
	out := append(bytes.Clone(b), 0, 0, 0, 0)
	binary.LittleEndian.PutUint32(out[len(b):], crc32.Checksum(b, castagnoli))
	return out
}

// framed returns b behind a valid fixed prefix (magic, version, status 200, zero times) and sealed, so
// every fuzzed byte lands in the header, vary and body blocks.
func framed(b []byte) []byte {
	prefix := make([]byte, fixedLen)
	copy(prefix, Magic)
	prefix[4] = Version
	binary.LittleEndian.PutUint16(prefix[6:], 200)
	return sealed(append(prefix, b...))
}

// checkEntryBytes is the fuzz property for one input: Parse either rejects b with an error wrapping
// ErrInvalid or accepts it; it never panics. An accepted entry decodes, its parts are bounded by len(b),
// Decode allocates at most allocPerByte*len(b)+allocFixed bytes, Parse allocates nothing, and it
// re-encodes to an entry that parses to the same thing.
func checkEntryBytes(t *testing.T, b []byte) {
	t.Helper()
	v, err := Parse(b)
	if err != nil {
		if !errors.Is(err, ErrInvalid) {
			t.Fatalf("error %v does not wrap ErrInvalid", err)
		}
		return
	}
	if !fuzzWorker() {
		if n := testing.AllocsPerRun(1, func() { _, _ = Parse(b) }); n != 0 {
			t.Fatalf("Parse of a %d-byte entry allocated %v times", len(b), n)
		}
	}
	h := http.Header{}
	v.CopyHeader(h)

	var e *Entry
	n, exact := allocatedBytes(func() { e, err = Decode(b) })
	if err != nil {
		t.Fatalf("Decode failed after Parse succeeded: %v", err)
	}
	limit := uint64(allocPerByte*len(b) + allocFixed)
	if !exact {
		limit += allocSlack
	}
	if n > limit {
		t.Fatalf("Decode of %d bytes allocated %d bytes, more than the input allows (%d)", len(b), n, limit)
	}

	values := 0
	for name, vs := range e.Header {
		values += len(vs)
		if !validName([]byte(name)) {
			t.Fatalf("decoded invalid header name %q", name)
		}
		for _, s := range vs {
			if !validValue([]byte(s)) {
				t.Fatalf("decoded header %s with a line-breaking value %q", name, s)
			}
		}
	}
	if len(e.Header) > len(b)/3 || values > len(b) || len(e.Vary) > len(b)/3 || len(e.Body) > len(b) {
		t.Fatalf("decoded parts exceed the input: %d headers, %d values, %d vary, %d body bytes from %d bytes",
			len(e.Header), values, len(e.Vary), len(e.Body), len(b))
	}
	if len(h) != len(e.Header) {
		t.Fatalf("CopyHeader gave %d headers, Decode %d", len(h), len(e.Header))
	}

	// A valid entry re-encodes to bytes that parse to the same entry.
	again, err := Decode(Encode(e))
	if err != nil {
		t.Fatalf("re-encoded entry does not parse: %v", err)
	}
	if again.Status != e.Status || !bytes.Equal(again.Body, e.Body) || again.Flags != e.Flags ||
		!again.StoredAt.Equal(e.StoredAt) || again.Lifetime != e.Lifetime || len(again.Header) != len(e.Header) ||
		len(again.Vary) != len(e.Vary) {
		t.Fatalf("re-encode mismatch:\n got %+v\nwant %+v", again, e)
	}
}

// hostile returns a sealed entry whose header block declares count headers (or values, or vary fields)
// and then ends: the classic "length field says 2^62" attack on a decoder.
func hostile(block string, count uint64) []byte {
	var b []byte
	switch block {
	case "headers":
		b = binary.AppendUvarint(b, count)
	case "values":
		b = append(b, 1)                   // one header
		b = append(b, 1, 'A')              // named "A"
		b = binary.AppendUvarint(b, count) // with count values
	case "value length":
		b = append(b, 1, 1, 'A', 1)        // one header "A" with one value
		b = binary.AppendUvarint(b, count) // of count bytes
	case "vary":
		b = append(b, 0)
		b = binary.AppendUvarint(b, count)
	}
	return framed(append(b, bytes.Repeat([]byte{1}, 32)...))
}

// TestDecodeHostileCounts: declared counts and lengths far beyond the input are rejected without
// allocating for them, whatever block they are in.
func TestDecodeHostileCounts(t *testing.T) {
	for _, block := range []string{"headers", "values", "value length", "vary"} {
		for _, count := range []uint64{33, 1 << 20, 1 << 31, 1 << 40, 1<<63 - 1, 1<<64 - 1} {
			b := hostile(block, count)
			var err error
			n, _ := allocatedBytes(func() { _, err = Decode(b) })
			if !errors.Is(err, ErrTrunc) {
				t.Errorf("%s=%d: Decode = %v, want ErrTrunc", block, count, err)
			}
			if n > 0 {
				t.Errorf("%s=%d: rejecting a %d-byte entry allocated %d bytes", block, count, len(b), n)
			}
		}
	}
}

// TestDecodeAllocationsBounded: the largest honest entries per input byte (many one-byte headers, many
// empty values, many vary fields) stay within the bound the fuzz target asserts.
func TestDecodeAllocationsBounded(t *testing.T) {
	manyHeaders := http.Header{}
	for i := range 5000 {
		manyHeaders[string(rune('A'+i%26))+string(rune('a'+i/26%26))+string(rune('a'+i/676))] = []string{""}
	}
	manyValues := http.Header{"A": make([]string, 20000)}
	var vary []VaryField
	for range 5000 {
		vary = append(vary, VaryField{Name: "V", Value: ""})
	}
	tests := []struct {
		name string
		e    *Entry
	}{
		{"many headers", &Entry{Status: 200, Header: manyHeaders, StoredAt: time.Unix(1, 0)}},
		{"many values", &Entry{Status: 200, Header: manyValues, StoredAt: time.Unix(1, 0)}},
		{"many vary fields", &Entry{Status: 200, Vary: vary, StoredAt: time.Unix(1, 0)}},
		{"large body", &Entry{Status: 200, Body: bytes.Repeat([]byte("x"), 4<<20), StoredAt: time.Unix(1, 0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := Encode(tt.e)
			var err error
			n, _ := allocatedBytes(func() { _, err = Decode(b) })
			if err != nil {
				t.Fatal(err)
			}
			if limit := uint64(allocPerByte*len(b) + allocFixed); n > limit {
				t.Fatalf("Decode of %d bytes allocated %d (limit %d)", len(b), n, limit)
			}
			t.Logf("%d bytes in, %d bytes allocated (%.1f per byte)", len(b), n, float64(n)/float64(len(b)))
		})
	}
}
