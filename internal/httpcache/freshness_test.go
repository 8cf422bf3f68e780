package httpcache

import (
	"net/http"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)

func httpDate(t time.Time) string { return t.UTC().Format(http.TimeFormat) }

// TestParseDate pins RFC 9110 §5.6.7: the three date formats recipients accept.
func TestParseDate(t *testing.T) {
	t.Parallel()
	want := time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", " Sun, 06 Nov 1994 08:49:37 GMT "} {
		if got, ok := ParseDate(s); !ok || !got.Equal(want) {
			t.Errorf("ParseDate(%q) = %v, %v", s, got, ok)
		}
	}
	for _, s := range []string{"", "0", "-1", "tomorrow", "Sun, 06 Nov 1994 08:49:37 PST", "2026-01-01T00:00:00Z"} {
		if _, ok := ParseDate(s); ok {
			t.Errorf("ParseDate(%q) accepted", s)
		}
	}
}

// TestExpires pins RFC 9111 §5.3: an invalid date, "0" included, is in the past.
func TestExpires(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []string
		want  ExpiresState
	}{
		{"absent", nil, NoExpires},
		{"valid", []string{httpDate(t0)}, ExpiresAt},
		{"zero", []string{"0"}, ExpiresPast},
		{"garbage", []string{"soon"}, ExpiresPast},
		{"two equal", []string{httpDate(t0), httpDate(t0)}, ExpiresAt},
		{"two different", []string{httpDate(t0), httpDate(t0.Add(time.Hour))}, ExpiresPast},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.lines != nil {
			h["Expires"] = tt.lines
		}
		if _, got := Expires(h); got != tt.want {
			t.Errorf("%s: Expires = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestAgeValue pins RFC 9111 §5.1 and §1.2.2: one non-negative integer, overflow to 2^31; anything
// else is invalid (and makes the response stale).
func TestAgeValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		lines []string
		want  int64
		state DeltaState
	}{
		{nil, 0, Absent}, {[]string{"10"}, 10, Valid}, {[]string{" 10 "}, 10, Valid},
		{[]string{"99999999999999999999"}, MaxDelta, Valid},
		{[]string{"10, 20"}, 0, Invalid}, {[]string{"0, 0"}, 0, Invalid}, {[]string{"10", "10"}, 0, Invalid},
		{[]string{"-1"}, 0, Invalid}, {[]string{"1.5"}, 0, Invalid}, {[]string{"abc"}, 0, Invalid},
		{[]string{"10;a=b"}, 0, Invalid}, {[]string{""}, 0, Invalid},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.lines != nil {
			h["Age"] = tt.lines
		}
		if got, state := AgeValue(h); got != tt.want || state != tt.state {
			t.Errorf("AgeValue(%q) = %d, %v; want %d, %v", tt.lines, got, state, tt.want, tt.state)
		}
	}
}

// TestInitialAge pins RFC 9111 §4.2.3's corrected initial age.
func TestInitialAge(t *testing.T) {
	t.Parallel()
	req, resp := t0, t0.Add(2*time.Second)
	tests := []struct {
		name   string
		header http.Header
		want   time.Duration
	}{
		{"nothing", http.Header{}, 0},
		{"date in the past: apparent age", http.Header{"Date": {httpDate(resp.Add(-10 * time.Second))}}, 10 * time.Second},
		{"date in the future: zero", http.Header{"Date": {httpDate(resp.Add(time.Hour))}}, 0},
		{"age plus response delay", http.Header{"Age": {"30"}}, 32 * time.Second},
		{"the larger of the two", http.Header{"Age": {"5"}, "Date": {httpDate(resp.Add(-60 * time.Second))}}, 60 * time.Second},
		{"invalid age: stale", http.Header{"Age": {"x"}}, MaxDelta * time.Second},
		{"huge age", http.Header{"Age": {"99999999999"}}, MaxDelta*time.Second + 2*time.Second},
	}
	for _, tt := range tests {
		if got := InitialAge(tt.header, req, resp); got != tt.want {
			t.Errorf("%s: InitialAge = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestExplicitLifetime pins RFC 9111 §4.2.1: s-maxage, max-age, Expires - Date, in that order; invalid
// means stale; a targeted field makes Expires irrelevant.
func TestExplicitLifetime(t *testing.T) {
	t.Parallel()
	now := t0
	tests := []struct {
		name     string
		header   http.Header
		targeted bool
		want     Lifetime
	}{
		{"none", http.Header{}, false, Lifetime{}},
		{"max-age", http.Header{"Cache-Control": {"max-age=60"}}, false, Lifetime{true, time.Minute}},
		{"s-maxage first", http.Header{"Cache-Control": {"max-age=60, s-maxage=5"}}, false, Lifetime{true, 5 * time.Second}},
		{"invalid s-maxage: stale even with max-age", http.Header{"Cache-Control": {"max-age=60, s-maxage=x"}}, false, Lifetime{true, 0}},
		{"invalid max-age: stale", http.Header{"Cache-Control": {"max-age=soon"}}, false, Lifetime{true, 0}},
		{"max-age beats Expires", http.Header{"Cache-Control": {"max-age=60"}, "Expires": {"0"}}, false, Lifetime{true, time.Minute}},
		{"Expires minus Date", http.Header{"Date": {httpDate(now.Add(-time.Hour))}, "Expires": {httpDate(now)}}, false, Lifetime{true, time.Hour}},
		{"Expires without Date: response time", http.Header{"Expires": {httpDate(now.Add(30 * time.Second))}}, false, Lifetime{true, 30 * time.Second}},
		{"Expires in the past", http.Header{"Expires": {httpDate(now.Add(-time.Hour))}}, false, Lifetime{true, 0}},
		{"Expires: 0", http.Header{"Expires": {"0"}}, false, Lifetime{true, 0}},
		{"targeted: Expires ignored", http.Header{"Expires": {httpDate(now.Add(time.Hour))}}, true, Lifetime{}},
	}
	for _, tt := range tests {
		d := ParseCacheControl(tt.header["Cache-Control"])
		if got := ExplicitLifetime(&d, tt.header, now, tt.targeted); got != tt.want {
			t.Errorf("%s: %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// TestRequestUse pins RFC 9111 §5.2.1's request directives.
func TestRequestUse(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		cc         string
		age, life  time.Duration
		revalidate bool
		want       Use
	}{
		{"fresh", "", 5 * time.Second, 10 * time.Second, false, UseAsIs},
		{"stale", "", 15 * time.Second, 10 * time.Second, false, UseRevalidated},
		{"no-cache", "no-cache", 0, time.Hour, false, UseRevalidated},
		{"max-age=0", "max-age=0", time.Second, time.Hour, false, UseRevalidated},
		{"max-age large enough", "max-age=10", 5 * time.Second, time.Hour, false, UseAsIs},
		{"min-fresh not met", "min-fresh=10", 5 * time.Second, 10 * time.Second, false, UseRevalidated},
		{"min-fresh met", "min-fresh=4", 5 * time.Second, 10 * time.Second, false, UseAsIs},
		{"max-stale any", "max-stale", time.Hour, time.Second, false, UseStale},
		{"max-stale within", "max-stale=10", 15 * time.Second, 10 * time.Second, false, UseStale},
		{"max-stale beyond", "max-stale=1", 15 * time.Second, 10 * time.Second, false, UseRevalidated},
		{"max-stale vs must-revalidate", "max-stale", 15 * time.Second, 10 * time.Second, true, UseRevalidated},
	}
	for _, tt := range tests {
		d := ParseCacheControl([]string{tt.cc})
		if got := RequestUse(&d, tt.age, tt.life, tt.revalidate); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}

// FuzzDates checks the date, Expires and Age parsers never panic and that Expires is never "valid" for
// a value ParseDate rejects.
func FuzzDates(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "0", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "123", "1, 2", "-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_, dateOK := ParseDate(s)
		h := http.Header{"Expires": {s}, "Date": {s}, "Age": {s}}
		if _, state := Expires(h); (state == ExpiresAt) != dateOK {
			t.Fatalf("Expires %q: state %v, ParseDate ok %v", s, state, dateOK)
		}
		if n, state := AgeValue(h); state == Valid && (n < 0 || n > MaxDelta) {
			t.Fatalf("Age %q = %d", s, n)
		}
		if InitialAge(h, t0, t0.Add(time.Second)) < 0 {
			t.Fatalf("negative initial age for %q", s)
		}
	})
}
