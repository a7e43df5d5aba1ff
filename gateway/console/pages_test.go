package console

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
	"github.com/sterigate/sterigate/protocol/verify"
)

func mustContain(t *testing.T, what, body string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(body, w) {
			t.Errorf("%s lacks %q", what, w)
		}
	}
}

func mustNotContain(t *testing.T, what, body string, bad ...string) {
	t.Helper()
	for _, b := range bad {
		if strings.Contains(body, b) {
			t.Errorf("%s contains %q", what, b)
		}
	}
}

func TestOverview(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	r := f.do(t, c, "GET", "/", nil, "Accept-Language", "en-GB,en;q=0.9")
	if r.code != 200 {
		t.Fatalf("GET / = %d", r.code)
	}
	mustContain(t, "overview", r.body, `<html lang="en">`, "autoclave-1", "sterilizing (hold)", "134-porous", "cycle 43",
		"134.7 °C", "308 kPa", "3.08 bar", "1:35", // time in phase
		"autoclave-&lt;2&gt;", "&lt;i&gt;timeout&lt;/i&gt;", "&lt;script&gt;steam&lt;/script&gt;",
		`href="/cycles/dax:autoclave-1:42"`, "passed", "fail", "disagreement",
		"not connected", "12345", "2026-03-02 13:49:00", // last PUBACK
		`<script src="/static/console.js" defer></script>`, `<noscript><meta http-equiv="refresh" content="5"></noscript>`)
	mustNotContain(t, "overview", r.body, "<script>steam", "<i>timeout")

	// French: the glossary's words, decimal comma, dd/mm/yyyy.
	r = f.do(t, c, "GET", "/", nil, "Accept-Language", "fr-FR,fr;q=0.9,en;q=0.5")
	mustContain(t, "French overview", r.body, `<html lang="fr">`, "plateau de stérilisation", "en ligne", "hors ligne",
		"134,7 °C", "3,08 bar", "conforme", "non conforme", "désaccord", "12\u202f345", "02/03/2026 13:49:00")

	// The live part alone, which the script fetches every two seconds.
	r = f.do(t, c, "GET", "/tiles", nil)
	if r.code != 200 || strings.Contains(r.body, "<html") || !strings.Contains(r.body, `data-phase="sterilizing"`) {
		t.Errorf("/tiles = %d\n%s", r.code, r.body)
	}
	if got := r.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("/tiles Cache-Control = %q", got)
	}
	// The script and style are served from the binary.
	for _, p := range []string{"/static/console.js", "/static/console.css"} {
		if r := f.do(t, c, "GET", p, nil); r.code != 200 || len(r.body) < 100 {
			t.Errorf("GET %s = %d (%d bytes)", p, r.code, len(r.body))
		}
	}
}

func TestLanguageSwitch(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	r := f.do(t, c, "GET", "/lang/fr?next=/cycles", nil, "Accept-Language", "en")
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/cycles" {
		t.Fatalf("switch = %d to %q", r.code, r.header.Get("Location"))
	}
	r = f.do(t, c, "GET", "/cycles", nil, "Accept-Language", "en")
	mustContain(t, "list after the switch", r.body, `<html lang="fr">`, "Enregistrements de cycles")
	// The switch never sends anyone to another site.
	for _, next := range []string{"//evil.example/", "https://evil.example/", "/\\evil.example"} {
		r = f.do(t, c, "GET", "/lang/en?next="+url.QueryEscape(next), nil)
		if r.header.Get("Location") != "/" {
			t.Errorf("next %q redirected to %q", next, r.header.Get("Location"))
		}
	}
	if r := f.do(t, c, "GET", "/lang/de", nil); r.code != 404 {
		t.Errorf("/lang/de = %d", r.code)
	}
}

