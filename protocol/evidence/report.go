package evidence

import (
	"fmt"
	"io"
	"strings"
)

// WriteText prints r for people: one summary line per device, the keys,
// then the problems of each failed device and the notes.
func (r Report) WriteText(w io.Writer) error {
	var b strings.Builder
	for _, d := range r.Devices {
		fmt.Fprintf(&b, "%s: ", d.Device)
		if d.OK {
			b.WriteString("ok: ")
		} else {
			fmt.Fprintf(&b, "FAILED (%s): ", plural(d.ProblemCount, "problem", "problems"))
		}
		if d.Entries == 0 {
			b.WriteString("no entries")
		} else {
			fmt.Fprintf(&b, "seq %s, %s (%s, %s, %s), %s checked", rangeText(d.FirstSeq, d.LastSeq),
				plural(d.Entries, "entry", "entries"), plural(d.Cycles, "cycle record", "cycle records"),
				plural(d.Events, "event", "events"), plural(d.Telemetry, "telemetry batch", "telemetry batches"),
				plural(d.Signed, "signature", "signatures"))
			if len(d.Keys) > 0 {
				fmt.Fprintf(&b, " (key %s)", strings.Join(d.Keys, ", "))
			}
		}
		if d.Redeliveries > 0 {
			fmt.Fprintf(&b, ", %s", plural(d.Redeliveries, "redelivered copy", "redelivered copies"))
		}
		if d.FirstBad != nil {
			fmt.Fprintf(&b, "; first bad entry: %s", d.FirstBad)
		}
		b.WriteString("\n")
	}
	if len(r.Devices) == 0 {
		b.WriteString("no journal entries found\n")
	}
	if len(r.Keys) == 0 {
		b.WriteString("keys: none trusted: no signature can be checked (give --key)\n")
	}
	for _, k := range r.Keys {
		fmt.Fprintf(&b, "key %s: %s; verified %s\n", k.Key, k.Origin, plural(k.Signed, "signature", "signatures"))
	}
	for _, p := range r.Problems {
		fmt.Fprintf(&b, "%s\n", p)
	}
	for _, d := range r.Devices {
		if d.OK {
			continue
		}
		fmt.Fprintf(&b, "\n%s problems:\n", d.Device)
		for _, p := range d.Problems {
			fmt.Fprintf(&b, "  %s\n", p)
		}
		if more := d.ProblemCount - len(d.Problems); more > 0 {
			fmt.Fprintf(&b, "  … and %d more\n", more)
		}
	}
	notes := false
	for _, d := range r.Devices {
		lines := d.Notes
		if d.Uncovered != nil {
			lines = append(lines, fmt.Sprintf("%s: %s that no signature covers yet (the gateway signs a checkpoint at least every 60 s and when it stops)",
				seqText(d.Uncovered.From, d.Uncovered.To), plural(d.UncoveredEntries, "telemetry batch", "telemetry batches")))
		}
		for _, g := range d.Gaps {
			lines = append(lines, fmt.Sprintf("%s: telemetry thinned by the journal quota (a gap event says so)", seqText(g.From, g.To)))
		}
		for _, n := range lines {
			if !notes {
				b.WriteString("\nnotes:\n")
				notes = true
			}
			fmt.Fprintf(&b, "  %s: %s\n", d.Device, n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}
