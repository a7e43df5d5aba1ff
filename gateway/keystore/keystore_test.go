package keystore

import (
	"crypto/rand"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol/evidence"
)

func TestCreateThenLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if _, err := Load(path, dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load of a missing key: %v", err)
	}
	s, err := Create(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v, %v", fi.Mode(), err)
	}
	if _, err := Create(path, time.Now()); err == nil {
		t.Fatal("Create replaced an existing key")
	}
	got, err := Load(path, dir)
	if err != nil || got.ID() != s.ID() {
		t.Fatalf("Load: %v, %v", got, err)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("Create left %d files behind", len(entries))
	}
}

// A key file that group or others may read is refused, with the file and
// the command that fixes it.
func TestKeyReadableByOthersIsRefused(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	if _, err := Create(path, time.Now()); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []fs.FileMode{0o640, 0o604, 0o660, 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
		_, err := Load(path, dir)
		var me *ModeError
		if !errors.As(err, &me) || !strings.Contains(err.Error(), "run chmod 600 "+path) || !strings.Contains(err.Error(), path) {
			t.Errorf("mode %04o: %v", mode, err)
		}
		if err := Check(path, true); !errors.As(err, &me) {
			t.Errorf("Check, mode %04o: %v", mode, err)
		}
	}
	os.Chmod(path, 0o400)
	if _, err := Load(path, dir); err != nil {
		t.Errorf("mode 0400: %v", err)
	}
}

func TestCheckNamesWhatIsWrong(t *testing.T) {
	dir := t.TempDir()
	if err := Check(filepath.Join(dir, "nowhere", FileName), true); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("configured key in a missing directory: %v", err)
	}
	if err := Check(filepath.Join(dir, "nowhere", FileName), false); err != nil {
		t.Errorf("default key before the first start: %v", err)
	}
	garbage := filepath.Join(dir, "garbage.key")
	os.WriteFile(garbage, []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), 0o600)
	if err := Check(garbage, true); err == nil || !strings.Contains(err.Error(), "openssl genpkey") {
		t.Errorf("garbage key: %v", err)
	}
}

// A rotation interrupted before it was journaled is undone; one
// interrupted after is finished.
func TestRecoverAnInterruptedRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, FileName)
	old, err := Create(path, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	next, err := evidence.GenerateSigner(rand.Reader, time.Now(), old.ID())
	if err != nil {
		t.Fatal(err)
	}
	if err := PrepareNext(path, next); err != nil {
		t.Fatal(err)
	}
	if did, err := Recover(path, dir, old.ID()); err != nil || !strings.Contains(did, "undid") {
		t.Fatalf("not journaled: %q, %v", did, err)
	}
	if s, _ := Load(path, dir); s.ID() != old.ID() {
		t.Fatalf("the key file changed to %s", s.ID())
	}
	if err := PrepareNext(path, next); err != nil {
		t.Fatal(err)
	}
	if did, err := Recover(path, dir, next.ID()); err != nil || !strings.Contains(did, "finished") {
		t.Fatalf("journaled: %q, %v", did, err)
	}
	if s, _ := Load(path, dir); s.ID() != next.ID() {
		t.Fatalf("the key file holds %s, want %s", s.ID(), next.ID())
	}
	if did, err := Recover(path, dir, next.ID()); did != "" || err != nil {
		t.Fatalf("nothing to recover: %q, %v", did, err)
	}
}

func TestSavePublicKeepsEveryKey(t *testing.T) {
	dir := t.TempDir()
	var keys []evidence.PublicKey
	for range 2 {
		s, err := evidence.GenerateSigner(rand.Reader, time.Now(), "")
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, s.Public())
	}
	if err := SavePublic(dir, "gw", "dax", keys[:1]); err != nil {
		t.Fatal(err)
	}
	if err := SavePublic(dir, "gw", "dax", keys); err != nil {
		t.Fatal(err)
	}
	got, err := ReadPublic(dir)
	if err != nil || len(got) != 2 {
		t.Fatalf("ReadPublic: %v, %v", got, err)
	}
}
