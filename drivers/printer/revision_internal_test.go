package printer

import (
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// TestPlanCopy walks the supersede rules of docs/printer.md.
func TestPlanCopy(t *testing.T) {
	at := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	rec := func(endSeen bool, result protocol.Result, samples int, raw string) *protocol.CycleRecord {
		r := &protocol.CycleRecord{ID: "dax:ac1:7", Cycle: 7, Program: "134", StartedAt: at, EndedAt: at.Add(time.Hour),
			EndSeen: endSeen, Complete: endSeen, Result: result, Raw: []byte(raw)}
		for range samples {
			r.Samples = append(r.Samples, protocol.Sample{})
		}
		return r
	}
	complete := rec(true, protocol.ResultPassed, 4, "whole")
	cut := rec(false, protocol.ResultUnknown, 1, "cut")
	longerCut := rec(false, protocol.ResultUnknown, 3, "longer cut")
	failed := rec(true, protocol.ResultFailed, 4, "whole, failed")
	endNoVerdict := rec(true, protocol.ResultUnknown, 4, "end without verdict")
	r2 := rec(false, protocol.ResultUnknown, 2, "cut again")
	r2.ID, r2.Revision = "dax:ac1:7:r2", 2
	pruned := &protocol.CycleRecord{ID: "dax:ac1:7", Cycle: 7, Result: protocol.ResultUnknown}
	cases := []struct {
		name      string
		prev, rec *protocol.CycleRecord
		skip      bool
		revision  int
		conflict  bool
	}{
		{"first", nil, cut, false, 0, false},
		{"same bytes", cut, rec(false, protocol.ResultUnknown, 1, "cut"), true, 0, false},
		{"complete after cut", cut, complete, false, 2, false},
		{"longer cut after cut", cut, longerCut, false, 2, false},
		{"shorter cut after longer cut", longerCut, cut, true, 0, false},
		{"reprint of complete", complete, rec(true, protocol.ResultPassed, 4, "DUPLICATA whole"), true, 0, false},
		{"cut copy of complete", complete, cut, true, 0, false},
		{"complete disagrees with complete", complete, failed, false, 2, true},
		{"verdict after end without verdict", endNoVerdict, complete, false, 2, false},
		{"after revision 2", r2, complete, false, 3, false},
		{"pruned earlier record", pruned, cut, false, 2, false},
	}
	for _, tc := range cases {
		p := planCopy(tc.prev, tc.rec)
		if p.skip != tc.skip || p.revision != tc.revision || (p.conflict != "") != tc.conflict {
			t.Errorf("%s: plan %+v; want skip %v revision %d conflict %v", tc.name, p, tc.skip, tc.revision, tc.conflict)
		}
		if p.revision > 1 && p.supersedes != tc.prev.ID {
			t.Errorf("%s: supersedes %q, want %q", tc.name, p.supersedes, tc.prev.ID)
		}
	}
}
