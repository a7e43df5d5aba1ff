package journal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

// maxBatch bounds one group commit: big enough to amortise the fsync,
// small enough to keep a cycle record's commit latency in milliseconds.
const maxBatch = 500

// A commit costs more than the rows in it (the WAL commit frame, the
// fsync, the checkpoint check): with a gateway of many devices each
// saving its state at every poll, spread over the second, nearly every
// request was a commit of its own. So while many devices write
// independently of each other (in the last second: requests from at least
// lingerDevices devices, and at least lingerOverlaps commits during which
// another request arrived), a commit does not start sooner than
// commitLinger after the previous one started: what arrives meanwhile
// shares it. A full batch never waits, so a saturated writer is not
// slowed; a few devices never wait, nor does one producer waiting for
// each commit, whatever devices it writes for: nothing of its arrives
// while its commit runs.
const (
	lingerDevices  = 16
	lingerOverlaps = 5
	commitLinger   = 20 * time.Millisecond
)

// busyness counts, over the current second, the devices whose requests
// reached the writer and the commits during which other requests arrived,
// and says whether the last full second makes commits wait for company.
type busyness struct {
	windowStart time.Time
	devices     map[string]struct{}
	overlaps    int
	busy        bool
}

// note counts a committed batch and how many requests arrived while it
// was being committed.
func (b *busyness) note(batch []*request, arrivedMeanwhile int, now time.Time) {
	if now.Sub(b.windowStart) >= time.Second {
		b.busy = len(b.devices) >= lingerDevices && b.overlaps >= lingerOverlaps
		b.windowStart = now
		clear(b.devices)
		b.overlaps = 0
	}
	if b.devices == nil {
		b.devices = map[string]struct{}{}
	}
	for _, r := range batch {
		if r.device != "" {
			b.devices[r.device] = struct{}{}
		}
	}
	if arrivedMeanwhile > 0 {
		b.overlaps++
	}
}

type requestKind int

const (
	reqAppend requestKind = iota
	reqMarkDelivered
	reqSaveState
	reqRegister
	reqMaintain
	reqExec // tests: run sqlText on the writer connection outside a transaction
	reqCheckpoint
	reqRotateKey
	reqMarkArchived
)

// request is one unit of work for the writer goroutine. done receives
// exactly one result.
type request struct {
	kind     requestKind
	done     chan error
	answered bool // touched only by the writer goroutine

	// reqAppend
	device    string
	entryKind Kind
	cycleID   string // cycles only: the id to de-duplicate on
	// cycleResult is the device's verdict of a cycle record (for the log
	// line and the cycle counter); journaled is set once it is written.
	cycleResult protocol.Result
	// cycleVerdict and cycleDisagreement are sterigate's verdict on the
	// record and whether it contradicts the device (for the counter).
	cycleVerdict      string
	cycleDisagreement bool
	journaled         bool
	// follow is appended in the same transaction right after a cycle
	// record that is journaled (not a re-delivery): its disagreement event.
	follow *request
	// pre, when set, is the payload marshalled by the caller with an empty
	// id, seq 0 and no prev_hash; the writer splices those in (see
	// spliceChain), which keeps marshalling off the single writer.
	pre       []byte
	preSchema string
	idPrefix  string
	// fill fills seq and prev_hash into the caller's value and returns the
	// record id and the value to marshal.
	fill func(seq uint64, prevHash string) (recordID string, v any)
	// status updates the device status; reports whether it changed.
	status func(st *protocol.DeviceStatus) bool
	// check, when set, runs inside the transaction before the entry is
	// added; its error refuses this request alone (a release decision on
	// an unknown record, or superseding a decision that is no longer the
	// latest).
	check func(ctx context.Context, conn *sql.Conn) error
	// indexed, when set, runs inside the same transaction once the entry's
	// seq, record id and hash are known, so the tables the console reads
	// (cycle_index, cycle_releases) never disagree with the entries.
	indexed func(ctx context.Context, conn *sql.Conn, e indexedEntry) error
	// durableOnly refuses the request while the disk refuses writes
	// instead of holding it in memory: a person was told "saved" only for
	// what is on disk.
	durableOnly bool
	// samples is the telemetry's sample count and time span, for gap events.
	samples     int
	first, last time.Time
	createdAt   time.Time
	gapFromDrop bool // a gap event rebuilt from w.dropped on each retry
	approxBytes int  // payload size, set when marshalled

	// reqMarkDelivered; confirm marks them confirmed (they came back on
	// the gateway's own subscription) instead.
	ids     []int64
	confirm bool

	// reqMarkArchived: per device, the seq up to which an archive's
	// receipt says every entry is stored.
	archivedThrough map[string]uint64

	// reqExec
	sqlText string

	// reqSaveState (device is the first key, for messages)
	states []protocol.SavedState
	// reqRegister
	devices []string
	// reqRegister: allDevices marks every device with a status, and reason
	// goes into their error.
	allDevices bool
	reason     string

	// reqCheckpoint, reqRotateKey
	signing *signingRequest
}

