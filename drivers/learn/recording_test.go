package learn

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// TestRecordingFileReplaysTheSameDraft: the file written while recording
// reads back into the same samples, and --from gives the same draft as
// the analysis made at the end of the recording.
func TestRecordingFileReplaysTheSameDraft(t *testing.T) {
	var file bytes.Buffer
	sr := recordShuffledTo(t, 11, "bowie-dick", 4242, &file)
	back, err := ReadRecording(bytes.NewReader(file.Bytes()), "learn.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	if len(back.Samples) != len(sr.rec.Samples) || back.Stop != sr.rec.Stop || back.Stop == "" {
		t.Fatalf("read back %d samples (stop %q), recorded %d (stop %q)", len(back.Samples), back.Stop, len(sr.rec.Samples), sr.rec.Stop)
	}
	live, err1 := Draft(Analyse(sr.rec), sr.rec, DraftOptions{})
	replay, err2 := Draft(Analyse(back), back, DraftOptions{})
	if err1 != nil || err2 != nil {
		t.Fatalf("drafts: %v, %v", err1, err2)
	}
	if !bytes.Equal(live, replay) {
		t.Errorf("the draft from the file differs from the draft made while recording:\n%s\n---\n%s", live, replay)
	}
	// A recorder killed mid-line leaves a cut last line: skipped, noted.
	cut := file.Bytes()[:file.Len()-40]
	rec, err := ReadRecording(bytes.NewReader(cut), "cut.jsonl")
	if err != nil {
		t.Fatalf("a recording cut short: %v", err)
	}
	if len(rec.Notes) != 1 || !strings.Contains(rec.Notes[0], "last line cut short") {
		t.Errorf("notes %q", rec.Notes)
	}
}

