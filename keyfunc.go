package stampede

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/maphash"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"sync/atomic"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// KeyFunc returns extra key material for a request, for example the tenant or user id that decides what
// the response contains. Requests whose KeyFunc results differ never share a response. An error makes the
// request pass through to the handler uncached (logged at warn level, rate-limited), so a KeyFunc may
// refuse requests it cannot classify; [ErrNotCached] does the same without the warning.
type KeyFunc func(r *http.Request) (string, error)

// ErrKeyBodyTooLarge is why a request whose keyed body exceeds the key-body limit passes through.
var ErrKeyBodyTooLarge = errors.New("stampede: request body too large to key")

// digestLen is how many bytes of the SHA-256 of the key material go into a store key: 128 bits, so two
// different requests colliding by chance or by design is out of reach.
const digestLen = 16

// numShards spreads in-flight and hit-for-pass state over independent locks.
const numShards = 64

// key is a request's identity: the store key and the shard of the in-process state that holds it.
type key struct {
	s     string
	id    uint64 // 64 bits of the digest, for cheap identity checks that may err only towards caution
	shard uint8
}

// queryPair is one decoded query parameter; raw records that a part did not decode and is kept as sent.
type queryPair struct {
	name, value string
	raw         bool
}

// keyer builds keys with a fixed prefix.
type keyer struct {
	prefix    string // "<prefix>:<version>:{"
	headers   []string
	authKeyed bool // Authorization is one of headers
	keyFunc   KeyFunc
	memo      *keyMemo // nil disables it
}

// keyMemo remembers the keys of recently seen key material, so a hot URL (or a hot key of the function
// API) is not hashed with SHA-256 on every request. It is a memoWays-way set-associative table indexed
// by a fast seeded hash: a key is looked for in the memoWays slots of its set, so a working set of up to
// about half the slots stays memoised (a direct-mapped table lost one key in five of 1,024 to a
// colliding one, and paid SHA-256 and allocations for it on every call; 4 ways still cost a Do hit
// 1,510 instructions, 8 ways 1,267). Each slot keeps the full
// material and a hit requires it to be equal byte for byte, so the memo can never confuse two requests.
// Memory is bounded: memoSlots slots of at most memoMaxMaterial bytes of material each.
type keyMemo struct {
	seed   maphash.Seed
	seed64 uint64 // the seed of hash's short-string hash
	slots  [memoSlots]atomic.Pointer[memoSlot]
	simple [memoSlots]atomic.Pointer[simpleSlot] // requests keyed on their URL alone
}

// simpleID identifies a request whose key material is its method, scheme, host, path and query only (no
// key headers, body or KeyFunc): the memo finds its key by comparing these fields as sent, without
// building the material at all.
type simpleID struct {
	method, host, path, rawPath, rawQuery string
	tls, anonAuth                         bool
}

type simpleSlot struct {
	id simpleID
	k  key
}

func (m *keyMemo) simpleIndex(id *simpleID) uint64 {
	h := m.hash(id.path)
	if id.rawQuery != "" {
		h ^= 31 * m.hash(id.rawQuery)
	}
	return h % memoSlots
}

const (
	memoSlots       = 4096
	memoWays        = 8 // slots per set of the key memo
	memoSets        = memoSlots / memoWays
	memoMaxMaterial = 256
)

// set returns the slots of the set of a key whose memo hash is h.
func (m *keyMemo) set(h uint64) []atomic.Pointer[memoSlot] {
	i := (h % memoSets) * memoWays
	return m.slots[i : i+memoWays : i+memoWays]
}

// store puts sl in the set of hash h: in a free slot, else in place of a random one (under a cyclic
// access pattern, evicting the least recently stored would evict every key of an oversubscribed set in
// turn; a random victim keeps most of them).
func (m *keyMemo) store(h uint64, sl *memoSlot) {
	set := m.set(h)
	for i := range set {
		if set[i].Load() == nil {
			set[i].Store(sl)
			return
		}
	}
	set[rand.Uint32()%memoWays].Store(sl)
}

type memoSlot struct {
	material string
	k        key
	// family and rest are set by putPrefixed: material is family.s+rest, and getPrefixed compares
	// the family by pointer and rest alone.
	family *memoPrefix
	rest   string
}

