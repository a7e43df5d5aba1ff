package main

import (
	"strings"
	"testing"

	"github.com/sterigate/sterigate/protocol/schema"
)

// validate checks every message collected against its JSON Schema
// (protocol/schema), reporting at most a few failures per topic kind.
func (c *collector) validate(t testing.TB) {
	t.Helper()
	failures := map[string]int{}
	for _, m := range c.messages() {
		err := schema.Validate(m.Topic, m.Payload)
		if err == nil {
			continue
		}
		kind := m.Topic[strings.LastIndex(m.Topic, "/")+1:]
		if failures[kind]++; failures[kind] <= 3 {
			t.Errorf("a published message does not fit its schema: %v\ntopic %s payload %s", err, m.Topic, m.Payload)
		}
	}
	for kind, n := range failures {
		if n > 3 {
			t.Errorf("... %d messages on %s topics did not fit their schema in all", n, kind)
		}
	}
}