// recordShuffledTo is recordShuffled writing the recording file to out.
func recordShuffledTo(t *testing.T, seed int64, program string, counter uint32, out *bytes.Buffer) simRecording {
	t.Helper()
	sr := recordShuffled(t, seed, program, counter)
	w, err := NewRecordingWriter(out, sr.rec.Header)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sr.rec.Samples {
		if err := w.Sample(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Stop(sr.rec.Stop); err != nil {
		t.Fatal(err)
	}
	return sr
}

func TestRecordWritesEveryRoundAsItGoes(t *testing.T) {
	clk := &fakeClock{now: time.Unix(1e9, 0)}
	d := &tableDevice{tables: []Range{{3, 0, 10}}, clock: clk}
	var out bytes.Buffer
	rec, err := Record(context.Background(), d, RecordOptions{Unit: 1, Device: "test", Blocks: []Block{{3, 0, 10}, {3, 20, 2}},
		Clock: clk, Duration: 30 * time.Second, Out: &out})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Stop != "duration reached" || len(rec.Samples) != 31 {
		t.Errorf("stop %q after %d samples", rec.Stop, len(rec.Samples))
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 1+31+1 {
		t.Fatalf("%d lines written", len(lines))
	}
	if !strings.HasPrefix(lines[1], `{"t":0,"v":[[0,1,2,3,4,5,6,7,8,9],null],"e":[null,"exception 2 (illegal data address)`) {
		t.Errorf("first sample line %s", lines[1])
	}
	if lines[32] != `{"stop":"duration reached"}` {
		t.Errorf("last line %s", lines[32])
	}
	for i := 1; i < len(d.requests); i++ {
		if gap := d.requests[i].Sub(d.requests[i-1]); gap < 200*time.Millisecond {
			t.Fatalf("requests %v apart: faster than 5 per second", gap)
		}
	}
}

func TestReadRecordingNamesTheBadLine(t *testing.T) {
	head := `{"format":"sterigate-learn-recording","version":1,"device":"x","unit":1,"started_at":"2026-11-28T07:00:00Z","time_scale":1,"interval_s":1,"blocks":[{"function":3,"start":0,"count":2}]}` + "\n"
	for _, c := range []struct{ name, file, want string }{
		{"empty", "", "empty file"},
		{"not json", "hello\n", "f.jsonl:1: header"},
		{"other format", `{"format":"x","version":1}` + "\n", "not a sterigate learn recording"},
		{"future version", strings.Replace(head, `"version":1`, `"version":2`, 1), "version is 2"},
		{"write function", strings.Replace(head, `"function":3`, `"function":6`, 1), "blocks[0].function is 6"},
		{"too large", strings.Replace(head, `"count":2`, `"count":126`, 1), "blocks[0].count is 126"},
		{"past 65535", strings.Replace(head, `"start":0`, `"start":65535`, 1), "runs past address 65535"},
		{"no time scale", strings.Replace(head, `"time_scale":1`, `"time_scale":0`, 1), "time_scale is 0"},
		{"no samples", head, "holds no samples"},
		{"short block", head + `{"t":0,"v":[[1]]}` + "\n", "f.jsonl:2: v[0] has 1 values"},
		{"missing t", head + `{"v":[[1,2]]}` + "\n", "f.jsonl:2: t is missing"},
		{"negative t", head + `{"t":-1,"v":[[1,2]]}` + "\n", "f.jsonl:2: t is -1"},
		{"time goes back", head + `{"t":5,"v":[[1,2]]}` + "\n" + `{"t":4,"v":[[1,2]]}` + "\n", "f.jsonl:3: t is 4, before"},
		{"value too big", head + `{"t":0,"v":[[1,70000]]}` + "\n", "f.jsonl:2:"},
		{"blocks count", head + `{"t":0,"v":[[1,2],[3,4]]}` + "\n", "v has 2 blocks, the header lists 1"},
		{"after stop", head + `{"t":0,"v":[[1,2]]}` + "\n" + `{"stop":"x"}` + "\n" + `{"t":1,"v":[[1,2]]}` + "\n", "f.jsonl:4: a line after the stop line"},
		{"bad middle line", head + `{"t":0,"v":[[1,2]]` + "\n" + `{"t":1,"v":[[1,2]]}` + "\n", "f.jsonl:2:"},
	} {
		_, err := ReadRecording(strings.NewReader(c.file), "f.jsonl")
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err %v, want it to contain %q", c.name, err, c.want)
		}
	}
	bits := strings.Replace(head, `"function":3`, `"function":1`, 1)
	if _, err := ReadRecording(strings.NewReader(bits+`{"t":0,"v":[[1,2]]}`+"\n"), "f.jsonl"); err == nil || !strings.Contains(err.Error(), "a coil or input is 0 or 1") {
		t.Errorf("a bit reading 2: %v", err)
	}
	rec, err := ReadRecording(strings.NewReader(head+`{"t":0,"v":[null],"e":["timeout"]}`+"\n"+`{"t":1,"v":[[1,2]]}`+"\n"), "f.jsonl")
	if err != nil || rec.Samples[0].Values[0] != nil || rec.Samples[0].Errors[0] != "timeout" || rec.Samples[1].Values[0][1] != 2 {
		t.Errorf("a failed read: %v %+v", err, rec)
	}
}

// FuzzReadRecording: any input is a recording whose samples match its
// header, or an error; never a panic.
func FuzzReadRecording(f *testing.F) {
	head := `{"format":"sterigate-learn-recording","version":1,"device":"x","unit":1,"started_at":"2026-11-28T07:00:00Z","time_scale":1,"interval_s":1,"blocks":[{"function":3,"start":0,"count":2},{"function":1,"start":5,"count":1}]}` + "\n"
	f.Add([]byte(head + `{"t":0,"v":[[1,2],[1]]}` + "\n" + `{"t":1,"v":[null,[0]],"e":["timeout",null]}` + "\n" + `{"stop":"interrupted"}` + "\n"))
	f.Add([]byte(head + `{"t":0,"v":[[1,2],[1]]}`))
	f.Add([]byte(head))
	f.Add([]byte(`{"format":"sterigate-learn-recording","version":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		rec, err := ReadRecording(bytes.NewReader(data), "fuzz.jsonl")
		if err != nil {
			return
		}
		if len(rec.Samples) == 0 {
			t.Fatal("a recording without samples was accepted")
		}
		for i, s := range rec.Samples {
			if len(s.Values) != len(rec.Header.Blocks) {
				t.Fatalf("sample %d has %d blocks", i, len(s.Values))
			}
			for j, v := range s.Values {
				if v != nil && len(v) != int(rec.Header.Blocks[j].Count) {
					t.Fatalf("sample %d block %d has %d values", i, j, len(v))
				}
			}
			if i > 0 && s.T < rec.Samples[i-1].T {
				t.Fatal("time goes back")
			}
		}
		// The analysis must survive whatever a valid file holds.
		res := Analyse(rec)
		if _, err := Draft(res, rec, DraftOptions{}); err == nil && !res.Complete() {
			t.Fatal("an incomplete result gave a draft without an error")
		}
	})
}
