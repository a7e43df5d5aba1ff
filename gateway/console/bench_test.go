package console

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
)

// benchConsole serves the pages over a journal; get returns a page's
// status, timing only the handler (server time).
func benchConsole(b *testing.B, j *journal.Journal) http.Handler {
	o := testOptions()
	o.Records = j
	return Handler(fixed(snapshot()), o)
}

func benchGet(b *testing.B, h http.Handler, path string) {
	b.Helper()
	b.ReportAllocs()
	for b.Loop() {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		if rec.Code != 200 {
			b.Fatalf("GET %s = %d", path, rec.Code)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N)/1000, "ms/page")
}

// BenchmarkCycleList pages through a journal of 100,000 cycle records
// (target: ≤ 50 ms server time per page).
func BenchmarkCycleList(b *testing.B) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(b.TempDir(), "journal.db"), journal.Options{Gateway: "gw", Site: "dax"})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	const total, writers = 100_000, 64
	start := time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC)
	results := []protocol.Result{protocol.ResultPassed, protocol.ResultPassed, protocol.ResultPassed, protocol.ResultFailed, protocol.ResultAborted}
	verdicts := []string{protocol.VerdictPass, protocol.VerdictPass, protocol.VerdictFail, protocol.VerdictIndeterminate}
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := w; i < total; i += writers {
				device := fmt.Sprintf("autoclave-%d", i%12)
				end := start.Add(time.Duration(i) * 20 * time.Minute)
				rec := protocol.CycleRecord{Device: device, Cycle: uint64(i/12 + 1), Program: "134-porous", StartedAt: end.Add(-45 * time.Minute),
					EndedAt: end, Result: results[i%len(results)], Complete: i%50 != 0, EndSeen: true, Source: "modbus-tcp",
					Verification: &protocol.Verification{Verdict: verdicts[i%len(verdicts)], Checks: []protocol.Check{}}}
				if err := j.Cycle(ctx, rec); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	h := benchConsole(b, j)
	page, _ := j.Cycles(ctx, journal.CycleFilter{Limit: 1, Before: &journal.CycleCursor{EndedAt: start.Add(50_000 * 20 * time.Minute).UnixMilli(), EntryID: 1 << 62}})
	deep := url.Values{"before": {cursorString(page.Cycles[0].Cursor())}}.Encode()
	for _, c := range []struct{ name, path string }{
		{"newest", "/cycles"},
		{"deep-page", "/cycles?" + deep},
		{"device-and-verdict", "/cycles?device=autoclave-7&verdict=fail"},
		{"rare-filter", "/cycles?release=rejected"},
		{"date-range", "/cycles?from=2021-06-01&to=2021-06-30&result=failed"},
	} {
		b.Run(c.name, func(b *testing.B) { benchGet(b, h, c.path) })
	}
}

// BenchmarkRecordPage renders the page and print page of a cycle of 2,400
// samples with its plot (target: ≤ 50 ms server time).
func BenchmarkRecordPage(b *testing.B) {
	ctx := context.Background()
	j, err := journal.Open(filepath.Join(b.TempDir(), "journal.db"), journal.Options{Gateway: "gw", Site: "dax"})
	if err != nil {
		b.Fatal(err)
	}
	defer j.Close()
	rec := porousCycle("autoclave-1", 1, time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC), 2400)
	if err := j.Cycle(ctx, rec); err != nil {
		b.Fatal(err)
	}
	h := benchConsole(b, j)
	b.Run("record", func(b *testing.B) { benchGet(b, h, "/cycles/dax:autoclave-1:1") })
	b.Run("print", func(b *testing.B) { benchGet(b, h, "/cycles/dax:autoclave-1:1/print") })
}