func TestCycleList(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	r := f.do(t, c, "GET", "/cycles", nil)
	if r.code != 200 {
		t.Fatalf("GET /cycles = %d", r.code)
	}
	// Newest first.
	order := []string{"dax:printer-1:1043", "dax:autoclave-1:42", "dax:autoclave-1:41"}
	last := -1
	for _, id := range order {
		i := strings.Index(r.body, ">"+id+"<")
		if i < 0 || i < last {
			t.Fatalf("list order: %s at %d after %d", id, i, last)
		}
		last = i
	}
	mustContain(t, "list", r.body, "autoclave-&lt;2&gt;", "incomplete record", "no independent check", "no decision")

	r = f.do(t, c, "GET", "/cycles?device=autoclave-1&verdict=fail", nil)
	mustContain(t, "filtered list", r.body, ">dax:autoclave-1:42<")
	mustNotContain(t, "filtered list", r.body, ">dax:autoclave-1:41<", ">dax:printer-1:1043<")
	r = f.do(t, c, "GET", "/cycles?from=2026-03-02&to=2026-03-02&result=unknown", nil)
	mustContain(t, "date filter", r.body, `>dax:autoclave-&lt;2&gt;:7<`)
	r = f.do(t, c, "GET", "/cycles?from=2026-03-03", nil)
	mustContain(t, "empty list", r.body, "No cycle record matches.")
	if r := f.do(t, c, "GET", "/cycles?from=02/03/2026", nil); r.code != http.StatusBadRequest || !strings.Contains(r.body, "is not a date") {
		t.Errorf("bad date = %d", r.code)
	}
}

func TestCycleListPages(t *testing.T) {
	f := newFixture(t)
	ctx := t.Context()
	start := time.Date(2026, 3, 3, 0, 0, 0, 0, time.UTC)
	for i := range listPageSize + 5 {
		rec := protocol.CycleRecord{Device: "ac-9", Cycle: uint64(i + 1), Program: "p", StartedAt: start.Add(time.Duration(i) * time.Hour),
			EndedAt: start.Add(time.Duration(i)*time.Hour + time.Minute), Result: protocol.ResultPassed, Source: "modbus-tcp"}
		if err := f.j.Cycle(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	c := f.client(t)
	r := f.do(t, c, "GET", "/cycles?device=ac-9", nil)
	older := regexp.MustCompile(`href="(/cycles\?[^"]*before=[^"]*)" rel="next"`).FindStringSubmatch(r.body)
	if older == nil || strings.Contains(r.body, `rel="prev"`) {
		t.Fatalf("first page has no older link or a newer one")
	}
	r = f.do(t, c, "GET", strings.ReplaceAll(older[1], "&amp;", "&"), nil)
	mustContain(t, "second page", r.body, ">dax:ac-9:5<", ">dax:ac-9:1<", `rel="prev"`)
	mustNotContain(t, "second page", r.body, ">dax:ac-9:6<", `rel="next"`)
}

func TestRecordPage(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	r := f.do(t, c, "GET", "/cycles/"+f.records["bad"], nil)
	if r.code != 200 {
		t.Fatalf("record = %d", r.code)
	}
	entries, _ := f.j.Entries(t.Context(), "autoclave-1", journal.KindCycle)
	mustContain(t, "record", r.body, "dax:autoclave-1:42", "134-porous", "seq 2", entries[1].Hash,
		`<svg class="plot"`, `class="line temp"`, `class="line pressure"`, `class="line tsat"`, `class="band"`, `class="phase phase-hold"`,
		"drain (drain probe)", "sterilizing (hold)", "temperature band", "holding time", "saturated steam",
		"&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; door", "Log in to record a decision", "Print the release record")
	mustNotContain(t, "record", r.body, `<script>alert`)

	r = f.do(t, c, "GET", "/cycles/"+url.PathEscape(f.records["empty"]), nil)
	if r.code != 200 {
		t.Fatalf("record with 0 samples = %d", r.code)
	}
	mustContain(t, "empty record", r.body, "This record has no sample", "No phase recorded.", "no independent check", "autoclave-&lt;2&gt;")

	r = f.do(t, c, "GET", "/cycles/"+url.PathEscape(f.records["printed"]), nil)
	mustContain(t, "printed record", r.body, "Printout as printed", "Universal/134°C/3min", "&lt;b&gt;Sterilisation Ok&lt;/b&gt;",
		`class="hole"`, "not on the printout")

	for _, p := range []string{"/cycles/dax:autoclave-1:999", "/cycles/dax:autoclave-1:999/print"} {
		if r := f.do(t, c, "GET", p, nil); r.code != 404 || !strings.Contains(r.body, "There is no cycle record dax:autoclave-1:999") {
			t.Errorf("GET %s = %d", p, r.code)
		}
	}
	if r := f.do(t, c, "GET", "/nowhere", nil); r.code != 404 {
		t.Errorf("unknown page = %d", r.code)
	}
}

// Without a decoder for the device's charset, printout bytes outside
// ASCII show as '?' and the page says why.
func TestPrintoutWithUnknownCharset(t *testing.T) {
	if got := asciiOnly([]byte("134\xf8C\r\n<ok>")); got != "134?C\n<ok>" {
		t.Errorf("asciiOnly = %q", got)
	}
}

func TestPrintPage(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	r := f.do(t, c, "GET", "/cycles/"+f.records["good"]+"/print", nil, "Accept-Language", "fr")
	if r.code != 200 {
		t.Fatalf("print = %d", r.code)
	}
	entries, _ := f.j.Entries(t.Context(), "autoclave-1", journal.KindCycle)
	mustContain(t, "print page", r.body, "Fiche de libération", "dax:autoclave-1:41", entries[0].Hash, `<svg class="plot"`,
		"Contenu de la charge", "Date, visa et signature", "libérée", "refusée", "en quarantaine", "conforme", `class="page-print"`)
	if r := f.do(t, c, "GET", "/cycles/"+f.records["good"]+"/print?format=pdf", nil); r.code != 404 || !strings.Contains(r.body, "Save as PDF") {
		t.Errorf("?format=pdf = %d", r.code)
	}
}

func TestSecurityHeadersOnEveryPage(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	for _, p := range []string{"/", "/tiles", "/cycles", "/cycles/" + f.records["good"], "/cycles/" + f.records["good"] + "/print", "/login", "/nowhere", "/metrics"} {
		r := f.do(t, c, "GET", p, nil)
		csp := r.header.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP %q", p, csp)
		}
		if r.header.Get("X-Frame-Options") != "DENY" || r.header.Get("Referrer-Policy") != "no-referrer" || r.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("%s: headers %v", p, r.header)
		}
		// No inline script or style anywhere: the CSP would block them.
		if strings.Contains(r.body, "<style") || strings.Contains(r.body, " style=") || regexp.MustCompile(`<script>`).MatchString(r.body) {
			t.Errorf("%s has an inline style or script", p)
		}
	}
}

