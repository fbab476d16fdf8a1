package actors

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"os"
	"sort"
	"strings"

	"onsale/actors/seats"
	"onsale/wal"
)

// recover rebuilds every sale from the snapshots and the log. It runs before
// any actor exists, on the calling goroutine, so it touches the cores
// directly.
func (e *Engine) recover() error {
	if err := e.loadSnapshots(); err != nil {
		return err
	}
	// The log must reach back to just after the oldest snapshot: records
	// missing in between (a lost first segment) would be a silent loss.
	need := uint64(0) // lowest first record any owner needs; 0 while none is known
	for _, s := range e.byIdx {
		if s == nil {
			continue
		}
		owners := []uint64{s.snapSeq, s.room.snapSeq}
		for _, zh := range s.zones {
			owners = append(owners, zh.snapSeq)
		}
		for _, q := range owners {
			if need == 0 || q+1 < need {
				need = q + 1
			}
		}
	}
	need = max(need, 1)
	if first := e.log.FirstSeq(); e.log.LastSeq() >= first && first > need {
		return fmt.Errorf("the log starts at record %d but the snapshots need it from record %d: records are missing (restore the data directory from a backup)", first, need)
	}
	err := e.log.Replay(e.log.FirstSeq(), e.replay)
	if err != nil {
		return fmt.Errorf("replay log: %w", err)
	}
	for _, s := range e.byIdx {
		if s != nil {
			s.rebuildDerived()
		}
	}
	return nil
}

// loadSnapshots reads snap/s<idx>.snap for each sale, then its zones' and
// room's files.
func (e *Engine) loadSnapshots() error {
	entries, err := os.ReadDir(e.snapDir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("read snapshots in %q: %w", e.snapDir, err)
	}
	var names []string
	for _, ent := range entries {
		n := ent.Name()
		if strings.HasSuffix(n, ".snap") && !strings.Contains(n, "-") {
			names = append(names, strings.TrimSuffix(n, ".snap"))
		}
	}
	sort.Strings(names)
	for _, name := range names {
		seq, data, err := wal.ReadSnapshot(e.snapDir, name)
		if err != nil {
			return fmt.Errorf("sale snapshot: %w", err)
		}
		var rec saleRecord
		if err := json.Unmarshal(data, &rec); err != nil {
			return fmt.Errorf("sale snapshot %q: %w", name, err)
		}
		s, err := e.newSale(rec)
		if err != nil {
			return fmt.Errorf("sale snapshot %q: %w", name, err)
		}
		s.snapSeq = seq
		for _, zh := range s.zones {
			zseq, zdata, err := wal.ReadSnapshot(e.snapDir, zoneSnapName(s, zh))
			if errors.Is(err, fs.ErrNotExist) {
				continue
			}
			if err != nil {
				return fmt.Errorf("zone snapshot: %w", err)
			}
			if err := zh.restore(s.def.ID, zdata); err != nil {
				return fmt.Errorf("zone snapshot %q: %w", zoneSnapName(s, zh), err)
			}
			zh.snapSeq = zseq
		}
		if err := s.room.load(e.snapDir); err != nil {
			return err
		}
		e.register(s)
	}
	return nil
}

