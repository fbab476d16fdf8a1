package wal

import "errors"

// Errors of the package. Callers compare with errors.Is: most are returned
// wrapped with the sequence, file or field they concern.
var (
	// Event bodies (Event.UnmarshalBinary, Event.Validate).
	ErrEventShort    = errors.New("wal: event body ends early")
	ErrEventTrailing = errors.New("wal: event body has trailing bytes")
	ErrEventType     = errors.New("wal: unknown event type")
	ErrEventBounds   = errors.New("wal: event field over its limit")
	ErrEventVarint   = errors.New("wal: event body has a malformed varint")

	// Record frames (DecodeRecord, and every record that Open and Replay read).
	ErrRecordShort    = errors.New("wal: record shorter than its header")
	ErrRecordVersion  = errors.New("wal: unknown record version")
	ErrRecordLength   = errors.New("wal: record length does not match its header")
	ErrRecordChecksum = errors.New("wal: record checksum mismatch")
	ErrRecordType     = errors.New("wal: record type does not match its body")
	ErrRecordTooLarge = errors.New("wal: record body over its limit")

	// The log. ErrCorrupt wraps every damage that is not a torn tail; the
	// message names the sequence and the file.
	ErrCorrupt    = errors.New("wal: log corrupt")
	ErrFull       = errors.New("wal: append queue full")
	ErrClosed     = errors.New("wal: log closed")
	ErrOutOfRange = errors.New("wal: sequence out of range")
	// ErrUnavailable wraps the cause (no space, an I/O error on write, a
	// stuck fsync) while the log cannot write. Nothing of the refused record
	// was written; the log takes records again once the cause clears.
	ErrUnavailable = errors.New("wal: log cannot write for now")
	// ErrNotLeader: a replicated log refused or lost a record because its
	// node is not (or no longer) the cluster's leader. A refused record was
	// never written; one lost after it was accepted may or may not commit.
	ErrNotLeader = errors.New("wal: this node is not the cluster's leader")
	// ErrLeadershipLost: a replicated log accepted a record, then its node
	// lost the leadership before the record committed. The next leader
	// may still commit it: the outcome is unknown.
	ErrLeadershipLost = errors.New("wal: the leadership was lost before the record committed")

	// Snapshots. ErrSnapshotCorrupt wraps every damage; the message names
	// the file.
	ErrSnapshotCorrupt = errors.New("wal: snapshot damaged")
	ErrSnapshotName    = errors.New("wal: bad snapshot name")
)
