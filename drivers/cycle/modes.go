package cycle

import (
	"fmt"
	"slices"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// The four cycle_end modes (docs/profiles.md §11). Each decides, from one
// reading and the saved state, whether the reading belongs to the open
// cycle (take or cover), ends it (finish), starts a new one (open) or
// tells of cycles the gateway did not watch (gapUpTo, recordLatchedOnly).
// An end counts as seen only when the reading before it was recent.

const missedWhy = "finished while the gateway was not watching it; no samples, no record"

// stepLatched implements cycle_end: last_cycle_change.
func (a *Assembler) stepLatched(o obs) {
	r := o.r
	if o.firstEver {
		a.st.LastLatch, a.st.Recorded = r.LastCycle, r.LastCycle
		if r.Counter > r.LastCycle {
			a.openAs(r.Counter, o, false) // the device is mid-cycle: we missed its start
		}
		return
	}
	if cur := a.st.Current; cur != nil && r.Counter == cur.Counter {
		a.take(o)
	}
	if r.LastCycle < a.st.LastLatch {
		// Counter reset or device replaced: whatever was open will never
		// be latched; record it as it is and re-baseline.
		a.counterReset(r.LastCycle, o.now)
		if cur := a.st.Current; cur != nil {
			a.finish(nil, false, endOf(cur))
		}
		a.st.LastLatch, a.st.Recorded = r.LastCycle, r.LastCycle
		a.st.Epoch++
	}
	if r.LastCycle > a.st.LastLatch {
		finished := r.LastCycle
		a.st.LastLatch = finished
		if cur := a.st.Current; cur != nil && cur.Counter <= finished {
			var l *latched
			if cur.Counter == finished {
				l = latchedOf(r)
			}
			a.finishAt(l, cur.Counter == finished, o)
		}
		if finished > a.st.Recorded && (r.HasLastResult || r.HasLastProgram) {
			// The whole cycle ran while the gateway could not see the
			// device (link down, gateway stopped), but the device still
			// latches its verdict: record that, marked incomplete, rather
			// than nothing. Only cycles before it are truly unknown.
			a.gapUpTo(finished-1, o.now, missedWhy)
			a.recordLatchedOnly(finished, r, o.now)
		}
		a.gapUpTo(finished, o.now, missedWhy)
	}
	if cur := a.st.Current; cur != nil && r.Counter > cur.Counter {
		// The device started another cycle without latching this one
		// (power cut, abort the device does not report): it will not be
		// latched any more, so record it now, end unseen.
		a.finish(nil, false, endOf(cur))
	}
	if a.st.Current == nil && r.Counter > a.st.Recorded && r.Counter > a.st.LastLatch {
		// A cycle newer than any finished one is running. We saw it start
		// when the previous reading (recent) showed another counter.
		a.openAs(r.Counter, o, o.recent && a.st.LastCounter != r.Counter)
	}
}

// stepCounter implements cycle_end: counter_change. The counter counts
// finished cycles: when it moves from N-1 to N, cycle N has just finished.
// The cycle in progress is therefore number counter+1, and samples in idle
// phases belong to no cycle.
func (a *Assembler) stepCounter(o obs) {
	r := o.r
	idle := !r.HasPhase || a.prof.IsIdle(r.Phase)
	if o.firstEver {
		a.st.Recorded = r.Counter
		if !idle {
			a.openAs(r.Counter+1, o, false)
		}
		return
	}
	if r.Counter < a.st.LastCounter {
		a.counterReset(r.Counter, o.now)
		a.st.Recorded = r.Counter
		if cur := a.st.Current; cur != nil {
			a.finish(nil, false, endOf(cur))
			a.st.Recorded = r.Counter
		}
		a.st.Epoch++
	}
	if cur := a.st.Current; cur != nil && (r.Counter == a.st.LastCounter || r.Counter == cur.Counter) {
		// The reading belongs to the open cycle up to and including the
		// poll that ends it (not when the counter jumped past it: then it
		// shows a later cycle). A poll with the device idle covers the
		// cycle without a sample.
		if idle {
			a.cover(o)
		} else {
			a.take(o)
		}
	}
	if r.Counter > a.st.LastCounter {
		finished := r.Counter
		if cur := a.st.Current; cur != nil {
			var l *latched
			if cur.Counter == finished {
				l = latchedOf(r)
			}
			a.finishAt(l, cur.Counter == finished, o)
		}
		a.gapUpTo(finished, o.now, missedWhy)
		return
	}
	if a.st.Current == nil && !idle && r.Counter+1 > a.st.Recorded {
		a.openAs(r.Counter+1, o, o.recent && a.prof.IsIdle(a.st.LastPhase))
	}
}

// stepPhase implements cycle_end: phase_enters.
func (a *Assembler) stepPhase(o obs) {
	r := o.r
	isEnd := slices.Contains(a.prof.CycleEnd.Phases, r.Phase)
	wasEnd := slices.Contains(a.prof.CycleEnd.Phases, a.st.LastPhase)
	idle := a.prof.IsIdle(r.Phase)
	if o.firstEver {
		a.st.Recorded = r.Counter
		if !idle && !isEnd {
			a.st.Recorded = r.Counter - min(r.Counter, 1)
			a.openAs(r.Counter, o, false)
		}
		return
	}
	if r.Counter < a.st.LastCounter {
		a.counterReset(r.Counter, o.now)
		if cur := a.st.Current; cur != nil {
			a.finish(nil, false, endOf(cur))
		}
		a.st.Recorded = r.Counter - min(r.Counter, 1)
		if idle || isEnd {
			a.st.Recorded = r.Counter
		}
		a.st.Epoch++
	}
	if cur := a.st.Current; cur != nil {
		switch {
		case r.Counter > cur.Counter:
			// The device moved on to another cycle without showing an end
			// phase we saw (it passed between two polls). This reading
			// belongs to the new cycle.
			a.finish(nil, false, endOf(cur))
		case isEnd && !wasEnd:
			// The counter still numbers this cycle, so the block the
			// device latched at its end is this cycle's.
			a.take(o)
			a.finishAt(latchedOf(r), true, o)
		default:
			a.take(o)
			return
		}
	}
	if !idle && !isEnd && r.Counter > a.st.Recorded {
		if r.Counter > 0 {
			a.gapUpTo(r.Counter-1, o.now, "ran while the gateway was not watching it; no samples, no record")
		}
		a.openAs(r.Counter, o, o.recent && (a.prof.IsIdle(a.st.LastPhase) || wasEnd || a.st.LastCounter != r.Counter))
	}
}

// stepNext implements cycle_end: next_cycle_starts. The counter numbers
// the running cycle; last_result holds the verdict of the last finished
// one; the end phase may pass between two polls. A cycle's samples stop
// when the phase returns to an idle phase (its end, seen if the previous
// reading was recent). When the counter moves on, the cycle before has
// finished for certain, and last_result read then is its verdict.
func (a *Assembler) stepNext(o obs) {
	r := o.r
	idle := a.prof.IsIdle(r.Phase)
	if o.firstEver {
		a.st.Recorded = r.Counter // idle: cycle Counter finished before the gateway
		if !idle {
			a.st.Recorded = r.Counter - min(r.Counter, 1)
			a.openAs(r.Counter, o, false) // mid-cycle: we missed its start
		}
		return
	}
	if r.Counter < a.st.LastCounter {
		a.counterReset(r.Counter, o.now)
		if cur := a.st.Current; cur != nil {
			a.finish(nil, cur.Ended != 0 && cur.EndSeen, endOf(cur))
		}
		a.st.Recorded = r.Counter - min(r.Counter, 1)
		if idle {
			a.st.Recorded = r.Counter
		}
		a.st.Epoch++
	}
	if cur := a.st.Current; cur != nil && r.Counter == cur.Counter {
		switch {
		case cur.Ended == 0 && idle:
			// The device stopped running the cycle: its end, seen if the
			// gateway was watching; else it ended some time after it was
			// last seen running.
			cur.EndSeen = o.recent
			if o.recent {
				cur.Ended = o.nowMs
				a.cover(o)
			} else {
				cur.Ended = cur.Last
				cur.Alarms = append(cur.Alarms, o.alarms...)
			}
		case cur.Ended == 0:
			a.take(o)
		case !idle:
			// Running again without counting a new cycle: the profile's
			// idle phases or cycle_end do not fit this device. Whatever
			// runs now is not taken into the ended cycle's record.
			if a.prof.IsIdle(a.st.LastPhase) {
				a.log.Warn("device runs again after its cycle ended without moving its counter; these samples belong to no record (check idle_phases and cycle_end)", "cycle", cur.Counter)
				a.queueEvent(protocol.Event{Kind: protocol.EventGap, At: o.now.UTC(), Cycle: cur.Counter,
					Text: fmt.Sprintf("the device ran again (phase %s) after cycle %d had ended, without moving its counter; these readings belong to no record", r.Phase, cur.Counter)})
			}
		}
		return
	}
	if r.Counter > a.st.LastCounter {
		// Cycles up to Counter-1 have finished. last_result holds the
		// verdict of the last one: Counter-1 if the new cycle runs, or
		// if the gateway watched the counter move (a whole cycle cannot
		// pass between two recent polls); else, idle after an absence,
		// Counter itself may have finished since.
		verdictOf := r.Counter - 1
		if idle && !o.recent {
			verdictOf = r.Counter
		}
		if cur := a.st.Current; cur != nil && cur.Counter < r.Counter {
			var l *latched
			if cur.Counter == verdictOf {
				l = latchedOf(r)
			}
			a.finish(l, cur.Ended != 0 && cur.EndSeen, endOf(cur))
		}
		if verdictOf > a.st.Recorded && (r.HasLastResult || r.HasLastProgram) {
			a.gapUpTo(verdictOf-1, o.now, missedWhy)
			a.recordLatchedOnly(verdictOf, r, o.now)
		}
		a.gapUpTo(r.Counter-1, o.now, missedWhy)
	}
	if a.st.Current == nil && !idle && r.Counter > a.st.Recorded {
		a.openAs(r.Counter, o, o.recent && (a.st.LastCounter != r.Counter || a.prof.IsIdle(a.st.LastPhase)))
	}
}

// endOf is when an open cycle ended: when the device stopped running it
// (next_cycle_starts), else the last time it was seen.
func endOf(c *openCycle) time.Time {
	if c.Ended != 0 {
		return time.UnixMilli(c.Ended)
	}
	return time.UnixMilli(c.Last)
}

func intPtr(v int) *int { return &v }

// openAs starts cycle counter with this reading.
func (a *Assembler) openAs(counter uint64, o obs, sawStart bool) {
	c := &openCycle{Counter: counter, SawStart: sawStart, Start: o.nowMs, Last: o.nowMs, Covered: o.nowMs, Samples: []compactSample{}}
	for _, ch := range a.prof.Channels {
		c.ChIDs = append(c.ChIDs, ch.Field)
	}
	if o.r.HasProgram {
		c.ProgramCode = intPtr(o.r.ProgramCode)
	}
	a.st.Current = c
	a.take(o)
}

// take adds the reading to the open cycle: its sample, the alarms raised
// at this poll, and the program if not known yet.
func (a *Assembler) take(o obs) {
	c := a.st.Current
	if c.ProgramCode == nil && o.r.HasProgram {
		c.ProgramCode = intPtr(o.r.ProgramCode)
	}
	c.Alarms = append(c.Alarms, o.alarms...)
	c.Last = max(c.Last, o.nowMs)
	if !o.hasSample {
		a.missing(o.nowMs, protocol.HoleImplausible)
		return
	}
	a.closeStretch(c, o.nowMs)
	c.Samples = append(c.Samples, compactOf(o.smp, c.ChIDs))
}

// cover notes a poll that belongs to the open cycle but shows the device
// idle: nothing is missing, and there is no sample to take.
func (a *Assembler) cover(o obs) {
	c := a.st.Current
	c.Alarms = append(c.Alarms, o.alarms...)
	c.Last = max(c.Last, o.nowMs)
	a.closeStretch(c, o.nowMs)
}
