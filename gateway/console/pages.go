package console

import (
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/sterigate/sterigate/gateway/journal"
	"github.com/sterigate/sterigate/protocol"
)

// Records is what the cycle pages read and the release form writes: the
// journal implements it.
type Records interface {
	Cycles(ctx context.Context, f journal.CycleFilter) (journal.CyclePage, error)
	CycleDevices(ctx context.Context) ([]string, error)
	CycleRecord(ctx context.Context, id string) (*journal.StoredCycle, error)
	Releases(ctx context.Context, recordID string) ([]journal.StoredRelease, error)
	Release(ctx context.Context, d journal.ReleaseDecision) (protocol.Event, error)
}

var _ Records = (*journal.Journal)(nil)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pageNames are the templates/<name>.html that render whole pages; each
// is parsed with layout.html.
var pageNames = []string{"overview", "cycles", "record", "print", "login", "error"}

// templateFuncs are the helpers templates call besides lang's methods.
var templateFuncs = template.FuncMap{
	// pair hands a sub-template the language and one value.
	"pair": func(l *lang, v any) struct {
		L *lang
		V string
	} {
		return struct {
			L *lang
			V string
		}{l, fmt.Sprint(v)}
	},
	"sub":     func(a, b float64) float64 { return a - b },
	"mb":      func(b int64) float64 { return float64(b) / 1e6 },
	"since2":  func(a, b time.Time) time.Duration { return b.Sub(a) },
	"seconds": func(s float64) time.Duration { return time.Duration(s * float64(time.Second)) },
	"deref":   func(p *float64) float64 { return *p },
	// recordPath is the path of a record's page, its id escaped as one
	// path segment (device ids may hold '?' or spaces).
	"recordPath": func(id string) string { return "/cycles/" + url.PathEscape(id) },
}

// Limits of the release form's free text.
const (
	maxNoteLen    = 2000
	maxLoadRefLen = 100
)

// handler serves the console's pages.
type handler struct {
	src   Source
	o     Options
	cats  map[string]catalogue
	pages map[string]*template.Template
	sess  *sessions
}

func newHandler(src Source, o Options) *handler {
	cats, err := loadCatalogues()
	if err != nil {
		panic(err) // embedded files: a build that passed its tests has them
	}
	h := &handler{src: src, o: o, cats: cats, pages: map[string]*template.Template{}, sess: newSessions(o.SessionIdle, o.Now)}
	for _, name := range pageNames {
		h.pages[name] = template.Must(template.New(name).Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html", "templates/parts.html", "templates/"+name+".html"))
	}
	return h
}

func (h *handler) routes(mux *http.ServeMux) {
	static, _ := fs.Sub(staticFS, "static")
	files := http.FileServerFS(static)
	mux.Handle("GET /static/", http.StripPrefix("/static/", cacheFor(time.Hour, files)))
	mux.HandleFunc("GET /{$}", h.overview)
	mux.HandleFunc("GET /tiles", h.tiles)
	mux.HandleFunc("GET /lang/{code}", h.switchLanguage)
	mux.HandleFunc("GET /login", h.loginForm)
	mux.HandleFunc("POST /login", h.login)
	mux.HandleFunc("POST /logout", h.logout)
	mux.HandleFunc("GET /cycles", h.cycles)
	mux.HandleFunc("GET /cycles/{id}", h.record)
	mux.HandleFunc("GET /cycles/{id}/print", h.print)
	mux.HandleFunc("POST /cycles/{id}/release", h.release)
}

// securityHeaders is every response's protection: no script, style,
// font or frame from elsewhere (and no inline script or style at all),
// never framed, no Referer leaving the console.
func securityHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("Referrer-Policy", "no-referrer")
		next.ServeHTTP(w, r)
	})
}

func cacheFor(d time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "max-age="+strconv.Itoa(int(d.Seconds())))
		next.ServeHTTP(w, r)
	})
}

