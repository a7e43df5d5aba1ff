// Package journal is sterigate's durable outbox: every cycle record, event
// and telemetry batch a driver observes is committed to a SQLite file
// before anything else happens to it, and stays there, undelivered, until
// the MQTT publisher has a PUBACK for it on a live connection.
//
// Each device has one gap-free sequence shared by all its entry kinds and a
// hash chain: every entry's prev_hash is the hex SHA-256 of the previous
// entry's payload of that device. The payload is marshalled once, with seq
// and prev_hash filled, and those exact bytes are stored and published.
//
// One writer goroutine owns the write connection and commits whatever
// requests are queued in one transaction (group commit); every commit is
// fsynced (WAL, synchronous=FULL), and no Sink method returns nil before its
// entry is committed.
package journal

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Kind is the kind of a journal entry; it picks the MQTT topic.
type Kind string

const (
	KindCycle     Kind = "cycle"
	KindTelemetry Kind = "telemetry"
	KindEvent     Kind = "event"
)

// Entry is one journaled message as the outbox holds it.
type Entry struct {
	// ID is the entry's position in the outbox (increasing, never reused).
	ID     int64
	Device string
	Kind   Kind
	// Seq is the device's journal sequence (gap-free per device unless
	// telemetry was thinned, which a gap event records).
	Seq uint64
	// RecordID is the payload's "id" field: what consumers de-duplicate by.
	RecordID string
	// Payload is the exact JSON stored and published.
	Payload []byte
	// Hash is the hex SHA-256 of Payload; the device's next entry carries it
	// as prev_hash.
	Hash      string
	CreatedAt time.Time
	// DeliveredAt is zero while the entry is undelivered.
	DeliveredAt time.Time
	// Signature is the gateway's signature over Hash (cycle records and
	// events); nil for telemetry, which checkpoints cover.
	Signature *evidence.Signature
	// ConfirmedAt is when the entry came back, byte for byte, on the
	// gateway's own subscription (cycle records and events only; zero
	// until then).
	ConfirmedAt time.Time
	// Replay marks an entry salvaged from a damaged journal: it is
	// published with the replay marker, and its chain is the damaged
	// journal's.
	Replay bool
}

// Options configures a journal.
type Options struct {
	// Gateway and Site are written into every payload.
	Gateway, Site string
	Logger        *slog.Logger
	// QuotaBytes caps the space the journal's live pages may use (0: no
	// quota). When it is reached, the oldest undelivered telemetry is
	// thinned and a gap event recorded; cycle records and events are never
	// dropped.
	QuotaBytes int64
	// QuotaWarnFraction of QuotaBytes raises the "journal near quota"
	// gateway alarm (default 0.8).
	QuotaWarnFraction float64
	// Retention keeps delivered entries for local history this long before
	// they are pruned (0: prune delivered entries at the next maintenance).
	Retention time.Duration
	// KeepUnarchived prunes (retention, quota) only entries an archive's
	// receipt marked archived (mqtt.receipts: required).
	KeepUnarchived bool
	// MaintenanceInterval is how often quota, retention and vacuum run
	// (default 1 min).
	MaintenanceInterval time.Duration
	// MemoryTelemetryLimit bounds how many telemetry batches are held in
	// memory while the disk refuses writes (default 10000); beyond it the
	// oldest held batch is dropped and recorded as a gap.
	MemoryTelemetryLimit int
	// RetryInterval is how often writes are retried after the disk refused
	// them (default 1 s).
	RetryInterval time.Duration
	// Now returns the current time; tests replace it. Default time.Now.
	Now func() time.Time
	// Signer signs every cycle record and event, and the checkpoints that
	// cover telemetry (docs/evidence.md). Nil: nothing is signed (tests
	// and tools). The journal refuses a signer whose key is not the one
	// its key table says is current.
	Signer *evidence.Signer
	// CheckpointEvery bounds how long an entry stays without a signature
	// covering it (default 60 s): a device whose chain ends in unsigned
	// telemetry gets a signed checkpoint event at least this often.
	CheckpointEvery time.Duration
	// StartFresh lets Open replace a file at the journal's path that is
	// not a journal (zero bytes long, or a foreign file): it is moved
	// aside, kept, and a new journal is created. Without it Open refuses
	// such a file with an *UnusableError: it may be a wrong path or a
	// mount that is missing, and a new journal would hide that.
	StartFresh bool
	// ReplaceDamaged, when not empty, is why the journal at path was found
	// damaged while the gateway ran: Open replaces it as it replaces a
	// journal its start-up check finds damaged.
	ReplaceDamaged string
	// ReserveBytes is the size of the space reserve kept next to the
	// journal (default 16 MiB; negative: none). It is released when the
	// disk fills, so cycle records and events can still be written.
	ReserveBytes int64
}

