package trace

import (
	"testing"
	"time"
)

func TestIdeal(t *testing.T) {
	tests := []struct {
		name    string
		keys    []string
		workers int
		want    time.Duration
	}{
		{"one key, one worker", []string{"a", "a", "a"}, 1, 100 * time.Millisecond},
		{"distinct keys, one worker", []string{"a", "b", "c"}, 1, 300 * time.Millisecond},
		{"distinct keys, enough workers", []string{"a", "b", "c"}, 3, 100 * time.Millisecond},
		{"waiting on a key in flight", []string{"a", "a", "b"}, 2, 200 * time.Millisecond},
		{"hits after the first run", []string{"a", "b", "a", "b", "a"}, 2, 100 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Ideal(tt.keys, tt.workers, 100*time.Millisecond); got != tt.want {
				t.Errorf("Ideal = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestIdealNearBound(t *testing.T) {
	keys := Keys(200_000, 42)
	r := Result{Distinct: Distinct(keys), Sleep: 100 * time.Millisecond, Workers: 1000}
	ideal := Ideal(keys, r.Workers, r.Sleep)
	if ideal < r.LowerBound() || ideal > r.LowerBound()*11/10 {
		t.Errorf("1,000 workers: ideal %v, lower bound %v: want within 10%%", ideal, r.LowerBound())
	}
}
