package bench

import (
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/fxamacker/cbor/v2"
	"github.com/vmihailenco/msgpack/v5"
)

// codecRecord is the shape of a typical loader value: a database row with a few columns and a list.
type codecRecord struct {
	ID        int64     `json:"id" msgpack:"id" cbor:"id"`
	Name      string    `json:"name" msgpack:"name" cbor:"name"`
	Email     string    `json:"email" msgpack:"email" cbor:"email"`
	Active    bool      `json:"active" msgpack:"active" cbor:"active"`
	Score     float64   `json:"score" msgpack:"score" cbor:"score"`
	CreatedAt time.Time `json:"created_at" msgpack:"created_at" cbor:"created_at"`
	Tags      []string  `json:"tags" msgpack:"tags" cbor:"tags"`
}

// BenchmarkCodec picks the binary codec of codec/cbor: encode and decode of a row with each
// candidate beside encoding/json (the default), in one run; the size of the encoding is reported as
// bytes/value.
func BenchmarkCodec(b *testing.B) {
	v := codecRecord{ID: 421337, Name: "Ada Lovelace", Email: "ada@example.com", Active: true, Score: 97.5,
		CreatedAt: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Tags: []string{"admin", "beta", "eu-west"}}
	codecs := []struct {
		name      string
		marshal   func(any) ([]byte, error)
		unmarshal func([]byte, any) error
	}{
		{"json", json.Marshal, json.Unmarshal},
		{"msgpack", msgpack.Marshal, msgpack.Unmarshal},
		{"cbor", cbor.Marshal, cbor.Unmarshal},
	}
	for _, c := range codecs {
		data, err := c.marshal(v)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(fmt.Sprintf("%s/encode", c.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := c.marshal(v); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes/value")
		})
		b.Run(fmt.Sprintf("%s/decode", c.name), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				var out codecRecord
				if err := c.unmarshal(data, &out); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(data)), "bytes/value")
		})
	}
}
