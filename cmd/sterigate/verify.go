package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol/evidence"
)

func cmdVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return verifyEvidence(ctx, args, os.Stdin, stdout, stderr)
}

// listFlag is a flag that may be given several times.
type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

func verifyEvidence(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	journalPath := fs.String("journal", "", "a gateway's journal file (journal.db), read-only; the gateway may be running")
	capturePath := fs.String("capture", "", "messages captured from MQTT, one per line (mosquitto_sub -v, mosquitto_sub, or mosquitto_sub -F %j); - for standard input")
	var keyFiles listFlag
	fs.Var(&keyFiles, "key", "a file of trusted public keys: key messages (sterigate key show --json, the key topic) or PEM; may be repeated. Without it the keys in the journal or capture itself are used, which proves less")
	partial := fs.Bool("partial", false, "the input holds only some of each device's messages (an export, one topic): missing seqs are listed, not failures")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: sterigate verify (--journal FILE | --capture FILE|-) [--key FILE]... [--partial] [--json]

Checks, per device, that the sequence has no gap a gap event does not
explain, that every entry's hash links to the next, and that every
signature checks with a trusted key. Prints one line per device and exits
1 on any failure, naming the first bad entry. Needs no gateway and no
broker (docs/evidence.md). Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError{fmt.Sprintf("verify: unexpected argument %q", fs.Arg(0))}
	}
	if (*journalPath == "") == (*capturePath == "") {
		fs.Usage()
		return usageError{"verify: give --journal or --capture (one of them)"}
	}
	// Reading a journal allocates every payload once and keeps little: a
	// lazier collector saves about a sixth of verify's CPU for some 25 MB.
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	v := evidence.NewVerifier(evidence.Options{Partial: *partial})
	for _, f := range keyFiles {
		data, err := os.ReadFile(f)
		if err != nil {
			return fmt.Errorf("verify: --key: %w", err)
		}
		keys, err := evidence.ParsePublicKeys(data)
		if err != nil {
			return fmt.Errorf("verify: --key %s: %w", f, err)
		}
		for _, k := range keys {
			v.Trust(k, "given with --key "+f)
		}
	}
	var err error
	if *journalPath != "" {
		err = verifyJournal(ctx, v, *journalPath, len(keyFiles) > 0)
	} else {
		err = verifyCapture(v, *capturePath, stdin, len(keyFiles) > 0)
	}
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	rep := v.Report()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := rep.WriteText(stdout); err != nil {
		return err
	}
	if rep.OK {
		return nil
	}
	failed := 0
	for _, d := range rep.Devices {
		if !d.OK {
			failed++
		}
	}
	summary := fmt.Sprintf("verify: %d of %d devices failed", failed, len(rep.Devices))
	if n := len(rep.Problems); n > 0 {
		summary += fmt.Sprintf(", %d messages could not be read", n)
	}
	return reportedError{summary}
}

// verifyJournal walks a journal file.
func verifyJournal(ctx context.Context, v *evidence.Verifier, path string, keysGiven bool) error {
	r, err := journal.OpenReader(path)
	if err != nil {
		return err
	}
	defer r.Close()
	if !keysGiven {
		keys, err := r.SigningKeys(ctx)
		if err != nil {
			return err
		}
		for _, k := range keys {
			v.Trust(k, "from the journal's own key table: this proves the journal intact only against someone who could not also replace that table; give --key with a copy kept elsewhere")
		}
	}
	heads, err := r.Heads(ctx)
	if err != nil {
		return err
	}
	for d, seq := range heads {
		v.ExpectHead(d, seq)
	}
	return walkJournal(ctx, r, v.Prechecker(), func(e journal.Entry, pe evidence.Entry, err error) {
		where := pe.Where
		if err != nil {
			v.Fail(evidence.Problem{Device: e.Device, Seq: e.Seq, ID: e.RecordID, Where: where, Code: evidence.CodeUndecodable, Text: err.Error()})
			return
		}
		fail := func(text string) {
			v.Fail(evidence.Problem{Device: pe.Device, Seq: pe.Seq, ID: pe.ID, Where: where, Code: evidence.CodeAltered, Text: text})
		}
		if pe.Hash != e.Hash {
			fail("the row's hash column is not the hash of its payload: the payload was edited after it was journaled")
		}
		var diff []string
		if pe.Device != e.Device {
			diff = append(diff, fmt.Sprintf("device %q (payload: %q)", e.Device, pe.Device))
		}
		if pe.Seq != e.Seq {
			diff = append(diff, fmt.Sprintf("seq %d (payload: %d)", e.Seq, pe.Seq))
		}
		if pe.ID != e.RecordID {
			diff = append(diff, fmt.Sprintf("id %q (payload: %q)", e.RecordID, pe.ID))
		}
		if pe.Kind() != string(e.Kind) {
			diff = append(diff, fmt.Sprintf("kind %q (payload: %q)", e.Kind, pe.Kind()))
		}
		if len(diff) > 0 {
			fail("the row's columns disagree with its payload: " + strings.Join(diff, ", ") + ": the row was edited")
		}
		v.Add(pe)
	})
}