// Journal is the durable outbox. It implements protocol.Sink and
// protocol.StateStore.
type Journal struct {
	opts   Options
	log    *slog.Logger
	path   string
	writer *sql.Conn
	wdb    *sql.DB
	rdb    *sql.DB
	// id is the journal's id (journal_meta), part of every event and
	// telemetry id.
	id string
	// seqs reserves seq numbers outside the database, so a journal that
	// replaces a damaged one continues every device's seq past anything
	// the damaged one could have published.
	seqs *seqMark
	// space is the reserve released when the disk fills (nil: none).
	space *spaceReserve
	// damage is set once damage is found while the gateway runs.
	damage damageSignal
	// verified remembers the hashes of recently verified entries, so the
	// chain check before publishing rarely needs the database.
	verified chainMemory

	requests chan *request
	changed  chan struct{}

	statusVersion atomic.Uint64
	// committedStatuses is the writer's copy of every committed device
	// status, handed over after each commit: the publisher and the
	// console read statuses at every status change, and decoding them
	// all from the database each time cost more than the change itself.
	statusesMu        sync.Mutex
	committedStatuses map[string]protocol.DeviceStatus
	alarmsMu          sync.Mutex
	alarms            []string

	cyclesMu sync.Mutex
	cycles   map[CycleCount]int64 // records journaled since Open

	cancel     context.CancelFunc
	done       chan struct{}
	background sync.WaitGroup // the checkpoint loop
	closeOnce  sync.Once
	closeErr   error
	closed     atomic.Bool
	// lost is set by the writer when it stopped with entries still held in
	// memory; Close returns it.
	lost error
	// memEssential and memTelemetry count the requests held in memory
	// while the disk refuses writes (Stats).
	memEssential, memTelemetry atomic.Int64
}

var (
	_ protocol.Sink       = (*Journal)(nil)
	_ protocol.StateStore = (*Journal)(nil)
)

// ErrClosed is returned by calls on a closed journal.
var ErrClosed = errors.New("journal is closed")

// ErrNotDurable wraps the error of a cycle record or event the disk
// refused: the journal holds it in memory and writes it when space returns,
// but it is not durable yet. Retrying the same cycle is safe: it is
// de-duplicated by its id.
var ErrNotDurable = errors.New("journal: entry held in memory, not yet durable")

// ErrEntriesLost is wrapped by Close's error when entries held in memory
// while the disk refused writes could not be written before the journal
// closed.
var ErrEntriesLost = errors.New("journal: entries held in memory were lost")

func dsn(path string, readOnly, creating bool) string {
	q := url.Values{}
	if creating {
		// auto_vacuum must be chosen before anything is written, even
		// before journal_mode=WAL writes the header, or it stays NONE.
		q.Add("_pragma", "auto_vacuum(INCREMENTAL)")
		// Entries are about 1 KB; 16 KiB pages mean a quarter of the WAL
		// frames, and so of the write syscalls, per group commit.
		q.Add("_pragma", "page_size(16384)")
	}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "synchronous(FULL)")
	q.Add("_pragma", "foreign_keys(1)")
	if readOnly {
		q.Add("_pragma", "query_only(1)")
		// Readers scan the outbox front to back once; a small page cache
		// per reader keeps the gateway's memory small on an industrial PC.
		q.Add("_pragma", "cache_size(-512)")
	}
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + q.Encode()
}