type head struct {
	seq  uint64
	hash string
}

// writer owns the write connection. Only its goroutine touches its fields.
type writer struct {
	j    *Journal
	conn *sql.Conn

	heads    map[string]head                  // committed chain heads
	statuses map[string]protocol.DeviceStatus // committed statuses
	cycleIDs map[string]bool                  // ids held in memory, not yet committed

	// The disk refused a write: requests wait in held (telemetry bounded)
	// until a retry succeeds.
	diskFull       bool
	held           []*request
	heldTelemetry  int
	dropped        map[string]*droppedSpan
	lastMaintained time.Time
	// bytesSinceQuotaCheck triggers a quota check between maintenance runs.
	bytesSinceQuotaCheck int64

	stmts map[string]*sql.Stmt // multi-row statements by shape

	signing signingState

	insertEntry, upsertHead, selectCycle, insertCycle, markDelivered, upsertStatus, upsertState *sql.Stmt
}

type droppedSpan struct {
	batches, samples int
	from, to         time.Time
}

func newWriter(ctx context.Context, j *Journal) (*writer, error) {
	w := &writer{
		j:        j,
		conn:     j.writer,
		heads:    map[string]head{},
		statuses: map[string]protocol.DeviceStatus{},
		cycleIDs: map[string]bool{},
		dropped:  map[string]*droppedSpan{},
		stmts:    map[string]*sql.Stmt{},
	}
	prep := func(dst **sql.Stmt, q string) error {
		s, err := w.conn.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", q, err)
		}
		*dst = s
		return nil
	}
	for _, p := range []struct {
		dst **sql.Stmt
		q   string
	}{
		{&w.insertEntry, insertEntries + entryPlaceholders},
		{&w.upsertHead, `INSERT INTO device_heads (device, seq, hash) VALUES (?,?,?) ON CONFLICT (device) DO UPDATE SET seq=excluded.seq, hash=excluded.hash`},
		{&w.selectCycle, `SELECT entry_id FROM cycle_ids WHERE record_id = ?`},
		{&w.insertCycle, `INSERT INTO cycle_ids (record_id, entry_id, journaled_at) VALUES (?,?,?)`},
		{&w.markDelivered, `UPDATE entries SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL`},
		{&w.upsertStatus, `INSERT INTO device_status (device, status) VALUES (?,?) ON CONFLICT (device) DO UPDATE SET status=excluded.status`},
		{&w.upsertState, `INSERT INTO device_state (device, state, saved_at) VALUES (?,?,?) ON CONFLICT (device) DO UPDATE SET state=excluded.state, saved_at=excluded.saved_at`},
	} {
		if err := prep(p.dst, p.q); err != nil {
			return nil, err
		}
	}
	if err := w.loadCommitted(ctx); err != nil {
		return nil, err
	}
	if err := w.loadSigning(ctx); err != nil {
		return nil, err
	}
	return w, nil
}

