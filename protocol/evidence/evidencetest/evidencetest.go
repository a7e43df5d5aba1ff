// Package evidencetest gives tests fixed signing keys, so that signatures
// and key ids are the same in every run and outputs can be golden files.
package evidencetest

import (
	"bytes"
	"crypto/ed25519"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol/evidence"
)

// Signer returns the key made from 32 bytes of seed, created at
// 2026-11-01. Seed 1 is the key of the worked example in docs/mqtt.md.
// Test keys only: anyone can make them.
func Signer(t testing.TB, seed byte) *evidence.Signer {
	t.Helper()
	s, err := evidence.NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, ed25519.SeedSize)), time.Date(2026, 11, 1, 0, 0, 0, 0, time.UTC), "")
	if err != nil {
		t.Fatal(err)
	}
	return s
}