// base is what every page shows around its content.
type base struct {
	L     *lang
	Title string
	Path  string // the page's path and query, for the language switch
	Nav   string
	User  *session
	CSRF  string
	// GatewayID and SiteID name this gateway in the header and on paper.
	GatewayID string
	SiteID    string
	Langs     []string
	Message   string // a banner: saved, error
	Error     bool
	Records   bool // the cycle pages exist
	NoScript  bool // the page refreshes itself without JavaScript
}

func (h *handler) lang(r *http.Request) *lang {
	code := pickLanguage(r)
	return &lang{Code: code, cat: h.cats[code], loc: h.o.Location, now: h.o.Now()}
}

func (h *handler) base(r *http.Request, nav string) base {
	b := base{L: h.lang(r), Path: r.URL.RequestURI(), Nav: nav, Langs: languages, Records: h.o.Records != nil,
		GatewayID: h.o.Gateway, SiteID: h.o.Site}
	if s, _ := h.sess.get(r); s != nil {
		b.User, b.CSRF = s, s.csrf
	}
	return b
}

func (h *handler) render(w http.ResponseWriter, status int, page string, data any) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	// Pages show live state and who is logged in: never from a cache.
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := h.pages[page].ExecuteTemplate(w, "layout", data); err != nil {
		h.o.Logger.Warn("console page not fully written", "page", page, "err", err)
	}
}

type errorPage struct {
	base
	Status int
	Text   string
	Link   string
}

func (h *handler) fail(w http.ResponseWriter, r *http.Request, status int, key string, args ...any) {
	b := h.base(r, "")
	p := errorPage{base: b, Status: status, Text: b.L.Tf(key, args...)}
	p.Title = b.L.T("error.title")
	h.render(w, status, "error", p)
}

// ---- overview

type tile struct {
	protocol.DeviceStatus
	Live
	// InCycle: a cycle runs (a phase other than idle/complete).
	InCycle bool
}

type overviewPage struct {
	base
	Snapshot
	Ready Readiness
	Tiles []tile
	Now   time.Time
}

func (h *handler) overviewData(w http.ResponseWriter, r *http.Request) (*overviewPage, bool) {
	s, err := h.src.Snapshot(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusServiceUnavailable, "error.journal", err.Error())
		return nil, false
	}
	p := &overviewPage{base: h.base(r, "overview"), Snapshot: s, Ready: h.o.readiness(s, h.o.Now()), Now: h.o.Now()}
	p.Title = p.L.T("overview.title")
	p.GatewayID, p.SiteID = s.Gateway, s.Site
	p.NoScript = true
	for _, d := range s.Devices {
		t := tile{DeviceStatus: d, Live: s.Live[d.Device]}
		t.InCycle = d.Phase != "" && d.Phase != protocol.PhaseIdle && d.Phase != protocol.PhaseComplete && d.Cycle != 0
		p.Tiles = append(p.Tiles, t)
	}
	return p, true
}

func (h *handler) overview(w http.ResponseWriter, r *http.Request) {
	if p, ok := h.overviewData(w, r); ok {
		h.render(w, http.StatusOK, "overview", p)
	}
}

