package learn

import (
	"context"
	"time"

	"github.com/sterigate/sterigate/drivers/modbus"
)

// DefaultRate is the default number of requests per second learn sends: a
// sterilizer's controller serves its own display and printer first, and a
// commissioning tool must never be the reason it stumbles.
const DefaultRate = 5.0

// Clock is the time source of scanning and recording. The real clock is
// used on devices; tests drive the simulator from a clock of their own so
// that a whole cycle records in no real time.
type Clock interface {
	Now() time.Time
	// Sleep waits for d or until ctx is done (then it returns ctx's error).
	Sleep(ctx context.Context, d time.Duration) error
}

// RealClock is the wall clock.
type RealClock struct{}

// Now returns the current time.
func (RealClock) Now() time.Time { return time.Now() }

// Sleep waits for d or until ctx is done.
func (RealClock) Sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// pacedReader sends one request at a time (its single caller waits for
// each reply) and starts two requests no closer than interval apart.
type pacedReader struct {
	r        modbus.RegisterReader
	unit     byte
	clock    Clock
	interval time.Duration
	next     time.Time
	requests int
}

func newPacedReader(r modbus.RegisterReader, unit byte, rate float64, clock Clock) *pacedReader {
	if clock == nil {
		clock = RealClock{}
	}
	p := &pacedReader{r: r, unit: unit, clock: clock}
	if rate > 0 {
		p.interval = time.Duration(float64(time.Second) / rate)
	}
	return p
}

func (p *pacedReader) read(ctx context.Context, function byte, address, quantity uint16) ([]uint16, error) {
	if wait := p.next.Sub(p.clock.Now()); wait > 0 {
		if err := p.clock.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	p.next = p.clock.Now().Add(p.interval)
	p.requests++
	return p.r.ReadRegisters(ctx, p.unit, function, address, quantity)
}
