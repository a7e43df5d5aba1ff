package printer

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/sterigate/sterigate/protocol"
)

// copyPlan says what to do with a printed report of a cycle, given the
// newest record already journaled for it (docs/printer.md, "Reprints and
// revisions").
type copyPlan struct {
	// skip: the report adds nothing to what is journaled; it is logged and
	// counted as a reprint, not journaled again.
	skip bool
	// why says, for the log, why the report is skipped or supersedes.
	why string
	// revision and supersedes are set on a record that replaces an
	// earlier one: 2, 3, … and the earlier record's id.
	revision   int
	supersedes string
	// conflict, when set, says how two complete printouts of the same
	// cycle disagree: both are kept and a gateway alarm raised.
	conflict string
}

// planCopy applies the supersede rules. A record is final when its end
// line was printed and seen and it carries a verdict; only a copy that is
// more complete than a record that is not final replaces it, and a final
// record is replaced only by a final copy that disagrees with it (then a
// person must look: the alarm says so). Everything else is a reprint.
func planCopy(prev, rec *protocol.CycleRecord) copyPlan {
	if prev == nil {
		return copyPlan{}
	}
	next := copyPlan{revision: max(prev.Revision, 1) + 1, supersedes: prev.ID}
	switch {
	case prev.Raw != nil && bytes.Equal(prev.Raw, rec.Raw):
		return copyPlan{skip: true, why: "the same printout as the journaled record, byte for byte"}
	case final(prev) && final(rec):
		if d := disagreement(prev, rec); d != "" {
			next.why = "a complete printout that disagrees with the journaled one"
			next.conflict = d
			return next
		}
		return copyPlan{skip: true, why: "a reprint of a cycle already journaled complete"}
	case final(prev):
		return copyPlan{skip: true, why: "a partial copy of a cycle already journaled complete"}
	case moreComplete(rec, prev):
		next.why = "more complete than the journaled record"
		return next
	}
	return copyPlan{skip: true, why: "no more complete than the journaled record"}
}

// final says the record is as good as a printout gets: end printed and
// seen, verdict read.
func final(r *protocol.CycleRecord) bool {
	return r.EndSeen && r.Complete && r.Result != protocol.ResultUnknown
}

// completeness orders copies of one cycle: the end seen first, then
// complete, then a verdict, then how much was read.
func completeness(r *protocol.CycleRecord) [4]int {
	one := func(b bool) int {
		if b {
			return 1
		}
		return 0
	}
	return [4]int{one(r.EndSeen), one(r.Complete), one(r.Result != protocol.ResultUnknown),
		len(r.Phases) + len(r.Samples) + len(r.Alarms)}
}

func moreComplete(a, b *protocol.CycleRecord) bool {
	ca, cb := completeness(a), completeness(b)
	for i := range ca {
		if ca[i] != cb[i] {
			return ca[i] > cb[i]
		}
	}
	return false
}

// disagreement names what two complete printouts of a cycle say
// differently, or "".
func disagreement(a, b *protocol.CycleRecord) string {
	var d []string
	if a.Result != b.Result {
		d = append(d, fmt.Sprintf("result %s, now %s", a.Result, b.Result))
	}
	if a.Program != b.Program {
		d = append(d, fmt.Sprintf("program %q, now %q", a.Program, b.Program))
	}
	if !a.StartedAt.Equal(b.StartedAt) {
		d = append(d, fmt.Sprintf("started %s, now %s", a.StartedAt.UTC().Format("2006-01-02T15:04:05Z"), b.StartedAt.UTC().Format("2006-01-02T15:04:05Z")))
	}
	if !a.EndedAt.Equal(b.EndedAt) {
		d = append(d, fmt.Sprintf("ended %s, now %s", a.EndedAt.UTC().Format("2006-01-02T15:04:05Z"), b.EndedAt.UTC().Format("2006-01-02T15:04:05Z")))
	}
	return strings.Join(d, "; ")
}
