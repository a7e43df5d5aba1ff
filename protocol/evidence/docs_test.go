package evidence

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// codeBlockAfter returns the first fenced code block after marker in doc.
func codeBlockAfter(t *testing.T, doc, marker string) string {
	t.Helper()
	i := strings.Index(doc, marker)
	if i < 0 {
		t.Fatalf("docs/mqtt.md no longer says %q", marker)
	}
	rest := doc[i:]
	open := strings.Index(rest, "```")
	start := open + strings.Index(rest[open:], "\n") + 1
	end := start + strings.Index(rest[start:], "```")
	return strings.TrimSuffix(rest[start:end], "\n")
}

// The worked example of docs/mqtt.md ("Signatures") is true: every value
// in it checks, and so do its sed and openssl commands.
func TestDocsWorkedExample(t *testing.T) {
	raw, err := os.ReadFile("../../docs/mqtt.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(raw)
	var km KeyMessage
	if err := json.Unmarshal([]byte(codeBlockAfter(t, doc, "Its key message, as the key topic carries it:")), &km); err != nil {
		t.Fatal(err)
	}
	key, err := km.PublicKeyOf()
	if err != nil {
		t.Fatal(err)
	}
	if seeded(t, 1).ID() != key.ID {
		t.Errorf("the example key is not the key of 32 bytes of 0x01")
	}
	pemBlock := codeBlockAfter(t, doc, "the same public key as PEM")
	if keys, err := ParsePublicKeys([]byte(pemBlock)); err != nil || keys[0].ID != key.ID {
		t.Errorf("the PEM is not the same key: %v", err)
	}
	received := codeBlockAfter(t, doc, "A replayed alarm event as received:")
	payload := codeBlockAfter(t, doc, "The journaled payload (the prefixes removed):")
	u, err := Unwrap([]byte(received))
	if err != nil || !u.Replay || u.Sig == nil || u.Sig.Key != key.ID || string(u.Payload) != payload {
		t.Fatalf("Unwrap of the received message: %+v, %v", u, err)
	}
	hash := regexp.MustCompile("Its entry hash, `([0-9a-f]{64})`").FindStringSubmatch(doc)
	if hash == nil || hash[1] != EntryHash(u.Payload) {
		t.Errorf("documented hash %v, the payload's is %s", hash, EntryHash(u.Payload))
	}
	if msg := codeBlockAfter(t, doc, "The signed message:"); msg != string(SignedMessage(key.ID, EntryHash(u.Payload))) {
		t.Errorf("documented signed message %q", msg)
	}
	if !Check(key.Key, EntryHash(u.Payload), *u.Sig) {
		t.Errorf("the example's signature does not check")
	}

	sedCmd := codeBlockAfter(t, doc, "With a shell:")
	if _, err := exec.LookPath("sed"); err == nil {
		cmd := exec.Command("sh", "-c", sedCmd)
		cmd.Stdin = strings.NewReader(received)
		out, err := cmd.Output()
		if err != nil || string(out) != payload {
			t.Errorf("the sed command gives %q, %v", out, err)
		}
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Log("openssl not installed: its commands are not run")
		return
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "key.pem"), []byte(pemBlock+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-e", "-c", codeBlockAfter(t, doc, "With OpenSSL 3"))
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil || !bytes.Contains(out, []byte("Signature Verified Successfully")) {
		t.Errorf("the openssl commands: %v\n%s", err, out)
	}
}
