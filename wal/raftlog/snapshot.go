package raftlog

import (
	"bufio"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/raft"

	"onsale/wal"
)

// Compaction. The engine's snapshot files (Config.StateDir) hold its
// state up to their sequences, and the engine reports, through its
// journal's TruncateFront, the first record those files still need: the
// floor. After each such report the node takes a Raft snapshot: the
// metadata, a copy of every snapshot file, and the tail, every record from
// the floor up to the last one applied. Raft then drops the log up to the
// snapshot (less Config.TrailingLogs kept for followers that lag a little).
//
// The newest Raft snapshot is the node's base: a rebuild reads the snapshot
// files of the state directory, then the base's tail, then the log after
// it. That is complete because the files only ever get newer (an older one
// never replaces a newer one: wal.WriteSnapshotIfNewer), so every file
// needs records from the base's floor on at most.
//
// A follower that lags behind the leader's log gets the leader's snapshot
// instead (Raft's InstallSnapshot): Restore writes its files where they
// are newer, takes it as the base and has the follower's engine rebuilt.
// Raft also restores the newest snapshot at start, which does the same.

// snapMagic starts every snapshot this package writes.
const snapMagic = "onsale raft snapshot 1\n"

// Section kinds after the header.
const (
	secFile   byte = 'F' // name, sequence, data of one engine snapshot file
	secRecord byte = 'R' // index, body of one record of the tail
	secEnd    byte = 'E'
)

// snapHeader describes a snapshot; Nonce tells it from the others in the
// store when Restore must find the one it was given.
type snapHeader struct {
	Nonce   uint64            `json:"nonce"`
	Records uint64            `json:"records"` // every record up to this index is in the snapshot
	First   uint64            `json:"first"`   // the tail's first index
	Nodes   map[string]string `json:"nodes"`
	Key     []byte            `json:"key,omitempty"`
}

// base is the newest Raft snapshot of the node.
type base struct {
	id    string // in the snapshot store
	index uint64 // Raft's index of it: the log goes on after it
	hdr   snapHeader
}

// snapshotSoon asks the snapshot loop for a Raft snapshot.
func (n *Node) snapshotSoon() {
	select {
	case n.snapReq <- struct{}{}:
	default:
	}
}

// snapshotLoop takes the snapshots asked for, one at a time.
func (n *Node) snapshotLoop() {
	defer n.done.Done()
	for {
		select {
		case <-n.stop:
			return
		case <-n.snapReq:
		}
		err := n.r.Snapshot().Error()
		switch {
		case err == nil:
			n.snapshots.Add(1)
		case errors.Is(err, raft.ErrNothingNewToSnapshot), errors.Is(err, raft.ErrRaftShutdown):
		default:
			n.cfg.Logger.Warn("cluster: snapshot of the Raft log failed; the log keeps growing until one succeeds", "err", err)
		}
	}
}

// noteFloor records that the engine's snapshot files need no record before
// seq, and takes a Raft snapshot to drop them.
func (n *Node) noteFloor(seq uint64) {
	n.noteFloorOnly(seq)
	n.snapshotSoon()
}

// firstSeq is the first record a rebuild can read: the base's tail's
// first, or the log's first entry.
func (n *Node) firstSeq() uint64 {
	if b := n.base.Load(); b != nil {
		return b.hdr.First
	}
	first, _ := n.logs.FirstIndex()
	return first
}

// lastIndex is the last entry of the log, or the base's if the log has
// none after it.
func (n *Node) lastIndex() uint64 {
	last, _ := n.logs.LastIndex()
	if b := n.base.Load(); b != nil {
		last = max(last, b.index)
	}
	return last
}

// SnapshotIndex is the Raft index of the node's newest snapshot (0: none).
func (n *Node) SnapshotIndex() uint64 {
	if b := n.base.Load(); b != nil {
		return b.index
	}
	return 0
}