func TestLoginAndLockout(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	form := f.do(t, c, "GET", "/login", nil)
	token := hidden(t, form.body, "csrf")
	post := func(name, password, csrf string) response {
		return f.do(t, c, "POST", "/login", url.Values{"name": {name}, "password": {password}, "csrf": {csrf}, "next": {"/cycles"}})
	}
	if r := post("marie", testPassword, "forged"); r.code != http.StatusForbidden {
		t.Errorf("login with a wrong CSRF token = %d", r.code)
	}
	form = f.do(t, c, "GET", "/login", nil)
	token = hidden(t, form.body, "csrf")
	for i := 1; i < LockoutFailures; i++ {
		if r := post("marie", "wrong password", token); r.code != http.StatusUnauthorized || !strings.Contains(r.body, "Wrong user name or password") {
			t.Fatalf("wrong password #%d = %d", i, r.code)
		}
		token = hidden(t, f.do(t, c, "GET", "/login", nil).body, "csrf")
	}
	if r := post("marie", "wrong password", token); r.code != http.StatusTooManyRequests {
		t.Fatalf("failure #%d = %d, want the account locked", LockoutFailures, r.code)
	}
	token = hidden(t, f.do(t, c, "GET", "/login", nil).body, "csrf")
	if r := post("marie", testPassword, token); r.code != http.StatusTooManyRequests || !strings.Contains(r.body, "locked") {
		t.Fatalf("right password while locked = %d", r.code)
	}
	// Another account is not locked; an unknown one is just wrong.
	token = hidden(t, f.do(t, c, "GET", "/login", nil).body, "csrf")
	if r := post("nobody", testPassword, token); r.code != http.StatusUnauthorized {
		t.Errorf("unknown user = %d", r.code)
	}
	f.clock.Add(LockoutDuration + time.Second)
	token = hidden(t, f.do(t, c, "GET", "/login", nil).body, "csrf")
	r := post("marie", testPassword, token)
	if r.code != http.StatusSeeOther || r.header.Get("Location") != "/cycles" {
		t.Fatalf("login after the lockout = %d %q", r.code, r.header.Get("Location"))
	}
	var session *http.Cookie
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Name == sessionCookie {
			session = ck
		}
	}
	if session == nil || !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Secure {
		t.Errorf("session cookie %+v: want HttpOnly, SameSite=Strict, not Secure over plain HTTP", session)
	}
	page := f.do(t, c, "GET", "/cycles/"+f.records["good"], nil)
	mustContain(t, "record when logged in", page.body, "Logged in:", "<b>marie</b>", "Record the decision")
}