// loadCommitted (re)reads the chain heads and statuses from the database:
// after a failed transaction the in-memory copies may be ahead of it.
func (w *writer) loadCommitted(ctx context.Context) error {
	w.heads = map[string]head{}
	rows, err := w.conn.QueryContext(ctx, `SELECT device, seq, hash FROM device_heads`)
	if err != nil {
		return fmt.Errorf("load device_heads: %w", err)
	}
	for rows.Next() {
		var d string
		var h head
		if err := rows.Scan(&d, &h.seq, &h.hash); err != nil {
			rows.Close()
			return fmt.Errorf("load device_heads: %w", err)
		}
		w.heads[d] = h
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load device_heads: %w", err)
	}
	w.statuses = map[string]protocol.DeviceStatus{}
	rows, err = w.conn.QueryContext(ctx, `SELECT device, status FROM device_status`)
	if err != nil {
		return fmt.Errorf("load device_status: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var d string
		var b []byte
		if err := rows.Scan(&d, &b); err != nil {
			return fmt.Errorf("load device_status: %w", err)
		}
		var st protocol.DeviceStatus
		if err := json.Unmarshal(b, &st); err != nil {
			return fmt.Errorf("device_status of %q is not valid JSON: %w", d, err)
		}
		w.statuses[d] = st
	}
	if err := rows.Err(); err != nil {
		return err
	}
	w.j.setCommittedStatuses(w.statuses, true)
	return nil
}

func (w *writer) run(ctx context.Context) {
	retry := time.NewTicker(w.j.opts.RetryInterval)
	defer retry.Stop()
	maint := time.NewTicker(w.j.opts.MaintenanceInterval)
	defer maint.Stop()
	w.maintain(context.Background())
	batch := make([]*request, 0, maxBatch)
	var load busyness
	var lastCommit time.Time
	linger := time.NewTimer(commitLinger)
	linger.Stop()
	defer linger.Stop()
	for {
		batch = batch[:0]
		select {
		case <-ctx.Done():
			w.drainAtClose()
			return
		case r := <-w.j.requests:
			batch = append(batch, r)
		case <-retry.C:
			if w.diskFull {
				w.retryWhileFull(context.Background())
			}
			continue
		case <-maint.C:
			w.maintain(context.Background())
			continue
		}
	collect:
		for len(batch) < maxBatch {
			select {
			case r := <-w.j.requests:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		if wait := time.Until(lastCommit.Add(commitLinger)); load.busy && wait > 0 && len(batch) < maxBatch {
			linger.Reset(wait)
		gather:
			for len(batch) < maxBatch {
				select {
				case r := <-w.j.requests:
					batch = append(batch, r)
				case <-linger.C:
					break gather
				case <-ctx.Done():
					break gather
				}
			}
			linger.Stop()
		}
		lastCommit = time.Now()
		w.processWithMaintenance(context.Background(), batch)
		load.note(batch, len(w.j.requests), time.Now())
	}
}

// processWithMaintenance commits the batch, then runs any maintenance
// requests in it (maintenance uses its own transactions).
func (w *writer) processWithMaintenance(ctx context.Context, batch []*request) {
	var maint []*request
	appends := batch[:0:0]
	for _, r := range batch {
		if r.kind == reqMaintain || r.kind == reqExec {
			maint = append(maint, r)
		} else {
			appends = append(appends, r)
		}
	}
	if len(appends) > 0 {
		w.process(ctx, appends)
	}
	for _, r := range maint {
		if r.kind == reqExec {
			_, err := w.conn.ExecContext(ctx, r.sqlText)
			r.finish(err)
			continue
		}
		if w.diskFull {
			w.retryWhileFull(ctx)
		}
		w.maintain(ctx)
		r.finish(nil)
	}
}

// drainAtClose commits what was queued before Close, so a caller that got
// its request in is answered, then fails anything still held in memory.
func (w *writer) drainAtClose() {
	ctx := context.Background()
	for {
		batch := make([]*request, 0, maxBatch)
	collect:
		for len(batch) < maxBatch {
			select {
			case r := <-w.j.requests:
				batch = append(batch, r)
			default:
				break collect
			}
		}
		if len(batch) == 0 {
			break
		}
		w.processWithMaintenance(ctx, batch)
	}
	if w.diskFull {
		// As while running: telemetry only once the disk has room again,
		// so a gateway stopped during the outage leaves what is left of
		// the reserve to the records of the next run.
		w.retryWhileFull(ctx)
	}
	if n := len(w.held); n > 0 {
		essential, telemetry := w.heldCounts()
		w.j.log.Error("journal closed while the disk refused writes: entries held in memory are lost", "entries", n,
			"cycle_records_and_events", essential, "telemetry_batches", telemetry)
		w.j.lost = fmt.Errorf("%w: %d entries (%d cycle records, events and other writes, %d telemetry batches) were held in memory because the disk refused them", ErrEntriesLost, n, essential, telemetry)
	}
	for _, r := range w.held {
		r.finish(fmt.Errorf("journal closed before the entry could be written: %w", ErrClosed))
	}
	w.held = nil
	w.countHeld()
}

// finish answers the caller once; a request held in memory was answered
// when it was held, and is not answered again when it is written.
func (r *request) finish(err error) {
	if r.done != nil && !r.answered {
		r.answered = true
		r.done <- err
	}
}

// isDiskFull reports whether err means the disk (or the file's page limit)
// refused the write: the condition the journal rides out in memory.
func isDiskFull(err error) bool {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, syscall.EIO) {
		return true
	}
	var se *sqlite.Error
	if errors.As(err, &se) {
		switch se.Code() & 0xff {
		case sqlite3.SQLITE_FULL, sqlite3.SQLITE_IOERR:
			return true
		}
	}
	return false
}

func (w *writer) process(ctx context.Context, batch []*request) {
	if w.diskFull {
		w.processWhileFull(ctx, batch)
		return
	}
	err := w.commit(ctx, batch)
	if err == nil {
		if q := w.j.opts.QuotaBytes; q > 0 {
			for _, r := range batch {
				w.bytesSinceQuotaCheck += int64(r.approxBytes)
			}
			if w.bytesSinceQuotaCheck >= max(q/100, 4<<10) {
				w.bytesSinceQuotaCheck = 0
				if err := w.enforceQuota(ctx); err != nil {
					w.j.log.Warn("journal: enforce quota", "err", err)
				}
			}
		}
		return
	}
	if isDiskFull(err) {
		w.enterDiskFull(err)
		w.processWhileFull(ctx, batch)
		return
	}
	if isCorrupt(err) {
		w.j.ReportDamage(err.Error())
	}
	// Some other failure: commit requests one by one so a single bad
	// request fails alone.
	if len(batch) > 1 {
		for _, r := range batch {
			w.process(ctx, []*request{r})
		}
		return
	}
	batch[0].finish(err)
}

// staged collects one transaction's effects; they reach the writer's maps
// only when the transaction commits.
type staged struct {
	rows       []any // buffered entry rows, entryCols values each
	heads      map[string]head
	statuses   map[string]protocol.DeviceStatus
	appended   bool
	statusMove bool
	results    []error
	sign       signStage
}

// commit runs batch in one transaction. A nil return means every request
// got its result; an error means the transaction rolled back and no
// request was answered.
func (w *writer) commit(ctx context.Context, batch []*request) (err error) {
	st := staged{heads: map[string]head{}, statuses: map[string]protocol.DeviceStatus{}, results: make([]error, len(batch))}
	for _, r := range batch {
		r.journaled = false
	}
	if _, err := w.conn.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil {
		return fmt.Errorf("journal: begin: %w", err)
	}
	defer func() {
		if err != nil {
			if _, rbErr := w.conn.ExecContext(ctx, "ROLLBACK"); rbErr != nil {
				w.j.log.Debug("rollback after failed transaction", "err", rbErr)
			}
		}
	}()
	for i, r := range batch {
		res, err := w.apply(ctx, &st, r)
		if err != nil {
			return err
		}
		st.results[i] = res
	}
	if err := w.flushRows(ctx, &st); err != nil {
		return err
	}
	for d, h := range st.heads {
		if _, err := w.upsertHead.ExecContext(ctx, d, h.seq, h.hash); err != nil {
			return fmt.Errorf("journal: update chain head of %q: %w", d, err)
		}
	}
	if err := w.saveSignedHeads(ctx, &st); err != nil {
		return err
	}
	if _, err := w.conn.ExecContext(ctx, "COMMIT"); err != nil {
		return fmt.Errorf("journal: commit: %w", err)
	}
	w.commitSigning(&st)
	for d, h := range st.heads {
		w.heads[d] = h
	}
	for d, s := range st.statuses {
		w.statuses[d] = s
	}
	if len(st.statuses) > 0 {
		w.j.setCommittedStatuses(st.statuses, false)
	}
	// The version moves before anyone is answered: a caller that changed a
	// status (a stopping gateway marking its devices unknown) and then asks
	// the publisher to publish must find the new version.
	if st.statusMove {
		w.j.statusVersion.Add(1)
	}
	for i, r := range batch {
		if r.kind == reqAppend && r.cycleID != "" {
			delete(w.cycleIDs, r.cycleID)
			if r.journaled {
				w.j.countCycle(CycleCount{Device: r.device, Result: r.cycleResult, Verdict: r.cycleVerdict, Disagreement: r.cycleDisagreement})
				w.j.log.Info("cycle record journaled", "device", r.device, "id", r.cycleID, "result", r.cycleResult)
			}
		}
		r.finish(st.results[i])
	}
	if st.appended || st.statusMove {
		w.j.signalChanged()
	}
	return nil
}

// rowsPerInsert rows go in one multi-row INSERT (or one UPDATE ... IN).
const (
	rowsPerInsert     = 64
	entryCols         = 10
	insertEntries     = `INSERT INTO entries (device, kind, seq, record_id, urgent, payload, hash, created_at, key_id, signature) VALUES `
	entryPlaceholders = `(?,?,?,?,?,?,?,?,?,?)`
)

func (w *writer) cachedStmt(ctx context.Context, shape string, n int, build func() string) (*sql.Stmt, error) {
	key := shape + strconv.Itoa(n)
	if s, ok := w.stmts[key]; ok {
		return s, nil
	}
	q := build()
	s, err := w.conn.PrepareContext(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("journal: prepare %s: %w", shape, err)
	}
	w.stmts[key] = s
	return s, nil
}

// flushRows inserts the buffered entry rows.
func (w *writer) flushRows(ctx context.Context, st *staged) error {
	for len(st.rows) > 0 {
		n := min(len(st.rows)/entryCols, rowsPerInsert)
		stmt, err := w.cachedStmt(ctx, "insert", n, func() string {
			return insertEntries + entryPlaceholders + strings.Repeat(","+entryPlaceholders, n-1)
		})
		if err != nil {
			return err
		}
		if _, err := stmt.ExecContext(ctx, st.rows[:n*entryCols]...); err != nil {
			return fmt.Errorf("journal: insert %d entries (first %s seq %v): %w", n, st.rows[0], st.rows[2], err)
		}
		st.rows = st.rows[n*entryCols:]
	}
	st.rows = st.rows[:0:0]
	return nil
}

// spliceChain turns pre, a payload marshalled with an empty id, seq 0 and
// no prev_hash, into exactly what json.Marshal gives with them filled
// (id, seq and prev_hash are the struct's 2nd, second-to-last and last
// fields). It reports false when pre does not have that shape.
func spliceChain(pre []byte, schema, id string, seq uint64, prevHash string) ([]byte, bool) {
	schemaJSON, _ := json.Marshal(schema)
	head := `{"schema":` + string(schemaJSON) + `,"id":""`
	const tail = `,"seq":0}`
	if len(pre) < len(head)+len(tail) || string(pre[:len(head)]) != head || string(pre[len(pre)-len(tail):]) != tail {
		return nil, false
	}
	idJSON, _ := json.Marshal(id)
	out := make([]byte, 0, len(pre)+len(idJSON)+len(prevHash)+32)
	out = append(out, head[:len(head)-2]...)
	out = append(out, idJSON...)
	out = append(out, pre[len(head):len(pre)-len(tail)]...)
	out = append(out, `,"seq":`...)
	out = strconv.AppendUint(out, seq, 10)
	if prevHash != "" {
		out = append(out, `,"prev_hash":`...)
		hashJSON, _ := json.Marshal(prevHash)
		out = append(out, hashJSON...)
	}
	return append(out, '}'), true
}

func (w *writer) headOf(st *staged, device string) head {
	if h, ok := st.heads[device]; ok {
		return h
	}
	return w.heads[device]
}

func (w *writer) statusOf(st *staged, device string) (protocol.DeviceStatus, bool) {
	if s, ok := st.statuses[device]; ok {
		return s, true
	}
	s, ok := w.statuses[device]
	return s, ok
}

// apply executes one request inside the open transaction. The first
// return value is the request's own result (a validation error, or nil);
// the second aborts the whole transaction.
func (w *writer) apply(ctx context.Context, st *staged, r *request) (error, error) {
	now := w.j.opts.Now()
	switch r.kind {
	case reqAppend:
		if r.cycleID != "" {
			var existing int64
			err := w.selectCycle.QueryRowContext(ctx, r.cycleID).Scan(&existing)
			if err == nil {
				w.j.log.Info("cycle record already journaled; keeping the original", "device", r.device, "id", r.cycleID, "entry", existing)
				return nil, nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return nil, fmt.Errorf("journal: look up cycle %s: %w", r.cycleID, err)
			}
		}
		if r.check != nil {
			if err := w.flushRows(ctx, st); err != nil {
				return nil, err
			}
			if err := r.check(ctx, w.conn); err != nil {
				return err, nil
			}
		}
		h := w.headOf(st, r.device)
		seq := h.seq + 1
		if err := w.j.seqs.reserveFor(r.device, seq); err != nil {
			return nil, fmt.Errorf("journal: reserve seq %d of %q: %w", seq, r.device, err)
		}
		var payload []byte
		var recordID string
		if r.pre != nil {
			recordID = r.idPrefix + strconv.FormatUint(seq, 10)
			payload, _ = spliceChain(r.pre, r.preSchema, recordID, seq, h.hash)
		}
		if payload == nil {
			var v any
			recordID, v = r.fill(seq, h.hash)
			var err error
			if payload, err = json.Marshal(v); err != nil {
				return fmt.Errorf("journal: marshal %s %s: %w", r.entryKind, recordID, err), nil
			}
		}
		r.approxBytes = len(payload)
		sum := sha256.Sum256(payload)
		hash := hex.EncodeToString(sum[:])
		urgent := 0
		if r.entryKind != KindTelemetry {
			urgent = 1
		}
		created := r.createdAt
		if created.IsZero() {
			created = now
		}
		sig := w.signEntry(st, r.entryKind, hash)
		keyID, sigBytes := sigColumns(sig)
		row := []any{r.device, string(r.entryKind), seq, recordID, urgent, payload, hash, created.UnixMilli(), keyID, sigBytes}
		if r.cycleID == "" {
			// Buffered: rows go in multi-row INSERTs, far cheaper per row.
			st.rows = append(st.rows, row...)
			if len(st.rows) >= rowsPerInsert*entryCols {
				if err := w.flushRows(ctx, st); err != nil {
					return nil, err
				}
			}
		} else {
			if err := w.flushRows(ctx, st); err != nil {
				return nil, err
			}
		}
		var res sql.Result
		if r.cycleID != "" {
			var err error
			if res, err = w.insertEntry.ExecContext(ctx, row...); err != nil {
				return nil, fmt.Errorf("journal: insert %s %s: %w", r.entryKind, recordID, err)
			}
		}
		var entryID int64
		if r.cycleID != "" {
			id, err := res.LastInsertId()
			if err != nil {
				return nil, fmt.Errorf("journal: insert cycle %s: %w", recordID, err)
			}
			if _, err := w.insertCycle.ExecContext(ctx, r.cycleID, id, now.UnixMilli()); err != nil {
				return nil, fmt.Errorf("journal: insert cycle id %s: %w", recordID, err)
			}
			r.journaled = true
			entryID = id
		}
		if r.indexed != nil {
			if err := r.indexed(ctx, w.conn, indexedEntry{entryID: entryID, recordID: recordID, seq: seq, hash: hash, at: created}); err != nil {
				return nil, err
			}
		}
		st.heads[r.device] = head{seq: seq, hash: hash}
		w.noteAppended(st, r.device, seq, sig != nil, created)
		st.appended = true
		if r.status != nil {
			if err := w.applyStatus(ctx, st, r.device, r.status); err != nil {
				return nil, err
			}
		}
		if r.follow != nil && r.journaled {
			return w.apply(ctx, st, r.follow)
		}
		return nil, nil
	case reqMarkDelivered:
		at := now.UnixMilli()
		for ids := r.ids; len(ids) > 0; {
			n := min(len(ids), rowsPerInsert)
			shape, build := "mark", func() string {
				return `UPDATE entries SET delivered_at = ? WHERE delivered_at IS NULL AND id IN (?` + strings.Repeat(",?", n-1) + `)`
			}
			if r.confirm {
				shape, build = "confirm", func() string { return confirmSQL(n) }
			}
			stmt, err := w.cachedStmt(ctx, shape, n, build)
			if err != nil {
				return nil, err
			}
			args := make([]any, 0, n+1)
			args = append(args, at)
			for _, id := range ids[:n] {
				args = append(args, id)
			}
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return nil, fmt.Errorf("journal: mark entries %d.. delivered: %w", ids[0], err)
			}
			ids = ids[n:]
		}
		return nil, nil
	case reqMarkArchived:
		at := now.UnixMilli()
		for device, seq := range r.archivedThrough {
			if _, err := w.conn.ExecContext(ctx, `UPDATE entries SET archived_at = ? WHERE archived_at IS NULL AND device = ? AND seq <= ?`, at, device, int64(seq)); err != nil {
				return nil, fmt.Errorf("journal: mark %s entries through seq %d archived: %w", device, seq, err)
			}
		}
		return nil, nil
	case reqCheckpoint:
		return nil, w.applyCheckpoint(ctx, st, r)
	case reqRotateKey:
		return nil, w.applyRotation(ctx, st, r)
	case reqSaveState:
		for _, s := range r.states {
			if _, err := w.upsertState.ExecContext(ctx, s.Key, s.State, now.UnixMilli()); err != nil {
				return nil, fmt.Errorf("journal: save state of %q: %w", s.Key, err)
			}
		}
		return nil, nil
	case reqRegister:
		devices := r.devices
		if r.allDevices {
			devices = w.statusDevices(st)
		}
		for _, d := range devices {
			err := w.applyStatus(ctx, st, d, func(s *protocol.DeviceStatus) bool {
				if r.allDevices && s.State == protocol.DeviceUnknown && s.Error == r.reason {
					return false
				}
				s.State, s.Error = protocol.DeviceUnknown, r.reason
				s.At = now.UTC()
				if !r.allDevices {
					// A new watch begins: the device has its whole grace
					// period to be reached (readiness), however long it
					// was unknown before.
					s.StateSince = s.At
				}
				return true
			})
			if err != nil {
				return nil, err
			}
		}
		return nil, nil
	}
	return fmt.Errorf("journal: unknown request kind %d", r.kind), nil
}

// statusDevices lists every device with a status, committed or staged.
func (w *writer) statusDevices(st *staged) []string {
	return keysOf(w.statuses, st.statuses)
}

// keysOf lists, sorted, the devices of a committed map and of the open
// transaction's staged changes to it.
func keysOf[C, S any](committed map[string]C, staged map[string]S) []string {
	out := make([]string, 0, len(committed)+len(staged))
	for d := range committed {
		out = append(out, d)
	}
	for d := range staged {
		if _, ok := committed[d]; !ok {
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

func (w *writer) applyStatus(ctx context.Context, st *staged, device string, update func(*protocol.DeviceStatus) bool) error {
	cur, ok := w.statusOf(st, device)
	if !ok {
		cur = protocol.DeviceStatus{Device: device, State: protocol.DeviceUnknown}
	}
	before := cur.State
	if !update(&cur) && ok {
		return nil
	}
	cur.Gateway = w.j.opts.Gateway
	if cur.State != before || !ok || cur.StateSince.IsZero() {
		cur.StateSince = cur.At
	}
	b, err := json.Marshal(cur)
	if err != nil {
		return fmt.Errorf("journal: marshal status of %q: %w", device, err)
	}
	if _, err := w.upsertStatus.ExecContext(ctx, device, b); err != nil {
		return fmt.Errorf("journal: save status of %q: %w", device, err)
	}
	st.statuses[device] = cur
	st.statusMove = true
	return nil
}