// FirstIndex is the first entry kept in the Raft log.
func (n *Node) FirstIndex() uint64 {
	first, _ := n.logs.FirstIndex()
	return first
}

// SnapshotsTaken and SnapshotsInstalled count this process's Raft
// snapshots: made here, and restored (at start or from the leader).
func (n *Node) SnapshotsTaken() uint64     { return n.snapshots.Load() }
func (n *Node) SnapshotsInstalled() uint64 { return n.installs.Load() }

// adopt makes the snapshot id of the store the base, unless a newer one is.
func (n *Node) adopt(id string, hdr snapHeader) error {
	metas, err := n.snaps.List()
	if err != nil {
		return err
	}
	for _, m := range metas {
		if m.ID != id {
			continue
		}
		nb := &base{id: id, index: m.Index, hdr: hdr}
		for {
			cur := n.base.Load()
			// An equal index is adopted too: the store orders snapshots
			// of one index by their ids, and may reap the older.
			if cur != nil && cur.index > nb.index {
				return nil
			}
			if n.base.CompareAndSwap(cur, nb) {
				return nil
			}
		}
	}
	return fmt.Errorf("raft snapshot %s is not in the store", id)
}

func (f *fsm) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.RLock()
	defer f.mu.RUnlock()
	var nonce [8]byte
	rand.Read(nonce[:])
	hdr := snapHeader{Nonce: binary.LittleEndian.Uint64(nonce[:]), Records: f.last.Load(),
		Nodes: make(map[string]string, len(f.nodes)), Key: f.key}
	for k, v := range f.nodes {
		hdr.Nodes[k] = v
	}
	// The tail starts at the floor, or at the base's own tail while the
	// engine has reported none.
	hdr.First = max(f.n.floor.Load(), f.n.firstSeq())
	hdr.First = min(hdr.First, hdr.Records+1)
	return &fsmSnap{n: f.n, hdr: hdr}, nil
}

type fsmSnap struct {
	n   *Node
	hdr snapHeader
}

// Persist writes the snapshot: it runs beside Apply, so the files it
// copies may be newer than hdr.Records, never older than the floor.
func (s *fsmSnap) Persist(sink raft.SnapshotSink) error {
	if err := s.write(sink); err != nil {
		sink.Cancel()
		return err
	}
	if err := sink.Close(); err != nil {
		return err
	}
	// The base before Raft drops the log behind it.
	return s.n.adopt(sink.ID(), s.hdr)
}

func (s *fsmSnap) write(w io.Writer) error {
	dir := s.n.cfg.StateDir
	names, err := stateFiles(dir)
	if err != nil {
		return err
	}
	// A file older than the floor (there should be none) lowers the tail's
	// start rather than leave it without the records it needs; if those
	// are gone already, no snapshot is better than one with a gap.
	for _, name := range names {
		seq, err := wal.SnapshotSeq(dir, name)
		if err != nil || seq >= s.hdr.First {
			continue
		}
		if first := s.n.firstSeq(); seq+1 < first {
			return fmt.Errorf("snapshot file %s is at record %d, but the records kept start at %d", name, seq, first)
		}
		s.hdr.First = max(seq, 1)
	}
	bw := bufio.NewWriterSize(w, 1<<16)
	hb, err := json.Marshal(s.hdr)
	if err != nil {
		return err
	}
	bw.WriteString(snapMagic)
	bw.Write(binary.AppendUvarint(nil, uint64(len(hb))))
	bw.Write(hb)
	var num []byte
	for _, name := range names {
		seq, data, err := wal.ReadSnapshot(dir, name)
		if err != nil {
			return fmt.Errorf("copy snapshot file %s: %w", name, err)
		}
		num = append(num[:0], secFile)
		num = binary.AppendUvarint(num, uint64(len(name)))
		num = append(num, name...)
		num = binary.AppendUvarint(num, seq)
		num = binary.AppendUvarint(num, uint64(len(data)))
		bw.Write(num)
		bw.Write(data)
	}
	if s.hdr.First <= s.hdr.Records {
		err = s.n.replayRaw(s.hdr.First, s.hdr.Records, func(seq uint64, body []byte) error {
			num = append(num[:0], secRecord)
			num = binary.AppendUvarint(num, seq)
			num = binary.AppendUvarint(num, uint64(len(body)))
			bw.Write(num)
			_, err := bw.Write(body)
			return err
		})
		if err != nil {
			return fmt.Errorf("copy the records from %d to %d: %w", s.hdr.First, s.hdr.Records, err)
		}
	}
	bw.WriteByte(secEnd)
	return bw.Flush()
}