func TestReleaseDecision(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	good := "/cycles/" + f.records["good"]
	release := func(c *http.Client, path string, form url.Values) response {
		return f.do(t, c, "POST", path+"/release", form)
	}
	// Not logged in.
	if r := release(c, good, url.Values{"decision": {"released"}}); r.code != http.StatusUnauthorized || !strings.Contains(r.body, "Please log in") {
		t.Fatalf("release without a session = %d", r.code)
	}
	csrf := f.login(t, c, "marie")
	// Missing and wrong CSRF tokens.
	for _, tok := range []string{"", "forged"} {
		r := release(c, good, url.Values{"decision": {"released"}, "csrf": {tok}})
		if r.code != http.StatusForbidden || !strings.Contains(r.body, "security token") {
			t.Errorf("release with CSRF token %q = %d", tok, r.code)
		}
	}
	if hist, _ := f.j.Releases(t.Context(), f.records["good"]); len(hist) != 0 {
		t.Fatalf("a refused form was journaled: %+v", hist)
	}
	if r := release(c, good, url.Values{"decision": {"approved"}, "csrf": {csrf}}); r.code != http.StatusUnprocessableEntity {
		t.Errorf("unknown decision = %d", r.code)
	}
	r := release(c, good, url.Values{"decision": {"released"}, "csrf": {csrf}, "load_ref": {"L-2026-0042"}, "note": {"<b>ok</b>"}})
	if r.code != http.StatusSeeOther {
		t.Fatalf("release = %d\n%s", r.code, r.body)
	}
	// Durable before the page says saved: the event is in the journal now.
	hist, err := f.j.Releases(t.Context(), f.records["good"])
	if err != nil || len(hist) != 1 || hist[0].Operator != "marie" || hist[0].LoadRef != "L-2026-0042" {
		t.Fatalf("journaled history %+v, %v", hist, err)
	}
	events, _ := f.j.Entries(t.Context(), "autoclave-1", journal.KindEvent)
	var ev protocol.Event
	// The last event: a record sterigate disagrees with carries its
	// disagreement event too.
	if len(events) == 0 || json.Unmarshal(events[len(events)-1].Payload, &ev) != nil || ev.Kind != protocol.EventRelease || ev.Decision != "released" {
		t.Fatalf("event entries %+v", events)
	}
	saved := f.do(t, c, "GET", r.header.Get("Location"), nil)
	mustContain(t, "saved page", saved.body, "Saved: released, journaled as event "+hist[0].EventID, "L-2026-0042", "&lt;b&gt;ok&lt;/b&gt;")

	// A released load is final for an operator.
	sup := hidden(t, saved.body+`name="supersedes" value="`+hist[0].EventID+`"`, "supersedes")
	if r := release(c, good, url.Values{"decision": {"rejected"}, "csrf": {csrf}, "supersedes": {sup}}); r.code != http.StatusForbidden {
		t.Errorf("operator superseding a final decision = %d", r.code)
	}
	admin := f.client(t)
	acsrf := f.login(t, admin, "admin")
	// A stale form (superseding nothing) conflicts with the decision in force.
	if r := release(admin, good, url.Values{"decision": {"rejected"}, "csrf": {acsrf}, "note": {"BI positive"}}); r.code != http.StatusConflict {
		t.Errorf("stale form = %d", r.code)
	}
	if r := release(admin, good, url.Values{"decision": {"rejected"}, "csrf": {acsrf}, "note": {"BI positive"}, "supersedes": {hist[0].EventID}}); r.code != http.StatusSeeOther {
		t.Fatalf("admin superseding = %d\n%s", r.code, r.body)
	}
	page := f.do(t, admin, "GET", good, nil)
	mustContain(t, "history", page.body, `class="superseded"`, "BI positive", "rejected")

	// A non-conforming load asks for the confirmation and a note.
	bad := "/cycles/" + f.records["bad"]
	page = f.do(t, c, "GET", bad, nil)
	mustContain(t, "non-conforming record", page.body, "This load is not conforming", "the independent check is not a pass", `name="confirm"`)
	for _, form := range []url.Values{
		{"decision": {"released"}, "csrf": {csrf}},
		{"decision": {"released"}, "csrf": {csrf}, "confirm": {"yes"}},
		{"decision": {"released"}, "csrf": {csrf}, "note": {"BI negative"}},
	} {
		if r := release(c, bad, form); r.code != http.StatusUnprocessableEntity || !strings.Contains(r.body, "needs the confirmation box") {
			t.Errorf("%v = %d", form, r.code)
		}
	}
	if r := release(c, bad, url.Values{"decision": {"released"}, "csrf": {csrf}, "confirm": {"yes"}, "note": {"BI negative, pharmacist agreed"}}); r.code != http.StatusSeeOther {
		t.Errorf("confirmed release = %d", r.code)
	}
	if r := release(c, "/cycles/dax:autoclave-1:999", url.Values{"decision": {"released"}, "csrf": {csrf}}); r.code != 404 {
		t.Errorf("release of an unknown record = %d", r.code)
	}

	// An expired session records nothing and says so.
	f.clock.Add(DefaultSessionIdle + time.Minute)
	r = release(c, "/cycles/"+url.PathEscape(f.records["printed"]), url.Values{"decision": {"quarantined"}, "csrf": {csrf}})
	if r.code != http.StatusUnauthorized || !strings.Contains(r.body, "Your session has expired") {
		t.Errorf("release with an expired session = %d", r.code)
	}
	if hist, _ := f.j.Releases(t.Context(), f.records["printed"]); len(hist) != 0 {
		t.Errorf("expired session journaled %+v", hist)
	}
}

