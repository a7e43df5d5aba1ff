package evidence

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/sterigate/sterigate/protocol"
)

// FuzzReadCapture: no capture makes the reader or the verifier panic or
// loop, the same capture always gives the same report, and a report is
// OK only when it lists no problem.
func FuzzReadCapture(f *testing.F) {
	s := seeded(f, 1)
	b := &chainBuilder{t: f, device: "ac-1", signer: s}
	b.event(protocol.Event{Kind: protocol.EventOnline})
	b.tele()
	b.cycle()
	var lines bytes.Buffer
	key, _ := json.Marshal(s.Public().Message("gw", "dax"))
	fmt.Fprintf(&lines, "sterigate/dax/gateway/gw/key %s\n", key)
	for i, e := range b.out {
		msg := Published(b.raw[i], e.Sig, i == 0)
		fmt.Fprintf(&lines, "sterigate/dax/ac-1/x %s\n", msg)
		if i == 1 {
			j, _ := json.Marshal(map[string]any{"topic": "sterigate/dax/ac-1/telemetry", "payload": string(msg)})
			fmt.Fprintf(&lines, "%s\n", j)
		}
	}
	f.Add(lines.Bytes())
	f.Add(b.raw[2])
	f.Add([]byte(`{"topic":"t","payload":{"schema":"sterigate.event.v1"}}` + "\n" + `t {"sig":{"key":"0123456789abcdef","ed25519":""}}`))
	f.Add([]byte("a b {\n{\"schema\":\"sterigate.cycle.v1\",\"device\":\"d\",\"seq\":1}\r\n\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		report := func() []byte {
			c, err := ReadCapture(bytes.NewReader(data))
			if err != nil {
				t.Fatalf("ReadCapture of a bytes.Reader failed: %v", err)
			}
			v := NewVerifier(Options{})
			v.Trust(s.Public(), "fuzz")
			for _, k := range c.Keys {
				v.Trust(k.Key, k.Where)
			}
			for _, p := range c.Problems {
				v.Fail(p)
			}
			v.AddAll(c.Entries)
			r := v.Report()
			problems := len(r.Problems)
			for _, d := range r.Devices {
				problems += d.ProblemCount
				if d.OK != (d.ProblemCount == 0) {
					t.Fatalf("device %s: ok %v with %d problems", d.Device, d.OK, d.ProblemCount)
				}
			}
			if r.OK != (problems == 0) {
				t.Fatalf("report ok %v with %d problems", r.OK, problems)
			}
			var text bytes.Buffer
			r.WriteText(&text)
			out, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			return append(out, text.Bytes()...)
		}
		if a, b := report(), report(); !bytes.Equal(a, b) {
			t.Fatalf("two reports of one capture differ")
		}
	})
}

// FuzzUnwrap: Unwrap never panics, and undoes Published for any payload
// and signature.
func FuzzUnwrap(f *testing.F) {
	s := seeded(f, 1)
	f.Add([]byte(`{"schema":"x"}`), true, true)
	f.Add([]byte(`{"replay":true,"sig":{"key":"0123456789abcdef","ed25519":"x"},}`), false, true)
	f.Add([]byte(`{`), true, false)
	f.Fuzz(func(t *testing.T, payload []byte, signed, replay bool) {
		Unwrap(payload)
		if len(payload) < 2 || payload[0] != '{' || bytes.HasPrefix(payload[1:], []byte(ReplayMarker)) || bytes.HasPrefix(payload[1:], []byte(`"sig":`)) {
			return // not a journaled payload: the gateway never makes one
		}
		var sig *Signature
		if signed {
			sg := s.Sign(EntryHash(payload))
			sig = &sg
		}
		u, err := Unwrap(Published(payload, sig, replay))
		if err != nil || !bytes.Equal(u.Payload, payload) || u.Replay != replay || (u.Sig != nil) != signed {
			t.Fatalf("Unwrap(Published(%q, signed %v, replay %v)) = %+v, %v", payload, signed, replay, u, err)
		}
	})
}

// FuzzReadHeader: readHeader never panics, and on valid JSON reads what
// encoding/json reads (member names matched exactly: inputs with a
// top-level name that differs from a header field only in case are left
// out, encoding/json would match those too).
func FuzzReadHeader(f *testing.F) {
	b := &chainBuilder{t: f, device: "ac-1", signer: seeded(f, 1)}
	b.cycle()
	b.event(protocol.Event{Kind: protocol.EventGap, FromSeq: 3, ToSeq: 9, Text: "a \"quoted\" é <text>"})
	b.tele()
	for _, raw := range b.raw {
		f.Add(raw)
	}
	f.Add([]byte(`{"seq":1,"seq":2,"x":[{"a":"}"},"]"],"id":"a\u0041\"","schema":null}`))
	f.Add([]byte(` { "seq" : 7 , "device" : "d" } `))
	f.Fuzz(func(t *testing.T, data []byte) {
		var got Header
		errGot := readHeader(data, &got)
		if !utf8.Valid(data) {
			return
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(data, &top) != nil {
			return
		}
		fields := []string{"schema", "id", "device", "seq", "prev_hash", "kind", "from_seq", "to_seq", "covers_seq", "covers_hash", "next_key", "next_public_key"}
		for k := range top {
			for _, f := range fields {
				if k != f && strings.EqualFold(k, f) {
					return
				}
			}
		}
		var want Header
		if json.Unmarshal(data, &want) != nil {
			return
		}
		if errGot != nil || got != want {
			t.Fatalf("readHeader(%s) = %+v, %v; encoding/json reads %+v", data, got, errGot, want)
		}
	})
}
