package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/sterigate/sterigate/protocol"
)

// chromiumPath finds Debian's chromium; CI installs it (scripts/test).
func chromiumPath(t *testing.T) string {
	return toolPath(t, "chromium is not installed: the browser test of the console needs Debian's chromium (scripts/test installs it)",
		"chromium", "/usr/bin/chromium", "chromium-browser")
}

// artifactDir is where the browser test leaves its screenshots and PDF:
// $STERIGATE_ARTIFACTS when set (CI keeps it), else the test's temp dir.
func artifactDir(t *testing.T) string {
	if d := os.Getenv("STERIGATE_ARTIFACTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// newBrowser starts a headless Chromium that never reaches for the
// network on its own, with a fresh profile.
func newBrowser(t *testing.T) context.Context {
	exe := chromiumPath(t)
	// Not t.TempDir: Chromium may still be writing its profile when the
	// test's own cleanup would remove it.
	profile, err := os.MkdirTemp("", "sterigate-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exe), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile), chromedp.WindowSize(1366, 768),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc() // waits for the browser process to exit
		os.RemoveAll(profile)
	})
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return ctx
}

// run runs browser actions with a deadline.
func run(t *testing.T, ctx context.Context, within time.Duration, what string, actions ...chromedp.Action) {
	t.Helper()
	c, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	if err := chromedp.Run(c, actions...); err != nil {
		t.Fatalf("browser: %s: %v", what, err)
	}
}

func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	var png []byte
	run(t, ctx, 20*time.Second, "screenshot "+name, chromedp.CaptureScreenshot(&png))
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestConsoleInBrowser opens the console of a real gateway fed by the
// simulator in a real Chromium: the overview follows a running cycle
// without a reload, the list, a record and its print page render, the
// print page makes a one-page PDF holding the record id and verdict, and a
// release decision made in the browser while the broker is down survives
// a SIGKILL of the gateway and reaches MQTT once the broker is back.
func TestConsoleInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("slow: a simulator, Mosquitto, the gateway and Chromium")
	}
	for _, tool := range []string{"pdftotext", "pdfinfo"} {
		toolPath(t, tool+" is not installed: the browser test reads the PDF with poppler-utils (scripts/test installs it)", tool)
	}
	browser := newBrowser(t)
	artifacts := artifactDir(t)
	dir := t.TempDir()
	broker := startMosquitto(t, filepath.Join(dir))
	_, simAddr, _ := startSim(t, dir, 1, 50, 60, 7, nil)
	consoleAddr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	cfg := writeFile(t, filepath.Join(dir, "sterigate.yaml"), fmt.Sprintf(`
gateway:
  id: browser-gw
  site: dax
  data_dir: %q
  console: {listen: %q, users_file: console-users, time_zone: UTC}
mqtt: {brokers: ["tcp://%s"]}
devices:
  - {id: autoclave-1, driver: modbus-tcp, address: %q, unit: 1, profile: sim-autoclave, poll_interval: 100ms, time_scale: 60}
`, filepath.Join(dir, "data"), consoleAddr, broker.addr(), simAddr))

	add := exec.Command(binary, "user", "add", "--config", cfg, "--role", "operator", "--password-stdin", "marie")
	add.Stdin = strings.NewReader("correct horse battery\n")
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("user add: %v\n%s", err, out)
	}
	gw := startProc(t, "gateway", binary, "run", "--config", cfg)
	gw.waitOutput(20*time.Second, "sterigate running")
	base := "http://" + consoleAddr

	// The overview follows the cycle without a reload (the script fetches
	// the tiles every 2 s).
	run(t, browser, 20*time.Second, "open the overview", chromedp.Navigate(base+"/"), chromedp.WaitVisible(`section.tile .phase`))
	phases := map[string]bool{}
	var first string
	deadline := time.Now().Add(90 * time.Second)
	for len(phases) < 3 {
		var phase string
		run(t, browser, 10*time.Second, "read the tile's phase", chromedp.AttributeValue(`section.tile .phase`, "data-phase", &phase, nil))
		if first == "" {
			first = phase
		}
		phases[phase] = true
		if time.Now().After(deadline) {
			t.Fatalf("the overview tile showed only phases %v in 90 s", phases)
		}
		time.Sleep(200 * time.Millisecond) // poll interval
	}
	var lang string
	run(t, browser, 10*time.Second, "read the page language", chromedp.AttributeValue(`html`, "lang", &lang, nil))
	if lang != "en" {
		t.Errorf("<html lang=%q>", lang)
	}
	screenshot(t, browser, artifacts, "console-overview")

	// Wait for a finished cycle in the list.
	var href string
	deadline = time.Now().Add(3 * time.Minute)
	for href == "" {
		var n int
		run(t, browser, 20*time.Second, "open the list", chromedp.Navigate(base+"/cycles"), chromedp.WaitVisible(`table.list`),
			chromedp.Evaluate(`document.querySelectorAll('table.list tbody a').length`, &n))
		if n > 0 {
			run(t, browser, 10*time.Second, "read the first record's link", chromedp.AttributeValue(`table.list tbody a`, "href", &href, nil))
		} else if time.Now().After(deadline) {
			t.Fatal("no cycle record in the list after 3 minutes")
		} else {
			time.Sleep(500 * time.Millisecond) // poll interval
		}
	}
	screenshot(t, browser, artifacts, "console-list")
	recordID := strings.TrimPrefix(href, "/cycles/")

	run(t, browser, 20*time.Second, "open the record", chromedp.Navigate(base+href), chromedp.WaitVisible(`svg.plot`))
	var verdict string
	run(t, browser, 10*time.Second, "read the verdict", chromedp.Text(`table.kv tr:nth-child(4) td:nth-of-type(2) .badge`, &verdict))
	screenshot(t, browser, artifacts, "console-record")

	run(t, browser, 20*time.Second, "open the print page", chromedp.Navigate(base+href+"/print"), chromedp.WaitVisible(`svg.plot`))
	screenshot(t, browser, artifacts, "console-print")
	var pdf []byte
	run(t, browser, 30*time.Second, "print to PDF", chromedp.ActionFunc(func(ctx context.Context) error {
		var err error
		pdf, _, err = page.PrintToPDF().WithPreferCSSPageSize(true).WithPrintBackground(true).Do(ctx)
		return err
	}))
	pdfPath := filepath.Join(artifacts, "console-print.pdf")
	if err := os.WriteFile(pdfPath, pdf, 0o644); err != nil {
		t.Fatal(err)
	}
	text, err := exec.Command("pdftotext", "-layout", pdfPath, "-").Output()
	if err != nil {
		t.Fatalf("pdftotext: %v", err)
	}
	if !strings.Contains(string(text), recordID) || !strings.Contains(string(text), verdict) || !strings.Contains(string(text), "Independent check (sterigate)") {
		t.Errorf("the PDF lacks the record id %q or the verdict %q:\n%s", recordID, verdict, text)
	}
	info, _ := exec.Command("pdfinfo", pdfPath).Output()
	if !strings.Contains(string(info), "Pages:          1\n") && !strings.Contains(string(info), "Pages:           1\n") {
		t.Errorf("the release record is not one page:\n%s", info)
	}

	// The network goes down; the decision is made anyway.
	broker.proc.kill()
	run(t, browser, 30*time.Second, "log in",
		chromedp.Navigate(base+"/login?next="+href), chromedp.WaitVisible(`input[name=name]`),
		chromedp.SendKeys(`input[name=name]`, "marie"), chromedp.SendKeys(`input[name=password]`, "correct horse battery"),
		chromedp.Submit(`input[name=password]`), chromedp.WaitVisible(`form.release`))
	var confirm int
	run(t, browser, 10*time.Second, "look for the confirmation box", chromedp.Evaluate(`document.querySelectorAll('input[name=confirm]').length`, &confirm))
	actions := []chromedp.Action{
		chromedp.Click(`input[name=decision][value=released]`), chromedp.SendKeys(`input[name=load_ref]`, "L-0042"),
		chromedp.SendKeys(`textarea[name=note]`, "released during the network outage"),
	}
	if confirm > 0 {
		actions = append(actions, chromedp.Click(`input[name=confirm]`))
	}
	var banner string
	actions = append(actions, chromedp.Submit(`textarea[name=note]`), chromedp.WaitVisible(`p.banner`), chromedp.Text(`p.banner`, &banner))
	run(t, browser, 30*time.Second, "record the decision", actions...)
	if !strings.HasPrefix(banner, "Saved: released") {
		t.Fatalf("banner %q", banner)
	}
	screenshot(t, browser, artifacts, "console-released")

	gw.kill()
	broker.start()
	sub := subscribe(t, broker.addr(), "sterigate/dax/autoclave-1/event")
	gw = startProc(t, "gateway (restarted)", binary, "run", "--config", cfg)
	var got protocol.Event
	waitFor(t, 60*time.Second, "the release event on MQTT", func() bool {
		for _, m := range sub.messages() {
			var ev protocol.Event
			if json.Unmarshal(m.Payload, &ev) == nil && ev.Kind == protocol.EventRelease && ev.RecordID == recordID {
				got = ev
				return true
			}
		}
		return false
	})
	if got.Decision != protocol.DecisionReleased || got.Operator != "marie" || got.LoadRef != "L-0042" || got.RecordHash == "" {
		t.Errorf("release event %+v", got)
	}
}
