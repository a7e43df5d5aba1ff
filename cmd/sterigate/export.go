package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
)

func cmdExport(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("export", flag.ContinueOnError)
	fs.SetOutput(stderr)
	journalPath := fs.String("journal", "", "the gateway's journal file (journal.db), read-only; the gateway may be running (required)")
	device := fs.String("device", "", "the device whose entries to export (required)")
	from := fs.String("from", "", "only entries journaled at or after this time (RFC 3339, or a date YYYY-MM-DD in UTC)")
	to := fs.String("to", "", "only entries journaled before this time (RFC 3339, or a date: entries of that day are excluded)")
	kind := fs.String("kind", "cycle", "cycle, event, telemetry or all")
	format := fs.String("format", "jsonl", "jsonl (each entry as published, with its signature) or csv (a spreadsheet row per entry, with its hash, signature and payload)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: sterigate export --journal FILE --device D [--from T] [--to T] [--kind cycle] [--format jsonl|csv]

Writes a device's cycle records (or events, telemetry) from a journal to
standard output, each with its hash and signature, for the record file.
'sterigate verify --capture FILE --partial' checks a jsonl export. Reads the
journal read-only, a chunk at a time: safe while the gateway runs. Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("export: unexpected argument %q", fs.Arg(0))}
	}
	if *journalPath == "" || *device == "" {
		fs.Usage()
		return usageError{"export: --journal and --device are required"}
	}
	f := journal.Filter{Device: *device}
	switch *kind {
	case "cycle", "event", "telemetry":
		f.Kind = journal.Kind(*kind)
	case "all":
	default:
		return usageError{fmt.Sprintf("export: --kind %q is not one of cycle, event, telemetry, all", *kind)}
	}
	var err error
	if f.From, err = parseWhen("export", "--from", *from); err != nil {
		return err
	}
	if f.To, err = parseWhen("export", "--to", *to); err != nil {
		return err
	}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		return usageError{fmt.Sprintf("export: --from %s is not before --to %s", *from, *to)}
	}
	var write func(journal.Entry) error
	out := bufio.NewWriter(stdout)
	var flush func() error
	switch *format {
	case "jsonl":
		write = func(e journal.Entry) error {
			out.Write(evidence.Published(e.Payload, e.Signature, false))
			return out.WriteByte('\n')
		}
		flush = out.Flush
	case "csv":
		w := csv.NewWriter(out)
		if err := w.Write(exportColumns); err != nil {
			return err
		}
		write = func(e journal.Entry) error { return w.Write(exportRow(e)) }
		flush = func() error {
			w.Flush()
			if err := w.Error(); err != nil {
				return err
			}
			return out.Flush()
		}
	default:
		return usageError{fmt.Sprintf("export: --format %q is not jsonl or csv", *format)}
	}
	r, err := journal.OpenReader(*journalPath)
	if err != nil {
		return fmt.Errorf("export: %w", err)
	}
	defer r.Close()
	n := 0
	if err := r.Scan(ctx, f, func(e journal.Entry) error { n++; return write(e) }); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if err := flush(); err != nil {
		return fmt.Errorf("export: %w", err)
	}
	if n == 0 {
		fmt.Fprintf(stderr, "export: no %s entry of device %q in %s matches\n", *kind, *device, *journalPath)
	}
	return nil
}

// parseWhen reads command's --from or --to: RFC 3339, or a date
// (midnight UTC).
func parseWhen(command, flagName, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usageError{fmt.Sprintf("%s: %s %q is neither RFC 3339 (2026-11-28T08:00:00Z) nor a date (2026-11-28)", command, flagName, s)}
}

var exportColumns = []string{"device", "seq", "kind", "id", "journaled_at", "cycle", "program", "started_at", "ended_at",
	"result", "complete", "verdict", "event", "at", "text", "hash", "prev_hash", "key", "signature", "payload"}

// exportRow is one entry as a CSV row: what a quality officer reads
// first, then what verifies it (the payload is the exact signed bytes).
func exportRow(e journal.Entry) []string {
	var f struct {
		protocol.CycleRecord
		EventKind string    `json:"kind"`
		At        time.Time `json:"at"`
		Text      string    `json:"text"`
	}
	json.Unmarshal(e.Payload, &f)
	row := make([]string, len(exportColumns))
	row[0], row[1], row[2], row[3] = e.Device, strconv.FormatUint(e.Seq, 10), string(e.Kind), e.RecordID
	row[4] = e.CreatedAt.UTC().Format(time.RFC3339Nano)
	stamp := func(t time.Time) string {
		if t.IsZero() {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	if f.Cycle > 0 {
		row[5] = strconv.FormatUint(f.Cycle, 10)
	}
	if e.Kind == journal.KindCycle {
		row[6], row[7], row[8] = f.Program, stamp(f.StartedAt), stamp(f.EndedAt)
		row[9], row[10] = string(f.Result), strconv.FormatBool(f.Complete)
		if f.Verification != nil {
			row[11] = f.Verification.Verdict
		}
	}
	if e.Kind == journal.KindEvent {
		row[12], row[13], row[14] = f.EventKind, stamp(f.At), f.Text
	}
	row[15], row[16] = e.Hash, f.PrevHash
	if e.Signature != nil {
		row[17], row[18] = e.Signature.Key, base64.StdEncoding.EncodeToString(e.Signature.Ed25519)
	}
	row[19] = string(e.Payload)
	return row
}
