package console

import (
	"context"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/steam"
	"github.com/sterigate/sterigate/protocol/verify"
)

// testClock is a clock tests move by hand.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// porousCycle is a plausible 134 °C porous-load cycle of n samples, one
// per second from start, judged by protocol/verify like the gateway does.
func porousCycle(device string, cycle uint64, start time.Time, n int) protocol.CycleRecord {
	rec := protocol.CycleRecord{Device: device, Cycle: cycle, Program: "134-porous", StartedAt: start,
		EndedAt: start.Add(time.Duration(n-1) * time.Second), Result: protocol.ResultPassed, Complete: true, EndSeen: true, Source: "modbus-tcp",
		Channels: []protocol.Channel{{ID: "drain", Role: protocol.RoleDrainTemperature, Unit: "°C"}}}
	type span struct {
		name protocol.PhaseName
		frac float64
	}
	plan := []span{{protocol.PhasePreparation, 0.05}, {protocol.PhaseAirRemoval, 0.25}, {protocol.PhaseHeating, 0.15},
		{protocol.PhaseSterilizing, 0.35}, {protocol.PhaseExhaust, 0.05}, {protocol.PhaseDrying, 0.1}, {protocol.PhaseAirAdmission, 0.05}}
	i := 0
	for k, sp := range plan {
		count := int(math.Round(sp.frac * float64(n)))
		if k == len(plan)-1 {
			count = n - i
		}
		ph := protocol.Phase{Name: sp.name, Start: start.Add(time.Duration(i) * time.Second)}
		for j := 0; j < count && i < n; j, i = j+1, i+1 {
			f := float64(j) / float64(max(1, count-1))
			var temp, press float64
			switch sp.name {
			case protocol.PhasePreparation:
				temp, press = 40, 101
			case protocol.PhaseAirRemoval:
				press = 10 + 100*math.Abs(math.Sin(f*3*math.Pi))
				temp = steam.TempC(press) + 1
			case protocol.PhaseHeating:
				press = 110 + f*194
				temp = steam.TempC(press)
			case protocol.PhaseSterilizing:
				temp = 134.6 + 0.3*math.Sin(f*20)
				press = steam.PressureKPa(temp)
			case protocol.PhaseExhaust:
				press = 304 - f*200
				temp = steam.TempC(press)
			case protocol.PhaseDrying:
				temp, press = 60, 6
			default:
				temp, press = 55, 6+f*95
			}
			s := protocol.Sample{At: start.Add(time.Duration(i) * time.Second), TempC: temp, PressureKPa: press, Phase: sp.name,
				Ch: map[string]float64{"drain": temp - 0.2}}
			rec.Samples = append(rec.Samples, s)
			ph.Observe(s)
		}
		ph.End = start.Add(time.Duration(i) * time.Second)
		rec.Phases = append(rec.Phases, ph)
	}
	rec.EndedAt = rec.Phases[len(rec.Phases)-1].End
	v := verify.Judge(rec, nil)
	rec.Verification = &v
	return rec
}

// fixture is a console over a real journal with a few records and two
// accounts: marie (operator) and admin (admin), password "correct horse".
type fixture struct {
	j       *journal.Journal
	clock   *testClock
	h       http.Handler
	srv     *httptest.Server
	users   string
	snap    Snapshot
	records map[string]string // name → record id
}

