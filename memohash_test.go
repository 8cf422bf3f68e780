package stampede

import (
	"strings"
	"testing"
)

// TestMemoHashSpreads checks that the short-string hash depends on every byte and on the length, at
// every length it handles itself and past it, and that it is seeded.
func TestMemoHashSpreads(t *testing.T) {
	m := newKeyMemo()
	for n := 0; n <= memoHashShort+9; n++ {
		s := strings.Repeat("a", n)
		h := m.hash(s)
		if n > 0 && h == m.hash(s[:n-1]) {
			t.Fatalf("length %d hashes as length %d", n, n-1)
		}
		for i := range n {
			b := []byte(s)
			b[i] = 'b'
			if m.hash(string(b)) == h {
				t.Fatalf("length %d: byte %d does not change the hash", n, i)
			}
		}
	}
	if other := newKeyMemo(); other.hash("item:42") == m.hash("item:42") {
		t.Fatal("two memos hash a key alike: the seed is not used")
	}
}

func FuzzMemoHash(f *testing.F) {
	f.Add("item:42", 3)
	m := newKeyMemo()
	f.Fuzz(func(t *testing.T, s string, i int) {
		h := m.hash(s) // must not panic at any length
		if len(s) == 0 {
			return
		}
		i = (i%len(s) + len(s)) % len(s)
		b := []byte(s)
		b[i] ^= 0x80
		if len(s) <= memoHashShort && m.hash(string(b)) == h {
			t.Fatalf("%q: flipping byte %d keeps the hash", s, i)
		}
	})
}
