package supervise

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

func TestFailingAndPanickingTasksRestartOthersUnaffected(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	g := New(ctx, slog.New(slog.NewTextHandler(io.Discard, nil)))
	g.MinBackoff, g.MaxBackoff = time.Millisecond, 4*time.Millisecond

	var failing, panicking, steady atomic.Int32
	g.Go("failing", func(ctx context.Context) error { failing.Add(1); return errors.New("device gone") })
	g.Go("panicking", func(ctx context.Context) error { panicking.Add(1); panic("driver bug") })
	g.Go("steady", func(ctx context.Context) error { steady.Add(1); <-ctx.Done(); return nil })

	deadline := time.Now().Add(10 * time.Second)
	for failing.Load() < 3 || panicking.Load() < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("restarts: failing %d, panicking %d", failing.Load(), panicking.Load())
		}
		time.Sleep(time.Millisecond) // polling interval, not synchronisation
	}
	if r := g.Restarts(); r["failing"] < 2 || r["panicking"] < 2 || r["steady"] != 0 {
		t.Errorf("restarts = %v", r)
	}
	cancel()
	g.Wait()
	if steady.Load() != 1 {
		t.Errorf("steady task started %d times, want 1", steady.Load())
	}
}
