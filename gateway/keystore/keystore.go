// Package keystore keeps the gateway's signing key on disk: the private
// key file (PKCS#8 PEM, mode 0600, refused when group or others may read
// it), the public keys of every key the gateway ever used (so old entries
// stay verifiable), and the crash-safe hand-over of a key rotation.
//
// The private key is read here and handed to the journal as an
// evidence.Signer; no error or log line of this package quotes it.
package keystore

import (
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/sterigate/sterigate/protocol/evidence"
)

// FileName is the private key's name in the data directory, unless
// gateway.signing_key points elsewhere.
const FileName = "signing.key"

// PublicDir is the directory, in the data directory, that keeps the key
// message of every key the gateway used, as <key id>.json.
const PublicDir = "keys"

// nextSuffix names the key a rotation is handing over to, until the
// rotation is journaled (see Recover).
const nextSuffix = ".next"

// Path is where the private key is: configured (gateway.signing_key) or
// <dataDir>/signing.key.
func Path(dataDir, configured string) string {
	if configured != "" {
		return configured
	}
	return filepath.Join(dataDir, FileName)
}

// ModeError says a key file may be read by more than its owner.
type ModeError struct {
	Path string
	Mode fs.FileMode
}

func (e *ModeError) Error() string {
	return fmt.Sprintf("signing key %s is readable or writable by group or others (mode %04o): run chmod 600 %s", e.Path, e.Mode.Perm(), e.Path)
}

// Check reports what would stop a gateway from using the key at path,
// without changing anything: a key file that others may read or that is
// not an Ed25519 PKCS#8 key, or, for a configured path whose file does
// not exist yet, a directory where it cannot be created.
func Check(path string, configured bool) error {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		if !configured {
			return nil // made in the data directory at the first start
		}
		dir := filepath.Dir(path)
		if di, err := os.Stat(dir); err != nil || !di.IsDir() {
			return fmt.Errorf("%s does not exist, and its directory %s does not exist either: the gateway creates the key at its first start, in an existing directory", path, dir)
		}
		return nil
	}
	if err != nil {
		return err
	}
	_, err = load(path, fi)
	return err
}

// Load reads the private key at path. A missing file gives an error that
// wraps fs.ErrNotExist. created is when the key was made, for a key the
// journal has not recorded yet: the key message kept in the data
// directory says, or else the file's modification time.
func Load(path, dataDir string) (*evidence.Signer, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	priv, err := load(path, fi)
	if err != nil {
		return nil, err
	}
	created, previous := fi.ModTime(), ""
	s, err := evidence.NewSigner(priv, created, previous)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", path, err)
	}
	if m, err := readKeyMessage(filepath.Join(dataDir, PublicDir, s.ID()+".json")); err == nil {
		created, previous = m.CreatedAt, m.Previous
		s, err = evidence.NewSigner(priv, created, previous)
		if err != nil {
			return nil, err
		}
	}
	return s, nil
}

func load(path string, fi fs.FileInfo) ([]byte, error) {
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("signing key %s is not a regular file", path)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, &ModeError{Path: path, Mode: fi.Mode()}
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("signing key: %w", err)
	}
	priv, err := evidence.ParsePrivatePEM(data)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %v (it must be an Ed25519 key in PKCS#8 PEM, as 'openssl genpkey -algorithm ed25519' writes)", path, err)
	}
	return priv, nil
}

// Create makes a new key at path, mode 0600. It never replaces a file
// that exists.
func Create(path string, now time.Time) (*evidence.Signer, error) {
	s, err := evidence.GenerateSigner(rand.Reader, now, "")
	if err != nil {
		return nil, err
	}
	if err := writeNew(path, s.MarshalPrivatePEM()); err != nil {
		return nil, fmt.Errorf("create signing key: %w", err)
	}
	return s, nil
}

// writeNew writes data to path, durably, with mode 0600, and fails if
// path exists: a temporary file, fsynced, hard-linked into place (which
// refuses an existing name), then the directory fsynced.
func writeNew(path string, data []byte) error {
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Link(tmp, path); err != nil {
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// SavePublic writes the key message of each key to
// <dataDir>/keys/<key id>.json, unless it is there already: the public
// half of every key the gateway used stays next to the journal.
func SavePublic(dataDir, gateway, site string, keys []evidence.PublicKey) error {
	dir := filepath.Join(dataDir, PublicDir)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("public keys: %w", err)
	}
	for _, k := range keys {
		path := filepath.Join(dir, k.ID+".json")
		if _, err := os.Stat(path); err == nil {
			continue
		}
		b, err := json.Marshal(k.Message(gateway, site))
		if err != nil {
			return err
		}
		if err := writeNew(path, append(b, '\n')); err != nil && !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("public key %s: %w", k.ID, err)
		}
		os.Chmod(path, 0o644) // public: anyone may read it
	}
	return nil
}

// ReadPublic reads the key messages kept in <dataDir>/keys.
func ReadPublic(dataDir string) ([]evidence.PublicKey, error) {
	paths, err := filepath.Glob(filepath.Join(dataDir, PublicDir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []evidence.PublicKey
	for _, p := range paths {
		m, err := readKeyMessage(p)
		if err != nil {
			return nil, err
		}
		pk, err := m.PublicKeyOf()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		out = append(out, pk)
	}
	return out, nil
}

func readKeyMessage(path string) (evidence.KeyMessage, error) {
	var m evidence.KeyMessage
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("%s: %w", path, err)
	}
	return m, nil
}

// A key rotation hands over in three steps, so that a crash never leaves
// the journal naming a key whose private half is gone: the next key is
// written to <key file>.next (PrepareNext); the rotation is journaled;
// the next key replaces the key file (CommitNext). Recover, at the next
// start, finishes or undoes a rotation a crash interrupted.

// PrepareNext writes next to the key file's .next companion.
func PrepareNext(path string, next *evidence.Signer) error {
	if err := writeNew(path+nextSuffix, next.MarshalPrivatePEM()); err != nil {
		return fmt.Errorf("write the next signing key: %w", err)
	}
	return nil
}

// CommitNext makes the prepared next key the key file, replacing the old
// key, which is gone from then on (its public half stays in keys/ and in
// the journal).
func CommitNext(path string) error {
	if err := os.Rename(path+nextSuffix, path); err != nil {
		return fmt.Errorf("install the next signing key: %w", err)
	}
	return syncDir(filepath.Dir(path))
}

// Recover finishes or undoes a rotation a crash interrupted: when a .next
// key exists, it becomes the key file if the journal's current key
// (journalKey) is that key, and is removed otherwise (the rotation was
// never journaled). It returns what it did, "" when there was nothing to
// do.
func Recover(path, dataDir, journalKey string) (string, error) {
	next := path + nextSuffix
	if _, err := os.Stat(next); errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	s, err := Load(next, dataDir)
	if err != nil {
		return "", fmt.Errorf("an interrupted key rotation left %s: %w", next, err)
	}
	if s.ID() == journalKey {
		if err := CommitNext(path); err != nil {
			return "", err
		}
		return fmt.Sprintf("finished an interrupted key rotation: key %s (journaled) is now %s", s.ID(), path), nil
	}
	if err := os.Remove(next); err != nil {
		return "", err
	}
	return fmt.Sprintf("undid an interrupted key rotation: key %s was never journaled; %s keeps its key", s.ID(), path), nil
}
