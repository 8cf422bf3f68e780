package redisstore

import (
	"context"
	"time"

	"github.com/redis/go-redis/v9"
)

// Tag index: stampede.Cache.PurgeTag removes every entry whose response carried a tag (Cache-Tag or
// Surrogate-Key); PurgeTag is in fenced.go, with the purge marks that fence writes by tag. Each tag is a Redis set of store keys at <prefix>stampede-tag:<tag>, which lives as long
// as the longest-lived entry added to it: an entry that expired leaves a stale member behind until then,
// which costs a DEL of a missing key at purge time and nothing else.

// addTag: KEYS[1] tag set; ARGV[1] member, ARGV[2] ttl in ms. Extends the set's lifetime, never shortens it.
var addTag = redis.NewScript(`redis.call('SADD', KEYS[1], ARGV[1])
local t = redis.call('PTTL', KEYS[1])
if t < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1`)

func (s *Store) tagKey(tag string) string { return s.cfg.prefix + "stampede-tag:" + tag }

// TagKeys records that the entry stored under key carries tags, for at least ttl.
func (s *Store) TagKeys(ctx context.Context, key string, tags []string, ttl time.Duration) error {
	ctx, cancel := s.bound(ctx)
	defer cancel()
	ms := max(ttl.Milliseconds(), 1)
	for _, tag := range tags {
		_, err := run(s, ctx, func(ctx context.Context) (any, error) {
			return addTag.Run(ctx, s.client, []string{s.tagKey(tag)}, key, ms).Result()
		})
		if err != nil {
			return opError(ctx, "tagkeys", err)
		}
	}
	return nil
}
