package units

import (
	"testing"
	"time"
)

func TestGroup(t *testing.T) {
	tests := []struct {
		name string
		n    int64
		want string
	}{
		{"zero", 0, "0"},
		{"three digits", 999, "999"},
		{"four digits", 1000, "1,000"},
		{"six digits", 200000, "200,000"},
		{"seven digits", 1234567, "1,234,567"},
		{"negative", -55485, "-55,485"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Group(tt.n); got != tt.want {
				t.Errorf("Group(%d) = %q, want %q", tt.n, got, tt.want)
			}
		})
	}
}

func TestDuration(t *testing.T) {
	tests := []struct {
		name string
		d    time.Duration
		want string
	}{
		{"seconds", 12345 * time.Millisecond, "12.3s"},
		{"second", 1234567 * time.Microsecond, "1.23s"},
		{"milliseconds", 123456 * time.Microsecond, "123ms"},
		{"millisecond", 1234567 * time.Nanosecond, "1.2ms"},
		{"microseconds", 12345 * time.Nanosecond, "12µs"},
		{"microsecond", 2345 * time.Nanosecond, "2.3µs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Duration(tt.d); got != tt.want {
				t.Errorf("Duration(%v) = %q, want %q", tt.d, got, tt.want)
			}
		})
	}
}