func TestLogout(t *testing.T) {
	f := newFixture(t)
	c := f.client(t)
	csrf := f.login(t, c, "marie")
	if r := f.do(t, c, "POST", "/logout", url.Values{"csrf": {csrf}}); r.code != http.StatusSeeOther {
		t.Fatalf("logout = %d", r.code)
	}
	page := f.do(t, c, "GET", "/cycles/"+f.records["good"], nil)
	mustNotContain(t, "page after logout", page.body, "Logged in:")
}

// Without a users file nobody can log in, and the page says why.
func TestNoUsersFile(t *testing.T) {
	o := testOptions()
	o.Records = newFixture(t).j
	h := Handler(fixed(snapshot()), o)
	code, body := get(t, h, "/login")
	if code != 200 || !strings.Contains(body, "No user accounts are configured") {
		t.Errorf("login page without users = %d", code)
	}
}

func TestSecureCookieUnderTLS(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	cfg, fp, created, err := LoadOrCreateCertificate(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), true, []string{"cssd-gw-1"}, time.Now())
	if err != nil || !created || len(fp) != 95 {
		t.Fatalf("certificate: %v created %v fingerprint %q", err, created, fp)
	}
	if fi, err := os.Stat(filepath.Join(dir, "key.pem")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, %v", fi.Mode(), err)
	}
	// The second start reuses it.
	_, fp2, created2, err := LoadOrCreateCertificate(filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem"), true, nil, time.Now())
	if err != nil || created2 || fp2 != fp {
		t.Fatalf("second load: %v created %v fingerprint %q vs %q", err, created2, fp2, fp)
	}
	o := testOptions()
	o.Records, o.UsersFile, o.TLSConfig = f.j, f.users, cfg
	srv := httptest.NewUnstartedServer(Handler(fixed(snapshot()), o))
	srv.TLS = cfg
	srv.StartTLS()
	defer srv.Close()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := client.Get(srv.URL + "/login")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if !ck.Secure || !ck.HttpOnly {
			t.Errorf("cookie %s under TLS: %+v", ck.Name, ck)
		}
	}
}

func TestUsersFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "users")
	if err := AddUser(path, "marie", RoleOperator, []byte("s3cret-pass"), false); err != nil {
		t.Fatal(err)
	}
	if err := AddUser(path, "marie", RoleAdmin, []byte("another-pass"), false); err == nil {
		t.Error("a second marie was added")
	}
	if err := AddUser(path, "marie", RoleAdmin, []byte("another-pass"), true); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []struct{ name, role, pw string }{{"a b", RoleOperator, "longenough"}, {"x", "root", "longenough"}, {"x", RoleOperator, "short"}} {
		if err := AddUser(path, bad.name, bad.role, []byte(bad.pw), false); err == nil {
			t.Errorf("AddUser(%q, %q, %q) accepted", bad.name, bad.role, bad.pw)
		}
	}
	fi, _ := os.Stat(path)
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("users file mode %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(path)
	if bytes.Contains(b, []byte("s3cret")) || bytes.Contains(b, []byte("another-pass")) {
		t.Fatal("the users file holds a password in clear")
	}
	users, err := ReadUsers(path)
	if err != nil || len(users) != 1 || users[0].Role != RoleAdmin || !strings.HasPrefix(users[0].Hash, "$2a$") {
		t.Fatalf("users %+v, %v", users, err)
	}
	if err := RemoveUser(path, "marie"); err != nil {
		t.Fatal(err)
	}
	if err := RemoveUser(path, "marie"); err == nil {
		t.Error("removed marie twice")
	}
	os.WriteFile(path, []byte("paul operator plaintext\n"), 0o600)
	if _, err := ReadUsers(path); err == nil || !strings.Contains(err.Error(), "not a bcrypt hash") {
		t.Errorf("plaintext password accepted: %v", err)
	}
}

