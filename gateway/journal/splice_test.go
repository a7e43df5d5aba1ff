package journal

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

// spliceMatches checks that splicing the chain fields into a payload
// marshalled without them gives the very bytes a full marshal gives: the
// hash chain depends on it.
func spliceMatches(t *testing.T, site, device, text string, seq uint64, prev string, samples int) {
	tel := protocol.Telemetry{Schema: protocol.TelemetrySchema, Gateway: "gw", Site: site, Device: device, Cycle: seq % 3}
	for i := range samples {
		tel.Samples = append(tel.Samples, protocol.Sample{At: time.Unix(int64(i)*7, 0).UTC(), TempC: float64(i) / 3, PressureKPa: 101.3, Phase: protocol.PhaseName(text)})
	}
	ev := protocol.Event{Schema: protocol.EventSchema, Gateway: "gw", Site: site, Device: device, Kind: protocol.EventAlarm, Text: text, Code: int(seq % 7), At: time.Unix(int64(seq%1e9), 0).UTC()}
	for _, tc := range []struct {
		schema string
		v      any
		set    func(id string)
	}{
		{protocol.TelemetrySchema, &tel, func(id string) { tel.ID, tel.Seq, tel.PrevHash = id, seq, prev }},
		{protocol.EventSchema, &ev, func(id string) { ev.ID, ev.Seq, ev.PrevHash = id, seq, prev }},
	} {
		pre, err := json.Marshal(tc.v)
		if err != nil {
			t.Fatal(err)
		}
		id := fmt.Sprintf("%s:%s:x%d", site, device, seq)
		got, ok := spliceChain(pre, tc.schema, id, seq, prev)
		if !ok {
			t.Fatalf("spliceChain refused %s", pre)
		}
		tc.set(id)
		want, _ := json.Marshal(tc.v)
		if !bytes.Equal(got, want) {
			t.Fatalf("spliced\n%s\nwant\n%s", got, want)
		}
		tc.set("")
		if tc.schema == protocol.TelemetrySchema {
			tel.Seq, tel.PrevHash = 0, ""
		} else {
			ev.Seq, ev.PrevHash = 0, ""
		}
	}
}

func TestSpliceChainMatchesMarshal(t *testing.T) {
	spliceMatches(t, "dax", "ac-1", "", 1, "", 0)
	spliceMatches(t, "dax", "ac-1", "heating", 42, "ab12", 10)
	spliceMatches(t, `si"te<&>`, "dévice\u2028", "tab\tnl\n", 1<<63, "\"x\"", 3)
	if _, ok := spliceChain([]byte(`{"schema":"other","id":"","seq":0}`), protocol.EventSchema, "x", 1, ""); ok {
		t.Fatal("spliceChain accepted a payload of another schema")
	}
}

func FuzzSpliceChainMatchesMarshal(f *testing.F) {
	f.Add("dax", "ac-1", "", uint64(1), "", 2)
	f.Add(`<s>`, "d\"ev", "\x00\xff", uint64(1<<40), "abc", 0)
	f.Fuzz(func(t *testing.T, site, device, text string, seq uint64, prev string, samples int) {
		spliceMatches(t, site, device, text, seq, prev, samples%20)
	})
}
