// Package schema embeds the JSON Schema files of sterigate's payloads, so
// tools and tests read the same file consumers are pointed to.
package schema

import _ "embed"

//go:embed cycle.v1.json
var cycleV1 []byte

// CycleV1 returns the JSON Schema of protocol.CycleRecord
// (sterigate.cycle.v1), a copy the caller may keep or change.
func CycleV1() []byte { return append([]byte(nil), cycleV1...) }