const testPassword = "correct horse"

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	clock := &testClock{t: time.Date(2026, 3, 2, 14, 0, 0, 0, time.UTC)}
	dir := t.TempDir()
	j, err := journal.Open(filepath.Join(dir, "journal.db"), journal.Options{Gateway: "cssd-gw-1", Site: "dax"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { j.Close() })
	f := &fixture{j: j, clock: clock, records: map[string]string{}}
	start := time.Date(2026, 3, 2, 8, 0, 0, 0, time.UTC)

	good := porousCycle("autoclave-1", 41, start, 600)
	bad := porousCycle("autoclave-1", 42, start.Add(time.Hour), 600)
	bad.Result = protocol.ResultPassed
	bad.Alarms = []protocol.Alarm{{Code: 31, Text: `<script>alert("x")</script> door`, At: start.Add(time.Hour + 5*time.Minute)}}
	for i := range bad.Samples {
		if bad.Samples[i].Phase == protocol.PhaseSterilizing && i%7 == 0 {
			bad.Samples[i].TempC = 131.2 // a sag below the band
		}
	}
	v := verify.Judge(bad, nil)
	bad.Verification = &v
	empty := protocol.CycleRecord{Device: "autoclave-<2>", Cycle: 7, Program: "121-liquids", StartedAt: start, EndedAt: start.Add(time.Minute),
		Result: protocol.ResultUnknown, Source: "modbus-tcp"}
	printed := protocol.CycleRecord{Device: "printer-1", Cycle: 1043, Program: "Universal/134°C/3min", StartedAt: start.Add(2 * time.Hour),
		EndedAt: start.Add(2*time.Hour + 20*time.Minute), Result: protocol.ResultPassed, Complete: true, EndSeen: true, Source: "printer",
		Raw:   []byte("Programm: Universal/134\xf8C/3min\r\nZyklus: 1043\r\n<b>Sterilisation Ok</b>\r\n"),
		Holes: []protocol.Hole{{From: start.Add(2*time.Hour + 5*time.Minute), To: start.Add(2*time.Hour + 6*time.Minute), Reason: protocol.HoleNotPrinted}}}
	for _, m := range []int{0, 4, 7, 12, 20} {
		printed.Samples = append(printed.Samples, protocol.Sample{At: start.Add(2*time.Hour + time.Duration(m)*time.Minute), TempC: 100 + float64(m), PressureKPa: 200, Phase: protocol.PhaseHeating})
	}
	for _, c := range []struct {
		name string
		rec  protocol.CycleRecord
	}{{"good", good}, {"bad", bad}, {"empty", empty}, {"printed", printed}} {
		if err := j.Cycle(ctx, c.rec); err != nil {
			t.Fatal(err)
		}
		f.records[c.name] = c.rec.RecordID("dax")
	}

	f.users = filepath.Join(dir, "users")
	hash, _ := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err := os.WriteFile(f.users, []byte("marie operator "+string(hash)+"\nadmin admin "+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	temp := 134.7
	f.snap = Snapshot{Gateway: "cssd-gw-1", Site: "dax", Version: "test", Started: clock.Now().Add(-time.Hour), BrokerConnected: false,
		BrokerUnreachableSince: clock.Now().Add(-10 * time.Minute),
		Pending:                map[string]int64{"urgent": 12345, "telemetry": 40}, OldestPending: clock.Now().Add(-10 * time.Minute),
		LastAck: clock.Now().Add(-11 * time.Minute),
		Devices: []protocol.DeviceStatus{
			{Device: "autoclave-1", State: protocol.DeviceOnline, Phase: protocol.PhaseSterilizing, Program: "134-porous", Cycle: 43,
				Since: clock.Now().Add(-95 * time.Second), At: clock.Now(),
				LastCycle: &protocol.LastCycle{ID: f.records["bad"], Cycle: 42, Program: "134-porous", EndedAt: bad.EndedAt, Result: protocol.ResultPassed,
					Verdict: protocol.VerdictFail, Disagreement: true, Complete: true}},
			{Device: "autoclave-<2>", State: protocol.DeviceOffline, Error: "<i>timeout</i>", StateSince: clock.Now().Add(-time.Minute), At: clock.Now()},
		},
		Live: map[string]Live{"autoclave-1": {
			Sample: &protocol.Sample{At: clock.Now().Add(-time.Second), TempC: temp, PressureKPa: 308.4, Phase: protocol.PhaseSterilizing},
			Alarms: []protocol.Event{{Kind: protocol.EventAlarm, Code: 12, Text: "<script>steam</script>", At: clock.Now().Add(-30 * time.Second)}},
		}},
	}
	o := testOptions()
	o.Now = clock.Now
	o.Records = j
	o.UsersFile = f.users
	o.Gateway, o.Site = "cssd-gw-1", "dax"
	o.Location = time.UTC
	o.DecodePrintout = func(device string, raw []byte) (string, bool) {
		if device != "printer-1" {
			return "", false
		}
		// cp850: 0xF8 is the degree sign.
		return strings.ReplaceAll(strings.ReplaceAll(string(raw), "\xf8", "°"), "\r", ""), true
	}
	f.h = Handler(SourceFunc(func(context.Context) (Snapshot, error) { return f.snap, nil }), o)
	f.srv = httptest.NewServer(f.h)
	t.Cleanup(f.srv.Close)
	return f
}

// client is a browser: it keeps cookies and does not follow redirects, so
// tests see them.
func (f *fixture) client(t *testing.T) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

type response struct {
	code   int
	body   string
	header http.Header
}

func (f *fixture) do(t *testing.T, c *http.Client, method, path string, form url.Values, headers ...string) response {
	t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, f.srv.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return response{resp.StatusCode, string(b), resp.Header}
}

var hiddenInput = regexp.MustCompile(`name="(csrf|supersedes)" value="([^"]*)"`)

// hidden returns the value of a hidden input of a page.
func hidden(t *testing.T, page, name string) string {
	t.Helper()
	for _, m := range hiddenInput.FindAllStringSubmatch(page, -1) {
		if m[1] == name {
			return m[2]
		}
	}
	t.Fatalf("no hidden input %s in the page", name)
	return ""
}

// login logs c in as name and returns the session's CSRF token.
func (f *fixture) login(t *testing.T, c *http.Client, name string) string {
	t.Helper()
	form := f.do(t, c, "GET", "/login", nil)
	r := f.do(t, c, "POST", "/login", url.Values{"name": {name}, "password": {testPassword}, "csrf": {hidden(t, form.body, "csrf")}, "next": {"/"}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("login as %s: %d\n%s", name, r.code, r.body)
	}
	page := f.do(t, c, "GET", "/cycles/"+url.PathEscape(f.records["good"]), nil)
	return hidden(t, page.body, "csrf")
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
