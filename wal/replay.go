package wal

import (
	"fmt"
	"sort"
)

// Replay calls fn for every record from `from` (or the first kept one,
// whichever is later) to the last, in order, on the calling goroutine. It
// must be called before Start. It reads the segment files itself, checking
// each record's frame and that the sequences run on without a gap from file
// to file; any damage is an ErrCorrupt naming the sequence and the file. An
// error from fn stops the replay and is returned wrapped with the sequence.
//
// ev is reused from one call to the next: fn may keep its fields but not
// the pointer. A caller resuming from a snapshot at sequence s should check
// that FirstSeq() <= s+1, or records between the two are gone.
func (l *Log) Replay(from uint64, fn func(seq uint64, ev *Event) error) error {
	l.mu.Lock()
	started, closed := l.started, l.closed
	l.mu.Unlock()
	if started {
		panic("wal: Replay called after Start")
	}
	if closed {
		return ErrClosed
	}
	first, last := l.FirstSeq(), l.LastSeq()
	from = max(from, first)
	if from > last {
		return nil
	}
	segs, err := listSegments(l.dir)
	if err != nil {
		return err
	}
	i := sort.Search(len(segs), func(i int) bool { return segs[i].first > from }) - 1
	if i < 0 {
		return fmt.Errorf("%w: record %d: no segment file in %q holds it", ErrCorrupt, from, l.dir)
	}

	var (
		buf  []byte // reused for every segment
		ev   Event
		seq  = segs[i].first // the sequence the next record must carry
		prev string
	)
	for ; i < len(segs) && seq <= last; i++ {
		s := segs[i]
		switch {
		case s.first > seq:
			return fmt.Errorf("%w: record %d missing: %s ends at record %d and the next segment %s starts at record %d",
				ErrCorrupt, seq, prev, seq-1, s.path, s.first)
		case s.first < seq:
			return fmt.Errorf("%w: record %d: segment %s starts at record %d but %s already holds records up to %d",
				ErrCorrupt, s.first, s.path, s.first, prev, seq-1)
		}
		if buf, err = readSegment(buf, s.path); err != nil {
			return err
		}
		for off := 0; off < len(buf); {
			rec, n := nextFrame(buf[off:])
			if n == 0 {
				return fmt.Errorf("%w: record %d in %s at offset %d: %w", ErrCorrupt, seq, s.path, off, errEntryCut)
			}
			got, body, err := checkRecord(rec)
			if err != nil {
				return fmt.Errorf("%w: record %d in %s at offset %d: %w", ErrCorrupt, seq, s.path, off, err)
			}
			if got != seq {
				return fmt.Errorf("%w: record %d in %s at offset %d has sequence %d", ErrCorrupt, seq, s.path, off, got)
			}
			if seq >= from {
				if err := ev.UnmarshalBinary(body); err != nil {
					return fmt.Errorf("%w: record %d in %s at offset %d: %w", ErrCorrupt, seq, s.path, off, err)
				}
				if err := fn(seq, &ev); err != nil {
					return fmt.Errorf("wal: replay record %d: %w", seq, err)
				}
			}
			seq++
			off += n
		}
		prev = s.path
	}
	if seq != last+1 {
		return fmt.Errorf("%w: record %d: the log should end at record %d but its files end at record %d (last file read %s)",
			ErrCorrupt, min(seq, last+1), last, seq-1, prev)
	}
	return nil
}
