// Package supervise runs the gateway's long-lived tasks (one per device
// link, the publisher, the console) and restarts any that fails, so one
// misbehaving sterilizer or a bug in one driver never stops the others
// from being recorded.
package supervise

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"runtime/debug"
	"sync"
	"time"
)

// Task is a long-lived job. It returns when ctx is done (nil) or when it
// fails (an error); the group restarts it after a back-off.
type Task func(ctx context.Context) error

// Group owns a set of tasks and waits for them.
type Group struct {
	ctx context.Context
	log *slog.Logger
	wg  sync.WaitGroup

	// MinBackoff and MaxBackoff bound the pause before a failed task is
	// restarted; it doubles on each consecutive failure.
	MinBackoff, MaxBackoff time.Duration
	// Healthy is how long a task must run for its back-off to reset.
	Healthy time.Duration

	mu       sync.Mutex
	restarts map[string]int
}

// New returns a group whose tasks live until ctx is done.
func New(ctx context.Context, log *slog.Logger) *Group {
	return &Group{ctx: ctx, log: log, MinBackoff: time.Second, MaxBackoff: time.Minute,
		Healthy: time.Minute, restarts: map[string]int{}}
}

// Go starts task under name and keeps it running until the group's
// context is done.
func (g *Group) Go(name string, task Task) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		backoff := g.MinBackoff
		for {
			started := time.Now()
			err := g.runOnce(task)
			if g.ctx.Err() != nil {
				return
			}
			if time.Since(started) >= g.Healthy {
				backoff = g.MinBackoff
			}
			if err == nil {
				err = fmt.Errorf("returned before shutdown")
			}
			g.mu.Lock()
			g.restarts[name]++
			g.mu.Unlock()
			// Jitter keeps many failing links from retrying in lockstep.
			wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
			g.log.Error("task failed; restarting", "task", name, "err", err, "in", wait.Round(time.Millisecond))
			select {
			case <-g.ctx.Done():
				return
			case <-time.After(wait):
			}
			backoff = min(backoff*2, g.MaxBackoff)
		}
	}()
}

// runOnce runs task, turning a panic into an error so that a bug in one
// driver costs a restart of that driver, not the gateway.
func (g *Group) runOnce(task Task) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("panic: %v\n%s", r, debug.Stack())
		}
	}()
	return task(g.ctx)
}

// Restarts returns how often each task was restarted (for metrics).
func (g *Group) Restarts() map[string]int {
	g.mu.Lock()
	defer g.mu.Unlock()
	out := make(map[string]int, len(g.restarts))
	for k, v := range g.restarts {
		out[k] = v
	}
	return out
}

// Wait blocks until every task has returned after the context is done.
func (g *Group) Wait() { g.wg.Wait() }
