package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// Gateway alarm names, as they appear in GatewayStatus.Alarms.
const (
	AlarmNearQuota = "journal_near_quota"
	AlarmOverQuota = "journal_quota_reached"
	AlarmDiskFull  = "journal_disk_full"
)

// pruneChunk bounds one delete statement so a large prune does not hold
// the write lock for long.
const pruneChunk = 5000

func (w *writer) enterDiskFull(cause error) {
	if w.diskFull {
		return
	}
	w.diskFull = true
	released := w.j.space != nil && w.j.space.release()
	w.j.log.Error("the disk refused a journal write: telemetry is held in memory; cycle records, events and driver state go into the released space reserve while it lasts",
		"err", cause, "reserve_released", released, "retry_every", w.j.opts.RetryInterval)
	w.j.setAlarm(AlarmDiskFull, true)
}

// isEssential says whether r may use the space reserve while the disk is
// full: everything but telemetry, which waits in (bounded) memory.
func isEssential(r *request) bool {
	return r.kind != reqAppend || r.entryKind != KindTelemetry
}

// processWhileFull handles a batch while the disk refuses writes:
// telemetry is held; the rest is written (into the space the reserve gave
// back) after what was held before it, or held too when that fails.
func (w *writer) processWhileFull(ctx context.Context, batch []*request) {
	var essential []*request
	for _, r := range batch {
		if isEssential(r) {
			essential = append(essential, r)
		} else {
			w.hold(r, nil)
		}
	}
	if len(essential) == 0 {
		w.countHeld()
		return
	}
	if n, _ := w.heldCounts(); n > 0 {
		w.retryHeld(ctx, true)
	}
	if n, _ := w.heldCounts(); n > 0 {
		for _, r := range essential {
			w.hold(r, nil)
		}
		w.countHeld()
		return
	}
	err := w.commit(ctx, essential)
	if err != nil && !isDiskFull(err) {
		// Commit one by one so a single bad request fails alone.
		for i, r := range essential {
			if e := w.commit(ctx, []*request{r}); e != nil {
				if isDiskFull(e) {
					err = e
					essential = essential[i:]
					break
				}
				r.finish(e)
			}
			err = nil
		}
	}
	if err != nil {
		if w.j.space != nil && w.j.space.release() {
			w.j.log.Warn("journal: the disk refused a write again; the space reserve is released")
		}
		for _, r := range essential {
			w.hold(r, err)
		}
	}
	w.countHeld()
}

// retryWhileFull runs every RetryInterval while the disk refuses writes:
// once the file system has room again (for the reserve and as much
// again), it remakes the reserve and writes everything held; until then
// it writes only what may use the reserve.
func (w *writer) retryWhileFull(ctx context.Context) {
	if w.j.space == nil || w.j.space.roomReturned() {
		if w.j.space != nil {
			w.j.space.ensure()
		}
		w.retryHeld(ctx, false)
		return
	}
	// Still full: a reserve remade meanwhile is there to be spent.
	if w.j.space.present() && w.j.space.release() {
		w.j.log.Warn("journal: the disk is still full; the space reserve is released again")
	}
	w.retryHeld(ctx, true)
}

// heldCounts returns how many held requests are essential (everything but
// telemetry) and how many are telemetry batches.
func (w *writer) heldCounts() (essential, telemetry int) {
	for _, r := range w.held {
		if isEssential(r) {
			essential++
		} else {
			telemetry++
		}
	}
	return essential, telemetry
}

// countHeld publishes the held counts for Stats (read by other
// goroutines).
func (w *writer) countHeld() {
	e, t := w.heldCounts()
	w.j.memEssential.Store(int64(e))
	w.j.memTelemetry.Store(int64(t))
}

// hold keeps r in memory while the disk refuses writes and answers its
// caller. A cycle record gets ErrNotDurable, so its driver keeps it too and
// retries (de-duplicated by its id). Telemetry and events are accepted:
// there is nowhere durable to put them either way, and an event has no id
// of its own, so a driver retrying it would journal it twice.
func (w *writer) hold(r *request, cause error) {
	if cause == nil {
		cause = errors.New("the disk refused an earlier write")
	}
	switch r.kind {
	case reqSaveState:
		r.finish(fmt.Errorf("journal: save state of %q: %w", r.device, cause))
		return
	case reqAppend:
		if r.durableOnly {
			r.finish(fmt.Errorf("journal: not saved, the disk refuses writes: %w", cause))
			return
		}
		if r.cycleID != "" && w.cycleIDs[r.cycleID] {
			r.finish(fmt.Errorf("%w: cycle %s is already held: %v", ErrNotDurable, r.cycleID, cause))
			return
		}
		if r.entryKind == KindTelemetry {
			r.finish(nil)
			w.held = append(w.held, r)
			w.heldTelemetry++
			w.dropExcessTelemetry()
			return
		}
		if r.cycleID == "" {
			r.finish(nil) // an event: held, never dropped
			break
		}
		w.cycleIDs[r.cycleID] = true
		r.finish(fmt.Errorf("%w: %v", ErrNotDurable, cause))
	default:
		r.finish(nil)
	}
	w.held = append(w.held, r)
}

