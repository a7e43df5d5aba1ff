package schema_test

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
	"github.com/sterigate/sterigate/protocol/schema"
)

var update = flag.Bool("update", false, "rewrite the golden examples in testdata/")

// golden compares v, indented, with testdata/name (rewriting it under
// -update), checks that the file decodes back into an equal value, and
// returns its bytes.
func golden[T any](t *testing.T, name string, v T) []byte {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("%s: the payload changed; if deliberate, change its schema and run go test -update:\n%s", name, got)
	}
	var back T
	if err := json.Unmarshal(want, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, v) {
		t.Errorf("%s: round trip differs:\n%+v\n%+v", name, back, v)
	}
	return want
}

// Every golden example, as published on its topic, fits its schema.
func TestGoldenExamplesValidate(t *testing.T) {
	const dev, gw = "sterigate/dax/autoclave-1/", "sterigate/dax/gateway/cssd-gw-1/"
	valid := func(topic, name string, payload []byte) {
		t.Helper()
		if err := schema.Validate(topic, payload); err != nil {
			t.Errorf("%s on %s: %v", name, topic, err)
		}
	}
	cycle, err := os.ReadFile("../testdata/cycle.v1.example.json") // protocol's own golden record
	if err != nil {
		t.Fatal(err)
	}
	valid(dev+"cycle", "cycle.v1.example.json", cycle)
	events := eventExamples()
	for _, kind := range eventKinds(t) {
		name := "event." + kind + ".example.json"
		e, ok := events[name]
		if !ok {
			t.Errorf("no golden example of event kind %s", kind)
			continue
		}
		valid(dev+"event", name, golden(t, name, e))
	}
	valid(dev+"telemetry", "telemetry.example.json", golden(t, "telemetry.example.json", telemetryExample()))
	valid(dev+"status", "device-status.example.json", golden(t, "device-status.example.json", deviceStatusExample()))
	for name, st := range gatewayStatusExamples() {
		valid(gw+"status", name, golden(t, name, st))
	}
	valid(gw+"key", "key.example.json", golden(t, "key.example.json", keyExample()))

	// What the publisher adds in front of a journaled payload (the replay
	// marker, the signature) fits too.
	signer, err := evidence.NewSigner(testKey(), time.Date(2026, 11, 1, 6, 0, 0, 0, time.UTC), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		topic string
		file  string
	}{{dev + "event", "testdata/event.alarm.example.json"}, {dev + "cycle", "../testdata/cycle.v1.example.json"}} {
		b, err := os.ReadFile(p.file)
		if err != nil {
			t.Fatal(err)
		}
		var v any
		if err := json.Unmarshal(b, &v); err != nil {
			t.Fatal(err)
		}
		c, _ := json.Marshal(v) // as journaled: compact
		sig := signer.Sign(evidence.EntryHash(c))
		valid(p.topic, "signed replay of "+p.file, evidence.Published(c, &sig, true))
	}
	telemetry, _ := json.Marshal(telemetryExample())
	valid(dev+"telemetry", "replayed telemetry", evidence.Published(telemetry, nil, true))
}

// eventKinds lists the event kinds the schema knows.
func eventKinds(t *testing.T) []string {
	t.Helper()
	var s struct {
		Properties struct {
			Kind struct {
				Enum []string `json:"enum"`
			} `json:"kind"`
		} `json:"properties"`
	}
	b, _ := schema.File(schema.Event)
	if err := json.Unmarshal(b, &s); err != nil {
		t.Fatal(err)
	}
	return s.Properties.Kind.Enum
}

// A payload that a consumer would misread fails, and the error names the
// member.
func TestValidateRefuses(t *testing.T) {
	const dev = "sterigate/dax/autoclave-1/"
	cases := []struct {
		name, topic, file string
		edit              func(m map[string]any)
		want              string
	}{
		{"renamed member", dev + "telemetry", "telemetry.example.json", func(m map[string]any) { m["sample"] = m["samples"]; delete(m, "samples") }, "sample"},
		{"missing required", dev + "event", "event.alarm.example.json", func(m map[string]any) { delete(m, "seq") }, "seq"},
		{"kind without its member", dev + "event", "event.verification_disagreement.example.json", func(m map[string]any) { delete(m, "record_id") }, "record_id"},
		{"unknown kind", dev + "event", "event.alarm.example.json", func(m map[string]any) { m["kind"] = "alert" }, "kind"},
		{"wrong type", dev + "status", "device-status.example.json", func(m map[string]any) { m["cycle"] = "1043" }, "cycle"},
		{"nested rename", dev + "status", "device-status.example.json", func(m map[string]any) {
			lc := m["last_cycle"].(map[string]any)
			lc["sterigate_verdict"] = lc["verdict"]
			delete(lc, "verdict")
		}, "sterigate_verdict"},
		{"not a date-time", dev + "event", "event.phase.example.json", func(m map[string]any) { m["at"] = "28/11/2026 08:40" }, "date-time"},
		{"other schema version", dev + "event", "event.phase.example.json", func(m map[string]any) { m["schema"] = "sterigate.event.v2" }, "schema"},
		{"state outside the vocabulary", "sterigate/dax/gateway/cssd-gw-1/status", "gateway-status.offline.example.json", func(m map[string]any) { m["state"] = "down" }, "state"},
	}
	for _, c := range cases {
		b, err := os.ReadFile(filepath.Join("testdata", c.file))
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		c.edit(m)
		b, _ = json.Marshal(m)
		err = schema.Validate(c.topic, b)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want one naming %q", c.name, err, c.want)
		}
	}
	if err := schema.Validate("sterigate/dax/autoclave-1/event", []byte(`{"schema":`)); err == nil || !strings.Contains(err.Error(), "not JSON") {
		t.Errorf("truncated payload: err = %v", err)
	}
}

