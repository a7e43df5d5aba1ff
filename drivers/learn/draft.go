package learn

import (
	"bytes"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/sterigate/sterigate/drivers/profile"
)

// DraftOptions labels a draft profile.
type DraftOptions struct {
	Name   string // profile name; default "learned-unit<N>"
	Source string // where the recording is, for the header comment
}

var (
	profileName = regexp.MustCompile(`^[^\s/\\]+$`)
	changedTo   = regexp.MustCompile(`→ (\d+)`)
)

// ErrIncomplete is returned (wrapped) by Draft when required roles are
// missing: the draft is still written, for a person to finish.
var ErrIncomplete = errors.New("the draft is incomplete")

// Draft writes the analysis result as a profile (docs/profiles.md), every
// field with its evidence as a comment and "# check" where a person must
// confirm it. A complete draft is parsed back with drivers/profile before
// it is returned, and its read blocks are checked to stay inside what the
// device answered; an incomplete one comes with an error wrapping
// ErrIncomplete that names what is missing.
func Draft(res *Result, rec *Recording, opts DraftOptions) ([]byte, error) {
	if opts.Name == "" {
		opts.Name = fmt.Sprintf("learned-unit%d", rec.Header.Unit)
	}
	if !profileName.MatchString(opts.Name) {
		return nil, fmt.Errorf("profile name %q must be one word without spaces or slashes", opts.Name)
	}
	readable := recordedRanges(rec.Header.Blocks)
	maxRegs := 125
	if rec.Header.Scan != nil && rec.Header.Scan.MaxRegisters > 0 {
		maxRegs = max(4, min(125, rec.Header.Scan.MaxRegisters))
	}
	var text []byte
	for gap := profile.DefaultMaxGap; gap >= 0; gap-- {
		text = writeDraft(res, rec, opts, gap, maxRegs, readable)
		if !res.Complete() {
			return text, fmt.Errorf("%w: %s", ErrIncomplete, strings.Join(res.Missing, "; "))
		}
		p, err := profile.Parse(opts.Name+".yaml", text)
		if err != nil {
			return text, fmt.Errorf("the draft does not parse (a bug in sterigate learn, please report it): %w", err)
		}
		if outside := blocksOutside(p.Blocks, readable); outside == "" {
			return text, nil
		} else if gap == 0 {
			return text, fmt.Errorf("the draft would read %s, which the device did not answer (a bug in sterigate learn, please report it)", outside)
		}
	}
	return text, nil
}

// recordedRanges merges the recording's blocks into readable ranges.
func recordedRanges(blocks []Block) []Range {
	var rs []Range
	for _, b := range blocks {
		rs = append(rs, Range{Function: b.Function, Start: int(b.Start), End: b.End()})
	}
	return mergeRanges(rs)
}

// blocksOutside names the first block that reads an address outside the
// readable ranges, or returns "".
func blocksOutside(blocks []profile.Block, readable []Range) string {
	for _, b := range blocks {
		inside := false
		for _, r := range readable {
			if r.Function == b.Function && int(b.Start) >= r.Start && int(b.Start)+int(b.Count) <= r.End {
				inside = true
				break
			}
		}
		if !inside {
			return fmt.Sprintf("function %d addresses %d-%d", b.Function, b.Start, int(b.Start)+int(b.Count)-1)
		}
	}
	return ""
}

