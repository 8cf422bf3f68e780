package redisstore

import "testing"

func TestSlot(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  string
		want int
	}{
		// Values from the cluster spec and from CLUSTER KEYSLOT on Redis 7 (TestCluster checks more live).
		{"crc16 check string", "123456789", 0x31C3 % slotCount},
		{"foo", "foo", 12182},
		{"bar", "bar", 5061},
		{"hello", "hello", 866},
		{"empty", "", 0},
		{"hash tag", "{user1000}.following", 3443},
		{"same hash tag", "{user1000}.followers", 3443},
		{"empty tag hashes the whole key", "foo{}{bar}", slot("foo{}{bar}")},
		{"first tag only", "foo{{bar}}zap", slot("{bar")},
		{"tag after text", "foo{bar}{zap}", slot("bar")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := slot(tt.key); got != tt.want {
				t.Fatalf("slot(%q) = %d, want %d", tt.key, got, tt.want)
			}
		})
	}
	if crc16("123456789") != 0x31C3 {
		t.Fatalf("crc16 check value = %#x, want 0x31c3", crc16("123456789"))
	}
	if hashTag("foo{}{bar}") != "foo{}{bar}" {
		t.Fatalf("hashTag with an empty first tag = %q, want the whole key", hashTag("foo{}{bar}"))
	}
}