func (s *fsmSnap) Release() {}

// stateFiles lists the engine's snapshot files in dir by name.
func stateFiles(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if name, ok := strings.CutSuffix(e.Name(), ".snap"); ok && e.Type().IsRegular() {
			names = append(names, name)
		}
	}
	return names, nil
}

// errInstalled fails a follower's state when a snapshot replaces it.
var errInstalled = errors.New("a snapshot from the leader replaced this node's state: it is built again")

// Restore takes a snapshot as this node's state: at start (Raft restores
// the newest) and when the leader sends one to a follower that lags.
func (f *fsm) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	f.fmu.Lock()
	defer f.fmu.Unlock()
	if f.follow != nil {
		// Its state misses the records the snapshot skips over.
		f.followFail(errInstalled)
		f.follow, f.followFail = nil, nil
	}
	dir := f.n.cfg.StateDir
	hdr, err := readSnap(bufio.NewReaderSize(rc, 1<<16), func(name string, seq uint64, data []byte) error {
		_, err := wal.WriteSnapshotIfNewer(dir, name, seq, data)
		return err
	}, nil)
	if err != nil {
		return fmt.Errorf("restore a raft snapshot: %w", err)
	}
	id, err := f.n.findSnapshot(hdr.Nonce)
	if err != nil {
		return err
	}
	if err := f.n.adopt(id, hdr); err != nil {
		return err
	}
	if f.n.started.Load() {
		// An install: entries this node stored below the snapshot may
		// never have committed (it led or followed another leader then).
		// Raft keeps them with a store that is not monotonic, and would
		// send them as committed to a node that needs them once this one
		// leads. Dropped here, through the cache that would serve them;
		// Raft waits on this restore meanwhile.
		if err := f.n.dropBelow(f.n.SnapshotIndex()); err != nil {
			return fmt.Errorf("drop the log below the installed snapshot: %w", err)
		}
	}
	f.mu.Lock()
	f.nodes = hdr.Nodes
	if f.nodes == nil {
		f.nodes = map[string]string{}
	}
	if len(f.key) == 0 {
		f.key = hdr.Key
	}
	f.mu.Unlock()
	f.last.Store(max(hdr.Records, f.n.SnapshotIndex()))
	f.n.noteFloorOnly(hdr.First)
	f.n.installs.Add(1)
	return nil
}

// dropBelow deletes the log's entries up to index.
func (n *Node) dropBelow(index uint64) error {
	first, err := n.cache.FirstIndex()
	if err != nil {
		return err
	}
	last, err := n.cache.LastIndex()
	if err != nil {
		return err
	}
	if first == 0 || first > index {
		return nil
	}
	return n.cache.DeleteRange(first, min(index, last))
}

// noteFloorOnly raises the floor without asking for a snapshot.
func (n *Node) noteFloorOnly(seq uint64) {
	for {
		cur := n.floor.Load()
		if seq <= cur || n.floor.CompareAndSwap(cur, seq) {
			return
		}
	}
}

// findSnapshot is the id, in the store, of the snapshot whose header
// carries nonce.
func (n *Node) findSnapshot(nonce uint64) (string, error) {
	metas, err := n.snaps.List()
	if err != nil {
		return "", err
	}
	for _, m := range metas {
		_, rc, err := n.snaps.Open(m.ID)
		if err != nil {
			continue
		}
		hdr, err := readSnapHeader(bufio.NewReader(rc))
		rc.Close()
		if err == nil && hdr.Nonce == nonce {
			return m.ID, nil
		}
	}
	return "", errors.New("restore a raft snapshot: it is not in the snapshot store")
}

