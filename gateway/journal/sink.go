package journal

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

// submit queues r for the writer and waits for its result. Once queued, a
// request is committed even if ctx ends; ctx only bounds the caller's wait.
func (j *Journal) submit(ctx context.Context, r *request) error {
	if j.closed.Load() {
		return ErrClosed
	}
	r.done = make(chan error, 1)
	select {
	case j.requests <- r:
	case <-ctx.Done():
		return ctx.Err()
	case <-j.done:
		return ErrClosed
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("journal: gave up waiting for the commit (it may still happen): %w", ctx.Err())
	case <-j.done:
		// The writer has stopped; it answered r if it took it.
		select {
		case err := <-r.done:
			return err
		default:
			return ErrClosed
		}
	}
}

// Cycle journals a cycle record and returns once it is committed with full
// durability. It fills Schema, ID, Gateway, Site, Seq and PrevHash. A
// record whose id was journaled before (a restarted gateway re-observing
// an end it already recorded) is not journaled again: Cycle returns nil and
// the original stays.
func (j *Journal) Cycle(ctx context.Context, rec protocol.CycleRecord) error {
	if err := rec.Validate(); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if err := protocol.CheckTopicLevel("cycle record device", rec.Device); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	rec.Schema = protocol.CycleSchema
	rec.ID = rec.RecordID(j.opts.Site)
	rec.Gateway = j.opts.Gateway
	rec.Site = j.opts.Site
	r := &request{
		kind:        reqAppend,
		device:      rec.Device,
		entryKind:   KindCycle,
		cycleID:     rec.ID,
		cycleResult: rec.Result,
		fill: func(seq uint64, prev string) (string, any) {
			rec.Seq, rec.PrevHash = seq, prev
			return rec.ID, &rec
		},
		status:  func(st *protocol.DeviceStatus) bool { return lastCycleFromRecord(st, &rec) },
		indexed: indexCycle(&rec),
	}
	if v := rec.Verification; v != nil {
		r.cycleVerdict, r.cycleDisagreement = v.Verdict, disagrees(v)
		if r.cycleDisagreement {
			// In the same transaction as the record: a gateway that dies
			// after the commit has journaled both, before it, neither.
			r.follow = j.eventRequest(disagreementEvent(&rec), false)
		}
	}
	return j.submit(ctx, r)
}

// disagrees reports whether sterigate's verdict contradicts the device's
// result (agrees_with_device false): a device that passed a cycle whose
// data fail or cannot show a pass, or one that failed a cycle whose data
// pass.
func disagrees(v *protocol.Verification) bool {
	return v.AgreesWithDevice != nil && !*v.AgreesWithDevice
}

// disagreementEvent is the verification_disagreement event of rec: which
// record, the two verdicts, and every check that failed or could not be
// judged with its note.
func disagreementEvent(rec *protocol.CycleRecord) protocol.Event {
	v := rec.Verification
	var checks, notes []string
	for _, ch := range v.Checks {
		if ch.Result == protocol.CheckFail || ch.Result == protocol.CheckIndeterminate {
			checks = append(checks, ch.Name)
			notes = append(notes, fmt.Sprintf("%s %s: %s", ch.Name, ch.Result, ch.Note))
		}
	}
	if len(notes) == 0 {
		notes = v.Reasons // no check ran: no criteria, or criteria the check cannot use
	}
	var text string
	if rec.Result == protocol.ResultPassed {
		text = fmt.Sprintf("the device reported cycle %d (%s, record %s) passed, but sterigate's check of its data says %s: do not release the load on the device's word alone. %s",
			rec.Cycle, rec.Program, rec.ID, v.Verdict, strings.Join(notes, "; "))
	} else {
		text = fmt.Sprintf("the device reported cycle %d (%s, record %s) %s, but sterigate's check of its data says %s: the device's verdict stands; check why it failed a cycle whose data meet the criteria",
			rec.Cycle, rec.Program, rec.ID, rec.Result, v.Verdict)
	}
	return protocol.Event{
		Device: rec.Device, At: rec.EndedAt.UTC(), Kind: protocol.EventVerificationDisagreement,
		Cycle: rec.Cycle, Program: rec.Program, RecordID: rec.ID, Verdict: v.Verdict, Checks: checks, Text: text,
	}
}

