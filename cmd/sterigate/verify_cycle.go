package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
	"github.com/sterigate/sterigate/protocol/verify"
)

func cmdVerifyCycle(_ context.Context, args []string, stdout, stderr io.Writer) error {
	return verifyCycle(args, os.Stdin, stdout, stderr)
}

// verifiedRecord is one record judged again, as --json prints it.
type verifiedRecord struct {
	Line   int             `json:"line"`
	ID     string          `json:"id"`
	Device string          `json:"device"`
	Result protocol.Result `json:"result"`
	// RecordedVerdict is the verdict the record carried; absent when it
	// carried no verification.
	RecordedVerdict string `json:"recorded_verdict,omitempty"`
	Verdict         string `json:"verdict"`
	// Same is whether Verdict equals RecordedVerdict; absent when there is
	// nothing to compare.
	Same         *bool                 `json:"same,omitempty"`
	Verification protocol.Verification `json:"verification"`
}

func verifyCycle(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("verify-cycle", flag.ContinueOnError)
	fs.SetOutput(stderr)
	asJSON := fs.Bool("json", false, "print one JSON object per record (JSON Lines) instead of the table")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `usage: sterigate verify-cycle [--json] FILE|-

Judges cycle records again, without trusting the gateway that made them: by
the criteria each record's verification carries, or, when it has none, by
criteria inferred from its program. Reads JSON records one per line (FILE,
or standard input for -), as mosquitto_sub prints them, with or without -v.
Exits 1 when any verdict differs from the one the record carries. Flags:`)
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 { // flags may follow the file name too
		rest := fs.Args()
		if err := fs.Parse(rest[1:]); err != nil {
			return err
		}
		args = append([]string{rest[0]}, fs.Args()...)
	} else {
		args = nil
	}
	if len(args) != 1 {
		fs.Usage()
		return usageError{fmt.Sprintf("verify-cycle: give one FILE or - for standard input (got %d arguments)", len(args))}
	}
	in, name := stdin, "standard input"
	if args[0] != "-" {
		f, err := os.Open(args[0])
		if err != nil {
			return fmt.Errorf("verify-cycle: %w", err)
		}
		defer f.Close()
		in, name = f, args[0]
	}

	var (
		results  []verifiedRecord
		problems []error
		skipped  int
	)
	r := bufio.NewReader(in)
	for n := 1; ; n++ {
		line, err := r.ReadBytes('\n')
		if len(bytes.TrimSpace(line)) > 0 {
			rec, skip, perr := parseCycleLine(line)
			switch {
			case perr != nil:
				problems = append(problems, fmt.Errorf("%s line %d: %w", name, n, perr))
			case skip:
				skipped++
			default:
				results = append(results, judgeAgain(n, rec))
			}
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("verify-cycle: reading %s: %w", name, err)
		}
	}

	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetEscapeHTML(false)
		for _, v := range results {
			if err := enc.Encode(v); err != nil {
				return err
			}
		}
	} else {
		printVerifyTable(stdout, results, skipped)
	}
	for _, p := range problems {
		fmt.Fprintln(stderr, "verify-cycle:", p)
	}
	var differ []string
	for _, v := range results {
		if v.Same != nil && !*v.Same {
			differ = append(differ, fmt.Sprintf("line %d %s (recorded %s, now %s)", v.Line, v.ID, v.RecordedVerdict, v.Verdict))
		}
	}
	switch {
	case len(differ) > 0:
		return fmt.Errorf("verify-cycle: %d verdict(s) differ from the record: %s", len(differ), strings.Join(differ, "; "))
	case len(problems) > 0:
		return fmt.Errorf("verify-cycle: %d line(s) could not be judged", len(problems))
	case len(results) == 0:
		return fmt.Errorf("verify-cycle: no cycle record in %s", name)
	}
	return nil
}

