package mqttpub

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/sterigate/sterigate/gateway/config"
	"github.com/sterigate/sterigate/protocol"
)

// Receipts. An archive ('sterigate archive') publishes, after each
// commit, the seq up to which every entry of each of the gateway's devices
// is stored in its database. With Options.Receipts expected or required
// the publisher subscribes to its receipt topic, marks those entries
// archived, and raises AlarmReceiptsMissing while the oldest unarchived
// entry is older than ReceiptsAlarmAfter; with required it also publishes
// again, with back-off, every delivered entry still unarchived after
// ReceiptsRepublishAfter (a broker that lost it, an ACL that dropped it,
// telemetry included: a lost batch would otherwise hold back the mark
// forever), and the journal prunes only archived entries.

// Values of Options.Receipts.
const (
	ReceiptsOff      = config.ReceiptsOff
	ReceiptsExpected = config.ReceiptsExpected
	ReceiptsRequired = config.ReceiptsRequired
)

// AlarmReceiptsMissing is the gateway alarm raised while the oldest entry
// no archive has confirmed storing is older than ReceiptsAlarmAfter.
const AlarmReceiptsMissing = "receipts_missing"

// receiptBook gathers the receipts paho hands over on its goroutines; the
// session applies them to the journal.
type receiptBook struct {
	mu      sync.Mutex
	through map[string]uint64
}

func newReceiptBook() *receiptBook { return &receiptBook{through: map[string]uint64{}} }

// add merges one receipt. A payload that is not a receipt is ignored: the
// topic is the site's to write, and the worst a bad one could do is hold
// back pruning.
func (b *receiptBook) add(payload []byte) error {
	var r protocol.Receipt
	if err := json.Unmarshal(payload, &r); err != nil || r.Schema != protocol.ReceiptSchema {
		return fmt.Errorf("not a %s receipt", protocol.ReceiptSchema)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for d, seq := range r.Devices {
		b.through[d] = max(b.through[d], seq)
	}
	return nil
}

// take returns what came since the last take.
func (b *receiptBook) take() map[string]uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(b.through) == 0 {
		return nil
	}
	t := b.through
	b.through = map[string]uint64{}
	return t
}

// archiveState is one connection's republication bookkeeping.
type archiveState struct {
	retries map[int64]retry
	cursor  int64
}

func (p *Publisher) receiptsOn() bool { return p.opts.Receipts != ReceiptsOff }

// applyReceipts marks archived what the receipts since the last call say.
func (s *sessionState) applyReceipts(ctx context.Context) error {
	through := s.p.receipts.take()
	if len(through) == 0 {
		return nil
	}
	if err := s.p.j.MarkArchived(ctx, through); err != nil {
		return fmt.Errorf("mark entries archived: %w", err)
	}
	return nil
}

// checkArchived updates the oldest unarchived entry's age and its alarm
// and, with receipts required, publishes again what stayed unarchived.
func (s *sessionState) checkArchived(ctx context.Context) error {
	p := s.p
	if !p.receiptsOn() {
		return nil
	}
	oldest, err := p.j.OldestUnarchived(ctx)
	if err != nil {
		return err
	}
	p.oldestUnarchived.Store(oldest.UnixMilli())
	if oldest.IsZero() {
		p.oldestUnarchived.Store(0)
	}
	late := !oldest.IsZero() && time.Since(oldest) > p.opts.ReceiptsAlarmAfter
	if p.receiptsAlarm.Swap(late) != late && late {
		p.log.Error("no archive has confirmed storing the gateway's entries", "oldest_unarchived", oldest, "after", p.opts.ReceiptsAlarmAfter,
			"likely_cause", "no 'sterigate archive' runs, or it cannot reach the broker or its database, or the broker does not pass receipts")
	}
	if p.opts.Receipts != ReceiptsRequired {
		return nil
	}
	now := time.Now()
	es, err := p.j.UnarchivedAfter(ctx, s.archive.cursor, now.Add(-p.opts.ReceiptsRepublishAfter), 64)
	if err != nil {
		return err
	}
	if len(es) == 0 {
		s.archive.cursor = 0 // wrap round
		return nil
	}
	s.republishDue(es, &s.archive.cursor, s.archive.retries, p.opts.ReceiptsRepublishAfter, now)
	return nil
}

// OldestUnarchived returns when the oldest entry no archive has confirmed
// storing was journaled (zero: none, or receipts are off).
func (p *Publisher) OldestUnarchived() time.Time {
	if ms := p.oldestUnarchived.Load(); ms != 0 {
		return time.UnixMilli(ms)
	}
	return time.Time{}
}
