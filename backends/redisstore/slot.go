package redisstore

import "strings"

// slotCount is the number of hash slots in a Redis Cluster.
const slotCount = 16384

// slot returns the Redis Cluster hash slot of key: CRC16 (XMODEM) of its hash tag, modulo 16384.
func slot(key string) int {
	return int(crc16(hashTag(key)) % slotCount)
}

// hashTag returns the part of key that Redis Cluster hashes: the text between the first '{' and the
// first '}' after it, when that is not empty; otherwise the whole key (cluster spec, "Hash tags").
func hashTag(key string) string {
	if open := strings.IndexByte(key, '{'); open >= 0 {
		if n := strings.IndexByte(key[open+1:], '}'); n > 0 {
			return key[open+1 : open+1+n]
		}
	}
	return key
}

// crc16 is CRC-16/XMODEM (polynomial 0x1021, initial value 0, no reflection), the checksum the cluster
// spec's appendix uses for key slots.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}

var crc16Table = func() (t [256]uint16) {
	for i := range t {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		t[i] = crc
	}
	return t
}()
