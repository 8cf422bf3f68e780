package httpcache

import (
	"net/http"
	"strconv"
	"strings"
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

// TestParseStrictDate pins RFC 9110 §5.6.7's grammar, with the cases of cache-tests' expires-parse
// group: the three forms and wrong case are dates; anything else the grammar does not spell is not,
// even where net/http's ParseTime reads it.
func TestParseStrictDate(t *testing.T) {
	t.Parallel()
	aug := time.Date(2050, 8, 18, 2, 1, 18, 0, time.UTC)
	valid := []struct {
		s    string
		want time.Time
	}{
		{"Sun, 06 Nov 1994 08:49:37 GMT", time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
		{"Sunday, 06-Nov-94 08:49:37 GMT", time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
		{"Sun Nov  6 08:49:37 1994", time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
		{" Sun, 06 Nov 1994 08:49:37 GMT\t", time.Date(1994, 11, 6, 8, 49, 37, 0, time.UTC)},
		{"Tue, 19 Jan 2038 14:14:08 GMT", time.Date(2038, 1, 19, 14, 14, 8, 0, time.UTC)},  // freshness-expires-32bit
		{"Sun, 21 Nov 2286 04:46:39 GMT", time.Date(2286, 11, 21, 4, 46, 39, 0, time.UTC)}, // freshness-expires-far-future
		{"Thursday, 18-Aug-50 02:01:18 GMT", aug},                                          // freshness-expires-rfc850
		{"Thu Aug 18 02:01:18 2050", aug},                                                  // freshness-expires-ansi-c
		{"THU, 18 Aug 2050 02:01:18 GMT", aug},                                             // freshness-expires-wrong-case-weekday
		{"Thu, 18 AUG 2050 02:01:18 GMT", aug},                                             // freshness-expires-wrong-case-month
		{"Thu, 18 Aug 2050 02:01:18 gMT", aug},                                             // freshness-expires-wrong-case-tz
		{"Wed, 31 Dec 2031 23:59:60 GMT", time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)},     // a leap second
		{"Sat, 29 Feb 2000 00:00:00 GMT", time.Date(2000, 2, 29, 0, 0, 0, 0, time.UTC)},
	}
	for _, tt := range valid {
		if got, ok := ParseStrictDate(tt.s); !ok || !got.Equal(tt.want) {
			t.Errorf("ParseStrictDate(%q) = %v, %v; want %v", tt.s, got, ok, tt.want)
		}
	}
	for _, s := range []string{
		"", "0", "-1", "tomorrow", "2026-01-01T00:00:00Z",
		"Thu, 18 Aug 2050 02:01:18 UTC",   // freshness-expires-invalid-utc
		"Thu, 18 Aug 2050 02:01:18 AEST",  // freshness-expires-invalid-aest
		"Thu, 18 Aug 50 02:01:18 GMT",     // freshness-expires-invalid-2-digit-year
		"Thu 18 Aug 2050 02:01:18 GMT",    // freshness-expires-invalid-no-comma
		"Thu, 18  Aug  2050 02:01:18 GMT", // freshness-expires-invalid-multiple-spaces
		"Thu, 18-Aug-2050 02:01:18 GMT",   // freshness-expires-invalid-date-dashes
		"Thu, 18 Aug 2050 02.01.18 GMT",   // freshness-expires-invalid-time-periods
		"Thu, 18 Aug 2050 2:01:18 GMT",    // freshness-expires-invalid-1-digit-hour
		"Thu, 31 Feb 2050 02:01:18 GMT", "Thu, 18 Aug 2050 24:00:00 GMT", "Thu, 18 Aug 2050 02:60:00 GMT",
		"Thu, 18 Aug 2050 02:01:61 GMT", "Thu, 00 Aug 2050 02:01:18 GMT", "Xyz, 18 Aug 2050 02:01:18 GMT",
		"Thu, 18 Aug 2050 02:01:18 GMT x", "Thursday, 18-Aug-2050 02:01:18 GMT", "Thu Aug  0 02:01:18 2050",
		"Thu Aug 18 02:01:18 50", "Thu, +8 Aug 2050 02:01:18 GMT", "Thu, 18 Aug 2050 -2:01:18 GMT",
	} {
		if got, ok := ParseStrictDate(s); ok {
			t.Errorf("ParseStrictDate(%q) accepted: %v", s, got)
		}
	}
}

// FuzzParseStrictDate checks ParseStrictDate against net/http: every instant it writes in the three
// forms reads back as itself, and whatever it accepts net/http's ParseTime accepts too, as the same
// instant (but for the two leniencies ParseTime lacks: a lower-case "gmt" and a leap second).
func FuzzParseStrictDate(f *testing.F) {
	f.Add(int64(784111777), "Sun, 06 Nov 1994 08:49:37 GMT")
	f.Add(int64(0), "Thu, 18 Aug 2050 2:01:18 GMT")
	f.Add(int64(-1), "Thursday, 18-Aug-50 02:01:18 GMT")
	f.Add(int64(253402300799), "Thu Aug  8 02:01:18 2050")
	f.Fuzz(func(t *testing.T, sec int64, s string) {
		u := time.Unix(sec%253402300800, 0).UTC() // years 0001 to 9999 (four digits)
		if u.Year() < 1 {
			u = u.AddDate(2000, 0, 0)
		}
		forms := []string{u.Format(http.TimeFormat), u.Format(time.ANSIC)}
		if u.Year() >= 1969 && u.Year() < 2069 {
			forms = append(forms, u.Format("Monday, 02-Jan-06 15:04:05 GMT"))
		}
		for _, form := range forms {
			if got, ok := ParseStrictDate(form); !ok || !got.Equal(u) {
				t.Fatalf("ParseStrictDate(%q) = %v, %v; want %v", form, got, ok, u)
			}
		}
		got, ok := ParseStrictDate(s)
		if !ok || strings.Contains(s, ":60") || !strings.Contains(s, "GMT") && strings.Contains(strings.ToUpper(s), "GMT") {
			return
		}
		if want, err := http.ParseTime(strings.Trim(s, " \t")); err != nil || !want.Equal(got) {
			t.Fatalf("ParseStrictDate(%q) = %v, net/http says %v, %v", s, got, want, err)
		}
	})
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
		{"lenient-only (freshness-expires-invalid-1-digit-hour)", []string{"Thu, 18 Aug 2050 2:01:18 GMT"}, ExpiresPast},
		{"lenient-only (freshness-expires-invalid-multiple-spaces)", []string{"Thu, 18  Aug  2050 02:01:18 GMT"}, ExpiresPast},
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

// TestAgeValue pins RFC 9111 §5.1 and §1.2.2: the first member of the field (over every line), one
// non-negative integer, overflow to 2^31; a first member that is anything else is Invalid (and ignored).
// The named cases include each of cache-tests' age-parse tests.
func TestAgeValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		lines []string
		want  int64
		state DeltaState
	}{
		{"absent", nil, 0, Absent},
		{"integer", []string{"10"}, 10, Valid},
		{"whitespace", []string{" 10\t"}, 10, Valid},
		{"overflow", []string{"99999999999999999999"}, MaxDelta, Valid},
		{"2^31-1 (age-parse-large-minus-one)", []string{"2147483647"}, 2147483647, Valid},
		{"2^31 (age-parse-large)", []string{"2147483648"}, MaxDelta, Valid},
		{"2^31+1 (age-parse-larger)", []string{"2147483649"}, MaxDelta, Valid},
		{"list: first member (age-parse-suffix)", []string{"7200, 0"}, 7200, Valid},
		{"list: first member (age-parse-prefix)", []string{"0, 7200"}, 0, Valid},
		{"lines: first (age-parse-suffix-twoline)", []string{"7200", "0"}, 7200, Valid},
		{"lines: first (age-parse-prefix-twoline)", []string{"0", "7200"}, 0, Valid},
		{"age-parse-dup-0", []string{"0, 0"}, 0, Valid},
		{"age-parse-dup-0-twoline", []string{"0", "0"}, 0, Valid},
		{"age-parse-dup-old", []string{"3600", "3600"}, 3600, Valid},
		{"empty members skipped", []string{"", " , 5"}, 5, Valid},
		{"negative (age-parse-negative)", []string{"-7200"}, 0, Invalid},
		{"float (age-parse-float)", []string{"7200.0"}, 0, Invalid},
		{"non-numeric (age-parse-nonnumeric)", []string{"abc"}, 0, Invalid},
		{"parameter (age-parse-parameter)", []string{"7200;foo=bar"}, 0, Invalid},
		{"invalid first member wins over a valid second", []string{"x, 10"}, 0, Invalid},
		{"empty", []string{""}, 0, Invalid},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.lines != nil {
			h["Age"] = tt.lines
		}
		if got, state := AgeValue(h); got != tt.want || state != tt.state {
			t.Errorf("%s: AgeValue(%q) = %d, %v; want %d, %v", tt.name, tt.lines, got, state, tt.want, tt.state)
		}
	}
}

// ageModel is a reference reading of RFC 9111 §5.1, written independently of AgeValue for the
// differential fuzz test: join the lines into one list, drop empty members, and read the first with
// strconv, saturating at MaxDelta.
func ageModel(lines []string) (int64, DeltaState) {
	if len(lines) == 0 {
		return 0, Absent
	}
	for _, m := range strings.Split(strings.Join(lines, ","), ",") {
		m = strings.TrimLeft(strings.TrimRight(m, " \t"), " \t")
		if m == "" {
			continue
		}
		if strings.TrimLeft(m, "0123456789") != "" {
			return 0, Invalid
		}
		n, err := strconv.ParseUint(m, 10, 64)
		if err != nil || n > MaxDelta { // only overflow fails once the digits are checked
			return MaxDelta, Valid
		}
		return int64(n), Valid
	}
	return 0, Invalid
}

// FuzzAgeValue compares AgeValue with ageModel over generated field lines, and checks the ignored-Age
// rule end to end: an Invalid Age leaves InitialAge what it is with no Age at all.
func FuzzAgeValue(f *testing.F) {
	for _, s := range []string{"10", "7200, 0", "0,7200", "-1", "1.5", "abc", "7200;a=b", "", " , 5", "99999999999999999999", "2147483648"} {
		f.Add(s, "")
		f.Add(s, "0")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		for _, lines := range [][]string{{a}, {a, b}} {
			gotN, gotS := AgeValue(http.Header{"Age": lines})
			wantN, wantS := ageModel(lines)
			if gotN != wantN || gotS != wantS {
				t.Fatalf("AgeValue(%q) = %d, %v; the model says %d, %v", lines, gotN, gotS, wantN, wantS)
			}
			if gotS == Invalid {
				with := http.Header{"Age": lines, "Date": {httpDate(t0)}}
				without := http.Header{"Date": {httpDate(t0)}}
				if x, y := InitialAge(with, t0, t0.Add(time.Second)), InitialAge(without, t0, t0.Add(time.Second)); x != y {
					t.Fatalf("invalid Age %q changed the initial age: %v, without it %v", lines, x, y)
				}
			}
		}
	})
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
		{"invalid age: ignored", http.Header{"Age": {"x"}}, 0},
		{"invalid age: ignored, Date counts", http.Header{"Age": {"-7200"}, "Date": {httpDate(resp.Add(-10 * time.Second))}}, 10 * time.Second},
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
		{"Expires in 2286 (freshness-expires-far-future): capped", http.Header{"Expires": {"Sun, 21 Nov 2286 04:46:39 GMT"}}, false, Lifetime{true, MaxDelta * time.Second}},
		{"Expires with a 1-digit hour: stale", http.Header{"Expires": {"Thu, 18 Aug 2050 2:01:18 GMT"}}, false, Lifetime{true, 0}},
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

// FuzzDates checks the date, Expires and Age parsers never panic and that Expires is valid exactly for
// a value ParseStrictDate accepts.
func FuzzDates(f *testing.F) {
	for _, s := range []string{"Sun, 06 Nov 1994 08:49:37 GMT", "0", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994", "123", "1, 2", "-5"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ParseDate(s)
		_, dateOK := ParseStrictDate(s)
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
