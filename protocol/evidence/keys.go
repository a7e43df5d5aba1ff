package evidence

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// KeySchema names version 1 of the key message, the payload of the
// gateway's retained key topic.
const KeySchema = "sterigate.key.v1"

// PublicKey is a gateway's public signing key and its history.
type PublicKey struct {
	ID        string
	Key       ed25519.PublicKey
	CreatedAt time.Time
	// Previous is the id of the key this one replaced ("" for a gateway's
	// first key).
	Previous string
}

// NewPublicKey describes pub, created at created.
func NewPublicKey(pub ed25519.PublicKey, created time.Time, previous string) PublicKey {
	return PublicKey{ID: KeyID(pub), Key: pub, CreatedAt: created.UTC(), Previous: previous}
}

// KeyMessage is the payload published retained on
// <root>/<site>/gateway/<gateway id>/key, and what 'sterigate key show
// --json' prints.
type KeyMessage struct {
	Schema    string `json:"schema"`
	Gateway   string `json:"gateway,omitempty"`
	Site      string `json:"site,omitempty"`
	Key       string `json:"key"`
	Algorithm string `json:"algorithm"`
	// PublicKey is the 32-byte Ed25519 public key, standard base64.
	PublicKey string    `json:"public_key"`
	CreatedAt time.Time `json:"created_at"`
	// Previous is the id of the key this one replaced, after a rotation.
	Previous string `json:"previous,omitempty"`
}

// Message returns the key message of k for a gateway and site.
func (k PublicKey) Message(gateway, site string) KeyMessage {
	return KeyMessage{Schema: KeySchema, Gateway: gateway, Site: site, Key: k.ID, Algorithm: Algorithm,
		PublicKey: base64.StdEncoding.EncodeToString(k.Key), CreatedAt: k.CreatedAt, Previous: k.Previous}
}

