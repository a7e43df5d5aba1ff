package protocol

import "time"

// ReceiptSchema names version 1 of the receipt payload.
const ReceiptSchema = "sterigate.receipt.v1"

// Receipt is what an archive publishes to a gateway after the transaction
// that stored some of its entries committed (QoS 1, not retained, on
// Topics.GatewayReceipt): per device, the highest seq up to which every
// entry is stored, counting the seqs that gap and journal_break events
// say will never come (docs/mqtt.md#receipts). Each receipt carries the
// whole mark, so a lost one is made good by the next.
type Receipt struct {
	Schema  string            `json:"schema"`
	Archive string            `json:"archive"`
	At      time.Time         `json:"at"`
	Devices map[string]uint64 `json:"devices"`
}