// tiles is the overview's live part alone, which console.js fetches every
// two seconds and puts in place.
func (h *handler) tiles(w http.ResponseWriter, r *http.Request) {
	p, ok := h.overviewData(w, r)
	if !ok {
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	if err := h.pages["overview"].ExecuteTemplate(w, "live", p); err != nil {
		h.o.Logger.Warn("console tiles not fully written", "err", err)
	}
}

// ---- language

func (h *handler) switchLanguage(w http.ResponseWriter, r *http.Request) {
	code := r.PathValue("code")
	if !slices.Contains(languages, code) {
		h.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	http.SetCookie(w, h.cookie(langCookie, code, 365*24*3600))
	http.Redirect(w, r, localPath(r.URL.Query().Get("next")), http.StatusSeeOther)
}

// localPath keeps a redirect target on the console: a path of its own,
// never another site ("//host", "https://…", "/\\host").
func localPath(p string) string {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.HasPrefix(p, "/\\") {
		return "/"
	}
	return p
}

// ---- login

type loginPage struct {
	base
	Next      string
	LoginCSRF string
	Name      string
	NoUsers   bool
}

func (h *handler) loginForm(w http.ResponseWriter, r *http.Request) {
	h.showLogin(w, r, http.StatusOK, "", localPath(r.URL.Query().Get("next")), "")
}

func (h *handler) showLogin(w http.ResponseWriter, r *http.Request, status int, msgKey, next, name string) {
	p := loginPage{base: h.base(r, "login"), Next: next, Name: name, NoUsers: h.o.UsersFile == "", LoginCSRF: randomToken()}
	p.Title = p.L.T("login.title")
	if msgKey != "" {
		p.Message, p.Error = p.L.T(msgKey), true
	}
	http.SetCookie(w, h.cookie(loginCookie, p.LoginCSRF, 3600))
	h.render(w, status, "login", p)
}

func (h *handler) login(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "error.form")
		return
	}
	next, name := localPath(r.PostForm.Get("next")), r.PostForm.Get("name")
	c, err := r.Cookie(loginCookie)
	if err != nil || !tokensEqual(c.Value, r.PostForm.Get("csrf")) {
		h.showLogin(w, r, http.StatusForbidden, "login.csrf", next, name)
		return
	}
	if h.o.UsersFile == "" {
		h.showLogin(w, r, http.StatusForbidden, "login.nousers", next, name)
		return
	}
	users, err := ReadUsers(h.o.UsersFile)
	if err != nil {
		h.o.Logger.Error("console: cannot read the users file; nobody can log in", "err", err)
		h.showLogin(w, r, http.StatusServiceUnavailable, "login.usersfile", next, name)
		return
	}
	_, id, res := h.sess.login(users, name, r.PostForm.Get("password"))
	switch res {
	case loginLocked:
		h.o.Logger.Warn("console: login refused, account locked after repeated failures", "user", name, "remote", r.RemoteAddr)
		h.showLogin(w, r, http.StatusTooManyRequests, "login.locked", next, name)
		return
	case loginWrong:
		h.o.Logger.Info("console: wrong user name or password", "user", name, "remote", r.RemoteAddr)
		h.showLogin(w, r, http.StatusUnauthorized, "login.wrong", next, name)
		return
	}
	h.o.Logger.Info("console: logged in", "user", name, "remote", r.RemoteAddr)
	http.SetCookie(w, h.cookie(loginCookie, "", -1))
	http.SetCookie(w, h.cookie(sessionCookie, id, int(SessionMaxAge.Seconds())))
	http.Redirect(w, r, next, http.StatusSeeOther)
}

func (h *handler) logout(w http.ResponseWriter, r *http.Request) {
	s, _ := h.sess.get(r)
	if s != nil && tokensEqual(s.csrf, r.PostFormValue("csrf")) {
		h.sess.logout(r)
	}
	http.SetCookie(w, h.cookie(sessionCookie, "", -1))
	http.Redirect(w, r, "/", http.StatusSeeOther)
}

// ---- cycle list

type cyclesPage struct {
	base
	Filter  cycleFilterForm
	Devices []string
	Page    journal.CyclePage
	Older   string // link to the next (older) page, "" when none
	Newer   string
	Results []string
	Verdict []string
	Release []string
}

// cycleFilterForm is the list's filter as the form sends it.
type cycleFilterForm struct {
	Device, From, To, Result, Verdict, Release string
}

func (f cycleFilterForm) query() url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"device": f.Device, "from": f.From, "to": f.To, "result": f.Result, "verdict": f.Verdict, "release": f.Release} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

func parseCursor(s string) *journal.CycleCursor {
	a, b, ok := strings.Cut(s, ".")
	if !ok {
		return nil
	}
	ended, err1 := strconv.ParseInt(a, 10, 64)
	id, err2 := strconv.ParseInt(b, 10, 64)
	if err1 != nil || err2 != nil {
		return nil
	}
	return &journal.CycleCursor{EndedAt: ended, EntryID: id}
}

