package evidence

import (
	"testing"
)

// BenchmarkSign is what the journal's writer spends on each cycle record
// and event; BenchmarkCheck what verify spends on each.
func BenchmarkSign(b *testing.B) {
	s := seeded(b, 1)
	hash := EntryHash([]byte(`{"schema":"sterigate.event.v1"}`))
	for b.Loop() {
		s.Sign(hash)
	}
}

func BenchmarkCheck(b *testing.B) {
	s := seeded(b, 1)
	hash := EntryHash([]byte(`{"schema":"sterigate.event.v1"}`))
	sig := s.Sign(hash)
	pub := s.Public().Key
	for b.Loop() {
		if !Check(pub, hash, sig) {
			b.Fatal("does not check")
		}
	}
}
