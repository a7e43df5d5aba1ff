package main

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/evidence"
	"github.com/sterigate/sterigate/protocol/evidence/evidencetest"

	_ "modernc.org/sqlite"
)

// seededSigner is a fixed key: the same seed gives the same key id and
// signatures in every run, so verify's output can be a golden file.
func seededSigner(t testing.TB, seed byte) *evidence.Signer { return evidencetest.Signer(t, seed) }

// evidenceFixture is a small signed journal, the same in every run: two
// sterilizers, telemetry, phase and alarm events, three cycle records (the
// last of autoclave-1 failed on alarm 66), closed cleanly.
type evidenceFixture struct {
	dir, journal string
	signer       *evidence.Signer
	keyFile      string // the signer's key message
	strangerKey  string // another key's key message
}

func newEvidenceFixture(t testing.TB) evidenceFixture {
	t.Helper()
	dir := t.TempDir()
	f := evidenceFixture{dir: dir, journal: filepath.Join(dir, "journal.db"), signer: seededSigner(t, 1)}
	at := time.Date(2026, 11, 28, 8, 0, 0, 0, time.UTC)
	// The journal id is random and goes into every event and telemetry id;
	// the golden files need a fixed one.
	empty, err := journal.Open(f.journal, journal.Options{Gateway: "cssd-gw-1", Site: "dax", Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	if err := empty.Close(); err != nil {
		t.Fatal(err)
	}
	db := openForTampering(t, f.journal)
	mustExec(t, db, `UPDATE journal_meta SET value = '3fa94c2b7e' WHERE key = 'journal_id'`)
	db.Close()
	j, err := journal.Open(f.journal, journal.Options{Gateway: "cssd-gw-1", Site: "dax", Signer: f.signer, Now: func() time.Time { return at }})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	tele := func(device string) protocol.Telemetry {
		return protocol.Telemetry{Device: device, Cycle: 1042, Samples: []protocol.Sample{{At: at, TempC: 134.2, PressureKPa: 304.5, Phase: protocol.PhaseSterilizing}}}
	}
	record := func(device string, cycle uint64, result protocol.Result, alarm int) protocol.CycleRecord {
		r := protocol.CycleRecord{Device: device, Cycle: cycle, Program: "134-porous", StartedAt: at.Add(-40 * time.Minute), EndedAt: at,
			Result: result, Complete: true, EndSeen: true, Source: "modbus-tcp", Phases: []protocol.Phase{},
			Samples: []protocol.Sample{{At: at.Add(-20 * time.Minute), TempC: 134.6, PressureKPa: 306.1, Phase: protocol.PhaseSterilizing}}, Alarms: []protocol.Alarm{}}
		if alarm != 0 {
			r.Alarms = []protocol.Alarm{{Code: alarm, Text: "steam supply pressure low", At: at, Latched: true}}
		}
		return r
	}
	steps := []func() error{
		func() error { return j.Event(ctx, protocol.Event{Device: "autoclave-1", Kind: protocol.EventOnline}) },
		func() error { return j.Telemetry(ctx, tele("autoclave-1")) },
		func() error { return j.Telemetry(ctx, tele("autoclave-1")) },
		func() error {
			return j.Event(ctx, protocol.Event{Device: "autoclave-1", Kind: protocol.EventPhase, Phase: protocol.PhaseSterilizing, Cycle: 1041})
		},
		func() error { return j.Cycle(ctx, record("autoclave-1", 1041, protocol.ResultPassed, 0)) },
		func() error { return j.Telemetry(ctx, tele("autoclave-1")) },
		func() error { return j.Telemetry(ctx, tele("autoclave-1")) },
		func() error {
			return j.Event(ctx, protocol.Event{Device: "autoclave-1", Kind: protocol.EventAlarm, Code: 66, Text: "steam supply pressure low", Cycle: 1042})
		},
		func() error { return j.Cycle(ctx, record("autoclave-1", 1042, protocol.ResultFailed, 66)) },
		func() error { return j.Telemetry(ctx, tele("autoclave-1")) },
		func() error { return j.Event(ctx, protocol.Event{Device: "autoclave-2", Kind: protocol.EventOnline}) },
		func() error { return j.Telemetry(ctx, tele("autoclave-2")) },
		func() error { return j.Cycle(ctx, record("autoclave-2", 7, protocol.ResultPassed, 0)) },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
	}
	// Close signs a checkpoint over autoclave-1's last telemetry.
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	f.keyFile = writeKeyMessage(t, filepath.Join(dir, "key.json"), f.signer)
	f.strangerKey = writeKeyMessage(t, filepath.Join(dir, "stranger.json"), seededSigner(t, 9))
	return f
}

func writeKeyMessage(t testing.TB, path string, s *evidence.Signer) string {
	t.Helper()
	b, err := json.Marshal(s.Public().Message("cssd-gw-1", "dax"))
	if err != nil {
		t.Fatal(err)
	}
	return writeFile(t, path, string(b)+"\n")
}

// openForTampering opens the journal file as an attacker with file access
// would: plain SQLite, read-write.
func openForTampering(t testing.TB, path string) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func mustExec(t testing.TB, db *sql.DB, q string, args ...any) {
	t.Helper()
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
}

func payloadAt(t testing.TB, db *sql.DB, device string, seq uint64) []byte {
	t.Helper()
	var p []byte
	if err := db.QueryRow(`SELECT payload FROM entries WHERE device = ? AND seq = ?`, device, seq).Scan(&p); err != nil {
		t.Fatalf("%s seq %d: %v", device, seq, err)
	}
	return p
}

// rechain rewrites a device's chain from seq on as an attacker without the
// key would after altering seq: every later prev_hash (and a checkpoint's
// covers_hash), the hash column and the chain head. Signatures stay.
func rechain(t testing.TB, db *sql.DB, device string, seq uint64, altered []byte) {
	t.Helper()
	prev := evidence.EntryHash(payloadAt(t, db, device, seq))
	mustExec(t, db, `UPDATE entries SET payload = ?, hash = ? WHERE device = ? AND seq = ?`, altered, evidence.EntryHash(altered), device, seq)
	hash := evidence.EntryHash(altered)
	var head uint64
	if err := db.QueryRow(`SELECT seq FROM device_heads WHERE device = ?`, device).Scan(&head); err != nil {
		t.Fatal(err)
	}
	for s := seq + 1; s <= head; s++ {
		p := payloadAt(t, db, device, s)
		oldHash := evidence.EntryHash(p)
		p = bytes.ReplaceAll(p, []byte(prev), []byte(hash))
		mustExec(t, db, `UPDATE entries SET payload = ?, hash = ? WHERE device = ? AND seq = ?`, p, evidence.EntryHash(p), device, s)
		prev, hash = oldHash, evidence.EntryHash(p)
	}
	mustExec(t, db, `UPDATE device_heads SET hash = ? WHERE device = ?`, hash, device)
}

// capture renders the fixture's journal as a subscriber to sterigate/#
// would have captured it with mosquitto_sub -v: the retained key message,
// a status, and every entry as published, the first half as replays,
// some of them twice (QoS 1 redeliveries).
func (f evidenceFixture) capture(t testing.TB) []string {
	t.Helper()
	r, err := journal.OpenReader(f.journal)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	key, _ := os.ReadFile(f.keyFile)
	lines := []string{"sterigate/dax/gateway/cssd-gw-1/key " + strings.TrimSpace(string(key)),
		`sterigate/dax/autoclave-1/status {"device":"autoclave-1","gateway":"cssd-gw-1","state":"online","at":"2026-11-28T08:00:00Z"}`}
	topics := protocol.Topics{Root: "sterigate", Site: "dax"}
	n := 0
	err = r.Scan(context.Background(), journal.Filter{}, func(e journal.Entry) error {
		n++
		topic := map[journal.Kind]func(string) string{journal.KindCycle: topics.Cycle, journal.KindEvent: topics.Event, journal.KindTelemetry: topics.Telemetry}[e.Kind](e.Device)
		line := topic + " " + string(evidence.Published(e.Payload, e.Signature, n <= 8))
		lines = append(lines, line)
		if n%5 == 0 {
			lines = append(lines, line)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines
}

// lineOf returns the index of the first captured line of device and seq.
func lineOf(t testing.TB, lines []string, device string, seq uint64) int {
	t.Helper()
	for i, l := range lines {
		if strings.Contains(l, fmt.Sprintf(`"device":%q`, device)) && strings.Contains(l, fmt.Sprintf(`"seq":%d,`, seq)) {
			return i
		}
	}
	t.Fatalf("no captured line of %s seq %d", device, seq)
	return -1
}

// verifyCase is one golden case of testdata/verify: a fixture, what is
// done to it, and the verify arguments ($DIR is the fixture's directory).
type verifyCase struct {
	name string
	// tamper changes the journal; capture, when set, makes the capture
	// file (from the fixture's capture) and verify reads it.
	tamper  func(t testing.TB, f evidenceFixture, db *sql.DB)
	capture func(t testing.TB, f evidenceFixture, lines []string) []string
	args    []string
}

func verifyCases() []verifyCase {
	journalArgs := []string{"--journal", "$DIR/journal.db", "--key", "$DIR/key.json"}
	captureArgs := []string{"--capture", "$DIR/capture.txt"}
	same := func(_ testing.TB, _ evidenceFixture, lines []string) []string { return lines }
	return []verifyCase{
		{name: "journal-ok", args: journalArgs},
		{name: "journal-ok-keys-from-journal", args: []string{"--journal", "$DIR/journal.db"}},
		{name: "journal-ok-json", args: append(slices.Clone(journalArgs), "--json")},
		{name: "journal-deleted-entry", args: journalArgs, tamper: func(t testing.TB, _ evidenceFixture, db *sql.DB) {
			mustExec(t, db, `DELETE FROM entries WHERE device = 'autoclave-1' AND seq = 8`)
		}},
		{name: "journal-deleted-tail", args: journalArgs, tamper: func(t testing.TB, _ evidenceFixture, db *sql.DB) {
			mustExec(t, db, `DELETE FROM entries WHERE device = 'autoclave-1' AND seq >= 10`)
		}},
		{name: "journal-altered-byte", args: journalArgs, tamper: func(t testing.TB, _ evidenceFixture, db *sql.DB) {
			p := payloadAt(t, db, "autoclave-1", 5)
			p = bytes.Replace(p, []byte(`"temp_c":134.6`), []byte(`"temp_c":134.7`), 1)
			mustExec(t, db, `UPDATE entries SET payload = ? WHERE device = 'autoclave-1' AND seq = 5`, p)
		}},
		{name: "journal-reordered-pair", args: journalArgs, tamper: func(t testing.TB, _ evidenceFixture, db *sql.DB) {
			// The rows of seq 6 and 7 change places in the file.
			var a, b int64
			db.QueryRow(`SELECT id FROM entries WHERE device = 'autoclave-1' AND seq = 6`).Scan(&a)
			db.QueryRow(`SELECT id FROM entries WHERE device = 'autoclave-1' AND seq = 7`).Scan(&b)
			mustExec(t, db, `UPDATE entries SET id = -1 WHERE id = ?`, a)
			mustExec(t, db, `UPDATE entries SET id = ? WHERE id = ?`, a, b)
			mustExec(t, db, `UPDATE entries SET id = ? WHERE id = -1`, b)
		}},
		{name: "journal-forged-rehashed", args: journalArgs, tamper: func(t testing.TB, _ evidenceFixture, db *sql.DB) {
			// The attack of issue 11: the failed cycle rewritten as passed
			// and the chain re-hashed, without the key.
			p := bytes.Replace(payloadAt(t, db, "autoclave-1", 9), []byte(`"result":"failed"`), []byte(`"result":"passed"`), 1)
			rechain(t, db, "autoclave-1", 9, p)
		}},
		{name: "journal-unknown-key", args: journalArgs, tamper: func(t testing.TB, f evidenceFixture, db *sql.DB) {
			// The same forgery, re-signed with the attacker's own key, which
			// also goes into the journal's key table.
			p := bytes.Replace(payloadAt(t, db, "autoclave-1", 9), []byte(`"result":"failed"`), []byte(`"result":"passed"`), 1)
			rechain(t, db, "autoclave-1", 9, p)
			stranger := seededSigner(t, 9)
			rows, err := db.Query(`SELECT id, hash FROM entries WHERE device = 'autoclave-1' AND seq >= 9 AND key_id IS NOT NULL`)
			if err != nil {
				t.Fatal(err)
			}
			type row struct {
				id   int64
				hash string
			}
			var resign []row
			for rows.Next() {
				var r row
				rows.Scan(&r.id, &r.hash)
				resign = append(resign, r)
			}
			rows.Close()
			for _, r := range resign {
				sig := stranger.Sign(r.hash)
				mustExec(t, db, `UPDATE entries SET key_id = ?, signature = ? WHERE id = ?`, sig.Key, sig.Ed25519, r.id)
			}
			pk := stranger.Public()
			mustExec(t, db, `INSERT INTO signing_keys (key_id, algorithm, public_key, created_at, previous) VALUES (?, 'ed25519', ?, 0, '')`, pk.ID, []byte(pk.Key))
		}},
		{name: "capture-ok", args: captureArgs, capture: same},
		{name: "capture-reordered", args: captureArgs, capture: func(_ testing.TB, _ evidenceFixture, lines []string) []string {
			// Arrival order is not evidence: live and replayed streams
			// interleave. Only seq order counts.
			slices.Reverse(lines)
			return lines
		}},
		{name: "capture-jsonl", args: captureArgs, capture: func(_ testing.TB, _ evidenceFixture, lines []string) []string {
			// mosquitto_sub -F %j
			out := make([]string, len(lines))
			for i, l := range lines {
				topic, payload, _ := strings.Cut(l, " ")
				b, _ := json.Marshal(map[string]any{"tst": "2026-11-28T08:00:00.000000Z+0000", "topic": topic, "qos": 1, "retain": 0, "payloadlen": len(payload), "payload": payload})
				out[i] = string(b)
			}
			return out
		}},
		{name: "capture-partial", args: append(slices.Clone(captureArgs), "--partial", "--key", "$DIR/key.json"), capture: func(_ testing.TB, _ evidenceFixture, lines []string) []string {
			var out []string
			for _, l := range lines {
				if strings.Contains(l, "/cycle ") {
					out = append(out, l)
				}
			}
			return out
		}},
		{name: "capture-missing", args: captureArgs, capture: func(t testing.TB, _ evidenceFixture, lines []string) []string {
			i := lineOf(t, lines, "autoclave-1", 8)
			return slices.Delete(lines, i, i+1)
		}},
		{name: "capture-altered", args: captureArgs, capture: func(t testing.TB, _ evidenceFixture, lines []string) []string {
			// Every copy of seq 5 altered the same way (a redelivery too).
			for i := lineOf(t, lines, "autoclave-1", 5); i < len(lines); i++ {
				if strings.Contains(lines[i], `"seq":5,`) {
					lines[i] = strings.Replace(lines[i], `"temp_c":134.6`, `"temp_c":134.7`, 1)
				}
			}
			return lines
		}},
		{name: "capture-conflicting-duplicate", args: captureArgs, capture: func(t testing.TB, _ evidenceFixture, lines []string) []string {
			i := lineOf(t, lines, "autoclave-1", 9)
			forged := strings.Replace(lines[i], `"result":"failed"`, `"result":"passed"`, 1)
			return append(lines, forged)
		}},
		{name: "capture-unknown-key", args: append(slices.Clone(captureArgs), "--key", "$DIR/stranger.json"), capture: same},
	}
}

// TestVerifyGolden runs verify on each case of verifyCases and compares
// what it prints and its exit status with testdata/verify/<case> (-update
// rewrites them, and the capture files, which are kept there to read).
func TestVerifyGolden(t *testing.T) {
	for _, tc := range verifyCases() {
		t.Run(tc.name, func(t *testing.T) {
			f := newEvidenceFixture(t)
			if tc.tamper != nil {
				tc.tamper(t, f, openForTampering(t, f.journal))
			}
			golden := filepath.Join("testdata", "verify", tc.name)
			files := map[string]string{}
			if tc.capture != nil {
				capture := strings.Join(tc.capture(t, f, f.capture(t)), "\n") + "\n"
				writeFile(t, filepath.Join(f.dir, "capture.txt"), capture)
				files["capture.txt"] = capture
			}
			args := []string{"verify"}
			for _, a := range tc.args {
				args = append(args, strings.ReplaceAll(a, "$DIR", f.dir))
			}
			var out, errOut bytes.Buffer
			code := finish(dispatch(context.Background(), args, &out, &errOut), &errOut)
			files["args.txt"] = strings.Join(tc.args, "\n") + "\n"
			files["stdout"] = strings.ReplaceAll(out.String(), f.dir, "$DIR")
			files["stderr"] = strings.ReplaceAll(errOut.String(), f.dir, "$DIR")
			files["exit"] = fmt.Sprintln(code)
			compareGolden(t, golden, files)
		})
	}
}

// compareGolden compares files with those of dir, or writes them there
// with -update.
func compareGolden(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	if *updateGolden {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for name, got := range files {
		path := filepath.Join(dir, name)
		if *updateGolden {
			if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (run with -update to create it)", err)
		}
		if got != string(want) {
			t.Errorf("%s differs:\n--- got\n%s--- want\n%s", path, got, want)
		}
	}
}
