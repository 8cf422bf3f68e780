package stampede

import "encoding/json"

// Codec turns a [Loader]'s values into the bytes a [Store] keeps and back. Its methods have the shape of
// encoding/json's Marshal and Unmarshal, which most serialisers share (github.com/vmihailenco/msgpack,
// github.com/fxamacker/cbor), so a codec is usually a two-line adapter; the module
// github.com/seed-a1426414/stampede/codec/msgpack ships a compact binary one. Values kept in a
// [ValueStore] are never encoded.
//
// Unmarshal must not keep data after it returns (the bytes may belong to the store). A value that fails
// to decode is a miss, logged once per loader, never an error to the caller: it is loaded again and
// overwritten, so a change of codec or of the value's type heals by itself (change [WithKeyVersion] to
// switch all at once).
type Codec interface {
	Marshal(v any) ([]byte, error)
	Unmarshal(data []byte, v any) error
}

// JSON is the default [Codec]: encoding/json.
var JSON Codec = jsonCodec{}

type jsonCodec struct{}

func (jsonCodec) Marshal(v any) ([]byte, error)      { return json.Marshal(v) }
func (jsonCodec) Unmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
