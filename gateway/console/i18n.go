package console

import (
	"embed"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// Every text the console shows comes from one catalogue per language,
// i18n/<lang>.json, flat keys to strings; a test checks that both have the
// same keys and that every key a template names exists.

//go:embed i18n/*.json
var catalogueFS embed.FS

// languages the console speaks, the first being the default.
var languages = []string{"en", "fr"}

type catalogue map[string]string

func loadCatalogues() (map[string]catalogue, error) {
	out := map[string]catalogue{}
	for _, l := range languages {
		b, err := catalogueFS.ReadFile("i18n/" + l + ".json")
		if err != nil {
			return nil, err
		}
		var c catalogue
		if err := json.Unmarshal(b, &c); err != nil {
			return nil, fmt.Errorf("console catalogue %s: %w", l, err)
		}
		out[l] = c
	}
	return out, nil
}

// lang formats for one language and time zone; templates call its methods.
type lang struct {
	Code string
	cat  catalogue
	loc  *time.Location
	now  time.Time
}

// T returns the text of key; a missing key shows itself, so a forgotten
// text is visible rather than blank (and the catalogue test fails).
func (l *lang) T(key string) string {
	if s, ok := l.cat[key]; ok {
		return s
	}
	return key
}

// Tf is T with fmt verbs filled.
func (l *lang) Tf(key string, args ...any) string { return fmt.Sprintf(l.T(key), args...) }

// word translates a value of a vocabulary (phase, result, verdict,
// decision, state, check): "kind.value", or the value itself when the
// catalogue does not know it (a newer device or rule set).
func (l *lang) word(kind, value string) string {
	if value == "" {
		return ""
	}
	if s, ok := l.cat[kind+"."+value]; ok {
		return s
	}
	return value
}

func (l *lang) Phase(v any) string      { return l.word("phase", fmt.Sprint(v)) }
func (l *lang) Result(v any) string     { return l.word("result", fmt.Sprint(v)) }
func (l *lang) Verdict(v string) string { return l.word("verdict", v) }
func (l *lang) Decision(v string) string {
	return l.word("decision", v)
}
func (l *lang) State(v string) string   { return l.word("state", v) }
func (l *lang) Check(v string) string   { return l.word("check", v) }
func (l *lang) Hole(v string) string    { return l.word("hole", v) }
func (l *lang) Role(v string) string    { return l.word("role", v) }
func (l *lang) Channel(v string) string { return l.word("channel", v) }

// Num formats v with decimals digits: a decimal comma and narrow no-break
// spaces between thousands in French.
func (l *lang) Num(v float64, decimals int) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "—"
	}
	s := strconv.FormatFloat(v, 'f', decimals, 64)
	if l.Code != "fr" {
		return s
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	intPart, frac, hasFrac := strings.Cut(s, ".")
	if len(intPart) > 4 {
		var b strings.Builder
		for i, r := range intPart {
			if i > 0 && (len(intPart)-i)%3 == 0 {
				b.WriteRune('\u202f')
			}
			b.WriteRune(r)
		}
		intPart = b.String()
	}
	if hasFrac {
		intPart += "," + frac
	}
	if neg {
		intPart = "-" + intPart
	}
	return intPart
}

// NumP formats a value that may be absent.
func (l *lang) NumP(v *float64, decimals int) string {
	if v == nil {
		return "—"
	}
	return l.Num(*v, decimals)
}

// Int formats a count.
func (l *lang) Int(v any) string {
	var f float64
	switch n := v.(type) {
	case int:
		f = float64(n)
	case int64:
		f = float64(n)
	case uint64:
		f = float64(n)
	default:
		return fmt.Sprint(v)
	}
	return l.Num(f, 0)
}

// Time is a date and 24-hour time in the console's time zone:
// dd/mm/yyyy in French, yyyy-mm-dd in English.
func (l *lang) Time(t time.Time) string {
	return l.format(t, "2006-01-02 15:04:05", "02/01/2006 15:04:05")
}

// Date is the date alone.
func (l *lang) Date(t time.Time) string { return l.format(t, "2006-01-02", "02/01/2006") }

// format writes t in the console's zone with the language's layout; a
// zero time is "—".
func (l *lang) format(t time.Time, en, fr string) string {
	if t.IsZero() {
		return "—"
	}
	if l.Code == "fr" {
		return t.In(l.loc).Format(fr)
	}
	return t.In(l.loc).Format(en)
}

// Clock is the time of day alone.
func (l *lang) Clock(t time.Time) string { return l.format(t, "15:04:05", "15:04:05") }

// Now is the time the page is made.
func (l *lang) Now() time.Time { return l.now }

// Zone names the time zone times are shown in.
func (l *lang) Zone() string { return l.now.In(l.loc).Format("MST (-07:00)") }

// Dur is a duration as h:mm:ss (or m:ss).
func (l *lang) Dur(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	s := int64(d.Round(time.Second) / time.Second)
	if s >= 3600 {
		return fmt.Sprintf("%d:%02d:%02d", s/3600, s/60%60, s%60)
	}
	return fmt.Sprintf("%d:%02d", s/60, s%60)
}

// Since is how long ago t was, as Dur.
func (l *lang) Since(t time.Time) string {
	if t.IsZero() {
		return "—"
	}
	return l.Dur(l.now.Sub(t))
}

// Bar converts kPa absolute to bar, as French machines print pressures.
func (l *lang) Bar(kpa float64) string { return l.Num(kpa/100, 2) }

// pickLanguage chooses the language of a request: the switch's cookie,
// else the first language of Accept-Language the console speaks.
func pickLanguage(r *http.Request) string {
	if c, err := r.Cookie(langCookie); err == nil {
		for _, l := range languages {
			if c.Value == l {
				return l
			}
		}
	}
	type pref struct {
		lang string
		q    float64
	}
	var prefs []pref
	for i, part := range strings.Split(r.Header.Get("Accept-Language"), ",") {
		tag, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			if f, err := strconv.ParseFloat(v, 64); err == nil {
				q = f
			}
		}
		base, _, _ := strings.Cut(strings.ToLower(tag), "-")
		prefs = append(prefs, pref{base, q - float64(i)*1e-6}) // stable among equal q
	}
	sort.SliceStable(prefs, func(i, j int) bool { return prefs[i].q > prefs[j].q })
	for _, p := range prefs {
		for _, l := range languages {
			if p.lang == l && p.q > 0 {
				return l
			}
		}
	}
	return languages[0]
}
