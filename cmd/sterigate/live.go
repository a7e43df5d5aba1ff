package main

import (
	"context"
	"sync"

	"github.com/sterigate/sterigate/gateway/console"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
)

// maxLiveAlarms bounds the alarms the console's tile of one device shows.
const maxLiveAlarms = 5

// liveJournal is the journal as the drivers see it, remembering on the
// way what the console's overview shows live: each device's latest sample
// and the alarms of its running cycle. Everything still goes to the
// journal first; what it remembers is only what was journaled.
type liveJournal struct {
	*journal.Journal
	mu   sync.Mutex
	live map[string]console.Live
}

func newLiveJournal(j *journal.Journal) *liveJournal {
	return &liveJournal{Journal: j, live: map[string]console.Live{}}
}

func (l *liveJournal) Telemetry(ctx context.Context, batch protocol.Telemetry) error {
	err := l.Journal.Telemetry(ctx, batch)
	if n := len(batch.Samples); n > 0 && err == nil {
		s := batch.Samples[n-1]
		s.Ch = nil // the tile shows the chamber only
		l.mu.Lock()
		lv := l.live[batch.Device]
		lv.Sample = &s
		l.live[batch.Device] = lv
		l.mu.Unlock()
	}
	return err
}

func (l *liveJournal) Event(ctx context.Context, ev protocol.Event) error {
	err := l.Journal.Event(ctx, ev)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	lv := l.live[ev.Device]
	switch {
	case ev.Kind == protocol.EventAlarm:
		lv.Alarms = append(lv.Alarms, ev)
		if len(lv.Alarms) > maxLiveAlarms {
			lv.Alarms = lv.Alarms[len(lv.Alarms)-maxLiveAlarms:]
		}
	case ev.Kind == protocol.EventPhase && (ev.Phase == protocol.PhaseIdle || len(lv.Alarms) > 0 && ev.Cycle != lv.Alarms[0].Cycle):
		// A new cycle starts with no alarm of its own.
		lv.Alarms = nil
	}
	l.live[ev.Device] = lv
	return nil
}

// snapshot copies what the overview shows.
func (l *liveJournal) snapshot() map[string]console.Live {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]console.Live, len(l.live))
	for d, lv := range l.live {
		lv.Alarms = append([]protocol.Event(nil), lv.Alarms...)
		out[d] = lv
	}
	return out
}