func cursorString(c journal.CycleCursor) string {
	return strconv.FormatInt(c.EndedAt, 10) + "." + strconv.FormatInt(c.EntryID, 10)
}

// listPageSize is the rows of one list page: a screen and a half.
const listPageSize = 50

func (h *handler) cycles(w http.ResponseWriter, r *http.Request) {
	if h.o.Records == nil {
		h.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	q := r.URL.Query()
	form := cycleFilterForm{Device: q.Get("device"), From: q.Get("from"), To: q.Get("to"), Result: q.Get("result"),
		Verdict: q.Get("verdict"), Release: q.Get("release")}
	f := journal.CycleFilter{Device: form.Device, Result: protocol.Result(form.Result), Verdict: form.Verdict, Release: form.Release, Limit: listPageSize}
	for _, d := range []struct {
		text string
		dst  *time.Time
		days int
	}{{form.From, &f.From, 0}, {form.To, &f.To, 1}} {
		if d.text == "" {
			continue
		}
		t, err := time.ParseInLocation("2006-01-02", d.text, h.o.Location)
		if err != nil {
			h.fail(w, r, http.StatusBadRequest, "error.date", d.text)
			return
		}
		// "to" names the last day shown, whole.
		*d.dst = t.AddDate(0, 0, d.days)
	}
	if c := q.Get("before"); c != "" {
		f.Before = parseCursor(c)
	} else if c := q.Get("after"); c != "" {
		f.After = parseCursor(c)
	}
	page, err := h.o.Records.Cycles(r.Context(), f)
	if err != nil {
		h.fail(w, r, http.StatusServiceUnavailable, "error.journal", err.Error())
		return
	}
	devices, err := h.o.Records.CycleDevices(r.Context())
	if err != nil {
		h.fail(w, r, http.StatusServiceUnavailable, "error.journal", err.Error())
		return
	}
	p := cyclesPage{base: h.base(r, "cycles"), Filter: form, Devices: devices, Page: page,
		Results: []string{string(protocol.ResultPassed), string(protocol.ResultFailed), string(protocol.ResultAborted), string(protocol.ResultUnknown)},
		Verdict: []string{protocol.VerdictPass, protocol.VerdictFail, protocol.VerdictIndeterminate, protocol.VerdictNotApplicable, journal.VerdictNone},
		Release: append(protocol.Decisions(), journal.ReleaseNone),
	}
	p.Title = p.L.T("cycles.title")
	if n := len(page.Cycles); n > 0 {
		if page.Older {
			lq := form.query()
			lq.Set("before", cursorString(page.Cycles[n-1].Cursor()))
			p.Older = "/cycles?" + lq.Encode()
		}
		if page.Newer {
			lq := form.query()
			lq.Set("after", cursorString(page.Cycles[0].Cursor()))
			p.Newer = "/cycles?" + lq.Encode()
		}
	}
	h.render(w, http.StatusOK, "cycles", p)
}

// ---- cycle record

type phaseRow struct {
	protocol.Phase
	Duration time.Duration
	Channels []channelExtremes
}

type channelExtremes struct {
	ID       string
	Min, Max float64
}

type releaseForm struct {
	Decision, Note, LoadRef, Supersedes string
	Confirmed                           bool
}

type recordPage struct {
	base
	S   *journal.StoredCycle
	Rec *protocol.CycleRecord // nil when the full record was pruned
	// BadPayload is set when the journaled payload is not a cycle record.
	BadPayload string
	Plot       *plot
	Phases     []phaseRow
	Releases   []journal.StoredRelease
	Current    *journal.StoredRelease
	// NotConforming lists why a release needs confirmation (catalogue keys).
	NotConforming []string
	Printout      string
	PrintoutKnown bool
	Form          releaseForm
	// CanDecide: the person logged in may record a decision now; AdminOnly:
	// the decision in force is final, only an admin may supersede it.
	CanDecide, AdminOnly bool
	Decisions            []string
	Zone                 string
}

func (h *handler) recordData(w http.ResponseWriter, r *http.Request, nav string) (*recordPage, bool) {
	if h.o.Records == nil {
		h.fail(w, r, http.StatusNotFound, "error.notfound")
		return nil, false
	}
	id := r.PathValue("id")
	s, err := h.o.Records.CycleRecord(r.Context(), id)
	if errors.Is(err, journal.ErrNoRecord) {
		h.fail(w, r, http.StatusNotFound, "error.norecord", id)
		return nil, false
	}
	if err != nil {
		h.fail(w, r, http.StatusServiceUnavailable, "error.journal", err.Error())
		return nil, false
	}
	rels, err := h.o.Records.Releases(r.Context(), id)
	if err != nil {
		h.fail(w, r, http.StatusServiceUnavailable, "error.journal", err.Error())
		return nil, false
	}
	p := &recordPage{base: h.base(r, nav), S: s, Releases: rels, Decisions: protocol.Decisions()}
	p.Title = p.L.Tf("record.title", s.Device, s.Cycle)
	p.Zone = p.L.Zone()
	if n := len(rels); n > 0 {
		p.Current = &rels[n-1]
		p.Form.Supersedes = p.Current.EventID
	}
	for _, why := range s.NotConforming() {
		p.NotConforming = append(p.NotConforming, "release.why."+why)
	}
	p.AdminOnly = p.Current != nil && p.Current.Decision != protocol.DecisionQuarantined
	p.CanDecide = p.User != nil && (!p.AdminOnly || p.User.role == RoleAdmin)
	if s.Payload != nil {
		var rec protocol.CycleRecord
		if err := json.Unmarshal(s.Payload, &rec); err != nil {
			p.BadPayload = err.Error()
		} else {
			p.Rec = &rec
		}
	}
	if rec := p.Rec; rec != nil {
		p.Plot = buildPlot(rec, p.L, 960, 360)
		if nav == "print" {
			p.Plot = buildPlot(rec, p.L, 960, 300)
		}
		for _, ph := range rec.Phases {
			row := phaseRow{Phase: ph, Duration: ph.End.Sub(ph.Start)}
			ids := make([]string, 0, len(ph.Ch))
			for id := range ph.Ch {
				ids = append(ids, id)
			}
			sort.Strings(ids)
			for _, id := range ids {
				row.Channels = append(row.Channels, channelExtremes{ID: id, Min: ph.Ch[id].Min, Max: ph.Ch[id].Max})
			}
			p.Phases = append(p.Phases, row)
		}
		if len(rec.Raw) > 0 {
			if h.o.DecodePrintout != nil {
				p.Printout, p.PrintoutKnown = h.o.DecodePrintout(rec.Device, rec.Raw)
			}
			if !p.PrintoutKnown {
				p.Printout = asciiOnly(rec.Raw)
			}
		}
	}
	return p, true
}

// asciiOnly shows bytes whose charset is unknown: printable ASCII and
// line ends as they are, anything else as '?', like a printer would.
func asciiOnly(raw []byte) string {
	b := make([]byte, 0, len(raw))
	for _, c := range raw {
		switch {
		case c == '\n' || c == '\t' || (c >= 0x20 && c < 0x7f):
			b = append(b, c)
		case c == '\r':
		default:
			b = append(b, '?')
		}
	}
	return string(b)
}

func (h *handler) record(w http.ResponseWriter, r *http.Request) {
	p, ok := h.recordData(w, r, "record")
	if !ok {
		return
	}
	if saved := r.URL.Query().Get("saved"); saved != "" {
		for _, rel := range p.Releases {
			if rel.EventID == saved {
				p.Message = p.L.Tf("release.saved", p.L.Decision(rel.Decision), rel.EventID, rel.Seq)
			}
		}
	}
	h.render(w, http.StatusOK, "record", p)
}

func (h *handler) print(w http.ResponseWriter, r *http.Request) {
	if f := r.URL.Query().Get("format"); f != "" && f != "html" {
		// A PDF is the browser's "Save as PDF" of this same page: one
		// rendering, so paper and PDF never differ (docs/console.md).
		h.fail(w, r, http.StatusNotFound, "error.format", f)
		return
	}
	p, ok := h.recordData(w, r, "print")
	if !ok {
		return
	}
	h.render(w, http.StatusOK, "print", p)
}

// ---- release decision

func (h *handler) release(w http.ResponseWriter, r *http.Request) {
	if h.o.Records == nil {
		h.fail(w, r, http.StatusNotFound, "error.notfound")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		h.fail(w, r, http.StatusBadRequest, "error.form")
		return
	}
	id := r.PathValue("id")
	next := "/cycles/" + url.PathEscape(id)
	sess, expired := h.sess.get(r)
	if sess == nil {
		key := "login.needed"
		if expired {
			key = "login.expired"
		}
		h.showLogin(w, r, http.StatusUnauthorized, key, next, "")
		return
	}
	if !tokensEqual(sess.csrf, r.PostForm.Get("csrf")) {
		h.fail(w, r, http.StatusForbidden, "error.csrf")
		return
	}
	p, ok := h.recordData(w, r, "record")
	if !ok {
		return
	}
	p.Form = releaseForm{Decision: r.PostForm.Get("decision"), Note: strings.TrimSpace(r.PostForm.Get("note")),
		LoadRef: strings.TrimSpace(r.PostForm.Get("load_ref")), Supersedes: r.PostForm.Get("supersedes"),
		Confirmed: r.PostForm.Get("confirm") == "yes"}
	refuse := func(status int, key string, args ...any) {
		p.Message, p.Error = p.L.Tf(key, args...), true
		h.render(w, status, "record", p)
	}
	switch {
	case !slices.Contains(protocol.Decisions(), p.Form.Decision):
		refuse(http.StatusUnprocessableEntity, "release.nodecision")
		return
	case utf8.RuneCountInString(p.Form.Note) > maxNoteLen || utf8.RuneCountInString(p.Form.LoadRef) > maxLoadRefLen:
		refuse(http.StatusUnprocessableEntity, "release.toolong", maxNoteLen, maxLoadRefLen)
		return
	case !p.CanDecide:
		refuse(http.StatusForbidden, "release.adminonly")
		return
	case p.Form.Decision == protocol.DecisionReleased && len(p.NotConforming) > 0 && (!p.Form.Confirmed || p.Form.Note == ""):
		refuse(http.StatusUnprocessableEntity, "release.confirm")
		return
	}
	ev, err := h.o.Records.Release(r.Context(), journal.ReleaseDecision{RecordID: id, Decision: p.Form.Decision, Operator: sess.user,
		Note: p.Form.Note, LoadRef: p.Form.LoadRef, Supersedes: p.Form.Supersedes, Confirmed: p.Form.Confirmed})
	switch {
	case errors.Is(err, journal.ErrReleaseConflict):
		refuse(http.StatusConflict, "release.conflict")
		return
	case errors.Is(err, journal.ErrNotConforming):
		refuse(http.StatusUnprocessableEntity, "release.confirm")
		return
	case err != nil:
		h.o.Logger.Error("console: release decision not saved", "record", id, "user", sess.user, "err", err)
		refuse(http.StatusServiceUnavailable, "release.notsaved", err.Error())
		return
	}
	h.o.Logger.Info("console: release decision journaled", "record", id, "decision", ev.Decision, "user", sess.user, "event", ev.ID)
	http.Redirect(w, r, next+"?saved="+url.QueryEscape(ev.ID)+"#release", http.StatusSeeOther)
}

// String makes a session print as its user in logs and templates.
func (s *session) String() string { return fmt.Sprintf("%s (%s)", s.user, s.role) }

// Name and Role are what templates show of the person logged in.
func (s *session) Name() string     { return s.user }
func (s *session) RoleName() string { return s.role }
