package line

import (
	"crypto/sha256"
	"encoding/binary"
	"slices"
)

// DrawOrder is the opening lottery: the order in which the pre-queue enters
// the line. It is public so that anyone holding the seed (published after
// the opening, its SHA-256 before) and the list of queue ids can recompute it:
//
//  1. Sort the queue ids ascending by their bytes (ids are ASCII, so this is
//     plain string order). The input order therefore does not matter, and
//     the ids of the published order are the whole input.
//  2. For i from n-1 down to 1: h = SHA-256(seed || i), with the seed as its
//     32 raw bytes and i as an 8-byte big-endian unsigned integer; j = the
//     first 8 bytes of h read as a big-endian unsigned integer, mod (i+1);
//     swap the ids at 0-based places i and j (Fisher–Yates).
//  3. The result, first to last, is the line from place 1.
//
// Reducing a 64-bit number mod (i+1) favours some j over others by at most
// (i+1)/2^64 in probability, about 10^-13 for the largest pre-queue
// (1,000,000): far too little to matter or to exploit. DrawOrder does not
// change queueIDs.
func DrawOrder(seed [32]byte, queueIDs []string) []string {
	order := slices.Clone(queueIDs)
	slices.Sort(order)
	var msg [32 + 8]byte
	copy(msg[:32], seed[:])
	for i := len(order) - 1; i > 0; i-- {
		binary.BigEndian.PutUint64(msg[32:], uint64(i))
		h := sha256.Sum256(msg[:])
		j := binary.BigEndian.Uint64(h[:8]) % uint64(i+1)
		order[i], order[j] = order[j], order[i]
	}
	return order
}
