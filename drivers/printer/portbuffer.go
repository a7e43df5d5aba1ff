package printer

import (
	"context"
	"sync"
	"time"

	"go.bug.st/serial"
)

// portBuffer holds what a goroutine of its own reads from the printer port
// until the session takes it, so the port is read at the printer's pace
// however long the session waits on its sink. It is bounded: past limit,
// new bytes are dropped and counted.
type portBuffer struct {
	mu    sync.Mutex
	data  []byte
	limit int
	lost  droppedSpan
	err   error
	wake  chan struct{}
	// onDrop is told at once of bytes dropped (the session may be held
	// up for long).
	onDrop func(n int64)
}

// droppedSpan is how many bytes were dropped, first and last when.
type droppedSpan struct {
	bytes    int64
	from, to time.Time
}

func newPortBuffer(limit int, onDrop func(n int64)) *portBuffer {
	return &portBuffer{limit: limit, wake: make(chan struct{}, 1), onDrop: onDrop}
}

// readFrom reads port until ctx ends or a read fails. Every read wakes the
// session, a timeout's (0, nil) too: it is how the session notices
// silence.
func (b *portBuffer) readFrom(ctx context.Context, port serial.Port) {
	buf := make([]byte, 4096)
	for ctx.Err() == nil {
		n, err := port.Read(buf)
		b.mu.Lock()
		if n > 0 {
			keep := min(n, max(b.limit-len(b.data), 0))
			b.data = append(b.data, buf[:keep]...)
			if keep < n {
				now := time.Now()
				if b.lost.bytes == 0 {
					b.lost.from = now
				}
				b.lost.bytes += int64(n - keep)
				b.lost.to = now
				b.onDrop(int64(n - keep))
			}
		}
		if err != nil && ctx.Err() == nil {
			b.err = err
		}
		b.mu.Unlock()
		select {
		case b.wake <- struct{}{}:
		default:
		}
		if err != nil {
			return
		}
	}
}

// next waits for the reader to wake it (or ctx) and returns everything
// read since the last call, what was dropped meanwhile, and the read error
// that ended reading, if any.
func (b *portBuffer) next(ctx context.Context) ([]byte, droppedSpan, error) {
	select {
	case <-b.wake:
	case <-ctx.Done():
	}
	return b.take()
}

// take returns what next returns, without waiting.
func (b *portBuffer) take() ([]byte, droppedSpan, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	data, lost, err := b.data, b.lost, b.err
	b.data, b.lost = nil, droppedSpan{}
	return data, lost, err
}