func writeDraft(res *Result, rec *Recording, opts DraftOptions, maxGap, maxRegs int, readable []Range) []byte {
	var b bytes.Buffer
	h := rec.Header
	fmt.Fprintf(&b, "# Draft profile written by 'sterigate learn' from one recorded cycle.\n")
	fmt.Fprintf(&b, "# Device: %s, unit %d; recording started %s", h.Device, h.Unit, h.StartedAt.UTC().Format("2006-01-02 15:04:05 UTC"))
	if opts.Source != "" {
		fmt.Fprintf(&b, " (%s)", opts.Source)
	}
	fmt.Fprintf(&b, ";\n# %d samples over %s, %d registers/bits watched, %d changed.\n", res.Samples, clock(res.Seconds), res.Registers, res.Changed)
	b.WriteString("# Each field says how it was found and how sure learn is. Confirm every line\n" +
		"# marked \"# check\" against the device's display or manual, then run\n" +
		"# 'sterigate check' and one cycle (docs/learn.md, \"Finishing the draft\").\n")
	if !res.Complete() {
		b.WriteString("#\n# INCOMPLETE: 'sterigate check' refuses this file until you add what is missing:\n")
		for _, m := range res.Missing {
			comment(&b, "", "  - "+m)
		}
	}
	fmt.Fprintf(&b, "name: %s\n", opts.Name)
	fmt.Fprintf(&b, "description: %s\n", yamlString(fmt.Sprintf("drafted by sterigate learn from %s unit %d; check before use", h.Device, h.Unit)))
	b.WriteString("\nread:\n")
	gapWhy := "read through at most this many unused registers"
	if maxGap < profile.DefaultMaxGap {
		gapWhy = "lowered so that no request reads an address the device refused (exception 2)"
	}
	fmt.Fprintf(&b, "  max_gap: %d  # %s\n", maxGap, gapWhy)
	regWhy := "registers per request"
	if maxRegs < 125 {
		regWhy = "the device refused larger requests"
	}
	fmt.Fprintf(&b, "  max_registers: %d  # %s\n", maxRegs, regWhy)

	b.WriteString("\nfields:\n")
	for _, f := range res.Findings {
		title := strings.ReplaceAll(f.Name, "_", " ")
		if f.Role != "" {
			title += " (role " + string(f.Role) + ")"
		}
		fmt.Fprintf(&b, "  # %s, confidence %s:\n", title, f.Confidence)
		comment(&b, "  ", f.Evidence)
		fmt.Fprintf(&b, "  %s: %s", f.Name, fieldYAML(f))
		if f.Check {
			b.WriteString("  # check")
		}
		b.WriteByte('\n')
	}
	if len(res.Findings) == 0 {
		b.WriteString("  {}\n")
	}

	b.WriteString("\nroles:\n")
	roles := 0
	for _, f := range res.Findings {
		if f.Role != "" {
			fmt.Fprintf(&b, "  %s: %s\n", f.Role, f.Name)
			roles++
		}
	}
	if roles == 0 {
		b.WriteString("  {}\n")
	}

	if len(res.PhaseCodes) > 0 {
		b.WriteString("\n# Phase codes seen during the recording, named by what temperature and\n" +
			"# pressure did meanwhile. Codes the device has but did not show in this\n" +
			"# cycle (fault, leak test, …) are missing: add them from the manual.\n")
		b.WriteString("phases:\n")
		codes := append([]PhaseCode(nil), res.PhaseCodes...)
		sort.SliceStable(codes, func(i, j int) bool { return codes[i].Code < codes[j].Code })
		for _, pc := range codes {
			line := fmt.Sprintf("  %d: %s", pc.Code, pc.Phase)
			why := fmt.Sprintf("%s; seen %.0f s", pc.Evidence, pc.Seconds)
			if pc.Conflicts != "" {
				why += "; " + pc.Conflicts
			}
			fmt.Fprintf(&b, "%-26s # %s", line, why)
			if pc.Check {
				b.WriteString("  # check")
			}
			b.WriteByte('\n')
		}
	}
	if f := res.Find(profile.RoleProgram); f != nil {
		b.WriteString("\n# The program run while learning; name it (programs: {CODE: name}):\n")
		fmt.Fprintf(&b, "# programs: {%s: my-program}\n", lastCodeOf(f.Evidence))
	}
	if f := res.Find(profile.RoleLastResult); f != nil {
		b.WriteString("\n# The verdict code the device latched after the cycle; map every code from\n" +
			"# the manual (passed, failed, aborted, unknown):\n")
		fmt.Fprintf(&b, "# results: {%s: passed}\n", lastCodeOf(f.Evidence))
	}
	if res.CycleEnd != "" {
		b.WriteString("\n")
		comment(&b, "", res.CycleEndEvidence)
		if res.CycleEnd == profile.EndOnPhaseEnters {
			names := make([]string, len(res.CycleEndPhases))
			for i, p := range res.CycleEndPhases {
				names[i] = string(p)
			}
			fmt.Fprintf(&b, "cycle_end: {on: %s, phases: [%s]}\n", res.CycleEnd, strings.Join(names, ", "))
		} else {
			fmt.Fprintf(&b, "cycle_end: {on: %s}\n", res.CycleEnd)
		}
	}
	if len(res.Notes) > 0 || len(res.Unexplained) > 0 {
		b.WriteString("\n# Notes:\n")
		for _, n := range res.Notes {
			comment(&b, "", "- "+n)
		}
		if len(res.Unexplained) > 0 {
			b.WriteString("# - registers that changed but were not identified (see them with 'sterigate probe'):\n")
			for i, u := range res.Unexplained {
				if i == 30 {
					fmt.Fprintf(&b, "#     … and %d more\n", len(res.Unexplained)-30)
					break
				}
				fmt.Fprintf(&b, "#     %s\n", u)
			}
		}
	}
	return b.Bytes()
}

// lastCodeOf pulls the value a code register changed to out of its
// evidence ("changed 0 → 3 …").
func lastCodeOf(evidence string) string {
	if m := changedTo.FindStringSubmatch(evidence); m != nil {
		return m[1]
	}
	return "N"
}

func fieldYAML(f Finding) string {
	parts := []string{fmt.Sprintf("function: %d", f.Function), fmt.Sprintf("address: %d", f.Address), "type: " + string(f.Type)}
	if f.Order != "" && f.Order != profile.OrderABCD {
		parts = append(parts, "order: "+string(f.Order))
	}
	if f.Scale != 0 && f.Scale != 1 {
		parts = append(parts, "scale: "+number(f.Scale))
	}
	if f.Offset != 0 {
		parts = append(parts, "offset: "+number(f.Offset))
	}
	if f.Unit != "" {
		parts = append(parts, "unit: "+yamlString(f.Unit))
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// number writes a scale or offset with ten significant digits: enough for
// a °F conversion to stay within a millikelvin.
func number(v float64) string { return strconv.FormatFloat(v, 'g', 10, 64) }

func yamlString(s string) string { return strconv.Quote(s) }

// comment writes text as YAML comment lines of at most about 100
// characters, each starting with indent and "# ".
func comment(b *bytes.Buffer, indent, text string) {
	words := strings.Fields(text)
	line := ""
	flush := func() {
		if line != "" {
			fmt.Fprintf(b, "%s# %s\n", indent, line)
			line = ""
		}
	}
	for _, w := range words {
		if line != "" && len(line)+1+len(w) > 96-len(indent) {
			flush()
			line = "  " + w // continuation
			continue
		}
		if line == "" {
			line = w
		} else {
			line += " " + w
		}
	}
	flush()
}
