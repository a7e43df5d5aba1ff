package cycle

import (
	"fmt"
	"slices"
	"time"

	"github.com/sterigate/sterigate/drivers/profile"
	"github.com/sterigate/sterigate/protocol"
)

// latched is what the device latched about a finished cycle, taken into
// the record only when it belongs to that very cycle.
type latched struct {
	result, program *int
	alarm           int // last_alarm_code, 0: none
	figures         *protocol.DeviceFigures
}

func latchedOf(r profile.Reading) *latched {
	l := &latched{figures: r.Figures}
	if r.HasLastResult {
		l.result = intPtr(r.LastResultCode)
	}
	if r.HasLastProgram {
		l.program = intPtr(r.LastProgram)
	}
	if r.HasLastAlarm {
		l.alarm = r.LastAlarmCode
	}
	return l
}

// finishAt finishes the open cycle at reading o. endHere says the reading
// shows this cycle's end; it counts as seen only if the previous reading
// was recent. Otherwise the cycle ended some time after it was last seen.
func (a *Assembler) finishAt(l *latched, endHere bool, o obs) {
	if endHere && o.recent {
		a.finish(l, true, o.now)
		return
	}
	a.finish(l, false, time.UnixMilli(a.st.Current.Last))
}

// finish turns the current cycle into a record queued for delivery. l is
// the device's latched block when it belongs to this cycle, else nil.
func (a *Assembler) finish(l *latched, sawEnd bool, endedAt time.Time) {
	c := a.st.Current
	a.st.Current = nil
	end := max(endedAt.UnixMilli(), c.Start)
	if c.Ended == 0 {
		end = max(end, c.Last)
	}
	a.closeStretch(c, end)
	rec := a.newRecord(c.Counter, time.UnixMilli(c.Start), time.UnixMilli(end))
	rec.Alarms = append(rec.Alarms, c.Alarms...)
	rec.EndSeen = sawEnd
	rec.Holes = c.Holes
	rec.Complete = c.SawStart && sawEnd && len(c.Holes) == 0 && !c.Gap
	if c.ProgramCode != nil {
		rec.ProgramCode = intPtr(*c.ProgramCode)
	}
	a.applyLatched(&rec, l)
	for _, s := range c.Samples {
		if s.At > end {
			break // a record never takes in what came after its end
		}
		rec.Samples = append(rec.Samples, s.sample(c.ChIDs))
	}
	rec.Phases = phasesOf(rec.Samples, rec.EndedAt)
	if rec.Phases == nil {
		rec.Phases = []protocol.Phase{}
	}
	a.st.Recorded = max(a.st.Recorded, c.Counter)
	a.st.Pending = append(a.st.Pending, rec)
}

// newRecord fills what every record of this device has.
func (a *Assembler) newRecord(counter uint64, start, end time.Time) protocol.CycleRecord {
	rec := protocol.CycleRecord{
		Device: a.cfg.Device, Cycle: counter, Program: "unknown", Result: protocol.ResultUnknown,
		StartedAt: start.UTC(), EndedAt: end.UTC(), Source: a.cfg.Source,
		// A record finished by a counter reset still belongs to the old
		// epoch: callers bump Epoch after finishing it.
		CounterEpoch: a.st.Epoch,
		Phases:       []protocol.Phase{}, Samples: []protocol.Sample{}, Alarms: []protocol.Alarm{},
	}
	if a.cfg.TimeScale > 0 && a.cfg.TimeScale != 1 {
		rec.TimeScale = a.cfg.TimeScale
	}
	for _, ch := range a.prof.Channels {
		rec.Channels = append(rec.Channels, protocol.Channel{ID: ch.Field, Role: string(ch.Role), Unit: "°C"})
	}
	return rec
}

// applyLatched puts the device's latched block into the record: program,
// verdict, figures as reported, and the alarm that ended the cycle when
// the record does not hold it yet.
func (a *Assembler) applyLatched(rec *protocol.CycleRecord, l *latched) {
	if l != nil {
		if l.program != nil {
			rec.ProgramCode = l.program
		}
		rec.ResultCode = l.result
		if !l.figures.Empty() {
			rec.DeviceFigures = l.figures
		}
		if l.alarm != 0 && !slices.ContainsFunc(rec.Alarms, func(al protocol.Alarm) bool { return al.Code == l.alarm }) {
			rec.Alarms = append(rec.Alarms, protocol.Alarm{Code: l.alarm, Text: a.prof.AlarmText(l.alarm), At: rec.EndedAt, Latched: true})
		}
	}
	if rec.ProgramCode != nil {
		rec.Program = a.prof.ProgramName(*rec.ProgramCode)
	}
	if rec.ResultCode != nil {
		if res, ok := a.prof.Results[*rec.ResultCode]; ok {
			rec.Result = res
		}
	}
}