// walkChunk is how many journal entries go to one worker at a time.
const walkChunk = 256

// walkJournal reads every entry of r and hands each, parsed and its
// signature prechecked, to add, in journal order. Parsing and Ed25519
// checks, most of verify's work, run on every CPU; the walk itself, which
// depends on the order, runs here.
func walkJournal(ctx context.Context, r *journal.Reader, precheck func(*evidence.Entry), add func(journal.Entry, evidence.Entry, error)) error {
	type chunk struct {
		in   []journal.Entry
		out  []evidence.Entry
		errs []error
		done chan struct{}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	work := make(chan *chunk)
	ordered := make(chan *chunk, 2*runtime.GOMAXPROCS(0))
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for c := range work {
				for i, e := range c.in {
					c.out[i], c.errs[i] = evidence.ParseEntry(e.Payload, e.Signature, fmt.Sprintf("journal entry %d", e.ID))
					if c.errs[i] == nil {
						precheck(&c.out[i])
					}
				}
				close(c.done)
			}
		})
	}
	var scanErr error
	wg.Go(func() {
		defer close(ordered)
		defer close(work)
		pending := make([]journal.Entry, 0, walkChunk)
		send := func() bool {
			c := &chunk{in: pending, out: make([]evidence.Entry, len(pending)), errs: make([]error, len(pending)), done: make(chan struct{})}
			pending = make([]journal.Entry, 0, walkChunk)
			select {
			case ordered <- c:
			case <-ctx.Done():
				return false
			}
			select {
			case work <- c:
				return true
			case <-ctx.Done():
				return false
			}
		}
		scanErr = r.Scan(ctx, journal.Filter{}, func(e journal.Entry) error {
			if pending = append(pending, e); len(pending) == walkChunk && !send() {
				return ctx.Err()
			}
			return nil
		})
		if scanErr == nil && len(pending) > 0 {
			send()
		}
	})
	for c := range ordered {
		select {
		case <-c.done:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		for i, e := range c.in {
			add(e, c.out[i], c.errs[i])
		}
	}
	cancel()
	for range ordered { // let the reader see the cancellation
	}
	wg.Wait()
	return scanErr
}

// verifyCapture walks a capture of MQTT messages.
func verifyCapture(v *evidence.Verifier, path string, stdin io.Reader, keysGiven bool) error {
	in := stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		in = f
	}
	c, err := evidence.ReadCapture(in)
	if err != nil {
		return fmt.Errorf("reading %s: %w", path, err)
	}
	if !keysGiven {
		for _, k := range c.Keys {
			v.Trust(k.Key, fmt.Sprintf("from the key message at %s of the capture: give --key with a copy obtained apart from the broker to rule out a forged key message", k.Where))
		}
	}
	for _, p := range c.Problems {
		v.Fail(p)
	}
	v.Skip(c.Skipped)
	v.AddAll(c.Entries)
	return nil
}
