package mqttpub

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/gateway/mqttpub/brokertest"
	"github.com/sterigate/sterigate/protocol"
)

// TestMosquittoOutageThenRecovery runs the publisher against a real
// Mosquitto through a loopback proxy, kills the gateway's link (Last
// Will), then stops the broker (gracefully, then with SIGKILL) while the
// journal keeps filling, and checks that everything arrives once by id,
// in order, with the statuses republished.
func TestMosquittoOutageThenRecovery(t *testing.T) {
	m := startMosquitto(t, "allow_anonymous true")
	px := startProxy(t, m.Addr())
	c, _, sub := subscribe(t, m.URL("tcp"), "sterigate/#", nil)
	j := openJournal(t)
	ctx := context.Background()
	devices := []string{"ac-1", "ac-2", "ac-3"}
	if err := j.RegisterDevices(ctx, devices...); err != nil {
		t.Fatal(err)
	}
	fill(t, j, devices, 1, 3, 4)
	p, err := New(testOptions(px.url()), j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	drained := func() bool { return pendingCount(t, j) == 0 }
	allArrived := func() bool {
		es, _ := j.Entries(ctx, "", "")
		return len(c.ids()) >= len(es)
	}
	eventually(t, 15*time.Second, "the first backlog to arrive", func() bool { return drained() && allArrived() })
	eventually(t, 5*time.Second, "online status", func() bool { return gatewayState(t, c) == protocol.GatewayOnline })

	// The gateway's link dies: Mosquitto publishes the Last Will.
	px.Pause(true)
	px.Cut()
	eventually(t, 15*time.Second, "the Last Will", func() bool { return gatewayState(t, c) == protocol.GatewayOffline })
	px.Pause(false)
	eventually(t, 15*time.Second, "online again", func() bool { return gatewayState(t, c) == protocol.GatewayOnline && p.Connected() })

	next := 10
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		// Keep the gateway away until the test's subscriber is back, so
		// whatever the broker accepts has a subscriber to go to.
		px.Pause(true)
		m.Stop(sig)
		px.Cut()
		eventually(t, 10*time.Second, "the publisher to notice the outage", func() bool { return !p.Connected() })
		fill(t, j, devices, next, 4, 5) // cycles finish during the outage
		next += 4
		if err := j.Event(ctx, protocol.Event{Device: "ac-2", Kind: protocol.EventOffline, Text: fmt.Sprintf("during %s outage", sig)}); err != nil {
			t.Fatal(err)
		}
		if got := pendingCount(t, j); got == 0 {
			t.Fatal("entries were marked delivered while the broker was down")
		}
		m.Start()
		eventually(t, 15*time.Second, "the subscriber to resubscribe", sub.get)
		px.Pause(false)
		eventually(t, 20*time.Second, fmt.Sprintf("recovery after %s", sig), func() bool { return drained() && allArrived() })
		eventually(t, 10*time.Second, "statuses republished", func() bool {
			return gatewayState(t, c) == protocol.GatewayOnline &&
				deviceStatus(t, c, "ac-2").Error == fmt.Sprintf("during %s outage", sig)
		})
	}
	dups := checkDelivery(t, j, c.all())
	es, _ := j.Entries(ctx, "", "")
	t.Logf("%d entries delivered through 1 link cut and 2 broker outages; %d duplicate deliveries (de-duplicated by id)", len(es), dups)
}

func TestMosquittoMutualTLS(t *testing.T) {
	pk := brokertest.NewPKI(t)
	m := startMosquitto(t, fmt.Sprintf("cafile %s\ncertfile %s\nkeyfile %s\nrequire_certificate true\nuse_identity_as_username true\nallow_anonymous false",
		pk.CAFile, pk.ServerCert, pk.ServerKey))
	clientTLS := func(caFile, cert, key string) *tls.Config {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		kp, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			t.Fatal(err)
		}
		return &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{kp}}
	}
	c, _, _ := subscribe(t, m.URL("ssl"), "sterigate/#", &pahoTLS{clientTLS(pk.CAFile, pk.ClientCert, pk.ClientKey)})
	j := openJournal(t)
	fill(t, j, []string{"ac-1"}, 1, 3, 2)

	opts := testOptions(m.URL("ssl"))
	opts.CAFile, opts.CertFile, opts.KeyFile = pk.CAFile, pk.ClientCert, pk.ClientKey
	p, err := New(opts, j)
	if err != nil {
		t.Fatal(err)
	}
	runPublisher(t, p)
	eventually(t, 15*time.Second, "delivery over mutual TLS", func() bool {
		es, _ := j.Entries(context.Background(), "", "")
		return pendingCount(t, j) == 0 && len(c.ids()) >= len(es)
	})
	checkDelivery(t, j, c.all())

	// The broker refuses a client without a certificate or with one from
	// another CA, and the gateway refuses a broker it cannot verify.
	for _, tc := range []struct {
		name          string
		ca, cert, key string
		wantErrSubstr string
	}{
		{"no client certificate", pk.CAFile, "", "", ""},
		{"client certificate from another CA", pk.CAFile, pk.RogueClientCert, pk.RogueClientKey, ""},
		{"broker certificate not signed by ca_file", pk.OtherCA, pk.ClientCert, pk.ClientKey, "certificate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := testOptions(m.URL("ssl"))
			o.CAFile, o.CertFile, o.KeyFile = tc.ca, tc.cert, tc.key
			bad, err := New(o, openJournal(t))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			ok, err := bad.session(ctx, m.URL("ssl"))
			if ok || err == nil {
				t.Fatalf("session succeeded (%v, %v), want a refused connection", ok, err)
			}
			if !strings.Contains(err.Error(), tc.wantErrSubstr) {
				t.Fatalf("error %q does not mention %q", err, tc.wantErrSubstr)
			}
		})
	}
}