// recordLatchedOnly records a cycle the gateway saw none of, from what the
// device latched about it: counter, program, verdict, figures, the alarm
// that ended it. It has no samples and no phases, and is marked
// incomplete; its times are when the gateway learned of it.
func (a *Assembler) recordLatchedOnly(counter uint64, r profile.Reading, now time.Time) {
	rec := a.newRecord(counter, now, now)
	a.applyLatched(&rec, latchedOf(r))
	a.log.Warn("cycle ran while the gateway could not see the device; recording the device's latched verdict only",
		"cycle", counter, "result", rec.Result)
	a.st.Recorded = max(a.st.Recorded, counter)
	a.st.Pending = append(a.st.Pending, rec)
}

// missing notes why the open cycle has no sample at time ms.
func (a *Assembler) missing(ms int64, reason string) {
	c := a.st.Current
	if c == nil {
		return
	}
	if n := len(c.Missing); n > 0 && c.Missing[n-1].Reason == reason {
		return
	}
	c.Missing = append(c.Missing, holePart{From: max(ms, c.Covered), Reason: reason})
}

// closeStretch ends the stretch without samples at to: if it is longer
// than the max sample gap, its parts become holes (a stretch nobody
// explained is the gateway not polling: stopped, or stalled).
func (a *Assembler) closeStretch(c *openCycle, to int64) {
	from := c.Covered
	parts := c.Missing
	c.Missing = nil
	if to <= from {
		return
	}
	c.Covered = to
	if time.Duration(to-from)*time.Millisecond <= a.maxGap {
		return
	}
	if len(parts) == 0 {
		parts = []holePart{{From: from, Reason: protocol.HoleGatewayDown}}
	}
	for i, p := range parts {
		start := max(p.From, from)
		if i == 0 {
			start = from
		}
		stop := to
		if i+1 < len(parts) {
			stop = min(max(parts[i+1].From, start), to)
		}
		if stop <= start {
			continue
		}
		h := protocol.Hole{From: time.UnixMilli(start).UTC(), To: time.UnixMilli(stop).UTC(), Reason: p.Reason}
		if n := len(c.Holes); n > 0 && c.Holes[n-1].Reason == h.Reason && c.Holes[n-1].To.Equal(h.From) {
			c.Holes[n-1].To = h.To
			continue
		}
		c.Holes = append(c.Holes, h)
	}
}

// phasesOf cuts samples into contiguous phase spans. A span ends where the
// next begins (the last one at the cycle's end).
func phasesOf(samples []protocol.Sample, end time.Time) []protocol.Phase {
	var out []protocol.Phase
	for _, s := range samples {
		if n := len(out); n == 0 || out[n-1].Name != s.Phase {
			if n > 0 {
				out[n-1].End = s.At
			}
			out = append(out, protocol.Phase{Name: s.Phase, Start: s.At})
		}
		out[len(out)-1].Observe(s)
	}
	if n := len(out); n > 0 {
		out[n-1].End = end
	}
	return out
}

// gapUpTo accounts for cycles up to and including last that finished
// without the gateway holding any data for them: one gap event.
func (a *Assembler) gapUpTo(last uint64, now time.Time, why string) {
	if a.st.Current != nil && a.st.Current.Counter <= last {
		return // never call a cycle we hold data for a gap
	}
	if last <= a.st.Recorded {
		return
	}
	first := a.st.Recorded + 1
	text := fmt.Sprintf("cycle %d %s", first, why)
	if last > first {
		text = fmt.Sprintf("cycles %d-%d %s", first, last, why)
	}
	a.log.Warn("device cycles without a record", "from", first, "to", last)
	a.queueEvent(protocol.Event{Kind: protocol.EventGap, At: now.UTC(), Cycle: last, Text: text})
	a.st.Recorded = last
}

func (a *Assembler) counterReset(to uint64, now time.Time) {
	text := fmt.Sprintf("the device's cycle counter went back from %d to %d (counter reset or device replaced); counting restarts from there, with record ids in counter epoch %d", max(a.st.Recorded, a.st.LastCounter), to, a.st.Epoch+1)
	a.log.Warn(text)
	a.queueEvent(protocol.Event{Kind: protocol.EventGap, At: now.UTC(), Cycle: to, Text: text})
}