// replay applies one record to the state it belongs to, unless that state's
// snapshot already covers it.
func (e *Engine) replay(seq uint64, ev *wal.Event) error {
	if ev.Type == wal.TypeMarker {
		return nil
	}
	if ev.Type == wal.TypeSaleCreated {
		if _, ok := e.Sale(ev.Sale); ok {
			return nil // restored from its snapshot
		}
		var rec saleRecord
		if err := json.Unmarshal(ev.Blob, &rec); err != nil {
			return fmt.Errorf("sale_created %q: %w", ev.Sale, err)
		}
		s, err := e.newSale(rec)
		if err != nil {
			return err
		}
		e.register(s)
		return nil
	}
	s, ok := e.Sale(ev.Sale)
	if !ok {
		return fmt.Errorf("%s event for unknown sale %q", ev.Type, ev.Sale)
	}
	switch ev.Type {
	case wal.TypeSalePaused, wal.TypeSaleResumed:
		if seq > s.snapSeq {
			s.pausedAtStart = ev.Type == wal.TypeSalePaused
		}
		return nil
	case wal.TypeQueueJoined, wal.TypeQueueAdmitted, wal.TypeQueueLeft, wal.TypeQueueDrawn, wal.TypeQueueDone:
		return s.room.replay(seq, ev)
	}
	zh, ok := s.zoneByID[ev.Zone]
	if !ok {
		return fmt.Errorf("%s event for unknown zone %q of sale %q", ev.Type, ev.Zone, ev.Sale)
	}
	if seq <= zh.snapSeq {
		return nil
	}
	if ev.Type == wal.TypeIdemResult {
		var f idemFail
		if err := json.Unmarshal(ev.Blob, &f); err != nil {
			return fmt.Errorf("idem_result: %w", err)
		}
		zh.idemFails[idemKey{buyer: f.Buyer, scope: f.Scope, key: f.Key}] = f
		return nil
	}
	// Drop ended holds as the live zone did, on the records' clock (kept
	// from going back), so that replaying a long log keeps what the live
	// zone kept, not every hold since the snapshot.
	zh.replayClock = max(zh.replayClock, ev.At)
	zh.core.DropEnded(zh.replayClock-e.cfg.HoldRetention.Milliseconds(), math.MaxInt)
	if err := zh.core.Apply(ev); err != nil {
		return fmt.Errorf("zone %q of sale %q: %w", ev.Zone, ev.Sale, err)
	}
	return nil
}

// rebuildDerived fills the ledger, the idempotency table and the published
// counts from the recovered cores.
func (s *Sale) rebuildDerived() {
	now := s.e.nowMs()
	for _, zh := range s.zones {
		z := zh.core
		z.ForEachHold(func(h *seats.Hold) {
			if h.State == seats.HoldActive || (h.State == seats.HoldPurchased && !h.OrderCancelled) {
				s.ledger.force(h.Buyer, len(h.Seats))
			}
			if h.IdemKey != "" && now-h.CreatedAt <= idemRetention.Milliseconds() {
				s.idem.put(idemKey{buyer: h.Buyer, scope: scopeHold, key: h.IdemKey}, h.IdemHash, h.CreatedAt, firstHoldAnswer(s.def.ID, z, h))
			}
			if h.PayKey != "" && now-h.PaidAt <= idemRetention.Milliseconds() {
				s.idem.put(idemKey{buyer: h.Buyer, scope: scopeCheckout, key: h.PayKey}, h.PayHash, h.PaidAt, firstOrderAnswer(&s.def, z, h))
			}
		})
		for k, f := range zh.idemFails {
			if now-f.At > idemRetention.Milliseconds() {
				delete(zh.idemFails, k)
				continue
			}
			s.idem.put(k, f.Hash, f.At, Result{Err: f.Err})
		}
		zh.setCounts(z.Counts())
	}
}

// expireOverdue releases, before the server is ready, every hold whose expiry
// passed while the process was down, and waits until that is durable.
func (e *Engine) expireOverdue() error {
	now := e.nowMs()
	var pending []chan error
	for _, s := range e.byIdx {
		if s == nil {
			continue
		}
		for _, zh := range s.zones {
			for {
				ids := zh.core.TakeDue(now, expiriesPerTickMax)
				if len(ids) == 0 {
					break
				}
				for _, id := range ids {
					d, ok := zh.core.DecideExpiry(id, now)
					if !ok {
						continue
					}
					done := make(chan error, 1)
					if err := e.log.Append(&d.Event, func(_ uint64, err error) { done <- err }); err != nil {
						return fmt.Errorf("expire hold %s at recovery: %w", id, err)
					}
					if err := zh.core.Apply(&d.Event); err != nil {
						return fmt.Errorf("expire hold %s at recovery: %w", id, err)
					}
					s.ledger.Give(d.Answer.Buyer, d.Returned)
					pending = append(pending, done)
				}
				// Wait per round so the bounded log queue never overflows.
				for _, d := range pending {
					if err := <-d; err != nil {
						return fmt.Errorf("expire holds at recovery: %w", err)
					}
				}
				pending = pending[:0]
			}
			zh.setCounts(zh.core.Counts())
		}
	}
	return nil
}