// Both catalogues have the same keys; every key a template or the code
// names exists; every word of the vocabularies has a translation.
func TestCatalogues(t *testing.T) {
	cats, err := loadCatalogues()
	if err != nil {
		t.Fatal(err)
	}
	en, fr := cats["en"], cats["fr"]
	for k := range en {
		if _, ok := fr[k]; !ok {
			t.Errorf("fr lacks %q", k)
		}
	}
	for k := range fr {
		if _, ok := en[k]; !ok {
			t.Errorf("en lacks %q", k)
		}
	}
	keyRef := regexp.MustCompile(`\bTf? "([a-z0-9_.]+)"|"((?:release|login|error|record)\.[a-z0-9_.]+)"`)
	var sources []string
	fs.WalkDir(templateFS, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			b, _ := templateFS.ReadFile(p)
			sources = append(sources, string(b))
		}
		return nil
	})
	for _, f := range []string{"pages.go", "i18n.go"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sources = append(sources, string(b))
	}
	found := 0
	for _, src := range sources {
		for _, m := range keyRef.FindAllStringSubmatch(src, -1) {
			k := m[1] + m[2]
			if strings.HasSuffix(k, ".") {
				continue // a prefix of a vocabulary
			}
			found++
			if _, ok := en[k]; !ok {
				t.Errorf("key %q is used but not in the catalogues", k)
			}
		}
	}
	if found < 100 {
		t.Errorf("found only %d key references: the pattern is broken", found)
	}
	var vocab []string
	for _, p := range protocol.PhaseNames() {
		vocab = append(vocab, "phase."+string(p))
	}
	for _, r := range []protocol.Result{protocol.ResultPassed, protocol.ResultFailed, protocol.ResultAborted, protocol.ResultUnknown} {
		vocab = append(vocab, "result."+string(r))
	}
	for _, v := range []string{protocol.VerdictPass, protocol.VerdictFail, protocol.VerdictIndeterminate, protocol.VerdictNotApplicable, protocol.CheckInfo, journal.VerdictNone} {
		vocab = append(vocab, "verdict."+v)
	}
	for _, d := range append(protocol.Decisions(), journal.ReleaseNone) {
		vocab = append(vocab, "decision."+d)
	}
	for _, s := range []string{protocol.DeviceOnline, protocol.DeviceOffline, protocol.DeviceUnknown} {
		vocab = append(vocab, "state."+s)
	}
	for _, c := range []string{verify.CheckRecordComplete, verify.CheckSampleInterval, verify.CheckTemperatureBand, verify.CheckHoldTime,
		verify.CheckEquilibrationTime, verify.CheckSaturatedSteam, verify.CheckTemperatureSpread, verify.CheckF0, verify.CheckLeakRate} {
		vocab = append(vocab, "check."+c)
	}
	for _, h := range []string{protocol.HoleGatewayDown, protocol.HoleDeviceOffline, protocol.HolePollErrors, protocol.HoleImplausible, protocol.HoleNotPrinted} {
		vocab = append(vocab, "hole."+h)
	}
	for _, r := range []string{RoleOperator, RoleAdmin} {
		vocab = append(vocab, "role."+r)
	}
	for _, r := range []string{protocol.RoleDrainTemperature, protocol.RoleLoadTemperature, protocol.RoleJacketTemperature, protocol.RoleReferenceTemperature} {
		vocab = append(vocab, "channel."+r)
	}
	for _, c := range []string{CheckJournal, CheckBroker, CheckDevice} {
		vocab = append(vocab, "ready."+c)
	}
	for _, k := range vocab {
		if _, ok := en[k]; !ok {
			t.Errorf("no translation of %q", k)
		}
	}
	// The glossary's words, where CSSD staff expect them.
	for k, want := range map[string]string{"result.passed": "conforme", "result.failed": "non conforme", "decision.released": "libérée",
		"decision.rejected": "refusée", "decision.quarantined": "en quarantaine", "record.verdict": "Contrôle indépendant (sterigate)",
		"verdict.disagreement": "désaccord", "phase.sterilizing": "plateau de stérilisation"} {
		if fr[k] != want {
			t.Errorf("fr %s = %q, want %q", k, fr[k], want)
		}
	}
}

func TestFrenchFormats(t *testing.T) {
	l := &lang{Code: "fr", loc: time.UTC}
	for _, c := range []struct{ got, want string }{
		{l.Num(134.5, 1), "134,5"}, {l.Num(-0.25, 2), "-0,25"}, {l.Num(12500, 0), "12\u202f500"}, {l.Num(1234, 0), "1234"},
		{l.Time(time.Date(2026, 3, 2, 14, 5, 9, 0, time.UTC)), "02/03/2026 14:05:09"},
		{l.Dur(3725 * time.Second), "1:02:05"}, {l.Dur(95 * time.Second), "1:35"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
	for _, c := range []struct{ header, want string }{
		{"fr-FR,fr;q=0.9", "fr"}, {"en-US,fr;q=0.5", "en"}, {"de-DE,fr;q=0.4", "fr"}, {"", "en"}, {"fr;q=0", "en"}, {"en;q=0.2, fr;q=0.8", "fr"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Accept-Language", c.header)
		if got := pickLanguage(r); got != c.want {
			t.Errorf("Accept-Language %q: %s, want %s", c.header, got, c.want)
		}
	}
	if !slices.Contains(languages, "fr") {
		t.Fatal("no French")
	}
}
