// Package schema holds the JSON Schema of every payload sterigate
// publishes, embedded so tools and tests read the same files consumers are
// pointed to, and Validate, which checks a published message against the
// schema its topic calls for.
package schema

import (
	"bytes"
	"embed"
	"fmt"
	"strings"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

//go:embed *.v1.json
var files embed.FS

// baseURL is where the schema files' $id values point; relative $refs
// between them (event.v1.json uses cycle.v1.json#/$defs/...) resolve
// against it.
const baseURL = "https://github.com/sterigate/sterigate/protocol/schema/"

// The schema files, by the payload they describe.
const (
	Cycle         = "cycle.v1.json"
	Telemetry     = "telemetry.v1.json"
	Event         = "event.v1.json"
	DeviceStatus  = "device-status.v1.json"
	GatewayStatus = "gateway-status.v1.json"
	Key           = "key.v1.json"
)

// Files lists every schema file, in the order of docs/mqtt.md's topic table.
func Files() []string {
	return []string{Cycle, Telemetry, Event, DeviceStatus, GatewayStatus, Key}
}

// File returns the content of one schema file (a copy the caller may keep
// or change).
func File(name string) ([]byte, error) { return files.ReadFile(name) }

// CycleV1 returns the JSON Schema of protocol.CycleRecord
// (sterigate.cycle.v1), a copy the caller may keep or change.
func CycleV1() []byte {
	b, err := files.ReadFile(Cycle)
	if err != nil {
		panic(err) // embedded: cannot be missing
	}
	return b
}

// ForTopic names the schema file of the payloads published on topic,
// following the topic layout of docs/mqtt.md:
// <root>/<site>/<device>/{cycle,telemetry,event,status} and
// <root>/<site>/gateway/<gateway id>/{status,key}.
func ForTopic(topic string) (string, error) {
	levels := strings.Split(topic, "/")
	switch {
	case len(levels) == 4 && levels[2] != "gateway":
		switch levels[3] {
		case "cycle":
			return Cycle, nil
		case "telemetry":
			return Telemetry, nil
		case "event":
			return Event, nil
		case "status":
			return DeviceStatus, nil
		}
	case len(levels) == 5 && levels[2] == "gateway":
		switch levels[4] {
		case "status":
			return GatewayStatus, nil
		case "key":
			return Key, nil
		}
	}
	return "", fmt.Errorf("topic %q is not a sterigate topic (<root>/<site>/<device>/cycle|telemetry|event|status or <root>/<site>/gateway/<gateway id>/status|key)", topic)
}

// compiled holds every schema compiled once; it never changes after.
var compiled = sync.OnceValues(func() (map[string]*jsonschema.Schema, error) {
	c := jsonschema.NewCompiler()
	c.AssertFormat() // a date-time that is not RFC 3339 is a broken payload
	for _, name := range Files() {
		b, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		if err := c.AddResource(baseURL+name, doc); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
	}
	out := map[string]*jsonschema.Schema{}
	for _, name := range Files() {
		s, err := c.Compile(baseURL + name)
		if err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		out[name] = s
	}
	return out, nil
})

// ValidateAs checks payload against the schema file name (one of Files).
// The error names the schema and every member that does not fit.
func ValidateAs(name string, payload []byte) error {
	schemas, err := compiled()
	if err != nil {
		return err
	}
	s, ok := schemas[name]
	if !ok {
		return fmt.Errorf("no schema %q", name)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(payload))
	if err != nil {
		return fmt.Errorf("%s: payload is not JSON: %w", name, err)
	}
	if err := s.Validate(doc); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Validate checks a message published on topic against the schema the
// topic calls for (ForTopic).
func Validate(topic string, payload []byte) error {
	name, err := ForTopic(topic)
	if err != nil {
		return err
	}
	return ValidateAs(name, payload)
}
