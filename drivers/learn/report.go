package learn

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/sterigate/sterigate/drivers/profile"
)

// Report is what 'sterigate learn' tells its user at the end, and, as
// JSON (--json), what it tells tools.
type Report struct {
	Device    string       `json:"device"`
	Unit      int          `json:"unit"`
	Scan      *ScanSummary `json:"scan,omitempty"`
	Recording string       `json:"recording,omitempty"` // the recording file
	Stop      string       `json:"stop,omitempty"`      // why the recording ended
	Result    *Result      `json:"result"`
	// Draft is the profile file written; DraftError says what keeps it
	// from being usable as written (missing roles).
	Draft      string `json:"draft,omitempty"`
	DraftError string `json:"draft_error,omitempty"`
}

// WriteJSON writes the report as one JSON object.
func (r *Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteText writes the short human report.
func (r *Report) WriteText(w io.Writer) error {
	res := r.Result
	var b strings.Builder
	fmt.Fprintf(&b, "sterigate learn: %s, unit %d\n", r.Device, r.Unit)
	if s := r.Scan; s != nil {
		regs, bits := s.ReadableCount()
		ranges := make([]string, len(s.Readable))
		for i, rg := range s.Readable {
			ranges[i] = rg.String()
		}
		fmt.Fprintf(&b, "scan:       %d registers and %d bits readable (%s); %d requests in %s\n",
			regs, bits, strings.Join(ranges, ", "), s.Requests, clock(s.Seconds))
		for _, n := range s.Notes {
			fmt.Fprintf(&b, "            %s\n", n)
		}
	}
	fmt.Fprintf(&b, "recording:  %d samples over %s", res.Samples, clock(res.Seconds))
	if r.Recording != "" {
		fmt.Fprintf(&b, " in %s", r.Recording)
	}
	if r.Stop != "" {
		fmt.Fprintf(&b, "; %s", r.Stop)
	}
	fmt.Fprintf(&b, "\n            %d registers/bits watched, %d changed\n", res.Registers, res.Changed)
	if res.Plateau != nil {
		fmt.Fprintf(&b, "cycle:      plateau %.1f °C at %.1f kPa from %s to %s", res.PlateauC, res.PlateauKPa, clock(res.Plateau.From), clock(res.Plateau.To))
		if res.EndSeen {
			fmt.Fprintf(&b, "; end at %s", clock(res.EndAt))
		} else {
			b.WriteString("; its end was not seen")
		}
		b.WriteByte('\n')
	}
	if len(res.Findings) > 0 {
		b.WriteString("found:\n")
		tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
		for _, f := range res.Findings {
			role := string(f.Role)
			if role == "" {
				role = "-"
			}
			how := string(f.Type)
			if f.Order != profile.OrderABCD {
				how += " " + string(f.Order)
			}
			if f.Sent != "" {
				how += ", " + f.Sent
			}
			check := ""
			if f.Check {
				check = "check"
			}
			fmt.Fprintf(tw, "  %s\t%d:%d\t%s\t%s\t%s\t%s\n", f.Name, f.Function, f.Address, how, role, f.Confidence, check)
		}
		tw.Flush()
	}
	if len(res.PhasesSeen) > 0 {
		names := make([]string, len(res.PhasesSeen))
		for i, p := range res.PhasesSeen {
			names[i] = string(p)
		}
		fmt.Fprintf(&b, "phases:     %s\n", strings.Join(names, " → "))
	}
	if res.CycleEnd != "" {
		fmt.Fprintf(&b, "cycle end:  %s (%s)\n", res.CycleEnd, res.CycleEndEvidence)
	}
	for _, m := range res.Missing {
		fmt.Fprintf(&b, "not found:  %s\n", m)
	}
	for _, n := range res.Notes {
		fmt.Fprintf(&b, "note:       %s\n", n)
	}
	if len(res.Unexplained) > 0 {
		fmt.Fprintf(&b, "unexplained: %d changing registers were not identified (listed in the draft)\n", len(res.Unexplained))
	}
	if r.Draft != "" {
		fmt.Fprintf(&b, "draft:      %s", r.Draft)
		checks := 0
		for _, f := range res.Findings {
			if f.Check {
				checks++
			}
		}
		for _, pc := range res.PhaseCodes {
			if pc.Check {
				checks++
			}
		}
		if checks > 0 {
			fmt.Fprintf(&b, " (%d lines marked \"# check\")", checks)
		}
		b.WriteByte('\n')
	}
	if r.DraftError != "" {
		fmt.Fprintf(&b, "            %s\n", r.DraftError)
	}
	_, err := io.WriteString(w, b.String())
	return err
}
