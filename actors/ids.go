package actors

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
)

// Server-made ids are opaque and unguessable: a prefix, then base64url of
// 2 bytes of sale index, 2 bytes of zone index and 12 random bytes. The
// indexes let a hold or order be routed to its zone without a global map (a
// map of every hold would cost more memory than the seats themselves); the 96
// random bits make the id impossible to guess.
const (
	idRandomBytes = 12
	idRouteBytes  = 4
	idBytes       = idRouteBytes + idRandomBytes
	idTextLen     = 2 + (idBytes*8+5)/6 // prefix plus unpadded base64
)

var idEncoding = base64.RawURLEncoding

func newID(prefix byte, sale, zone uint16) string {
	var b [idBytes]byte
	binary.BigEndian.PutUint16(b[0:2], sale)
	binary.BigEndian.PutUint16(b[2:4], zone)
	if _, err := rand.Read(b[idRouteBytes:]); err != nil {
		panic("crypto/rand failed: " + err.Error()) // crypto/rand never fails on Linux
	}
	var out [idTextLen]byte
	out[0], out[1] = prefix, '_'
	idEncoding.Encode(out[2:], b[:])
	return string(out[:])
}

// parseID returns the sale and zone index routed in a server-made id, or
// false when id is not of that form.
func parseID(prefix byte, id string) (sale, zone uint16, ok bool) {
	if len(id) != idTextLen || id[0] != prefix || id[1] != '_' {
		return 0, 0, false
	}
	var b [idBytes]byte
	n, err := idEncoding.Decode(b[:], []byte(id[2:]))
	if err != nil || n != idBytes {
		return 0, 0, false
	}
	return binary.BigEndian.Uint16(b[0:2]), binary.BigEndian.Uint16(b[2:4]), true
}

// randomID returns prefix_ plus 16 random bytes in base64url, for ids that
// need no routing (queue ids, access token ids).
func randomID(prefix byte) string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return string(prefix) + "_" + idEncoding.EncodeToString(b[:])
}

// ValidQueueID reports whether s has the form of a queue id: "q_" and 16
// bytes in unpadded base64url.
func ValidQueueID(s string) bool {
	if len(s) != 2+22 || s[0] != 'q' || s[1] != '_' {
		return false
	}
	for i := 2; i < len(s); i++ {
		c := s[i]
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}