// dropExcessTelemetry keeps held telemetry within its memory bound by
// dropping the oldest batch and remembering the span for a gap event.
func (w *writer) dropExcessTelemetry() {
	for w.heldTelemetry > w.j.opts.MemoryTelemetryLimit {
		for i, r := range w.held {
			if r.kind != reqAppend || r.entryKind != KindTelemetry {
				continue
			}
			w.held = append(w.held[:i], w.held[i+1:]...)
			w.heldTelemetry--
			d := w.dropped[r.device]
			if d == nil {
				d = &droppedSpan{from: r.first}
				w.dropped[r.device] = d
			}
			d.batches++
			d.samples += r.samples
			if r.first.Before(d.from) || d.from.IsZero() {
				d.from = r.first
			}
			if r.last.After(d.to) {
				d.to = r.last
			}
			break
		}
	}
}

// retryHeld writes what was held in memory, oldest first, with the gap
// events for what had to be dropped in front of it. With essentialOnly it
// writes only what may use the space reserve and stays in the disk-full
// mode.
func (w *writer) retryHeld(ctx context.Context, essentialOnly bool) {
	defer w.countHeld()
	if essentialOnly {
		var essential, rest []*request
		for _, r := range w.held {
			if isEssential(r) {
				essential = append(essential, r)
			} else {
				rest = append(rest, r)
			}
		}
		for len(essential) > 0 {
			n := min(len(essential), maxBatch)
			if err := w.commit(ctx, essential[:n]); err != nil {
				if !isDiskFull(err) {
					// One bad request must not hold the others back.
					for i, r := range essential[:n] {
						if e := w.commit(ctx, []*request{r}); e != nil && isDiskFull(e) {
							w.keepHeld(append(essential[i:], rest...))
							return
						} else if e != nil {
							w.j.log.Error("journal: a held entry could not be written", "device", r.device, "kind", r.entryKind, "err", e)
						}
					}
				} else {
					w.keepHeld(append(essential, rest...))
					return
				}
			}
			essential = essential[n:]
		}
		w.keepHeld(rest)
		return
	}
	var pending []*request
	for device, d := range w.dropped {
		pending = append(pending, w.j.eventRequest(protocol.Event{
			Device: device,
			At:     w.j.opts.Now().UTC(),
			Kind:   protocol.EventGap,
			Text:   fmt.Sprintf("%d telemetry batches (%d samples) were not journaled: the disk was full and the memory buffer overflowed", d.batches, d.samples),
			From:   d.from.UTC(),
			To:     d.to.UTC(),
		}, false))
		pending[len(pending)-1].gapFromDrop = true
	}
	pending = append(pending, w.held...)
	for len(pending) > 0 {
		n := min(len(pending), maxBatch)
		chunk := pending[:n]
		err := w.commit(ctx, chunk)
		if err != nil && !isDiskFull(err) {
			// Commit one by one so a single bad request fails alone.
			for i, r := range chunk {
				if e := w.commit(ctx, []*request{r}); e != nil {
					if isDiskFull(e) {
						w.keepHeld(pending[i:])
						return
					}
					w.j.log.Error("journal: a held entry could not be written", "device", r.device, "kind", r.entryKind, "err", e)
				}
				w.forgetDropped(r)
			}
		} else if err != nil {
			w.keepHeld(pending)
			return
		}
		for _, r := range chunk {
			w.forgetDropped(r)
		}
		pending = pending[n:]
	}
	w.held = nil
	w.heldTelemetry = 0
	w.dropped = map[string]*droppedSpan{}
	w.diskFull = false
	w.j.setAlarm(AlarmDiskFull, false)
	w.j.log.Info("the disk accepts journal writes again; entries held in memory are durable now")
}

// forgetDropped clears the dropped span of r's device once r, its gap
// event, is written, so a later retry does not record the same gap again.
func (w *writer) forgetDropped(r *request) {
	if r.gapFromDrop {
		delete(w.dropped, r.device)
	}
}

