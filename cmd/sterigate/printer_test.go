package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/gateway/console"
	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
)

// rawPTY opens a pseudo-terminal in raw mode. The test writes to master as
// the sterilizer's printer port would; the slave stays open for the whole
// test, so bytes written while no tap has the port wait in the pty for the
// next one, as they would in a USB adapter's buffer.
func rawPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	m, s, err := pty.Open()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close(); s.Close() })
	tio, err := unix.IoctlGetTermios(int(s.Fd()), unix.TCGETS)
	if err != nil {
		t.Fatal(err)
	}
	tio.Iflag &^= unix.ICRNL | unix.IXON | unix.INLCR | unix.IGNCR | unix.ISTRIP
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ICANON | unix.ISIG | unix.IEXTEN
	if err := unix.IoctlSetTermios(int(s.Fd()), unix.TCSETS, tio); err != nil {
		t.Fatal(err)
	}
	return m, s
}

// printerGateway is the printer link of a configured gateway running on a
// real journal: what `sterigate run` builds, without MQTT.
type printerGateway struct {
	j      *journal.Journal
	link   link
	cancel context.CancelFunc
	done   chan error
}

func startPrinterGateway(t *testing.T, cfg *config.Config) *printerGateway {
	t.Helper()
	j, err := journal.Open(filepath.Join(cfg.Gateway.DataDir, "journal.db"), journal.Options{Gateway: cfg.Gateway.ID, Site: cfg.Gateway.Site})
	if err != nil {
		t.Fatal(err)
	}
	links, err := buildLinks(cfg, j, slog.New(slog.NewTextHandler(testLogWriter{t}, nil)))
	if err != nil {
		j.Close()
		t.Fatal(err)
	}
	evs, err := j.Entries(context.Background(), "ac1", journal.KindEvent)
	if err != nil {
		t.Fatal(err)
	}
	opened := len(evs)
	ctx, cancel := context.WithCancel(context.Background())
	g := &printerGateway{j: j, link: links[0], cancel: cancel, done: make(chan error, 1)}
	go func() { g.done <- g.link.run(ctx) }()
	// Opening a serial port flushes what waits in its input buffer; write
	// only once the tap has the port.
	waitFor(t, 10*time.Second, "the tap to open the port", func() bool {
		evs, err := j.Entries(context.Background(), "ac1", journal.KindEvent)
		if err != nil {
			t.Fatal(err)
		}
		return len(evs) > opened
	})
	return g
}

// stop stops the tap (which delivers a report it is in the middle of) and
// closes the journal, as `run` does on SIGTERM.
func (g *printerGateway) stop(t *testing.T) {
	t.Helper()
	g.cancel()
	if err := <-g.done; err != nil {
		t.Errorf("printer link returned %v", err)
	}
	if err := g.j.Close(); err != nil {
		t.Error(err)
	}
}

func (g *printerGateway) cycles(t *testing.T) []protocol.CycleRecord {
	t.Helper()
	entries, err := g.j.Entries(context.Background(), "ac1", journal.KindCycle)
	if err != nil {
		t.Fatal(err)
	}
	var recs []protocol.CycleRecord
	for _, e := range entries {
		var r protocol.CycleRecord
		if err := json.Unmarshal(e.Payload, &r); err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	return recs
}

type testLogWriter struct{ t *testing.T }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

func frenchTestdata(t *testing.T) (printout, duplicata []byte) {
	t.Helper()
	raw, err := os.ReadFile("../../drivers/printer/testdata/sample-fr.txt")
	if err != nil {
		t.Fatal(err)
	}
	i := bytes.Index(raw, []byte("\r\n")) + 2
	dup := append(append(append([]byte(nil), raw[:i]...), "*** DUPLICATA ***\r\n"...), raw[i:]...)
	return raw, dup
}

// TestPrinterReprintSupersedesCutRecord: the French device's printout of
// cycle 318 is cut (the device lost power; the config's report_timeout
// ends it); after a gateway restart the operator reprints it ("***
// DUPLICATA ***"). The journal must hold both: the cut original, and the
// complete reprint as revision 2 that supersedes it. Printing the
// duplicata once more adds nothing.
func TestPrinterReprintSupersedesCutRecord(t *testing.T) {
	master, slave := rawPTY(t)
	dir := t.TempDir()
	cfg, err := config.Parse(filepath.Join(dir, "sterigate.yaml"), []byte(fmt.Sprintf(`
gateway: {id: gw1, site: dax, data_dir: %s}
mqtt: {brokers: ["tcp://127.0.0.1:1"]}
devices:
  - id: ac1
    driver: printer
    template: %s
    serial: {port: %s}
    report_timeout: 1s
`, dir, filepath.Join("..", "..", "drivers", "printer", "testdata", "custom-fr.yaml"), slave.Name())))
	if err != nil {
		t.Fatal(err)
	}
	cfg.File = "sterigate.yaml" // template path relative to this directory
	full, dup := frenchTestdata(t)
	cut := full[:bytes.Index(full, []byte("  09:34:02"))]

	g := startPrinterGateway(t, cfg)
	if _, err := master.Write(cut); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the cut printout's record", func() bool { return len(g.cycles(t)) == 1 })
	g.stop(t)

	g = startPrinterGateway(t, cfg)
	defer func() { g.stop(t) }()
	recs := g.cycles(t)
	if len(recs) != 1 || recs[0].Complete || recs[0].EndSeen || recs[0].Result != protocol.ResultUnknown || recs[0].ID != "dax:ac1:318" {
		t.Fatalf("after the cut: %d records %+v; want cycle 318 incomplete, result unknown", len(recs), recs)
	}
	if _, err := master.Write(dup); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the reprint's record", func() bool { return len(g.cycles(t)) >= 2 })
	recs = g.cycles(t)
	r2 := recs[1]
	if len(recs) != 2 || r2.ID != "dax:ac1:318:r2" || r2.Revision != 2 || r2.Supersedes != "dax:ac1:318" || r2.Cycle != 318 ||
		!r2.Complete || !r2.EndSeen || r2.Result != protocol.ResultPassed || !bytes.Equal(r2.Raw, dup) ||
		r2.DeviceFigures == nil || !r2.DeviceFigures.Reprint {
		t.Fatalf("reprint record: id %q revision %d supersedes %q complete %v end_seen %v result %s figures %+v",
			r2.ID, r2.Revision, r2.Supersedes, r2.Complete, r2.EndSeen, r2.Result, r2.DeviceFigures)
	}
	if !bytes.Equal(recs[0].Raw, cut) {
		t.Error("the cut original's raw bytes changed")
	}

	// The same duplicata again: the journal already holds the complete
	// cycle; it is counted, not journaled a third time.
	if _, err := master.Write(dup); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the second reprint to be counted", func() bool {
		reprints := 0.0
		g.link.metrics(func(m console.Metric) {
			if m.Name == "sterigate_printer_reprints_total" && m.Labels["device"] == "ac1" {
				reprints = m.Value
			}
		})
		return reprints == 1
	})
	if n := len(g.cycles(t)); n != 2 {
		t.Errorf("%d records after a reprint of a complete cycle, want 2", n)
	}
}
