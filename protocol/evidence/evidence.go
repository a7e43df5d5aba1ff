// Package evidence is what makes a sterigate journal or a capture of its
// MQTT messages evidence: the exact bytes a gateway signs, how a signature
// travels with a message, the key message, and the verification of a
// device's chain — sequence, hash links and signatures — that
// 'sterigate verify' runs. It needs nothing of the gateway, so a receiving
// system or an archive can check what it stores with it alone
// (docs/evidence.md).
//
// Every journal entry's hash is the SHA-256 of its payload, the exact
// bytes the journal stores; the device's next entry carries it as
// prev_hash. A cycle record or an event is signed: the gateway's Ed25519
// key signs SignedMessage(key id, entry hash). Telemetry is not signed one
// batch at a time; a signed entry covers, through the prev_hash chain,
// every entry of its device before it, and the gateway writes a signed
// checkpoint event at least once a minute while unsigned entries exist.
package evidence

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
)

// Algorithm is the only signature algorithm sterigate uses.
const Algorithm = "ed25519"

// signedPrefix starts every signed message: it keeps a sterigate entry
// signature from meaning anything in another protocol that might use the
// same key, and names the format's version.
const signedPrefix = "sterigate.sig.v1 "

// ReplayMarker is what the publisher inserts right after the opening
// brace of a message journaled before the current broker connection.
const ReplayMarker = `"replay":true,`

// The signature member the publisher inserts after the opening brace (and
// after the replay marker, when there is one):
//
//	"sig":{"key":"<key id>","ed25519":"<base64 signature>"},
const (
	sigOpen   = `"sig":{"key":"`
	sigMiddle = `","ed25519":"`
	sigClose  = `"},`
)

// Signature is one entry's signature and the id of the key that made it.
type Signature struct {
	Key     string // key id (KeyID of the public key)
	Ed25519 []byte // 64 bytes
}

// EntryHash is the hash of a journal entry: the hex SHA-256 of its
// payload, as the device's next entry carries it in prev_hash.
func EntryHash(payload []byte) string {
	sum := sha256.Sum256(payload)
	return hex.EncodeToString(sum[:])
}

// KeyID names an Ed25519 public key: the first 8 bytes of the SHA-256 of
// its 32 bytes, in lower-case hex (16 characters).
func KeyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

// SignedMessage is the exact byte string a signature covers: the ASCII
// text "sterigate.sig.v1 ", the key id, one space and the entry hash (64
// lower-case hex characters), 98 bytes in all with a 16-character key id.
func SignedMessage(keyID, entryHash string) []byte {
	b := make([]byte, 0, len(signedPrefix)+len(keyID)+1+len(entryHash))
	b = append(b, signedPrefix...)
	b = append(b, keyID...)
	b = append(b, ' ')
	return append(b, entryHash...)
}

// Check verifies sig over the entry whose hash is entryHash with pub. It
// does not look at sig.Key: the caller chose pub by it.
func Check(pub ed25519.PublicKey, entryHash string, sig Signature) bool {
	if len(pub) != ed25519.PublicKeySize || len(sig.Ed25519) != ed25519.SignatureSize {
		return false
	}
	return ed25519.Verify(pub, SignedMessage(sig.Key, entryHash), sig.Ed25519)
}

// Published returns the message the gateway publishes for a journaled
// payload: the payload with, right after its opening brace, the replay
// marker when replay is set, then the signature member when sig is not
// nil. Without either it returns payload itself.
func Published(payload []byte, sig *Signature, replay bool) []byte {
	if (sig == nil && !replay) || len(payload) < 2 || payload[0] != '{' {
		return payload
	}
	n := len(payload)
	if replay {
		n += len(ReplayMarker)
	}
	if sig != nil {
		n += len(sigOpen) + len(sig.Key) + len(sigMiddle) + base64.StdEncoding.EncodedLen(len(sig.Ed25519)) + len(sigClose)
	}
	out := make([]byte, 0, n)
	out = append(out, '{')
	if replay {
		out = append(out, ReplayMarker...)
	}
	if sig != nil {
		out = append(out, sigOpen...)
		out = append(out, sig.Key...)
		out = append(out, sigMiddle...)
		out = base64.StdEncoding.AppendEncode(out, sig.Ed25519)
		out = append(out, sigClose...)
	}
	return append(out, payload[1:]...)
}

