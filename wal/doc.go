// Package wal is onsale's write-ahead log: typed events in checksummed
// records, written in groups by one goroutine in github.com/tidwall/wal's
// segment format, plus snapshot files that let the log be truncated in
// front. tidwall opens the log (it finishes an interrupted front
// truncation); every write after that goes through the log's own file layer
// (FS), so that tests can make the disk full, failing or stuck (FaultFS).
//
// # Guarantees
//
//   - An Append whose done callback got a nil error is durable: its record,
//     and every record before it, was written and fsynced (and, if the batch
//     opened a new segment file, so was the directory) before the callback
//     ran. Done callbacks run in sequence order, on the writer goroutine.
//   - Sequences are dense: the records of a log are FirstSeq..LastSeq with no
//     gap, and a record's sequence is its tidwall index (the first is 1).
//   - Append never blocks. The queue is bounded (Options.QueueMax records,
//     queueBytesMax bytes) and refuses with ErrFull when full.
//   - A write that fails for want of space (ENOSPC, EDQUOT) or with EIO is
//     not fatal: the writer truncates the tail segment back to its last
//     durable record (and fsyncs that), so no part of the batch stays, and
//     tries the same batch again every RetryEvery (1 s). Its records stay
//     pending meanwhile: their owners applied them in memory when Append
//     took them, so the only outcomes that keep memory and log in step are
//     "written" or "the process ends". While the batch waits, Append
//     refuses every new record with an error wrapping ErrUnavailable and the
//     cause, and Unavailable reports it; both clear with the first batch
//     written. A failed segment creation is handled the same way.
//   - A batch whose write and fsync have not returned after StallAfter (2 s),
//     or a front truncation stuck as long, makes the log unavailable the
//     same way until they return; the batch's records wait for them. If the
//     fsync then succeeds, all goes on.
//   - A failed fsync (of a segment or of the directory), a write failing any
//     other way, or a failed cut-back is fatal: the records not yet written
//     are failed with the error, every later Append returns it, and nothing
//     is retried: after a failed fsync the page cache may claim data that
//     the disk lost, and only a restart, which reads the disk, can tell.
//     The process should exit and recover by Open and Replay. A record
//     failed this way may or may not be in the log after the restart; one
//     acknowledged is always there. The error says the fsync is not retried.
//   - Close while a batch waits fails its records with the ErrUnavailable
//     error, which then is the log's fatal error.
//   - A front truncation that cannot write its copy of the first kept
//     segment (a full disk) changes nothing and returns the error; a failure
//     after that is fatal.
//   - Open cuts a torn tail and keeps the evidence; it never skips damage
//     silently (see Recovery).
//
// # Invariants
//
//   - One owner: the goroutine that opened the log until Start, then the
//     writer goroutine. Only the owner writes the files; Replay reads the
//     segment files itself. The stall watch only flags the log unavailable.
//   - Every record the writer hands to tidwall has sequence LastSeq()+1.
//   - Append checks Event.Validate, so no record is written that the decoder
//     would refuse on replay.
//   - Records accepted and not yet resolved never exceed QueueMax.
//
// # Files
//
// The log directory holds tidwall's segment files, each named by the
// sequence of its first record as 20 decimal digits
// (00000000000000000001), and <segment>.broken copies kept by repairs. A
// segment is a run of tidwall entries, each a uvarint byte count followed by
// that many bytes: one record. tidwall has no checksum, so every record
// carries its own frame. A segment is cut after the first record that takes
// it to SegmentSize bytes; a batch never spans two segments. A front
// truncation writes <seq>.START (through <seq>.START.TEMP), removes the
// segments before it and renames it to <seq>, as tidwall does.
//
// # Record format, version 1
//
// All integers are little-endian.
//
//	offset size field
//	     0    1 version   1
//	     1    1 type      the event Type; equal to the body's first byte
//	     2    4 length    body length in bytes, at most 80 MiB (recordBodyBytesMax)
//	     6    8 sequence  the record's sequence = its tidwall index
//	    14    4 crc       CRC-32C (Castagnoli) of bytes 0..13, then of the body
//	    18    n body      Event.AppendBinary: the type byte, then every field
//
// The event body (see Event.AppendBinary) is: the type byte; Sale, Zone,
// Hold, Order and Buyer as uvarint length + bytes; the seat count as a
// uvarint, then the first seat as a uvarint and each later one as a zigzag
// varint delta from the one before; At, Expires and Amount as zigzag
// varints; IdemKey as uvarint length + bytes; IdemHash and Num as uvarints;
// Blob as uvarint length + bytes. Varints must be in their shortest form and
// nothing may follow the blob, so an event has exactly one encoding. Limits:
// strings 1 KiB, 2,000,000 seats, blob 64 MiB.
//
// A reader checks, in order: at least 18 bytes, version, length against the
// bytes present, CRC, then that the body's type byte equals the header's.
//
// # Snapshot format, version 1
//
// One file per name in a directory: <name>.snap, replaced atomically through
// <name>.snap.tmp (write, fsync, rename, fsync the directory).
//
//	offset size field
//	     0    4 magic     "OSNP"
//	     4    1 version   1
//	     5    8 sequence  the log sequence the snapshot was taken at
//	    13    4 length    data length in bytes, at most 1 GiB
//	    17    4 crc       CRC-32C of bytes 0..16, then of the data
//	    21    n data
//
// # Recovery
//
// Open walks the segment that tidwall will open as its tail and classifies
// the first entry that is cut short, is empty (zero bytes parse as empty
// tidwall entries), or fails the record checks:
//
//   - if no valid record follows it anywhere in the file, it is a torn
//     write: the file is copied to <segment>.broken, truncated before that
//     entry, fsynced, and the directory fsynced; Options.Logf gets a notice.
//     A repair never needs free space: if the copy does not fit (ENOSPC,
//     EDQUOT, EIO on write) what was written of it is removed and the notice
//     gives the length, CRC-32C and first 64 bytes of what was cut instead;
//   - if a valid record follows, it is corruption: Open fails with an
//     ErrCorrupt that names the sequence and the file;
//   - a valid record with the wrong sequence is corruption too.
//
// Replay then reads every segment from the one holding `from`, checks every
// record, that each segment starts where the one before ended (a deleted or
// truncated segment shows as a gap) and that the files end at LastSeq. Any
// failure is an ErrCorrupt naming the sequence and the file; nothing is
// skipped. A lost final segment, or lost first segments, cannot be told from
// a shorter log: callers compare FirstSeq with their snapshot's sequence.
package wal
