package stampede

import "hash/maphash"

// hash is the key memo's hash of s: a seeded multiply-xorshift over 8-byte words for strings of up
// to memoHashShort bytes (a few ns: the memo is consulted on every hit, and its keys are short), and
// maphash beyond. It only picks a memo slot, whose contents are compared in full, so a collision, even
// one an attacker contrives, costs a memo miss (one SHA-256), never a wrong key. The seed is random per
// memo, so collisions cannot be computed offline.
func (m *keyMemo) hash(s string) uint64 {
	if len(s) > memoHashShort {
		return maphash.String(m.seed, s)
	}
	h := m.seed64 ^ uint64(len(s))*hashMul1
	var w uint64
	switch n := len(s); {
	case n > 8:
		for t := s; len(t) > 8; t = t[8:] {
			h = hashMix(h ^ load64(t))
		}
		w = load64(s[n-8:]) // the last 8 bytes, overlapping the last word mixed in when n is not a multiple of 8
	case n == 8:
		w = load64(s)
	case n >= 4:
		w = uint64(load32(s)) | uint64(load32(s[n-4:]))<<32
	case n > 0:
		w = uint64(s[0]) | uint64(s[n>>1])<<8 | uint64(s[n-1])<<16
	}
	h = hashMix(h ^ w)
	return hashMix(h)
}

const (
	memoHashShort = 64
	hashMul1      = 0x9E3779B97F4A7C15
	hashMul2      = 0xBF58476D1CE4E5B9
)

func hashMix(x uint64) uint64 {
	x *= hashMul2
	return x ^ x>>31
}

// load32 reads s's first 4 bytes, little-endian.
func load32(s string) uint32 {
	_ = s[3]
	return uint32(s[0]) | uint32(s[1])<<8 | uint32(s[2])<<16 | uint32(s[3])<<24
}

// load64 reads s's first 8 bytes, little-endian (the compiler makes it one load).
func load64(s string) uint64 {
	_ = s[7]
	return uint64(s[0]) | uint64(s[1])<<8 | uint64(s[2])<<16 | uint64(s[3])<<24 |
		uint64(s[4])<<32 | uint64(s[5])<<40 | uint64(s[6])<<48 | uint64(s[7])<<56
}
