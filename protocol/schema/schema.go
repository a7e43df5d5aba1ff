// Package schema embeds the JSON Schema files of sterigate's payloads, so
// tools and tests read the same file consumers are pointed to.
package schema

import _ "embed"

// CycleV1 is the JSON Schema of protocol.CycleRecord (sterigate.cycle.v1).
//
//go:embed cycle.v1.json
var CycleV1 []byte
