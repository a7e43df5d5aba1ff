package sim

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterigate/sterigate/sim/rtuslave"
	"github.com/sterigate/sterigate/sim/scenario"
)

// RegisterCount is the size of one device's register map (addresses 0–23).
const RegisterCount = 24

// Bank is the register image of every device, served by the Modbus TCP
// server and the RTU slave alike. Unit id n is device n (1-based). It is
// safe for concurrent use: servers call it from their own goroutines while
// the simulator's ticker publishes new images.
//
// It implements rtuslave.Registers and rtuslave.UnitPresence, and answers
// with rtuslave's errors: ErrNoSuchUnit for an absent or dead unit,
// ErrIllegalFunction, ErrIllegalAddress.
type Bank struct {
	mu      sync.RWMutex
	images  [][RegisterCount]uint16
	powered []bool
	comm    []*scenario.CommFault // active communication fault, nil when none
	served  []atomic.Uint64       // requests seen while a comm fault is active (for "every")
	writes  []atomic.Uint64
	// shuffle, when set, serves every unit through another register map
	// (sim/shuffle.go); the images stay in the standard layout.
	shuffle *Shuffle
}

// NewBank returns a bank of n devices, all powered, all registers 0.
func NewBank(n int) *Bank {
	b := &Bank{
		images:  make([][RegisterCount]uint16, n),
		powered: make([]bool, n),
		comm:    make([]*scenario.CommFault, n),
		served:  make([]atomic.Uint64, n),
		writes:  make([]atomic.Uint64, n),
	}
	for i := range b.powered {
		b.powered[i] = true
	}
	return b
}

// Units is the number of devices (unit ids 1..Units()).
func (b *Bank) Units() int { return len(b.images) }

func (b *Bank) index(unit byte) (int, bool) {
	i := int(unit) - 1
	return i, i >= 0 && i < len(b.images)
}

// HasUnit reports whether unit exists and is alive (a dead unit does not
// answer on the bus).
func (b *Bank) HasUnit(unit byte) bool {
	i, ok := b.index(unit)
	if !ok {
		return false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.powered[i]
}

// ReadRegisters serves a read of function 3 or 4 (holding and input
// registers hold the same values).
func (b *Bank) ReadRegisters(unit byte, function byte, address, quantity uint16) ([]uint16, error) {
	i, ok := b.index(unit)
	if !ok {
		return nil, rtuslave.ErrNoSuchUnit
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	if !b.powered[i] {
		return nil, rtuslave.ErrNoSuchUnit
	}
	if function != 3 && function != 4 {
		return nil, rtuslave.ErrIllegalFunction
	}
	if b.shuffle != nil {
		if quantity == 0 || quantity > 125 {
			return nil, rtuslave.ErrIllegalAddress
		}
		return b.shuffle.read(&b.images[i], function, address, quantity)
	}
	if quantity == 0 || quantity > 125 || int(address)+int(quantity) > RegisterCount {
		return nil, rtuslave.ErrIllegalAddress
	}
	out := make([]uint16, quantity)
	copy(out, b.images[i][address:])
	return out, nil
}

// RefuseWrite counts a refused write to unit.
func (b *Bank) RefuseWrite(unit byte, function byte) {
	if i, ok := b.index(unit); ok {
		b.writes[i].Add(1)
	}
}

// WritesRefused returns how many writes unit has refused.
func (b *Bank) WritesRefused(unit byte) uint64 {
	if i, ok := b.index(unit); ok {
		return b.writes[i].Load()
	}
	return 0
}

// Image returns a copy of unit's current registers.
func (b *Bank) Image(unit byte) ([RegisterCount]uint16, bool) {
	i, ok := b.index(unit)
	if !ok {
		return [RegisterCount]uint16{}, false
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	return b.images[i], b.powered[i]
}

// CommFault returns the communication fault unit shows now, if any, and
// whether this request is one the fault acts on (drop and corrupt act on
// every Every-th request only).
func (b *Bank) CommFault(unit byte) (scenario.CommFault, bool) {
	i, ok := b.index(unit)
	if !ok {
		return scenario.CommFault{}, false
	}
	b.mu.RLock()
	c := b.comm[i]
	b.mu.RUnlock()
	if c == nil {
		return scenario.CommFault{}, false
	}
	n := b.served[i].Add(1)
	if (c.Kind == scenario.CommDrop || c.Kind == scenario.CommCorrupt) && n%uint64(c.Every) != 0 {
		return *c, false
	}
	return *c, true
}

// RTUFault turns the active communication fault into what the RTU slave
// should do to one reply; pass it as rtuslave.Options.Fault.
func (b *Bank) RTUFault(req rtuslave.Request) rtuslave.Fault {
	c, acts := b.CommFault(req.Unit)
	if !acts {
		return rtuslave.Fault{}
	}
	switch c.Kind {
	case scenario.CommSlow:
		return rtuslave.Fault{Delay: c.Delay}
	case scenario.CommSilence, scenario.CommDrop:
		return rtuslave.Fault{Drop: true}
	case scenario.CommException:
		return rtuslave.Fault{Exception: c.Exception}
	case scenario.CommCorrupt:
		return rtuslave.Fault{Garbage: []byte{0x00, 0xff}, CorruptCRC: true}
	}
	return rtuslave.Fault{}
}

// publish is called by the ticker with every device's new state.
type update struct {
	image   [RegisterCount]uint16
	powered bool
	comm    *scenario.CommFault
}

func (b *Bank) publish(ups []update) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for i, u := range ups {
		b.images[i] = u.image
		b.powered[i] = u.powered
		if b.comm[i] != u.comm {
			b.served[i].Store(0)
		}
		b.comm[i] = u.comm
	}
}

// slowDelay is how long a TCP reply waits under a slow fault, capped so a
// typo in a scenario cannot hang a connection for ever.
func slowDelay(c scenario.CommFault) time.Duration { return min(c.Delay, time.Minute) }