// Unwrapped is a published message taken apart.
type Unwrapped struct {
	// Payload is the journaled payload: the bytes whose SHA-256 is the
	// entry hash.
	Payload []byte
	// Sig is the signature the message carried, nil when none.
	Sig *Signature
	// Replay is whether the message carried the replay marker.
	Replay bool
}

// ErrMalformedSignature is returned for a message whose signature member
// is not exactly the form Published writes.
var ErrMalformedSignature = errors.New(`malformed "sig" member`)

// Unwrap removes what the publisher inserted after the opening brace of a
// message — the replay marker and the signature member, in either order,
// each at most once — and returns the journaled payload and the
// signature. A message without them comes back as it is. Unwrap checks
// only the inserted prefix, not that the rest is JSON.
func Unwrap(msg []byte) (Unwrapped, error) {
	if len(msg) < 2 || msg[0] != '{' {
		return Unwrapped{Payload: msg}, nil
	}
	var u Unwrapped
	rest := msg[1:]
	for range 2 {
		switch {
		case !u.Replay && bytes.HasPrefix(rest, []byte(ReplayMarker)):
			u.Replay = true
			rest = rest[len(ReplayMarker):]
		case u.Sig == nil && bytes.HasPrefix(rest, []byte(`"sig":`)):
			sig, n, err := parseSigMember(rest)
			if err != nil {
				return Unwrapped{}, err
			}
			u.Sig = sig
			rest = rest[n:]
		}
	}
	if len(rest) == len(msg)-1 {
		u.Payload = msg
		return u, nil
	}
	u.Payload = make([]byte, 0, 1+len(rest))
	u.Payload = append(u.Payload, '{')
	u.Payload = append(u.Payload, rest...)
	return u, nil
}

// parseSigMember reads `"sig":{"key":"K","ed25519":"B64"},` at the start
// of b and returns the signature and the member's length.
func parseSigMember(b []byte) (*Signature, int, error) {
	if !bytes.HasPrefix(b, []byte(sigOpen)) {
		return nil, 0, fmt.Errorf("%w: it must start with %s", ErrMalformedSignature, sigOpen)
	}
	i := len(sigOpen)
	end := bytes.IndexByte(b[i:], '"')
	if end < 0 {
		return nil, 0, fmt.Errorf("%w: the key id is not closed", ErrMalformedSignature)
	}
	key := string(b[i : i+end])
	if !validKeyID(key) {
		return nil, 0, fmt.Errorf("%w: key id %q is not 16 lower-case hex digits", ErrMalformedSignature, key)
	}
	i += end
	if !bytes.HasPrefix(b[i:], []byte(sigMiddle)) {
		return nil, 0, fmt.Errorf("%w: %s must follow the key id", ErrMalformedSignature, sigMiddle)
	}
	i += len(sigMiddle)
	end = bytes.IndexByte(b[i:], '"')
	if end < 0 {
		return nil, 0, fmt.Errorf("%w: the signature is not closed", ErrMalformedSignature)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(string(b[i : i+end]))
	if err != nil || len(raw) != ed25519.SignatureSize {
		return nil, 0, fmt.Errorf("%w: the signature is not %d bytes of standard base64", ErrMalformedSignature, ed25519.SignatureSize)
	}
	i += end
	if !bytes.HasPrefix(b[i:], []byte(sigClose)) {
		return nil, 0, fmt.Errorf("%w: it must end with %s", ErrMalformedSignature, sigClose)
	}
	return &Signature{Key: key, Ed25519: raw}, i + len(sigClose), nil
}

func validKeyID(s string) bool {
	if len(s) != 16 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}
