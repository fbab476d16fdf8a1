package line

import "hash/maphash"

// roomIndex finds a ticket by a string key (its queue id, or its buyer) in
// open-addressed uint32 slots. It exists for memory: the key is not stored
// again but read back from the ticket a slot points to, so an entry costs 4
// to 8 bytes where a map[string]uint32 took about 50. With two indexes a line
// of 1,000,000 went from 222 MB to 131 MB (TestRoomMemoryMillion).
//
// Linear probing, load at most 1/2, no deletion: queue ids are never
// forgotten, and a buyer's entry is overwritten when they take a new ticket.
// Lookups compare the whole key, so the hash only decides speed, never
// correctness; its seed is random per index, which keeps a crafted set of
// ids from piling into one run of slots.
type roomIndex struct {
	slots []uint32 // 0 = empty, else ticket index + 1
	n     int
	seed  maphash.Seed
	ts    *roomTickets
	buyer bool // the key is Ticket.Buyer, else Ticket.QueueID
}

// roomIndexSlotsMin is the first table size, a power of two.
const roomIndexSlotsMin = 1 << 10

func newRoomIndex(ts *roomTickets, buyer bool) roomIndex {
	return roomIndex{seed: maphash.MakeSeed(), ts: ts, buyer: buyer}
}

func (x *roomIndex) key(i uint32) string {
	if x.buyer {
		return x.ts.at(i).Buyer
	}
	return x.ts.at(i).QueueID
}

// find returns the slot holding k, or the empty slot where k would go.
func (x *roomIndex) find(k string) int {
	mask := len(x.slots) - 1
	for s := int(maphash.String(x.seed, k)) & mask; ; s = (s + 1) & mask {
		if v := x.slots[s]; v == 0 || x.key(v-1) == k {
			return s
		}
	}
}

func (x *roomIndex) get(k string) (uint32, bool) {
	if x.n == 0 {
		return 0, false
	}
	v := x.slots[x.find(k)]
	return v - 1, v != 0
}

// getBytes is get for a key in a byte slice; the conversion in the
// comparison does not allocate.
func (x *roomIndex) getBytes(k []byte) (uint32, bool) {
	if x.n == 0 {
		return 0, false
	}
	mask := len(x.slots) - 1
	for s := int(maphash.Bytes(x.seed, k)) & mask; ; s = (s + 1) & mask {
		v := x.slots[s]
		if v == 0 {
			return 0, false
		}
		if x.key(v-1) == string(k) {
			return v - 1, true
		}
	}
}

// put points k at ticket i, replacing what k pointed at. The ticket must
// already be stored, with k as its key.
func (x *roomIndex) put(k string, i uint32) {
	if 2*(x.n+1) > len(x.slots) {
		x.grow()
	}
	s := x.find(k)
	if x.slots[s] == 0 {
		x.n++
	}
	x.slots[s] = i + 1
}

func (x *roomIndex) grow() {
	old := x.slots
	x.slots = make([]uint32, max(2*len(old), roomIndexSlotsMin))
	mask := len(x.slots) - 1
	for _, v := range old {
		if v == 0 {
			continue
		}
		s := int(maphash.String(x.seed, x.key(v-1))) & mask
		for x.slots[s] != 0 {
			s = (s + 1) & mask
		}
		x.slots[s] = v
	}
}
