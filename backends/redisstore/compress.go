package redisstore

import (
	"github.com/klauspost/compress/s2"

	"github.com/seed-a1426414/stampede/internal/entry"
)

// compressedMagic starts a compressed value: the magic, then one S2 block holding the entry bytes.
// Raw entries start with entry.Magic ("STMP"), so a reader tells the two apart by the first four bytes;
// S2 blocks carry no checksum, but the entry inside has its own, so corruption is still caught.
const compressedMagic = "STZ1"

// encode returns the bytes to store for value: compressed in the envelope when compression is on, the
// value is above the threshold, it is an entry without a Content-Encoding, and S2 makes it smaller;
// otherwise value itself.
func (s *Store) encode(value []byte) []byte {
	if !s.cfg.compress || len(value) <= s.cfg.threshold || int64(len(value)) > s.cfg.maxValue {
		return value
	}
	v, err := entry.Parse(value)
	if err != nil {
		return value // not ours to interpret: store it as given
	}
	if ce, ok := v.HeaderValue("Content-Encoding"); ok && string(ce) != "identity" {
		return value // already compressed by the handler; a second pass would gain nothing
	}
	n := s2.MaxEncodedLen(len(value))
	if n < 0 {
		return value
	}
	buf := make([]byte, len(compressedMagic)+n)
	copy(buf, compressedMagic)
	enc := s2.Encode(buf[len(compressedMagic):], value)
	if len(compressedMagic)+len(enc) >= len(value) {
		return value // incompressible: raw costs the reader nothing
	}
	return buf[:len(compressedMagic)+len(enc)]
}

// decode returns the entry bytes of a stored value: decompressed when it is in the envelope, as stored
// otherwise. A value in the envelope that declares more than limit bytes, or does not decompress, is
// returned as stored, before anything is allocated for it: its magic is not entry.Magic, so the entry
// decoder rejects it as it rejects any foreign value.
func decode(b []byte, limit int64) []byte {
	if len(b) < len(compressedMagic) || string(b[:len(compressedMagic)]) != compressedMagic {
		return b
	}
	src := b[len(compressedMagic):]
	n, err := s2.DecodedLen(src)
	if err != nil || int64(n) > limit {
		return b
	}
	out, err := s2.Decode(make([]byte, n), src)
	if err != nil {
		return b
	}
	return out
}
