// Package cycletest provides in-memory implementations of protocol.Sink and
// protocol.StateStore for driver tests: they record everything, can be told
// to fail, and let a test wait for a condition with a deadline instead of
// sleeping.
package cycletest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// ErrRefused is what a Sink or Store returns while told to fail.
var ErrRefused = errors.New("cycletest: refused (simulated outage)")

// Sink records what drivers deliver. The zero value is ready to use.
type Sink struct {
	mu        sync.Mutex
	records   []protocol.CycleRecord
	events    []protocol.Event
	telemetry []protocol.Telemetry
	fail      bool
	changed   chan struct{}
}

// Fail makes every later delivery fail (true) or succeed (false).
func (s *Sink) Fail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

func (s *Sink) notify() {
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
}

// Cycle implements protocol.Sink. The record is deep-copied through JSON,
// as a journal would, so later mutation by the driver cannot hide.
func (s *Sink) Cycle(_ context.Context, rec protocol.CycleRecord) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return ErrRefused
	}
	if err := rec.Validate(); err != nil {
		return err
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	var cp protocol.CycleRecord
	if err := json.Unmarshal(data, &cp); err != nil {
		return err
	}
	s.records = append(s.records, cp)
	s.notify()
	return nil
}

// Telemetry implements protocol.Sink.
func (s *Sink) Telemetry(_ context.Context, batch protocol.Telemetry) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return ErrRefused
	}
	s.telemetry = append(s.telemetry, batch)
	s.notify()
	return nil
}

// Event implements protocol.Sink.
func (s *Sink) Event(_ context.Context, ev protocol.Event) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return ErrRefused
	}
	s.events = append(s.events, ev)
	s.notify()
	return nil
}

// Records returns a copy of the delivered cycle records.
func (s *Sink) Records() []protocol.CycleRecord {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocol.CycleRecord(nil), s.records...)
}

// Events returns a copy of the delivered events.
func (s *Sink) Events() []protocol.Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocol.Event(nil), s.events...)
}

// EventsOf returns the delivered events of one kind.
func (s *Sink) EventsOf(kind protocol.EventKind) []protocol.Event {
	var out []protocol.Event
	for _, e := range s.Events() {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// TelemetryBatches returns a copy of the delivered telemetry batches.
func (s *Sink) TelemetryBatches() []protocol.Telemetry {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]protocol.Telemetry(nil), s.telemetry...)
}

// WaitFor polls cond after every delivery until it holds or timeout
// passes, then fails the test with what.
func (s *Sink) WaitFor(t testing.TB, timeout time.Duration, what string, cond func(*Sink) bool) {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		if cond(s) {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			if cond(s) {
				return
			}
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// Store is an in-memory protocol.StateStore. The zero value is ready.
type Store struct {
	mu    sync.Mutex
	state map[string][]byte
	fail  bool
	saves int
	bytes int
}

// Writes returns how many SaveState calls succeeded and how many bytes
// they wrote in total.
func (s *Store) Writes() (calls, bytes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.saves, s.bytes
}

// Fail makes every later save fail (true) or succeed (false).
func (s *Store) Fail(fail bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fail = fail
}

// LoadState implements protocol.StateStore.
func (s *Store) LoadState(_ context.Context, device string) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.state[device]; ok {
		return append([]byte(nil), v...), nil
	}
	return nil, nil
}

// SaveState implements protocol.StateStore.
func (s *Store) SaveState(ctx context.Context, device string, state []byte) error {
	return s.SaveStates(ctx, []protocol.SavedState{{Key: device, State: state}})
}

// SaveStates implements protocol.StateStore. Each key counts as one save.
func (s *Store) SaveStates(_ context.Context, states []protocol.SavedState) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return ErrRefused
	}
	for _, st := range states {
		s.saveLocked(st.Key, st.State)
	}
	return nil
}

func (s *Store) saveLocked(device string, state []byte) {
	if s.state == nil {
		s.state = map[string][]byte{}
	}
	s.state[device] = append([]byte(nil), state...)
	s.saves++
	s.bytes += len(state)
}

// Bytes returns what is saved for device.
func (s *Store) Bytes(device string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]byte(nil), s.state[device]...)
}