// parseCycleLine reads one line of mosquitto_sub output: a JSON payload,
// or "topic payload" (-v). Messages of other topics and schemas are
// skipped; a cycle record of a schema version this build does not know is
// a problem, never guessed at.
func parseCycleLine(line []byte) (rec protocol.CycleRecord, skip bool, err error) {
	topic, payload, err := evidence.ParseCaptureLine(bytes.TrimSpace(line))
	if err != nil {
		return rec, false, fmt.Errorf("%v: %q", err, clip(bytes.TrimSpace(line)))
	}
	if topic != "" && !strings.HasSuffix(topic, "/cycle") {
		return rec, true, nil
	}
	var head struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(payload, &head); err != nil {
		return rec, false, fmt.Errorf("not a JSON object: %v", err)
	}
	switch {
	case head.Schema == protocol.CycleSchema:
	case strings.HasPrefix(head.Schema, "sterigate.cycle."):
		return rec, false, fmt.Errorf("schema %q is not %s, which this sterigate reads: not judged", head.Schema, protocol.CycleSchema)
	default:
		return rec, true, nil
	}
	if err := json.Unmarshal(payload, &rec); err != nil {
		return rec, false, fmt.Errorf("cycle record: %v", err)
	}
	return rec, false, nil
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "…"
	}
	return string(b)
}

// judgeAgain runs the check by the record's own criteria, or by inference
// when it carries none.
func judgeAgain(line int, rec protocol.CycleRecord) verifiedRecord {
	var criteria *protocol.Criteria
	out := verifiedRecord{Line: line, ID: rec.ID, Device: rec.Device, Result: rec.Result}
	if rec.Verification != nil {
		criteria = &rec.Verification.Criteria
		out.RecordedVerdict = rec.Verification.Verdict
	}
	out.Verification = verify.Judge(rec, criteria)
	out.Verdict = out.Verification.Verdict
	if out.RecordedVerdict != "" {
		same := out.RecordedVerdict == out.Verdict
		out.Same = &same
	}
	return out
}

func printVerifyTable(w io.Writer, results []verifiedRecord, skipped int) {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "LINE\tID\tDEVICE SAID\tRECORDED\tVERDICT\tSAME\tAGREES\tNOT PASSED")
	counts := map[string]int{}
	disagree := 0
	for _, v := range results {
		counts[v.Verdict]++
		if a := v.Verification.AgreesWithDevice; a != nil && !*a {
			disagree++
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", v.Line, v.ID, v.Result, orDash(v.RecordedVerdict), v.Verdict,
			yesNo(v.Same, "yes", "NO"), yesNo(v.Verification.AgreesWithDevice, "yes", "NO"), notPassed(v.Verification))
	}
	tw.Flush()
	var parts []string
	for _, verdict := range []string{protocol.VerdictPass, protocol.VerdictFail, protocol.VerdictIndeterminate, protocol.VerdictNotApplicable} {
		if counts[verdict] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[verdict], verdict))
		}
	}
	fmt.Fprintf(w, "\n%d record(s): %s; %d disagree with the device", len(results), strings.Join(parts, ", "), disagree)
	if skipped > 0 {
		fmt.Fprintf(w, "; %d other message(s) skipped", skipped)
	}
	fmt.Fprintln(w)
}

func yesNo(b *bool, yes, no string) string {
	switch {
	case b == nil:
		return "-"
	case *b:
		return yes
	}
	return no
}

// notPassed lists the checks that failed or could not show a pass.
func notPassed(v protocol.Verification) string {
	var out []string
	for _, c := range v.Checks {
		if c.Result == protocol.CheckFail || c.Result == protocol.CheckIndeterminate {
			out = append(out, fmt.Sprintf("%s (%s)", c.Name, c.Result))
		}
	}
	switch {
	case len(out) > 0:
		return strings.Join(out, ", ")
	case v.Criteria.Set == verify.SetNone:
		return "no criteria for the program"
	case v.Verdict == protocol.VerdictNotApplicable:
		return "indicator sheet to check"
	}
	return "-"
}