// keepHeld stores the not-yet-written rest of a retry back as held; the
// gap events at its front are rebuilt from dropped on the next retry.
func (w *writer) keepHeld(rest []*request) {
	held := make([]*request, 0, len(rest))
	tele := 0
	for _, r := range rest {
		if r.kind == reqAppend && r.entryKind == KindEvent && r.gapFromDrop {
			continue
		}
		if r.kind == reqAppend && r.entryKind == KindTelemetry {
			tele++
		}
		held = append(held, r)
	}
	w.held, w.heldTelemetry = held, tele
}

// usedBytes is the space the journal's live pages take (free pages that
// incremental_vacuum can return do not count).
func (w *writer) usedBytes(ctx context.Context) (int64, error) {
	var pages, free, size int64
	if err := w.conn.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		return 0, err
	}
	if err := w.conn.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err != nil {
		return 0, err
	}
	if err := w.conn.QueryRowContext(ctx, "PRAGMA page_size").Scan(&size); err != nil {
		return 0, err
	}
	return (pages - free) * size, nil
}

// maintain prunes delivered entries past retention, enforces the quota and
// returns free pages to the file system.
func (w *writer) maintain(ctx context.Context) {
	w.lastMaintained = w.j.opts.Now()
	// A salvage by another process clears the damaged-journal alarm.
	if err := w.j.refreshDamagedAlarm(ctx); err != nil {
		w.j.log.Warn("journal: cannot read the list of damaged journals", "err", err)
	}
	if w.diskFull {
		return
	}
	cutoff := w.j.opts.Now().Add(-w.j.opts.Retention).UnixMilli()
	pruned, err := w.pruneDelivered(ctx, cutoff)
	if err != nil {
		w.j.log.Warn("journal: prune delivered entries", "err", err)
	}
	if err := w.enforceQuota(ctx); err != nil {
		w.j.log.Warn("journal: enforce quota", "err", err)
	}
	var free int64
	if err := w.conn.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&free); err == nil && (free > 0 || pruned > 0) {
		if _, err := w.conn.ExecContext(ctx, "PRAGMA incremental_vacuum"); err != nil {
			w.j.log.Warn("journal: incremental_vacuum", "err", err)
		}
		// In WAL mode the database file only shrinks when the WAL is
		// checkpointed; TRUNCATE also empties the WAL file.
		if _, err := w.conn.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			w.j.log.Warn("journal: wal_checkpoint", "err", err)
		}
	}
}

func (w *writer) pruneDelivered(ctx context.Context, cutoffMilli int64) (int64, error) {
	var total int64
	for {
		// A cycle record or event the broker acknowledged but that never
		// came back is kept: it is published again until it does.
		// With receipts required, only what an archive stored may go.
		res, err := w.conn.ExecContext(ctx, `DELETE FROM entries WHERE id IN (SELECT id FROM entries WHERE delivered_at IS NOT NULL AND delivered_at <= ? AND (urgent = 0 OR confirmed_at IS NOT NULL) AND (? = 0 OR archived_at IS NOT NULL) LIMIT ?)`, cutoffMilli, w.j.opts.KeepUnarchived, pruneChunk)
		if err != nil {
			return total, err
		}
		n, _ := res.RowsAffected()
		total += n
		if n < pruneChunk {
			if total > 0 {
				w.j.log.Info("journal: pruned delivered entries past retention", "entries", total)
			}
			return total, nil
		}
	}
}

