package evidence

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
)

// CapturedKey is a key message found in a capture.
type CapturedKey struct {
	Key   PublicKey
	Where string
}

// Capture is what a capture of a gateway's MQTT messages holds.
type Capture struct {
	Entries []Entry
	Keys    []CapturedKey
	// Problems are lines that could not be read.
	Problems []Problem
	// Skipped counts messages that are not journal entries nor key
	// messages (statuses).
	Skipped int
}

// maxLine bounds one captured line: a cycle record of a whole day at 1 Hz
// is a few MB.
const maxLine = 64 << 20

// ReadCapture reads a capture of MQTT messages, one per line, in any of
// the forms mosquitto_sub prints:
//
//   - `topic payload` (mosquitto_sub -v);
//   - the payload alone (mosquitto_sub without -v);
//   - a JSON object with "topic" and the payload as a JSON string in
//     "payload" (mosquitto_sub -F %j).
//
// The payload is kept byte for byte; the replay marker and the signature
// member are taken off (Unwrap). It returns an error only when r fails;
// unreadable lines are Problems.
func ReadCapture(r io.Reader) (*Capture, error) {
	c := &Capture{}
	br := bufio.NewReaderSize(r, 64<<10)
	for n := 1; ; n++ {
		line, err := br.ReadBytes('\n')
		if len(line) > maxLine {
			c.Problems = append(c.Problems, Problem{Where: fmt.Sprintf("line %d", n), Code: CodeUndecodable, Text: fmt.Sprintf("%d bytes is longer than a message can be", len(line))})
		} else if len(bytes.TrimSpace(line)) > 0 {
			c.add(n, bytes.TrimRight(line, "\r\n"))
		}
		if errors.Is(err, io.EOF) {
			return c, nil
		}
		if err != nil {
			return c, err
		}
	}
}

func (c *Capture) add(n int, line []byte) {
	where := fmt.Sprintf("line %d", n)
	fail := func(format string, args ...any) {
		c.Problems = append(c.Problems, Problem{Where: where, Code: CodeUndecodable, Text: fmt.Sprintf(format, args...)})
	}
	topic, msg, err := ParseCaptureLine(line)
	if err != nil {
		fail("%v", err)
		return
	}
	u, err := Unwrap(msg)
	if err != nil {
		fail("%v", err)
		return
	}
	var probe struct {
		Schema string `json:"schema"`
	}
	if err := json.Unmarshal(u.Payload, &probe); err != nil {
		if topic != "" && !isEntryTopic(topic) {
			c.Skipped++ // not ours to judge: something else under the same filter
			return
		}
		fail("the payload is not a JSON object: %v", err)
		return
	}
	switch {
	case probe.Schema == KeySchema:
		var m KeyMessage
		if err := json.Unmarshal(u.Payload, &m); err != nil {
			fail("key message: %v", err)
			return
		}
		pk, err := m.PublicKeyOf()
		if err != nil {
			fail("%v", err)
			return
		}
		c.Keys = append(c.Keys, CapturedKey{Key: pk, Where: where})
		return
	case probe.Schema == "":
		c.Skipped++ // a device or gateway status
		return
	}
	e, err := ParseEntry(u.Payload, u.Sig, where)
	if err != nil {
		if e.Kind() == "" {
			c.Skipped++ // another schema
			return
		}
		fail("%v", err)
		return
	}
	c.Entries = append(c.Entries, e)
}

// isEntryTopic reports whether a topic is a device's cycle, event or
// telemetry topic.
func isEntryTopic(topic string) bool {
	return strings.HasSuffix(topic, "/cycle") || strings.HasSuffix(topic, "/event") || strings.HasSuffix(topic, "/telemetry")
}

// ParseCaptureLine returns the topic ("" when the line has none) and the
// message of one captured line.
func ParseCaptureLine(line []byte) (topic string, msg []byte, err error) {
	if len(line) == 0 {
		return "", nil, errors.New("empty line")
	}
	if line[0] != '{' {
		// mosquitto_sub -v: the topic, one space, the payload. A topic
		// may hold spaces; a sterigate payload starts with "{".
		i := bytes.Index(line, []byte(" {"))
		if i <= 0 {
			return "", nil, errors.New(`neither "topic payload" (mosquitto_sub -v) nor a JSON payload`)
		}
		return string(line[:i]), line[i+1:], nil
	}
	// A JSON object: a payload, or mosquitto_sub -F %j's wrapper.
	var wrapper struct {
		Topic   *string         `json:"topic"`
		Payload json.RawMessage `json:"payload"`
		Schema  *string         `json:"schema"`
	}
	if json.Unmarshal(line, &wrapper) != nil || wrapper.Topic == nil || wrapper.Payload == nil || wrapper.Schema != nil {
		return "", line, nil
	}
	var payload string
	if err := json.Unmarshal(wrapper.Payload, &payload); err != nil {
		return *wrapper.Topic, nil, errors.New(`"payload" is not a JSON string: a capture made with mosquitto_sub -F %J re-serializes the payload, so its hash cannot be checked; capture with -v or -F %j`)
	}
	return *wrapper.Topic, []byte(payload), nil
}

// AddAll walks entries given in any order, as a capture holds them: it
// trusts the keys that rotations signed by trusted keys name, sorts each
// device's entries by seq, counts identical copies as redeliveries and
// reports different entries with one seq.
func (v *Verifier) AddAll(entries []Entry) {
	v.TrustRotations(entries)
	sorted := make([]Entry, len(entries))
	copy(sorted, entries)
	sort.SliceStable(sorted, func(i, j int) bool {
		if sorted[i].Device != sorted[j].Device {
			return sorted[i].Device < sorted[j].Device
		}
		return sorted[i].Seq < sorted[j].Seq
	})
	for i := 0; i < len(sorted); {
		j := i + 1
		for j < len(sorted) && sorted[j].Device == sorted[i].Device && sorted[j].Seq == sorted[i].Seq {
			j++
		}
		v.addCopies(sorted[i:j])
		i = j
	}
}

// addCopies walks one seq of a device received one or more times.
func (v *Verifier) addCopies(copies []Entry) {
	keep := copies[0]
	for _, e := range copies[1:] {
		if e.Hash != keep.Hash && v.signatureChecks(e) && !v.signatureChecks(keep) {
			keep = e // the copy the gateway signed, when only one is
		}
	}
	v.Add(keep)
	c := v.chain(keep.Device)
	for _, e := range copies {
		if e.Where == keep.Where {
			continue
		}
		switch {
		case e.Hash != keep.Hash:
			v.ConflictingDuplicate(keep, e)
		case !sameSig(e.Sig, keep.Sig) && e.Sig != nil && !v.signatureChecks(e):
			c.fail(Problem{Seq: e.Seq, ID: e.ID, Where: e.Where, Code: CodeBadSignature,
				Text: fmt.Sprintf("this copy carries a signature that does not check (key %s), unlike %s", e.Sig.Key, keep.Where)})
		default:
			c.redeliveries++
		}
	}
}

func (v *Verifier) signatureChecks(e Entry) bool {
	if e.Sig == nil {
		return false
	}
	k, ok := v.keys[e.Sig.Key]
	return ok && Check(k.key.Key, e.Hash, *e.Sig)
}

func sameSig(a, b *Signature) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Key == b.Key && bytes.Equal(a.Ed25519, b.Ed25519)
}
