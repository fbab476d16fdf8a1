package actors

// Messages to zone actors. Each carries a *call that the actor (or the log
// writer's callback, once the change is durable) finishes; the sender waits on
// it. Every field is copied out of the HTTP request before it is sent. The
// commands of a checkout and a cancel are in checkout.go, beside the flow
// that sends them.

// request is a message answered through a call.
type request interface{ call() *call }

func (m *holdCmd) call() *call     { return m.c }
func (m *releaseCmd) call() *call  { return m.c }
func (m *getHoldCmd) call() *call  { return m.c }
func (m *getOrderCmd) call() *call { return m.c }

// holdCmd asks a zone to hold seats: Quantity seats picked by the zone, or the
// named Seats.
type holdCmd struct {
	c         *call
	buyer     string
	quantity  int
	seats     []string
	acceptAlt bool
}

// releaseCmd gives a hold up. admin skips the owner check.
type releaseCmd struct {
	c      *call
	holdID string
	buyer  string
	admin  bool
}

// getHoldCmd reads a hold.
type getHoldCmd struct {
	c      *call
	holdID string
	buyer  string
	admin  bool
}

// getOrderCmd reads an order.
type getOrderCmd struct {
	c       *call
	orderID string
}

// seatsCmd reads the seat states of seats [from, to) of a zone, one byte
// per seat by index, with the zone's counts and version at that moment and
// the stamp of rows [firstRow, lastRow), the rows those seats fill.
type seatsCmd struct {
	from, to          uint32
	firstRow, lastRow int
	reply             chan seatsCopy // buffered: the actor never waits on it
}

// seatsCopy is the zone actor's answer to a seatsCmd.
type seatsCopy struct {
	states           []byte
	free, held, sold int
	version, stamp   uint64
}

// tickMsg makes a zone release its expired holds.
type tickMsg struct{}

// snapCmd asks an owner for its snapshot; see snapshot.go.
type snapCmd struct {
	reply chan snapPart
}