// lastCycleFromRecord makes rec the status's last cycle unless the status
// already summarises a later one (a reprint of an old cycle journaled
// after a newer cycle). It leaves Phase, Program and Cycle alone: they
// describe the cycle running now, which phase events report.
func lastCycleFromRecord(st *protocol.DeviceStatus, rec *protocol.CycleRecord) bool {
	if lc := st.LastCycle; lc != nil && lc.Cycle != rec.Cycle && rec.EndedAt.Before(lc.EndedAt) {
		return false
	}
	st.LastCycle = &protocol.LastCycle{
		ID: rec.ID, Cycle: rec.Cycle, Program: rec.Program, EndedAt: rec.EndedAt.UTC(),
		Result: rec.Result, Complete: rec.Complete,
	}
	if v := rec.Verification; v != nil {
		st.LastCycle.Verdict, st.LastCycle.Disagreement = v.Verdict, disagrees(v)
	}
	st.At = rec.EndedAt.UTC()
	return true
}

// Telemetry journals a batch of samples. Concurrent calls share commits.
// While the disk refuses writes the batch is held in (bounded) memory and
// Telemetry returns nil.
func (j *Journal) Telemetry(ctx context.Context, batch protocol.Telemetry) error {
	if err := protocol.CheckTopicLevel("telemetry device", batch.Device); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	batch.Schema = protocol.TelemetrySchema
	batch.Gateway = j.opts.Gateway
	batch.Site = j.opts.Site
	r := &request{
		kind:      reqAppend,
		device:    batch.Device,
		entryKind: KindTelemetry,
		samples:   len(batch.Samples),
		fill: func(seq uint64, prev string) (string, any) {
			batch.Seq, batch.PrevHash = seq, prev
			batch.ID = fmt.Sprintf("%s:%s:%s.t%d", j.opts.Site, batch.Device, j.id, seq)
			return batch.ID, &batch
		},
	}
	if n := len(batch.Samples); n > 0 {
		r.first, r.last = batch.Samples[0].At, batch.Samples[n-1].At
	}
	pre := batch
	pre.ID, pre.Seq, pre.PrevHash = "", 0, ""
	if b, err := json.Marshal(&pre); err == nil {
		r.pre, r.preSchema, r.idPrefix = b, protocol.TelemetrySchema, fmt.Sprintf("%s:%s:%s.t", j.opts.Site, batch.Device, j.id)
	}
	return j.submit(ctx, r)
}

// Event journals an event and updates the device's status row from it
// (online/offline, phase, cycle), which the publisher republishes.
func (j *Journal) Event(ctx context.Context, ev protocol.Event) error {
	if err := protocol.CheckTopicLevel("event device", ev.Device); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	if ev.Kind == "" {
		return fmt.Errorf("journal: event of device %q: kind is empty", ev.Device)
	}
	if ev.At.IsZero() {
		ev.At = j.opts.Now().UTC()
	}
	return j.submit(ctx, j.eventRequest(ev, true))
}

func (j *Journal) eventRequest(ev protocol.Event, withStatus bool) *request {
	ev.Schema = protocol.EventSchema
	ev.Gateway = j.opts.Gateway
	ev.Site = j.opts.Site
	r := &request{
		kind:      reqAppend,
		device:    ev.Device,
		entryKind: KindEvent,
		fill: func(seq uint64, prev string) (string, any) {
			ev.Seq, ev.PrevHash = seq, prev
			ev.ID = fmt.Sprintf("%s:%s:%s.e%d", j.opts.Site, ev.Device, j.id, seq)
			return ev.ID, &ev
		},
	}
	pre := ev
	pre.ID, pre.Seq, pre.PrevHash = "", 0, ""
	if b, err := json.Marshal(&pre); err == nil {
		r.pre, r.preSchema, r.idPrefix = b, protocol.EventSchema, fmt.Sprintf("%s:%s:%s.e", j.opts.Site, ev.Device, j.id)
	}
	if withStatus {
		r.status = func(st *protocol.DeviceStatus) bool { return StatusFromEvent(st, ev) }
	}
	return r
}