func newKeyMemo() *keyMemo {
	seed := maphash.MakeSeed()
	return &keyMemo{seed: seed, seed64: maphash.String(seed, "stampede key memo")}
}

func (m *keyMemo) get(material []byte) *key {
	if m == nil || len(material) > memoMaxMaterial {
		return nil
	}
	set := m.set(maphash.Bytes(m.seed, material))
	for i := range set {
		if s := set[i].Load(); s != nil && s.material == string(material) {
			return &s.k
		}
	}
	return nil
}

// getPrefixed is get for the material prefix.s+s, without building it: the slot is indexed by s's
// hash mixed with the prefix's, and holds the key only if putPrefixed put it there for the same prefix
// (compared by pointer) and s.
func (m *keyMemo) getPrefixed(prefix *memoPrefix, s string) *key {
	if len(s) > memoMaxMaterial {
		return nil // never put
	}
	set := m.set(m.hash(s) ^ prefix.h)
	for i := range set {
		if sl := set[i].Load(); sl != nil && sl.family == prefix && sl.rest == s {
			return &sl.k
		}
	}
	return nil
}

func (m *keyMemo) putPrefixed(prefix *memoPrefix, s string, material []byte, k key) {
	if len(material) > memoMaxMaterial {
		return
	}
	mat := string(material)
	m.store(m.hash(s)^prefix.h, &memoSlot{material: mat, k: k, family: prefix, rest: mat[len(prefix.s):]})
}

// memoPrefix is key material that a family of keys starts with (a Stampede's tag, a Loader's name),
// with its hash under the memo's seed. It is compared by address: one lives in each Stampede or
// Loader, for as long as it does.
type memoPrefix struct {
	s string
	h uint64
}

func (m *keyMemo) prefix(material []byte) memoPrefix {
	return memoPrefix{s: string(material), h: maphash.Bytes(m.seed, material) * 0x9E3779B97F4A7C15}
}

func (m *keyMemo) put(material []byte, k key) {
	if m == nil || len(material) > memoMaxMaterial {
		return
	}
	m.store(maphash.Bytes(m.seed, material), &memoSlot{material: string(material), k: k})
}

// Material field tags, so fields can never run into each other.
const (
	tagMethod byte = iota + 1
	tagScheme
	tagHost
	tagPath
	tagQuery
	tagHeader
	tagBody
	tagKeyFunc
	tagAuth
	tagLoader // a Loader's key: its name, then the key's string form
	tagDo     // a Stampede's key: the string given to Do
)

// build computes the key of r. body is the digest of the request body, or nil when it is not keyed.
// fromFunc is the KeyFunc result, already computed. The memo of recent keys is consulted on the raw
// material (the query as sent) before any work on the query, so a hot URL costs neither the query's
// decoding and sorting nor SHA-256; equal raw material always has equal canonical material.
func (k *keyer) build(r *http.Request, bodyDigest []byte, fromFunc string, anonAuth bool) key {
	var id simpleID
	simple := k.memo != nil && len(k.headers) == 0 && bodyDigest == nil && k.keyFunc == nil &&
		len(r.URL.Path)+len(r.URL.RawQuery) <= memoMaxMaterial
	if simple {
		id = simpleID{method: r.Method, host: r.Host, path: r.URL.Path, rawPath: r.URL.RawPath, rawQuery: r.URL.RawQuery,
			tls: r.TLS != nil, anonAuth: anonAuth}
		if id.method == http.MethodHead {
			id.method = http.MethodGet
		}
		if id.host == "" {
			id.host = r.URL.Host
		}
		if s := k.memo.simple[k.memo.simpleIndex(&id)].Load(); s != nil && s.id == id {
			return s.k
		}
	}
	var stack [512]byte // key material of ordinary requests fits; longer ones spill to the heap
	raw := k.material(stack[:0], r, bodyDigest, fromFunc, anonAuth, false)
	if m := k.memo.get(raw); m != nil {
		if simple {
			k.memo.simple[k.memo.simpleIndex(&id)].Store(&simpleSlot{id: id, k: *m})
		}
		return *m
	}
	var stack2 [512]byte
	res := k.digestKey(k.material(stack2[:0], r, bodyDigest, fromFunc, anonAuth, true))
	k.memo.put(raw, res)
	if simple {
		k.memo.simple[k.memo.simpleIndex(&id)].Store(&simpleSlot{id: id, k: res})
	}
	return res
}