// Open opens (creating and migrating if needed) the journal at path and
// starts its writer.
func Open(path string, opts Options) (*Journal, error) {
	if opts.Gateway == "" {
		return nil, fmt.Errorf("journal: Options.Gateway is empty")
	}
	if opts.Site == "" {
		return nil, fmt.Errorf("journal: Options.Site is empty")
	}
	if opts.QuotaBytes < 0 {
		return nil, fmt.Errorf("journal: Options.QuotaBytes %d is negative", opts.QuotaBytes)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.QuotaWarnFraction <= 0 || opts.QuotaWarnFraction >= 1 {
		opts.QuotaWarnFraction = 0.8
	}
	if opts.MaintenanceInterval <= 0 {
		opts.MaintenanceInterval = time.Minute
	}
	if opts.MemoryTelemetryLimit <= 0 {
		opts.MemoryTelemetryLimit = 10000
	}
	if opts.RetryInterval <= 0 {
		opts.RetryInterval = time.Second
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.CheckpointEvery <= 0 {
		opts.CheckpointEvery = DefaultCheckpointEvery
	}
	if opts.ReserveBytes == 0 {
		opts.ReserveBytes = DefaultReserveBytes
	}
	ctx := context.Background()
	log := opts.Logger.With("component", "journal", "path", path)
	seqs, err := openSeqMark(seqMarkPath(path))
	if err != nil {
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}
	// What is at path, and is it whole? Nothing is written to the file
	// before this is known.
	replaced, err := prepare(ctx, path, opts, log)
	if err != nil {
		seqs.Close()
		return nil, fmt.Errorf("journal %s: %w", path, err)
	}

	wdb, err := sql.Open("sqlite", dsn(path, false, false))
	if err != nil {
		seqs.Close()
		return nil, fmt.Errorf("journal %s: open: %w", path, err)
	}
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	conn, err := wdb.Conn(ctx)
	if err != nil {
		wdb.Close()
		seqs.Close()
		return nil, fmt.Errorf("journal %s: open: %w", path, err)
	}
	fail := func(err error) (*Journal, error) {
		conn.Close()
		wdb.Close()
		seqs.Close()
		return nil, err
	}
	var autoVacuum int
	if err := conn.QueryRowContext(ctx, "PRAGMA auto_vacuum").Scan(&autoVacuum); err != nil {
		return fail(fmt.Errorf("journal %s: read auto_vacuum: %w", path, err))
	}
	if autoVacuum != 2 {
		opts.Logger.Warn("journal: auto_vacuum is not INCREMENTAL, so pruned space is not returned to the file system; a one-off VACUUM fixes it", "path", path, "auto_vacuum", autoVacuum)
	}
	if err := migrate(ctx, conn); err != nil {
		return fail(fmt.Errorf("journal %s: %w", path, err))
	}
	id, err := readJournalID(ctx, conn)
	if err != nil {
		return fail(fmt.Errorf("journal %s: %w", path, err))
	}
	var breaks []protocol.Event
	if replaced != nil {
		if breaks, err = replaced.seed(ctx, conn, seqs, opts, log); err != nil {
			return fail(fmt.Errorf("journal %s: start the journal that replaces the damaged one: %w", path, err))
		}
	}
	if err := restrictFiles(path); err != nil {
		return fail(fmt.Errorf("journal %s: %w", path, err))
	}
	rdb, err := sql.Open("sqlite", dsn(path, true, false))
	if err != nil {
		return fail(fmt.Errorf("journal %s: open reader: %w", path, err))
	}
	rdb.SetMaxOpenConns(2)

	runCtx, cancel := context.WithCancel(context.Background())
	j := &Journal{
		opts:     opts,
		log:      log,
		path:     path,
		writer:   conn,
		wdb:      wdb,
		rdb:      rdb,
		id:       id,
		seqs:     seqs,
		requests: make(chan *request, 1024),
		changed:  make(chan struct{}, 1),
		cancel:   cancel,
		done:     make(chan struct{}),
	}
	j.damage.init()
	roomForReserve := true
	if opts.ReserveBytes > 0 {
		j.space = newSpaceReserve(spaceReservePath(path), opts.ReserveBytes, log)
		roomForReserve = j.space.ensure()
	}
	w, err := newWriter(ctx, j)
	if err != nil {
		cancel()
		rdb.Close()
		return fail(fmt.Errorf("journal %s: %w", path, err))
	}
	if !roomForReserve {
		// A disk without room for the reserve is full: start as the
		// writer would have gone on (a gateway restarted during the
		// outage), keeping what is left for records, events and state.
		w.enterDiskFull(errors.New("no room for the space reserve at start"))
	}
	if err := j.refreshDamagedAlarm(ctx); err != nil {
		log.Warn("journal: cannot read the list of damaged journals", "err", err)
	}
	go func() {
		defer close(j.done)
		w.run(runCtx)
	}()
	// The first entry of every device in a journal that replaces a damaged
	// one says so: what the last good entry was, and where the damaged
	// journal is kept.
	for _, ev := range breaks {
		if err := j.submit(ctx, j.eventRequest(ev, false)); err != nil {
			j.Close()
			return nil, fmt.Errorf("journal %s: journal_break event of %q: %w", path, ev.Device, err)
		}
	}
	if opts.Signer != nil {
		j.background.Go(func() { j.checkpointLoop(runCtx) })
	}
	return j, nil
}

// ID returns the journal's id: random, chosen when the journal file was
// created, and part of every event and telemetry id it issues.
func (j *Journal) ID() string { return j.id }

// Path returns the journal's file.
func (j *Journal) Path() string { return j.path }

// Close stops the writer after it committed every request already queued,
// and closes the database. It is safe to call more than once.
//
// Close returns an error wrapping ErrEntriesLost when entries the disk had
// refused were still held in memory: they are gone.
func (j *Journal) Close() error {
	j.closeOnce.Do(func() {
		j.checkpointAtClose()
		j.closed.Store(true)
		j.cancel()
		j.background.Wait()
		<-j.done
		errW := j.writer.Close()
		errDB := j.wdb.Close()
		errR := j.rdb.Close()
		errS := j.seqs.Close()
		j.closeErr = errors.Join(j.lost, errW, errDB, errR, errS)
	})
	return j.closeErr
}

// CycleCount keys the count of cycle records journaled since the journal
// was opened, by device, the device's result, sterigate's verdict ("" for
// a record without a verification) and whether the two disagree.
type CycleCount struct {
	Device       string
	Result       protocol.Result
	Verdict      string
	Disagreement bool
}

func (j *Journal) countCycle(k CycleCount) {
	j.cyclesMu.Lock()
	defer j.cyclesMu.Unlock()
	if j.cycles == nil {
		j.cycles = map[CycleCount]int64{}
	}
	j.cycles[k]++
}

// CyclesJournaled returns how many cycle records were journaled since the
// journal was opened, by device, result and verdict (a record re-observed
// after a restart and not journaled again does not count).
func (j *Journal) CyclesJournaled() map[CycleCount]int64 {
	j.cyclesMu.Lock()
	defer j.cyclesMu.Unlock()
	return maps.Clone(j.cycles)
}

// Changed signals (coalesced) that new entries were committed or a device
// status changed. The publisher selects on it instead of polling.
func (j *Journal) Changed() <-chan struct{} { return j.changed }

func (j *Journal) signalChanged() {
	select {
	case j.changed <- struct{}{}:
	default:
	}
}

// StatusVersion increases whenever a device status or the gateway alarms
// change, so the publisher knows when to republish.
func (j *Journal) StatusVersion() uint64 { return j.statusVersion.Load() }

// Alarms returns the journal's active gateway alarms ("journal near
// quota", "disk full"), empty when healthy.
func (j *Journal) Alarms() []string {
	j.alarmsMu.Lock()
	defer j.alarmsMu.Unlock()
	return append([]string(nil), j.alarms...)
}

func (j *Journal) setAlarm(name string, on bool) (changed bool) {
	j.alarmsMu.Lock()
	defer j.alarmsMu.Unlock()
	idx := -1
	for i, a := range j.alarms {
		if a == name {
			idx = i
		}
	}
	switch {
	case on && idx < 0:
		j.alarms = append(j.alarms, name)
	case !on && idx >= 0:
		j.alarms = append(j.alarms[:idx], j.alarms[idx+1:]...)
	default:
		return false
	}
	j.statusVersion.Add(1)
	j.signalChanged()
	return true
}