func readSnapHeader(r *bufio.Reader) (snapHeader, error) {
	var hdr snapHeader
	magic := make([]byte, len(snapMagic))
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != snapMagic {
		return hdr, errors.New("not a snapshot of this program's cluster log")
	}
	n, err := binary.ReadUvarint(r)
	if err != nil || n > 1<<20 {
		return hdr, errors.New("snapshot header length is corrupt")
	}
	hb := make([]byte, n)
	if _, err := io.ReadFull(r, hb); err != nil {
		return hdr, err
	}
	return hdr, json.Unmarshal(hb, &hdr)
}

// readSnap reads a snapshot: file gets each engine snapshot file (nil:
// skipped), record each record of the tail (nil: not read).
func readSnap(r *bufio.Reader, file func(name string, seq uint64, data []byte) error, record func(seq uint64, body []byte) error) (snapHeader, error) {
	hdr, err := readSnapHeader(r)
	if err != nil {
		return hdr, err
	}
	var body []byte
	for {
		kind, err := r.ReadByte()
		if err != nil {
			return hdr, fmt.Errorf("snapshot ends early: %w", err)
		}
		switch kind {
		case secEnd:
			return hdr, nil
		case secFile:
			nl, err := binary.ReadUvarint(r)
			if err != nil || nl > 1024 {
				return hdr, errors.New("snapshot file name is corrupt")
			}
			name := make([]byte, nl)
			if _, err := io.ReadFull(r, name); err != nil {
				return hdr, err
			}
			if filepath.Base(string(name)) != string(name) {
				return hdr, fmt.Errorf("snapshot file name %q is corrupt", name)
			}
			seq, err := binary.ReadUvarint(r)
			if err != nil {
				return hdr, err
			}
			dl, err := binary.ReadUvarint(r)
			if err != nil || dl > 1<<31 {
				return hdr, errors.New("snapshot file length is corrupt")
			}
			if file == nil {
				if _, err := io.CopyN(io.Discard, r, int64(dl)); err != nil {
					return hdr, err
				}
				continue
			}
			data := make([]byte, dl)
			if _, err := io.ReadFull(r, data); err != nil {
				return hdr, err
			}
			if err := file(string(name), seq, data); err != nil {
				return hdr, err
			}
		case secRecord:
			if file != nil && record == nil {
				// Restore: the files are all it takes from here.
				return hdr, nil
			}
			seq, err := binary.ReadUvarint(r)
			if err != nil {
				return hdr, err
			}
			bl, err := binary.ReadUvarint(r)
			if err != nil || bl > 1<<28 {
				return hdr, errors.New("snapshot record length is corrupt")
			}
			body = append(body[:0], make([]byte, bl)...)
			if _, err := io.ReadFull(r, body); err != nil {
				return hdr, err
			}
			if record != nil {
				if err := record(seq, body); err != nil {
					return hdr, err
				}
			}
		default:
			return hdr, fmt.Errorf("snapshot section %q is unknown", kind)
		}
	}
}

// replayBase reads the records from..to of the base's tail.
func (n *Node) replayBase(b *base, from, to uint64, fn func(seq uint64, body []byte) error) error {
	_, rc, err := n.snaps.Open(b.id)
	if err != nil {
		return fmt.Errorf("open raft snapshot %s: %w", b.id, err)
	}
	defer rc.Close()
	_, err = readSnap(bufio.NewReaderSize(rc, 1<<16), nil, func(seq uint64, body []byte) error {
		if seq < from || seq > to {
			return nil
		}
		return fn(seq, body)
	})
	if err != nil {
		return fmt.Errorf("raft snapshot %s: %w", b.id, err)
	}
	return nil
}
