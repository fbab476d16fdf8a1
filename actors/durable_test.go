package actors

import (
	"errors"
	"testing"

	"onsale/wal"
)

// failingJournal resolves its one pending record as a failed one the way the
// cluster's journal does (its error first, then the record's done), at the
// moment whenDurable first asks for the error: the failure lands between
// whenDurable's two looks.
type failingJournal struct {
	Journal
	pending func(uint64, error)
	err     error
}

func (j *failingJournal) Append(_ *wal.Event, done func(uint64, error)) error {
	j.pending = done
	return nil
}

func (j *failingJournal) Err() error {
	seen := j.err
	if p := j.pending; p != nil {
		j.pending = nil
		j.err = wal.ErrLeadershipLost
		p(0, j.err)
	}
	return seen
}

// TestWhenDurableSeesAFailureThatResolves: a record that fails while
// whenDurable looks is never taken for durable.
func TestWhenDurableSeesAFailureThatResolves(t *testing.T) {
	j := &failingJournal{}
	o := ownerLog{log: j}
	if err := o.append(&wal.Event{}, nil); err != nil {
		t.Fatal(err)
	}
	var got error
	called := false
	o.whenDurable(func(err error) { got, called = err, true })
	if !called {
		t.Fatal("whenDurable did not answer although nothing was in flight")
	}
	if !errors.Is(got, wal.ErrLeadershipLost) {
		t.Fatalf("whenDurable answered %v for a record that failed; want the log's error", got)
	}
}
