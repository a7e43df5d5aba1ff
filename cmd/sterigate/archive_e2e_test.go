package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/sterigate/sterigate/gateway/archive/pgtest"
	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
	"github.com/sterigate/sterigate/protocol"
)

// The acceptance of the archive (issue 15): two gateways, two archive
// instances and one Mosquitto with the shipped configuration (TLS,
// passwords, ACL). While the simulators run, the broker is killed, an
// archive instance is killed while it stores, PostgreSQL restarts and the
// ACL denies one gateway for a while. Afterwards every cycle the
// simulators ran is in PostgreSQL exactly once, every gap the archive
// recorded is explained or was filled, and every gateway's oldest
// unarchived entry is younger than its alarm threshold.
func TestEndToEndArchiveSurvivesFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: real processes")
	}
	dir := t.TempDir()
	pg := pgtest.Start(t)
	pk := brokertest.NewPKI(t)
	const archivePassword = "archive-pw"
	sites := []string{"east", "west"}
	users := map[string]string{"sterigate-archive": archivePassword}
	for _, s := range sites {
		users[s] = s + "-pw"
	}
	broker := brokertest.StartShipped(t, brokertest.Setup{PKI: pk, Users: users})
	shippedACL, err := os.ReadFile(broker.ACLPath)
	if err != nil {
		t.Fatal(err)
	}

	archivePW := writeFile(t, filepath.Join(dir, "archive-password"), archivePassword)
	archiveCfg := func(id string) string {
		return writeFile(t, filepath.Join(dir, id+".yaml"), fmt.Sprintf(`
mqtt: {brokers: [%q], keepalive: 2s, username: sterigate-archive, password_file: %q, tls: {ca_file: %q}}
postgres: {url: %q}
archive: {id: %s, group: e2e, gap_alarm_after: 5s, batch_size: 200}
`, broker.URL("ssl"), archivePW, pk.CAFile, pg.URL(), id))
	}
	cfgA1, cfgA2 := archiveCfg("a1"), archiveCfg("a2")
	a1 := startProc(t, "archive-a1", binary, "archive", "--config", cfgA1)
	a2 := startProc(t, "archive-a2", binary, "archive", "--config", cfgA2)
	// The archives subscribe before the gateways publish: what they miss
	// is what the faults lose.
	a1.waitOutput(20*time.Second, "archive connected")
	a2.waitOutput(20*time.Second, "archive connected")

	const speed, devices, cycles = 300, 2, 3
	const alarmAfter = 30 * time.Second
	type site struct {
		name, cfg, console, truth string
		sim, gw                   *proc
	}
	var all []*site
	for i, name := range sites {
		sdir := filepath.Join(dir, name)
		if err := os.MkdirAll(sdir, 0o755); err != nil {
			t.Fatal(err)
		}
		s := &site{name: name, console: fmt.Sprintf("127.0.0.1:%d", freePort(t))}
		var simAddr string
		s.sim, simAddr, s.truth = startSim(t, sdir, devices, cycles, speed, uint64(40+i), nil)
		var devs strings.Builder
		for d := 1; d <= devices; d++ {
			fmt.Fprintf(&devs, "  - {id: autoclave-%d, driver: modbus-tcp, address: %q, unit: %d, profile: sim-autoclave, poll_interval: 50ms, timeout: 300ms, time_scale: %d}\n", d, simAddr, d, speed)
		}
		pw := writeFile(t, filepath.Join(sdir, "mqtt-password"), users[name])
		s.cfg = writeFile(t, filepath.Join(sdir, "sterigate.yaml"), fmt.Sprintf(`
gateway: {id: gw-%s, site: %s, data_dir: %q, console: %q}
mqtt: {brokers: [%q], keepalive: 2s, confirm_timeout: 2s, username: %s, password_file: %q, tls: {ca_file: %q},
       receipts: required, receipts_republish_after: 3s, receipts_alarm_after: %s}
devices:
%s`, name, name, filepath.Join(sdir, "data"), s.console, broker.URL("ssl"), name, pw, pk.CAFile, alarmAfter, devs.String()))
		s.gw = startProc(t, "gateway-"+name, binary, "run", "--config", s.cfg)
		all = append(all, s)
	}

	ctx := context.Background()
	db, err := pgx.Connect(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	countRows := func(q string, args ...any) int {
		var n int
		if err := db.QueryRow(ctx, q, args...).Scan(&n); err != nil {
			return -1 // PostgreSQL restarting: not yet
		}
		return n
	}
	waitFor(t, 30*time.Second, "the first cycle records in PostgreSQL", func() bool {
		mustRun(t, a1, a2, all[0].gw, all[1].gw)
		return countRows(`SELECT count(*) FROM cycle_records`) > 0
	})

	// The faults, one after another while the sterilizers run.
	t.Log("fault: broker SIGKILL")
	broker.Stop(syscall.SIGKILL)
	<-time.After(time.Second) // the broker's downtime
	broker.Start()

	t.Log("fault: archive a1 SIGKILL in the middle of a transaction")
	waitFor(t, 30*time.Second, "a transaction of a1 in progress", func() bool {
		return countRows(`SELECT count(*) FROM pg_stat_activity WHERE application_name = 'sterigate-archive-a1' AND xact_start IS NOT NULL`) > 0
	})
	a1.kill()
	<-time.After(time.Second) // a1's downtime
	a1 = startProc(t, "archive-a1", binary, "archive", "--config", cfgA1)

	t.Log("fault: PostgreSQL restart")
	pg.Stop("immediate")
	<-time.After(time.Second) // the database's downtime
	pg.Start()
	db.Close(ctx)
	if db, err = pgx.Connect(ctx, pg.URL()); err != nil {
		t.Fatal(err)
	}

	t.Log("fault: ACL denies gateway east for 3 s")
	broker.SetACL("user east\ntopic readwrite sterigate/elsewhere/#\n" + string(shippedACL))
	<-time.After(3 * time.Second) // the denial's length
	broker.SetACL(string(shippedACL))

	// Every cycle the simulators ran, once.
	waitFor(t, 120*time.Second, "every scheduled cycle to finish", func() bool {
		for _, s := range all {
			mustRun(t, s.sim, s.gw)
			if len(readTruth(t, s.truth)) < devices*cycles {
				return false
			}
		}
		return true
	})
	var want []string
	for _, s := range all {
		for _, c := range readTruth(t, s.truth) {
			want = append(want, protocol.CycleID(s.name, fmt.Sprintf("autoclave-%d", c.Device), c.Counter))
		}
	}
	// Without receipts: required this fails: the broker SIGKILL loses
	// records it queued for the archives' sessions after it had passed them
	// to the gateway's own subscription (so the gateway counted them
	// confirmed), and the ACL denial drops telemetry.
	waitFor(t, 60*time.Second, "every truth cycle in PostgreSQL", func() bool {
		mustRun(t, a1, a2)
		return countRows(`SELECT count(*) FROM unnest($1::text[]) w(id)
			WHERE EXISTS (SELECT 1 FROM cycle_records c WHERE c.id = w.id OR c.id LIKE w.id || ':r%')`, want) == len(want)
	})
	// Exactly once: one row per cycle of the device (a revision has its
	// own id and names the one it supersedes).
	if n := countRows(`SELECT count(*) FROM (SELECT site, device, cycle FROM cycle_records WHERE record->>'supersedes' IS NULL GROUP BY 1, 2, 3 HAVING count(*) > 1) d`); n != 0 {
		t.Errorf("%d cycles stored more than once", n)
	}
	// The chains are whole: every hole filled or explained, nothing altered.
	waitFor(t, 60*time.Second, "every device's entries archived and no gap open", func() bool {
		return countRows(`SELECT count(*) FROM gaps WHERE state = 'open'`) == 0 &&
			countRows(`SELECT count(*) FROM devices d WHERE stored_through < (SELECT max(seq) FROM chain c WHERE c.site = d.site AND c.device = d.device)`) == 0
	})
	// An entry stored before its gateway's key reached the archive is an
	// unknown_key problem resolved when the key comes; nothing else.
	const otherProblems = `FROM chain_problems WHERE code <> 'missing' AND NOT (code = 'unknown_key' AND state = 'resolved')`
	if n := countRows(`SELECT count(*) ` + otherProblems); n != 0 {
		rows, _ := db.Query(ctx, `SELECT site, device, from_seq, code, state, detail `+otherProblems)
		var lines []string
		for rows.Next() {
			var site, device, code, state, detail string
			var seq int64
			rows.Scan(&site, &device, &seq, &code, &state, &detail)
			lines = append(lines, fmt.Sprintf("%s/%s seq %d %s (%s): %s", site, device, seq, code, state, detail))
		}
		rows.Close()
		t.Errorf("%d chain problems other than gaps:\n%s", n, strings.Join(lines, "\n"))
	}
	if n := countRows(`SELECT count(*) FROM conflicts`); n != 0 {
		t.Errorf("%d conflicting duplicates", n)
	}
	// Every gateway knows its entries are archived.
	for _, s := range all {
		waitFor(t, 30*time.Second, s.name+"'s oldest unarchived entry younger than "+alarmAfter.String(), func() bool {
			age, ok := scrapeGauge(t, s.console, "sterigate_journal_oldest_unarchived_age_seconds")
			return ok && age < alarmAfter.Seconds()
		})
	}
}

// scrapeGauge reads one unlabelled sample from a gateway console's /metrics.
func scrapeGauge(t testing.TB, consoleAddr, name string) (float64, bool) {
	resp, err := http.Get("http://" + consoleAddr + "/metrics")
	if err != nil {
		return 0, false
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			return f, err == nil
		}
	}
	return 0, false
}
