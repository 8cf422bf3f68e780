package redisinfo

import "testing"

func TestCommandCalls(t *testing.T) {
	info := "# Commandstats\r\ncmdstat_get:calls=3,usec=12,usec_per_call=4.00\r\ncmdstat_mget:calls=17,usec=40\r\ncmdstat_bad:usec=1\r\ncmdstat_client|setname:calls=2,usec=0\r\ncmdstat_getex:calls=7,usec=1\r\n"
	for _, tt := range []struct {
		cmd     string
		want    int
		wantErr bool
	}{
		{"get", 3, false}, {"GET", 3, false}, {"client|setname", 2, false}, {"mget", 17, false}, {"set", 0, false}, {"bad", 0, true},
	} {
		got, err := CommandCalls(info, tt.cmd)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("CommandCalls(%q) = %d, %v; want %d, error %v", tt.cmd, got, err, tt.want, tt.wantErr)
		}
	}
}