// BenchmarkDrainBacklogToMosquitto journals the backlog of an outage of
// 20 sterilizers — b.N telemetry batches of 10 samples and 24 full cycle
// records per device (2,400 samples each, as a 40-minute cycle polled at
// 1 Hz) — then times its drain into a real Mosquitto, unpaced, with a live
// cycle record journaled mid-drain. 24 h at 1 Hz is -benchtime 172800x.
func BenchmarkDrainBacklogToMosquitto(b *testing.B) {
	m := startMosquitto(b, "allow_anonymous true")
	j := openJournal(b)
	ctx := context.Background()
	const devices, cyclesEach = 20, 24
	batches := max(b.N, 1000)
	errs := make(chan error, devices)
	for d := range devices {
		go func() {
			device := fmt.Sprintf("ac-%02d", d)
			// A cycle record after every cycleEvery telemetry batches.
			cycleEvery := max(1, batches/devices/cyclesEach)
			cycles := uint64(0)
			for n, i := 0, d; i < batches; n, i = n+1, i+devices {
				if err := j.Telemetry(ctx, telemetry(device, 10)); err != nil {
					errs <- err
					return
				}
				if (n+1)%cycleEvery == 0 && cycles < cyclesEach {
					cycles++
					rec := cycleRecord(device, cycles)
					rec.Samples = telemetry(device, 2400).Samples
					if err := j.Cycle(ctx, rec); err != nil {
						errs <- err
						return
					}
				}
			}
			errs <- nil
		}()
	}
	for range devices {
		if err := <-errs; err != nil {
			b.Fatal(err)
		}
	}
	liveJournaled := make(chan time.Time, 1)
	liveDelivered := make(chan time.Time, 1)
	opts := testOptions(m.URL("tcp"))
	opts.ReplayRate = -1
	opts.Window = 64
	var delivered int
	opts.OnDelivered = func(e journal.Entry) {
		delivered++
		if e.Kind == journal.KindCycle && e.RecordID == "dax:ac-00:1000" {
			liveDelivered <- time.Now()
		}
		if delivered == batches/2 {
			go func() {
				liveJournaled <- time.Now()
				j.Cycle(ctx, cycleRecord("ac-00", 1000))
			}()
		}
	}
	p, err := New(opts, j)
	if err != nil {
		b.Fatal(err)
	}
	// Measure the drain's memory, not the filling's: return the fill's
	// garbage and reset the kernel's peak-RSS mark.
	runtime.GC()
	debug.FreeOSMemory()
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		b.Logf("cannot reset the peak RSS (%v): it includes filling the journal", err)
	}
	b.ResetTimer()
	start := time.Now()
	stop := runPublisher(b, p)
	eventually(b, 10*time.Minute, "the drain", func() bool { return pendingCount(b, j) == 0 && len(liveDelivered) == 1 })
	elapsed := time.Since(start)
	b.StopTimer()
	stop()
	b.ReportMetric(float64(batches+devices*cyclesEach+1)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(elapsed.Seconds(), "drain-s")
	b.ReportMetric(float64((<-liveDelivered).Sub(<-liveJournaled).Milliseconds()), "live-cycle-ms")
	b.ReportMetric(peakRSSMiB(b), "peak-RSS-MiB")
}

// peakRSSMiB is the process's peak resident set (VmHWM): journal fill,
// drain and test harness together; Mosquitto runs in its own process.
func peakRSSMiB(b *testing.B) float64 {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Logf("no /proc/self/status: %v", err)
		return 0
	}
	for _, line := range strings.Split(string(status), "\n") {
		var kib float64
		if _, err := fmt.Sscanf(line, "VmHWM: %f kB", &kib); err == nil {
			return kib / 1024
		}
	}
	return 0
}
