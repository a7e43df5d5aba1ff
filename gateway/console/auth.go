package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"sync"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Login protection. A person who mistypes gets LockoutFailures tries; then
// the account is locked for LockoutDuration whatever is typed, which turns
// guessing a password at the console into years of work.
const (
	LockoutFailures = 5
	LockoutDuration = 15 * time.Minute
	// SessionMaxAge ends a session however active it is: a login lasts
	// at most one shift.
	SessionMaxAge = 12 * time.Hour
	// DefaultSessionIdle ends a session nobody used for that long: a
	// console left open on a shared screen.
	DefaultSessionIdle = 30 * time.Minute
)

const (
	sessionCookie = "sterigate_session"
	loginCookie   = "sterigate_login" // the login form's CSRF token (double submit)
	langCookie    = "sterigate_lang"
)

// session is one logged-in person.
type session struct {
	user     string
	role     string
	csrf     string
	created  time.Time
	lastSeen time.Time
}

// failures counts one account's failed logins.
type failures struct {
	count       int
	lockedUntil time.Time
}

// sessions holds the console's sessions in memory: a restart logs
// everyone out, which is the safe side.
type sessions struct {
	mu       sync.Mutex
	byID     map[string]*session
	failures map[string]*failures
	idle     time.Duration
	now      func() time.Time
	// dummyHash is checked against for an unknown name, so timing does
	// not tell which names exist; made at the first such login.
	dummyOnce sync.Once
	dummyHash []byte
}

func newSessions(idle time.Duration, now func() time.Time) *sessions {
	return &sessions{byID: map[string]*session{}, failures: map[string]*failures{}, idle: idle, now: now}
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

func tokensEqual(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// loginResult is why a login failed, or that it did not.
type loginResult int

const (
	loginOK loginResult = iota
	loginWrong
	loginLocked
	loginNoUsers
)

// login checks name and password against users and opens a session.
func (s *sessions) login(users []User, name, password string) (*session, string, loginResult) {
	now := s.now()
	s.mu.Lock()
	f := s.failures[name]
	if f != nil && now.Before(f.lockedUntil) {
		s.mu.Unlock()
		return nil, "", loginLocked
	}
	s.mu.Unlock()
	var user *User
	for i := range users {
		if users[i].Name == name {
			user = &users[i]
		}
	}
	ok := false
	if user != nil {
		ok = bcrypt.CompareHashAndPassword([]byte(user.Hash), []byte(password)) == nil
	} else {
		s.dummyOnce.Do(func() { s.dummyHash, _ = bcrypt.GenerateFromPassword([]byte(randomToken()), bcryptCost) })
		bcrypt.CompareHashAndPassword(s.dummyHash, []byte(password))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !ok {
		f := s.failures[name]
		if f == nil {
			f = &failures{}
			s.failures[name] = f
		}
		f.count++
		if f.count >= LockoutFailures {
			f.count = 0
			f.lockedUntil = now.Add(LockoutDuration)
			return nil, "", loginLocked
		}
		return nil, "", loginWrong
	}
	delete(s.failures, name)
	s.expire(now)
	sess := &session{user: user.Name, role: user.Role, csrf: randomToken(), created: now, lastSeen: now}
	id := randomToken()
	s.byID[id] = sess
	return sess, id, loginOK
}

// get returns the live session of r, and whether a session cookie was
// there but has expired.
func (s *sessions) get(r *http.Request) (sess *session, expired bool) {
	c, err := r.Cookie(sessionCookie)
	if err != nil || c.Value == "" {
		return nil, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	sess = s.byID[c.Value]
	if sess == nil {
		return nil, true
	}
	if now.Sub(sess.lastSeen) > s.idle || now.Sub(sess.created) > SessionMaxAge {
		delete(s.byID, c.Value)
		return nil, true
	}
	sess.lastSeen = now
	cp := *sess
	return &cp, false
}

func (s *sessions) logout(r *http.Request) {
	if c, err := r.Cookie(sessionCookie); err == nil {
		s.mu.Lock()
		delete(s.byID, c.Value)
		s.mu.Unlock()
	}
}

// expire drops sessions past their time, so the map stays as small as
// the number of people logged in. Called with mu held.
func (s *sessions) expire(now time.Time) {
	for id, sess := range s.byID {
		if now.Sub(sess.lastSeen) > s.idle || now.Sub(sess.created) > SessionMaxAge {
			delete(s.byID, id)
		}
	}
	for name, f := range s.failures {
		if now.After(f.lockedUntil) && f.count == 0 {
			delete(s.failures, name)
		}
	}
}

// cookie builds a console cookie: never readable by scripts, never sent
// by another site, Secure when the console is served over TLS.
func (h *handler) cookie(name, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: name, Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		SameSite: http.SameSiteStrictMode, Secure: h.o.TLSConfig != nil}
}