// PEM returns k as a PEM "PUBLIC KEY" block (what openssl reads).
func (k PublicKey) PEM() []byte {
	der, err := x509.MarshalPKIXPublicKey(k.Key)
	if err != nil {
		// An ed25519.PublicKey of the right length always marshals.
		panic(fmt.Sprintf("evidence: marshal public key %s: %v", k.ID, err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// PublicKeyOf checks m and returns the key it carries. The id must be the
// key's id: a message that names one key and carries another is refused.
func (m KeyMessage) PublicKeyOf() (PublicKey, error) {
	if m.Schema != KeySchema {
		return PublicKey{}, fmt.Errorf("key message: schema %q is not %s", m.Schema, KeySchema)
	}
	if m.Algorithm != Algorithm {
		return PublicKey{}, fmt.Errorf("key message %s: algorithm %q is not %s", m.Key, m.Algorithm, Algorithm)
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(m.PublicKey)
	if err != nil || len(raw) != ed25519.PublicKeySize {
		return PublicKey{}, fmt.Errorf("key message %s: public_key is not %d bytes of standard base64", m.Key, ed25519.PublicKeySize)
	}
	pk := PublicKey{ID: KeyID(raw), Key: raw, CreatedAt: m.CreatedAt, Previous: m.Previous}
	if pk.ID != m.Key {
		return PublicKey{}, fmt.Errorf("key message names key %s but its public_key is key %s", m.Key, pk.ID)
	}
	return pk, nil
}

// ParsePublicKeys reads the public keys in data: key messages (one JSON
// object per line, as the key topic carries them and 'sterigate key show
// --json' prints them) or PEM "PUBLIC KEY" blocks (as 'sterigate key show
// --pem' and openssl print them).
func ParsePublicKeys(data []byte) ([]PublicKey, error) {
	var keys []PublicKey
	if bytes.Contains(data, []byte("-----BEGIN")) {
		for rest := data; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type != "PUBLIC KEY" {
				return nil, fmt.Errorf("PEM block %q is not a PUBLIC KEY (never give a private key to verify)", block.Type)
			}
			pub, err := x509.ParsePKIXPublicKey(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("PEM public key: %w", err)
			}
			ed, ok := pub.(ed25519.PublicKey)
			if !ok {
				return nil, fmt.Errorf("PEM public key is a %T, not an Ed25519 key", pub)
			}
			keys = append(keys, PublicKey{ID: KeyID(ed), Key: ed})
		}
		if len(keys) == 0 {
			return nil, errors.New("no PEM block could be read")
		}
		return keys, nil
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := bytes.TrimSpace(sc.Bytes())
		if len(line) == 0 {
			continue
		}
		var m KeyMessage
		if err := json.Unmarshal(line, &m); err != nil {
			return nil, fmt.Errorf("line %d: not a key message (JSON) nor a PEM public key: %v", n, err)
		}
		pk, err := m.PublicKeyOf()
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		keys = append(keys, pk)
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(keys) == 0 {
		return nil, errors.New("no key found: expected key messages (JSON lines) or PEM public keys")
	}
	return keys, nil
}

// Signer holds a gateway's private signing key. It never prints, logs or
// marshals the private key: every form of it shows the key id only.
type Signer struct {
	pub  PublicKey
	priv ed25519.PrivateKey
}

// NewSigner wraps priv; created is when the key was made.
func NewSigner(priv ed25519.PrivateKey, created time.Time, previous string) (*Signer, error) {
	if len(priv) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("an Ed25519 private key is %d bytes, not %d", ed25519.PrivateKeySize, len(priv))
	}
	return &Signer{pub: NewPublicKey(priv.Public().(ed25519.PublicKey), created, previous), priv: priv}, nil
}

// GenerateSigner makes a new key from random (crypto/rand.Reader).
func GenerateSigner(random io.Reader, created time.Time, previous string) (*Signer, error) {
	_, priv, err := ed25519.GenerateKey(random)
	if err != nil {
		return nil, fmt.Errorf("generate signing key: %w", err)
	}
	return NewSigner(priv, created, previous)
}

// Public is the signer's public key.
func (s *Signer) Public() PublicKey { return s.pub }

// ID is the signer's key id.
func (s *Signer) ID() string { return s.pub.ID }

// Sign signs the entry whose hash (EntryHash) is entryHash.
func (s *Signer) Sign(entryHash string) Signature {
	return Signature{Key: s.pub.ID, Ed25519: ed25519.Sign(s.priv, SignedMessage(s.pub.ID, entryHash))}
}

// MarshalPrivatePEM returns the private key as a PKCS#8 PEM block ("PRIVATE
// KEY", what openssl genpkey -algorithm ed25519 writes), for the key file
// only.
func (s *Signer) MarshalPrivatePEM() []byte {
	der, err := x509.MarshalPKCS8PrivateKey(s.priv)
	if err != nil {
		panic(fmt.Sprintf("evidence: marshal private key %s: %v", s.pub.ID, err))
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

// ParsePrivatePEM reads a PKCS#8 PEM Ed25519 private key (MarshalPrivatePEM,
// or openssl genpkey -algorithm ed25519). Errors never quote the key.
func ParsePrivatePEM(data []byte) (ed25519.PrivateKey, error) {
	block, rest := pem.Decode(data)
	if block == nil {
		return nil, errors.New("not a PEM file")
	}
	if block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("PEM block %q is not a PKCS#8 PRIVATE KEY", block.Type)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, errors.New("more than one PEM block")
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, errors.New("the PKCS#8 private key cannot be parsed")
	}
	ed, ok := key.(ed25519.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("the private key is a %T, not an Ed25519 key", key)
	}
	return ed, nil
}

// String, GoString, LogValue and MarshalJSON show the key id only, so a
// signer that reaches a log line or a status page by mistake gives nothing
// away.
// They have value receivers so that a dereferenced Signer is covered too.
func (s Signer) String() string   { return "ed25519 signing key " + s.pub.ID }
func (s Signer) GoString() string { return s.String() }

func (s Signer) LogValue() slog.Value { return slog.StringValue(s.String()) }

func (s Signer) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }
