package printout

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/protocol"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var start = time.Date(2026, 11, 28, 14, 3, 12, 0, time.UTC)

func TestGolden(t *testing.T) {
	cases := []struct {
		file   string
		result protocol.Result
		opts   Options
	}{
		{"en_pass.txt", protocol.ResultPassed, Options{Style: StyleEnglish}},
		{"en_fail.txt", protocol.ResultFailed, Options{Style: StyleEnglish}},
		{"en_abort.txt", protocol.ResultAborted, Options{Style: StyleEnglish}},
		{"de_pass.txt", protocol.ResultPassed, Options{Style: StyleGerman}},
		{"de_fail.txt", protocol.ResultFailed, Options{Style: StyleGerman}},
		{"de_abort.txt", protocol.ResultAborted, Options{Style: StyleGerman, FormFeed: true}},
	}
	for _, tc := range cases {
		t.Run(tc.file, func(t *testing.T) {
			got := Render(SampleCycle(tc.result, 13, start), tc.opts)
			path := filepath.Join("testdata", tc.file)
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("Render differs from %s:\n got: %q\nwant: %q", path, got, want)
			}
		})
	}
}

func TestGermanFitsThirtyTwoColumns(t *testing.T) {
	for _, r := range []protocol.Result{protocol.ResultPassed, protocol.ResultFailed, protocol.ResultAborted} {
		out := Render(SampleCycle(r, 4711, start), Options{Style: StyleGerman, LineEnding: "\n"})
		for i, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
			if len(line) > 32 { // one byte per column in a single-byte code page
				t.Errorf("%s line %d has %d columns: %q", r, i+1, len(line), line)
			}
		}
	}
}

func TestDegreeSignFollowsCodePage(t *testing.T) {
	c := SampleCycle(protocol.ResultPassed, 13, start)
	for charset, want := range map[string]string{
		CharsetCP850: "134\xf8C", CharsetCP437: "134\xf8C", CharsetLatin1: "134\xb0C", CharsetASCII: "134?C", "": "134\xf8C",
	} {
		out := Render(c, Options{Style: StyleGerman, Charset: charset})
		if !bytes.Contains(out, []byte("Programm: 134 Porous/"+want+"/3min")) {
			t.Errorf("charset %q: program line not encoded as %q:\n%q", charset, want, out)
		}
	}
	// Umlauts follow the code page too: ü is 0x81 in CP850 and CP437, 0xFC in Latin-1.
	if out := Render(c, Options{Style: StyleGerman, Charset: CharsetCP850}); !bytes.Contains(out, []byte("Bel\x81ftung")) {
		t.Errorf("cp850: Belüftung not encoded with 0x81:\n%q", out)
	}
	if out := Render(c, Options{Style: StyleGerman, Charset: CharsetLatin1}); !bytes.Contains(out, []byte("Bel\xfcftung")) {
		t.Errorf("latin1: Belüftung not encoded with 0xFC:\n%q", out)
	}
}

func TestLineEndings(t *testing.T) {
	c := SampleCycle(protocol.ResultPassed, 13, start)
	for _, nl := range []string{"\r\n", "\n", "\r"} {
		out := Render(c, Options{Style: StyleEnglish, LineEnding: nl})
		lines := strings.Split(string(out), nl)
		if lines[len(lines)-1] != "" || lines[0] != "*** STERIGATE SIM-B17 ***" {
			t.Errorf("line ending %q: first line %q, tail %q", nl, lines[0], lines[len(lines)-1])
		}
		if nl != "\r\n" && strings.Contains(string(out), "\r\n") {
			t.Errorf("line ending %q: output contains CRLF", nl)
		}
	}
	if out := Render(c, Options{Style: StyleEnglish, FormFeed: true}); !bytes.HasSuffix(out, []byte("\r\n\f")) {
		t.Errorf("FormFeed: report does not end in CRLF FF: %q", out[len(out)-10:])
	}
}

func TestStreamLine(t *testing.T) {
	at := time.Date(2026, 11, 28, 14, 5, 30, 0, time.UTC)
	cases := []struct {
		ster      bool
		p, tc, tj float64
		want      string
	}{
		{true, 318.0, 135.3, 136.0, "S 02:05:30 PM   31.43  275.5  276.8\r\n"},
		{false, 7.0, 45.0, 134.0, "- 02:05:30 PM  -13.68  113.0  273.2\r\n"},
	}
	for _, tc := range cases {
		if got := string(StreamLine(at, tc.ster, tc.p, tc.tc, tc.tj, Options{})); got != tc.want {
			t.Errorf("StreamLine(%v, %v kPa) = %q, want %q", tc.ster, tc.p, got, tc.want)
		}
	}
}