// StatusFromEvent folds ev into st, as the journal does for every event it
// journals, and reports whether st changed. A phase event describes the
// cycle running now: its phase, program and counter replace the status's,
// and Since moves when the phase changes.
func StatusFromEvent(st *protocol.DeviceStatus, ev protocol.Event) bool {
	before := *st
	switch ev.Kind {
	case protocol.EventOnline:
		st.State, st.Error = protocol.DeviceOnline, ""
	case protocol.EventOffline:
		st.State, st.Error = protocol.DeviceOffline, ev.Text
	case protocol.EventPhase:
		if st.Phase != ev.Phase || st.Since.IsZero() {
			st.Since = ev.At.UTC()
		}
		st.Phase = ev.Phase
		switch {
		case ev.Phase == protocol.PhaseIdle:
			// Between cycles: no program, no cycle.
			st.Program, st.Cycle = "", 0
		case ev.Program != "":
			st.Program, st.Cycle = ev.Program, ev.Cycle
		case ev.Cycle != st.Cycle:
			// Another cycle whose program the event does not name: the
			// previous cycle's program would be wrong.
			st.Program, st.Cycle = "", ev.Cycle
		}
		if st.State == protocol.DeviceUnknown || st.State == "" {
			st.State, st.Error = protocol.DeviceOnline, ""
		}
	default:
		return false
	}
	if *st == before {
		return false
	}
	st.At = ev.At.UTC()
	return true
}

// RegisterDevices marks every listed device "unknown" (the gateway has not
// reached it yet), so the publisher announces configured devices before
// their drivers reach them, and a status left "online" by a gateway that
// died is not announced again as if it were fresh. The last known phase,
// program, cycle and last cycle stay in the status.
func (j *Journal) RegisterDevices(ctx context.Context, devices ...string) error {
	for _, d := range devices {
		if err := protocol.CheckTopicLevel("device id", d); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	return j.submit(ctx, &request{kind: reqRegister, devices: devices})
}

// MarkDevicesUnknown marks every device the journal has a status for
// "unknown", with reason in its error, for a gateway that stops: nobody
// watches the devices any more. The publisher publishes these statuses
// before the gateway's own "offline".
func (j *Journal) MarkDevicesUnknown(ctx context.Context, reason string) error {
	return j.submit(ctx, &request{kind: reqRegister, allDevices: true, reason: reason})
}

// SaveState stores a driver's opaque working state for device
// (protocol.StateStore). It is durable when SaveState returns nil.
func (j *Journal) SaveState(ctx context.Context, device string, state []byte) error {
	return j.SaveStates(ctx, []protocol.SavedState{{Key: device, State: state}})
}

// SaveStates stores several keys' states in one transaction (one commit,
// shared with whatever else is waiting).
func (j *Journal) SaveStates(ctx context.Context, states []protocol.SavedState) error {
	if len(states) == 0 {
		return nil
	}
	saved := make([]protocol.SavedState, len(states))
	for i, s := range states {
		saved[i] = protocol.SavedState{Key: s.Key, State: append([]byte(nil), s.State...)}
	}
	return j.submit(ctx, &request{kind: reqSaveState, device: states[0].Key, states: saved})
}

// LoadState returns what SaveState last stored for device, or nil, nil.
func (j *Journal) LoadState(ctx context.Context, device string) ([]byte, error) {
	var b []byte
	err := j.rdb.QueryRowContext(ctx, `SELECT state FROM device_state WHERE device = ?`, device).Scan(&b)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("journal: load state of %q: %w", device, err)
	}
	return b, nil
}
