package journal

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// BenchmarkStartupCheck1GB times Open of a journal of about 1 GB (set
// STERIGATE_BENCH_JOURNAL_BYTES for another size) with the page cache
// emptied of it first, as after a reboot: the write-ahead log scan, the
// read-through and quick_check, the migrations, the writer's start. The
// file's pages are evicted with posix_fadvise; as root,
// STERIGATE_BENCH_DROP_CACHES=1 drops the whole page cache instead (a
// virtual disk's host may still cache).
//
//	go test -run '^$' -bench StartupCheck1GB -benchtime 3x ./gateway/journal
func BenchmarkStartupCheck1GB(b *testing.B) {
	size := int64(1 << 30)
	if s := os.Getenv("STERIGATE_BENCH_JOURNAL_BYTES"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		size = n
	}
	path := filepath.Join(b.TempDir(), "journal.db")
	j := openTest(b, path, Options{})
	j.Close()
	fillRaw(b, path, size)
	evict := func() {
		if os.Getenv("STERIGATE_BENCH_DROP_CACHES") != "" {
			// As root: the whole page cache, as a reboot would.
			unix.Sync()
			if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("3"), 0); err != nil {
				b.Fatal(err)
			}
			return
		}
		for _, p := range []string{path, path + "-wal"} {
			f, err := os.Open(p)
			if err != nil {
				continue
			}
			f.Sync()
			unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED)
			f.Close()
		}
	}
	fi, _ := os.Stat(path)
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		evict()
		b.StartTimer()
		j, err := Open(path, Options{Gateway: "gw", Site: "dax"})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		j.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(fi.Size())/(1<<20), "journal-MiB")
	b.ReportMetric(b.Elapsed().Seconds()/float64(b.N), "open-s")
}

// fillRaw adds telemetry-sized entries to the journal at path until its
// file is about size bytes, straight through SQL (the journal's own
// appends would take minutes for a gigabyte).
func fillRaw(b *testing.B, path string, size int64) {
	b.Helper()
	db, err := sql.Open("sqlite", dsn(path, false, false))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	ctx := context.Background()
	payload := []byte(fmt.Sprintf(`{"schema":"sterigate.telemetry.v1","samples":"%0*d"}`, 10000, 0))
	sum := sha256.Sum256(payload)
	hash := hex.EncodeToString(sum[:])
	seq := 0
	for {
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		if fi.Size() >= size {
			break
		}
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			b.Fatal(err)
		}
		for range 2000 {
			seq++
			if _, err := tx.ExecContext(ctx, `INSERT INTO entries (device, kind, seq, record_id, urgent, payload, hash, created_at) VALUES (?,?,?,?,?,?,?,?)`,
				fmt.Sprintf("ac-%02d", seq%20), "telemetry", seq, "x", 0, payload, hash, time.Now().UnixMilli()); err != nil {
				b.Fatal(err)
			}
		}
		if err := tx.Commit(); err != nil {
			b.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyBeforePublish times the check every entry gets before it
// is published (journal.Verify: its hash, its id and seq, its link to the
// device's previous entry), over the backlog the publisher's drain
// benchmark drains: 20 sterilizers, telemetry batches of 10 samples and a
// cycle record of 2,400 samples every so often. Compare ns/entry with the
// drain benchmark's time per message (gateway/mqttpub,
// BenchmarkDrainBacklogToMosquitto).
func BenchmarkVerifyBeforePublish(b *testing.B) {
	j := openTest(b, filepath.Join(b.TempDir(), "journal.db"), Options{})
	ctx := context.Background()
	const devices, batches, cyclesEach = 20, 20000, 24
	errs := make(chan error, devices)
	for d := range devices {
		go func() {
			device := fmt.Sprintf("ac-%02d", d)
			cycles := uint64(0)
			for n, i := 0, d; i < batches; n, i = n+1, i+devices {
				if err := j.Telemetry(ctx, testTelemetry(device, 10)); err != nil {
					errs <- err
					return
				}
				if (n+1)%(batches/devices/cyclesEach) == 0 && cycles < cyclesEach {
					cycles++
					rec := testRecord(device, cycles)
					rec.Samples = testTelemetry(device, 2400).Samples
					if err := j.Cycle(ctx, rec); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range devices {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	// What the publisher reads, lane by lane, in its batches.
	var lanes [][]Entry
	var bytes int64
	for _, lane := range []Lane{LaneUrgent, LaneTelemetry} {
		after := int64(0)
		for {
			es, err := j.PendingInLane(ctx, lane, after, 0, 256)
			if err != nil {
				b.Fatal(err)
			}
			if len(es) == 0 {
				break
			}
			after = es[len(es)-1].ID
			for _, e := range es {
				bytes += int64(len(e.Payload))
			}
			lanes = append(lanes, es)
		}
	}
	entries := 0
	for _, es := range lanes {
		entries += len(es)
	}
	b.ResetTimer()
	for range b.N {
		j.verified = chainMemory{} // each round from a cold memory
		for _, es := range lanes {
			bad, err := j.Verify(ctx, es)
			if err != nil || len(bad) > 0 {
				b.Fatalf("Verify: %v %v", bad, err)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*entries), "ns/entry")
	b.ReportMetric(float64(bytes)/float64(entries), "payload-B/entry")
}