// material appends r's key material to b: the query canonical (decoded, sorted) when canonical is set,
// as sent otherwise.
func (k *keyer) material(b []byte, r *http.Request, bodyDigest []byte, fromFunc string, anonAuth, canonical bool) []byte {
	method := r.Method
	if method == http.MethodHead {
		method = http.MethodGet
	}
	b = appendField(b, tagMethod, method)
	if r.TLS != nil {
		b = appendField(b, tagScheme, "https")
	} else {
		b = appendField(b, tagScheme, "http")
	}
	host := r.Host
	if host == "" {
		host = r.URL.Host
	}
	b = append(b, tagHost)
	b = binary.AppendUvarint(b, uint64(len(host)))
	for i := 0; i < len(host); i++ {
		c := host[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	b = append(b, tagPath)
	b = appendPath(b, r.URL.Path, r.URL.RawPath)
	if canonical && cleanPath(r.URL.Path) {
		var pairStack [16]queryPair
		b = appendCanonicalQuery(b, r.URL.RawQuery, pairStack[:0])
	} else {
		b = appendField(b, tagQuery, r.URL.RawQuery)
	}
	for _, name := range k.headers {
		values := r.Header[name]
		b = appendField(b, tagHeader, name)
		b = binary.AppendUvarint(b, uint64(len(values)))
		for _, v := range values {
			b = binary.AppendUvarint(b, uint64(len(v)))
			b = append(b, v...)
		}
	}
	if bodyDigest != nil {
		b = append(b, tagBody)
		b = append(b, bodyDigest...)
	}
	if k.keyFunc != nil {
		b = appendField(b, tagKeyFunc, fromFunc)
	}
	if anonAuth {
		// Requests with an unkeyed Authorization get a key space of their own: only responses that say
		// they may be shared despite Authorization are ever stored there (RFC 9111 §3.5).
		b = append(b, tagAuth)
	}
	return b
}

// keyOf returns the key of material: the memo's when it has it, else the digest of material under the
// keyer's prefix. Every caller's material starts with a tag of its own kind (tagMethod for a request,
// tagLoader for a loader's key), so keys of different kinds never collide.
func (k *keyer) keyOf(material []byte) key {
	if m := k.memo.get(material); m != nil {
		return *m
	}
	res := k.digestKey(material)
	k.memo.put(material, res)
	return res
}

// keyOfPrefixed is keyOf(prefix.s+s); a memo hit builds no material.
func (k *keyer) keyOfPrefixed(prefix *memoPrefix, s string) key {
	if m := k.memo.getPrefixed(prefix, s); m != nil {
		return *m
	}
	material := make([]byte, 0, len(prefix.s)+len(s))
	material = append(append(material, prefix.s...), s...)
	res := k.digestKey(material)
	k.memo.putPrefixed(prefix, s, material, res)
	return res
}

// parse returns the key of a store key this keyer made (its prefix, then the digest in hexadecimal in
// braces), as digestKey made it; ok is false for any other string.
func (k *keyer) parse(storeKey string) (key, bool) {
	rest, ok := strings.CutPrefix(storeKey, k.prefix)
	if !ok || len(rest) != 2*digestLen+1 || rest[2*digestLen] != '}' {
		return key{}, false
	}
	var sum [digestLen]byte
	if _, err := hex.Decode(sum[:], []byte(rest[:2*digestLen])); err != nil {
		return key{}, false
	}
	id := binary.LittleEndian.Uint64(sum[:8])
	return key{s: storeKey, id: id, shard: shardOf(id)}, true
}

// shardOf is the shard of the in-process bookkeeping (hit-for-pass, the doorkeeper) of a key with id:
// bits the flight group does not use for its own shards.
func shardOf(id uint64) uint8 { return uint8(id>>56) % numShards }

// digestKey is the store key of material: the prefix and 128 bits of its SHA-256.
func (k *keyer) digestKey(material []byte) key {
	sum := sha256.Sum256(material)
	out := make([]byte, len(k.prefix)+2*digestLen+1)
	copy(out, k.prefix)
	hex.Encode(out[len(k.prefix):], sum[:digestLen])
	out[len(out)-1] = '}'
	// out is never written again, so the string may share its memory: one allocation per key, not two.
	id := binary.LittleEndian.Uint64(sum[:8])
	return key{s: unsafe.String(&out[0], len(out)), id: id, shard: shardOf(id)}
}

func appendField(b []byte, tag byte, s string) []byte {
	b = append(b, tag)
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// appendPath appends the request's path exactly as the handler can see it: the decoded Path and the
// RawPath it was sent as (empty when that is the default encoding). Two requests share a key only when
// both are equal, so a router that routes on the escaped path (chi uses RawPath) never gets one path's
// response for another: "/p%61ge" and "/page" are different resources here, whatever RFC 3986 §6.2.2
// would allow. Case is kept too: "/User" and "/user" differ.
func appendPath(b []byte, path, rawPath string) []byte {
	b = binary.AppendUvarint(b, uint64(len(path)))
	b = append(b, path...)
	b = binary.AppendUvarint(b, uint64(len(rawPath)))
	return append(b, rawPath...)
}

// cleanPath reports whether p is a path net/http's ServeMux serves as it is. One it would clean (with
// "//", "/./" or "/../" in it, or ending in "/." or "/..") it answers with a redirect whose Location and
// body carry the raw query as sent, so such a request is keyed by its query as sent, not canonical:
// "?q=%C3%BC" and "?q=ü" then get redirects of their own.
func cleanPath(p string) bool {
	return !strings.Contains(p, "//") && !strings.Contains(p, "/./") && !strings.Contains(p, "/../") &&
		!strings.HasSuffix(p, "/.") && !strings.HasSuffix(p, "/..")
}

// appendCanonicalQuery appends the query's parameters decoded and sorted by name. Parameters with
// different names commute, so "a=1&b=2" and "b=2&a=1" share a key; the order of repeated values of one
// name is kept ("a=1&a=2" differs from "a=2&a=1"), because handlers see it. "a" and "a=" are the same,
// as they are to url.ParseQuery. A piece that url.ParseQuery drops (one that does not decode, or that
// holds a raw ";", which Go no longer takes as a separator) is kept exactly as sent, flagged so it cannot
// collide with a decoded one: "q=shoes;size=9" (no q for the handler) and "q=shoes%3Bsize=9" (q is
// "shoes;size=9") never share a key.
func appendCanonicalQuery(b []byte, raw string, pairs []queryPair) []byte {
	for raw != "" {
		var piece string
		piece, raw, _ = strings.Cut(raw, "&")
		if piece == "" {
			continue
		}
		name, value, _ := strings.Cut(piece, "=")
		if strings.IndexByte(piece, ';') >= 0 {
			pairs = append(pairs, queryPair{name: name, value: value, raw: true})
			continue
		}
		n, okn := unescapeQuery(name)
		v, okv := unescapeQuery(value)
		if !okn || !okv {
			n, v = name, value // both halves as sent: a flagged piece is never partly decoded
		}
		pairs = append(pairs, queryPair{name: n, value: v, raw: !okn || !okv})
	}
	byName := func(a, b queryPair) int { return strings.Compare(a.name, b.name) }
	if !slices.IsSortedFunc(pairs, byName) {
		slices.SortStableFunc(pairs, byName)
	}
	b = append(b, tagQuery)
	b = binary.AppendUvarint(b, uint64(len(pairs)))
	for _, p := range pairs {
		if p.raw {
			b = append(b, 1)
		} else {
			b = append(b, 0)
		}
		b = binary.AppendUvarint(b, uint64(len(p.name)))
		b = append(b, p.name...)
		b = binary.AppendUvarint(b, uint64(len(p.value)))
		b = append(b, p.value...)
	}
	return b
}

// unescapeQuery decodes s as url.ParseQuery would; ok is false, and s returned as sent, when it cannot.
func unescapeQuery(s string) (string, bool) {
	if !strings.ContainsAny(s, "%+") {
		return s, true
	}
	u, err := url.QueryUnescape(s)
	if err != nil {
		return s, false
	}
	return u, true
}

// CacheKeyFunc is go-chi/stampede's key function: a 64-bit hash of what decides the response, usually
// built with [StringToHash] or [BytesToHash]. [HandlerWithKey] accepts one where it accepts a [KeyFunc];
// its result is keyed as 16 hexadecimal digits.
type CacheKeyFunc func(r *http.Request) (uint64, error)

// CredentialKeyFunc is a [KeyFunc] that promises its result identifies the caller's credential: two
// requests get the same result only when they carry the same credential (the same Authorization
// token, say, or the user id verified from it). With that promise a request with Authorization is
// shared and stored within its key, as when Authorization is a key header (behaviour contract §2.3);
// without it such a request is shared only when the response says public, s-maxage or
// must-revalidate. Build one with [PerCredential], pass it to [HandlerWithKey] or
// [WithCredentialKeyFunc].
//
// Only make the promise when it holds: a function that keys on something coarser than the credential
// (a tenant id shared by many users) would let one user's private page reach another.
type CredentialKeyFunc func(r *http.Request) (string, error)

// PerCredential returns fn, a key function of either shape ([KeyFunc] or go-chi's [CacheKeyFunc], or a
// func literal of either), as a [CredentialKeyFunc]: the promise that fn keys on the caller's
// credential. go-chi/stampede's with-key example becomes
//
//	customCacheKeyFunc := stampede.PerCredential(func(r *http.Request) (uint64, error) {
//		token := r.Header.Get("Authorization")
//		return stampede.StringToHash(r.Method, strings.ToLower(token)), nil
//	})
//
// A nil fn returns nil.
func PerCredential[F ~func(*http.Request) (string, error) | ~func(*http.Request) (uint64, error)](fn F) CredentialKeyFunc {
	kf, _ := keyFuncOf(any(fn))
	if kf == nil {
		return nil
	}
	return CredentialKeyFunc(kf)
}

var (
	stringKeyFuncType = reflect.TypeFor[func(*http.Request) (string, error)]()
	hashKeyFuncType   = reflect.TypeFor[func(*http.Request) (uint64, error)]()
)

// keyFuncOf resolves a key function given as any (see [HandlerWithKey]): nil, a function whose type has
// the underlying type of [KeyFunc] or of [CacheKeyFunc], or a [CredentialKeyFunc], which also sets
// credential. Anything else panics, when the middleware is built.
func keyFuncOf(fn any) (kf KeyFunc, credential bool) {
	switch f := fn.(type) {
	case nil:
		return nil, false
	case CredentialKeyFunc:
		return KeyFunc(f), f != nil
	case KeyFunc:
		return f, false
	case func(*http.Request) (string, error):
		return f, false
	case CacheKeyFunc:
		return hashKeyFunc(f), false
	case func(*http.Request) (uint64, error):
		return hashKeyFunc(f), false
	}
	v := reflect.ValueOf(fn)
	switch {
	case v.Kind() == reflect.Func && v.IsNil():
		return nil, false
	case v.Type().ConvertibleTo(stringKeyFuncType):
		return v.Convert(stringKeyFuncType).Interface().(func(*http.Request) (string, error)), false
	case v.Type().ConvertibleTo(hashKeyFuncType):
		return hashKeyFunc(v.Convert(hashKeyFuncType).Interface().(func(*http.Request) (uint64, error))), false
	}
	panic(fmt.Sprintf("stampede: a key function must be a KeyFunc, a CredentialKeyFunc, a CacheKeyFunc or nil, got %T", fn))
}

// hashKeyFunc adapts a go-chi key function: its hash, in hexadecimal, is the key material.
func hashKeyFunc(fn func(*http.Request) (uint64, error)) KeyFunc {
	if fn == nil {
		return nil
	}
	return func(r *http.Request) (string, error) {
		h, err := fn(r)
		if err != nil {
			return "", err
		}
		var raw [8]byte
		binary.BigEndian.PutUint64(raw[:], h)
		return hex.EncodeToString(raw[:]), nil
	}
}

// StringToHash returns a 64-bit hash (xxHash64) of the strings written one after another, as
// go-chi/stampede's StringToHash does (with xxh3 there, so the values differ): ("ab", "c") and
// ("a", "bc") hash alike. No strings hash to 0.
func StringToHash(s ...string) uint64 {
	if len(s) == 0 {
		return 0
	}
	d := xxhash.New()
	for _, v := range s {
		_, _ = d.WriteString(v)
	}
	return d.Sum64()
}

// BytesToHash is [StringToHash] for byte slices.
func BytesToHash(b ...[]byte) uint64 {
	if len(b) == 0 {
		return 0
	}
	d := xxhash.New()
	for _, v := range b {
		_, _ = d.Write(v)
	}
	return d.Sum64()
}