func TestForTopic(t *testing.T) {
	for topic, want := range map[string]string{
		"sterigate/dax/autoclave-1/cycle":        schema.Cycle,
		"sterigate/dax/autoclave-1/telemetry":    schema.Telemetry,
		"sterigate/dax/autoclave-1/event":        schema.Event,
		"sterigate/dax/autoclave-1/status":       schema.DeviceStatus,
		"site-root/dax/gateway/cssd-gw-1/status": schema.GatewayStatus,
		"sterigate/dax/gateway/cssd-gw-1/key":    schema.Key,
	} {
		if got, err := schema.ForTopic(topic); err != nil || got != want {
			t.Errorf("ForTopic(%q) = %q, %v; want %q", topic, got, err, want)
		}
	}
	for _, topic := range []string{"sterigate/dax/autoclave-1/receipt", "sterigate/dax/gateway/status", "sterigate/dax/autoclave-1", "sterigate/dax/gateway/gw/cycle"} {
		if _, err := schema.ForTopic(topic); err == nil || !strings.Contains(err.Error(), topic) {
			t.Errorf("ForTopic(%q): err = %v, want one naming the topic", topic, err)
		}
	}
}

// publisherMembers are members the publisher inserts in front of a
// journaled payload: they have no field in the Go types.
var publisherMembers = []string{"sig"}

// Each schema's properties are exactly the JSON members of its Go type:
// a field added to a protocol struct without its schema fails here first,
// before any end-to-end test publishes it.
func TestSchemasMatchTypes(t *testing.T) {
	for _, c := range []struct {
		file    string
		pointer []string // path to the object schema inside the file
		typ     any
	}{
		{schema.Cycle, nil, protocol.CycleRecord{}},
		{schema.Cycle, []string{"$defs", "phase"}, protocol.Phase{}},
		{schema.Cycle, []string{"$defs", "sample"}, protocol.Sample{}},
		{schema.Cycle, []string{"$defs", "alarm"}, protocol.Alarm{}},
		{schema.Cycle, []string{"$defs", "hole"}, protocol.Hole{}},
		{schema.Cycle, []string{"$defs", "channel"}, protocol.Channel{}},
		{schema.Cycle, []string{"$defs", "extremes"}, protocol.Extremes{}},
		{schema.Cycle, []string{"$defs", "device_figures"}, protocol.DeviceFigures{}},
		{schema.Cycle, []string{"$defs", "verification"}, protocol.Verification{}},
		{schema.Cycle, []string{"$defs", "check"}, protocol.Check{}},
		{schema.Cycle, []string{"$defs", "criteria"}, protocol.Criteria{}},
		{schema.Telemetry, nil, protocol.Telemetry{}},
		{schema.Event, nil, protocol.Event{}},
		{schema.DeviceStatus, nil, protocol.DeviceStatus{}},
		{schema.DeviceStatus, []string{"$defs", "last_cycle"}, protocol.LastCycle{}},
		{schema.GatewayStatus, nil, protocol.GatewayStatus{}},
		{schema.Key, nil, evidence.KeyMessage{}},
	} {
		name := c.file + "#/" + strings.Join(c.pointer, "/")
		obj := objectAt(t, c.file, c.pointer)
		var props []string
		for p := range obj.Properties {
			if !slices.Contains(publisherMembers, p) {
				props = append(props, p)
			}
		}
		sort.Strings(props)
		typ := reflect.TypeOf(c.typ)
		fields := jsonFields(typ)
		if !slices.Equal(fields, props) {
			t.Errorf("%s: Go %s has members %v, the schema %v", name, typ, fields, props)
		}
		if obj.AdditionalProperties == nil || *obj.AdditionalProperties {
			t.Errorf("%s: additionalProperties must be false: a renamed member must fail validation", name)
		}
		// A required member must be written even when empty.
		b, err := json.Marshal(reflect.Zero(typ).Interface())
		if err != nil {
			t.Fatal(err)
		}
		var written map[string]json.RawMessage
		if err := json.Unmarshal(b, &written); err != nil {
			t.Fatal(err)
		}
		for _, r := range obj.Required {
			if _, ok := written[r]; !ok {
				t.Errorf("%s: required %q is omitted when empty (omitempty on a required member)", name, r)
			}
		}
	}
}

// The phase vocabulary of the schema is the Go one, in its order.
func TestPhaseNamesMatch(t *testing.T) {
	var s struct {
		Defs struct {
			PhaseName struct {
				Enum []protocol.PhaseName `json:"enum"`
			} `json:"phase_name"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(schema.CycleV1(), &s); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(s.Defs.PhaseName.Enum, protocol.PhaseNames()) {
		t.Errorf("schema phase names %v, Go vocabulary %v", s.Defs.PhaseName.Enum, protocol.PhaseNames())
	}
}

type objectSchema struct {
	Properties           map[string]json.RawMessage `json:"properties"`
	Required             []string                   `json:"required"`
	AdditionalProperties *bool                      `json:"additionalProperties"`
}

func objectAt(t *testing.T, file string, pointer []string) objectSchema {
	t.Helper()
	b, err := schema.File(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range pointer {
		var m map[string]json.RawMessage
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if b = m[key]; b == nil {
			t.Fatalf("%s: no %q at %v", file, key, pointer)
		}
	}
	var o objectSchema
	if err := json.Unmarshal(b, &o); err != nil {
		t.Fatal(err)
	}
	return o
}

// jsonFields lists the JSON member names encoding/json writes for typ.
func jsonFields(typ reflect.Type) []string {
	var out []string
	for i := range typ.NumField() {
		f := typ.Field(i)
		if !f.IsExported() {
			continue
		}
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "-" {
			continue
		}
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}