// enforceQuota raises the near-quota alarm and, at the quota, gives up
// first local history (delivered entries), then the oldest undelivered
// telemetry, recording a gap event per device. Cycle records and events
// are never removed.
func (w *writer) enforceQuota(ctx context.Context) error {
	quota := w.j.opts.QuotaBytes
	if quota <= 0 {
		return nil
	}
	used, err := w.usedBytes(ctx)
	if err != nil {
		return err
	}
	warnAt := int64(float64(quota) * w.j.opts.QuotaWarnFraction)
	if w.j.setAlarm(AlarmNearQuota, used >= warnAt) && used >= warnAt {
		w.j.log.Warn("journal is near its quota", "used_bytes", used, "quota_bytes", quota)
	}
	if used < quota {
		w.j.setAlarm(AlarmOverQuota, false)
		return nil
	}
	if w.j.setAlarm(AlarmOverQuota, true) {
		w.j.log.Error("journal reached its quota: thinning the oldest undelivered telemetry", "used_bytes", used, "quota_bytes", quota)
	}
	if _, err := w.pruneDelivered(ctx, w.j.opts.Now().UnixMilli()); err != nil {
		return err
	}
	// Thin down to 90% so the next few commits do not trigger it again.
	target := quota * 9 / 10
	thinned := &thinnedSpans{byDevice: map[string]*thinnedSpan{}}
	var thinErr error
	for {
		used, err := w.usedBytes(ctx)
		if err != nil {
			thinErr = err
			break
		}
		if used <= target {
			break
		}
		// Small steps: a batch of telemetry can be a large share of a
		// small quota, and every step re-measures before the next.
		n, err := w.thinOldestTelemetry(ctx, 25, thinned)
		if err != nil {
			thinErr = err
			break
		}
		if n == 0 {
			w.j.log.Error("journal is over its quota with no telemetry left to thin: cycle records and events are kept anyway", "used_bytes", used, "quota_bytes", quota)
			break
		}
	}
	// What was deleted is recorded even when a later step failed.
	if gaps := w.gapEvents(thinned); len(gaps) > 0 {
		if err := w.commit(ctx, gaps); err != nil {
			return errors.Join(thinErr, fmt.Errorf("journal gap events: %w", err))
		}
	}
	return thinErr
}

// thinnedSpan is what quota thinning removed of one device's telemetry.
type thinnedSpan struct {
	n                  int
	seqFrom, seqTo     uint64
	fromMilli, toMilli int64
}

// thinnedSpans collects the spans of one quota enforcement, so it records
// one gap event per device however many steps it took.
type thinnedSpans struct {
	byDevice map[string]*thinnedSpan
	order    []string
}

func (t *thinnedSpans) add(device string, seq uint64, createdMilli int64) {
	s := t.byDevice[device]
	if s == nil {
		s = &thinnedSpan{seqFrom: seq, fromMilli: createdMilli}
		t.byDevice[device] = s
		t.order = append(t.order, device)
	}
	s.n++
	s.seqTo, s.toMilli = seq, createdMilli
}

func (w *writer) gapEvents(t *thinnedSpans) []*request {
	var gaps []*request
	for _, d := range t.order {
		s := t.byDevice[d]
		w.j.log.Warn("journal quota: thinned undelivered telemetry", "device", d, "batches", s.n, "seq_from", s.seqFrom, "seq_to", s.seqTo)
		gaps = append(gaps, w.j.eventRequest(protocol.Event{
			Device:  d,
			At:      w.j.opts.Now().UTC(),
			Kind:    protocol.EventGap,
			Text:    fmt.Sprintf("journal quota reached: %d telemetry batches, seq %d to %d, were thinned before delivery", s.n, s.seqFrom, s.seqTo),
			From:    time.UnixMilli(s.fromMilli).UTC(),
			To:      time.UnixMilli(s.toMilli).UTC(),
			FromSeq: s.seqFrom,
			ToSeq:   s.seqTo,
		}, false))
	}
	return gaps
}

// thinOldestTelemetry deletes up to limit of the oldest undelivered
// telemetry entries and adds them to thinned.
func (w *writer) thinOldestTelemetry(ctx context.Context, limit int, thinned *thinnedSpans) (int, error) {
	rows, err := w.conn.QueryContext(ctx, `SELECT id, device, seq, created_at FROM entries WHERE delivered_at IS NULL AND urgent = 0 ORDER BY id LIMIT ?`, limit)
	if err != nil {
		return 0, err
	}
	type row struct {
		id, created int64
		device      string
		seq         uint64
	}
	var found []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.device, &r.seq, &r.created); err != nil {
			rows.Close()
			return 0, err
		}
		found = append(found, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if len(found) == 0 {
		return 0, nil
	}
	ids := make([]int64, len(found))
	for i, r := range found {
		ids[i] = r.id
	}
	if err := w.deleteIDs(ctx, ids); err != nil {
		return 0, err
	}
	for _, r := range found {
		thinned.add(r.device, r.seq, r.created)
	}
	return len(found), nil
}

func (w *writer) deleteIDs(ctx context.Context, ids []int64) error {
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return err
	}
	for _, id := range ids {
		if _, err := w.conn.ExecContext(ctx, `DELETE FROM entries WHERE id = ?`, id); err != nil {
			w.conn.ExecContext(ctx, "ROLLBACK")
			return err
		}
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		w.conn.ExecContext(ctx, "ROLLBACK")
		return err
	}
	return nil
}
