package archive

import (
	"testing"

	"github.com/sterigate/sterigate/protocol/evidence"
)

// FuzzParse: whatever arrives on an entry topic, parse returns an entry or
// an alarm that names the problem, never both, never a panic; an entry is
// of the topic's site and device and carries a seq.
func FuzzParse(f *testing.F) {
	c := newChain(f, "dax", "gw1", "ac1", 1)
	for _, kind := range []string{"cycle", "event", "telemetry"} {
		m := c.next(kind, nil)
		f.Add(m.Topic, m.Payload)
	}
	f.Add("sterigate/dax/ac1/cycle", []byte(`{"sig":{"key":"00","ed25519":"x"},`))
	f.Add("sterigate/dax/ac1/event", []byte(`{"schema":"sterigate.event.v1","id":"x","device":"ac1","seq":1,"site":"lyon","gateway":"g"}`))
	f.Fuzz(func(t *testing.T, topic string, payload []byte) {
		en, alarm := parse(Message{Topic: topic, Payload: payload}, testRoot)
		if (en == nil) == (alarm == nil) {
			t.Fatalf("entry %v and alarm %v", en, alarm)
		}
		if alarm != nil {
			if alarm.Code != evidence.CodeUndecodable || alarm.Text == "" {
				t.Fatalf("alarm %+v", alarm)
			}
			return
		}
		site, device, kind := topicParts(testRoot, topic)
		if en.site != site || en.e.Device != device || en.e.Kind() != kind || en.e.Seq == 0 || en.gateway == "" {
			t.Fatalf("entry of site %q device %q seq %d on topic %q", en.site, en.e.Device, en.e.Seq, topic)
		}
	})
}
