package portal

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"gatehouse/core"
	"gatehouse/modules/auth"
	"gatehouse/modules/token"
)

// LemonLDAP::NG portal error codes (reference C.3) the portal answers.
const (
	PeOK                = 0  // PE_OK: user authenticated
	PeFormEmpty         = 2  // PE_FORMEMPTY: user and password fields must be filled
	PeBadCredentials    = 5  // PE_BADCREDENTIALS: wrong credentials (also for unknown users)
	PeFirstAccess       = 9  // PE_FIRSTACCESS: authentication required
	PeError             = 24 // PE_ERROR
	PeMalformedUser     = 40 // PE_MALFORMEDUSER: the user field is not a valid login
	PeSessionNotGranted = 41 // PE_SESSIONNOTGRANTED: the account is disabled or not valid now
	PeLogoutOK          = 47 // PE_LOGOUT_OK
	PeNoToken           = 81 // PE_NOTOKEN: cross-site login attempt refused
	PeTokenExpired      = 82 // PE_TOKENEXPIRED: a form token that this portal did not issue
	PeWait              = 86 // PE_WAIT: too many failed logins, wait
)

// userControl is LemonLDAP::NG's default userControl, ^[\w\.\-@]+$, bounded.
var userControl = regexp.MustCompile(`^[\p{L}\p{N}_.\-@]{1,256}$`)

// cookieExpired is LemonLDAP::NG's expiry date for a logged-out cookie.
var cookieExpired = time.Date(2015, 10, 21, 0, 0, 0, 0, time.UTC)

// result is the portal's JSON answer.
type result struct {
	Result int    `json:"result"`
	Error  int    `json:"error"`
	ID     string `json:"id,omitempty"`
}

// wantJSON reports whether the client asked for JSON (LemonLDAP::NG's wantJSON).
func wantJSON(r *http.Request) bool {
	a := r.Header.Get("Accept")
	return strings.Contains(a, "application/json") || strings.Contains(a, "text/json")
}

// send writes a JSON answer with LemonLDAP::NG's no-cache headers.
func send(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are encoded
		b = []byte(`{"result":0,"error":24}`)
		status = http.StatusInternalServerError
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache, no-store, must-revalidate")
	h.Set("Pragma", "no-cache")
	h.Set("Expires", "0")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// fail answers an error without a session: 401 with WWW-Authenticate: SSO <portal URL>.
func (m *Module) fail(w http.ResponseWriter, r *http.Request, code int) {
	w.Header().Set("WWW-Authenticate", "SSO "+m.portalURL(r))
	send(w, http.StatusUnauthorized, result{Result: 0, Error: code})
}

// portalURL is the configured portal URL, or this server's as the request reached it.
func (m *Module) portalURL(r *http.Request) string {
	if m.PortalURL != "" {
		return m.PortalURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host + "/"
}

// crossSite reports whether a browser sent the request from another site than this server or
// one of AllowedOrigins (core.CrossSite).
func (m *Module) crossSite(r *http.Request) bool {
	return core.CrossSite(r, core.Origins(m.AllowedOrigins))
}

// session returns the valid session of the request's cookie (sliding its token when slide) and
// its owner. Any dialect's token works as the cookie.
func (m *Module) session(r *http.Request, slide bool) (*token.Token, auth.User, bool, error) {
	c, err := r.Cookie(m.CookieName)
	if err != nil || !token.Plausible(c.Value) {
		return nil, auth.User{}, false, nil
	}
	hash := token.Hash(c.Value)
	var rec *token.Token
	if slide {
		rec, err = m.tokens.UseVia(r.Context(), hash, token.DialectPortal)
	} else {
		rec, err = m.tokens.PeekVia(r.Context(), hash, token.DialectPortal)
	}
	if errors.Is(err, token.ErrInvalid) {
		return nil, auth.User{}, false, nil
	}
	if err != nil {
		return nil, auth.User{}, false, err
	}
	u, err := m.auth.Users().Get(r.Context(), rec.UserID)
	if errors.Is(err, auth.ErrNoUser) || err == nil && !u.ValidAt(m.now()) {
		return nil, auth.User{}, false, nil
	}
	if err != nil {
		return nil, auth.User{}, false, err
	}
	return rec, u, true, nil
}

// internal answers an unexpected failure with PE_ERROR, logging the cause.
func (m *Module) internal(w http.ResponseWriter, err error) {
	_, id := core.StatusOf(err)
	m.log.Error().Err(err).Str("incident", id).Msg("portal request failed")
	send(w, http.StatusInternalServerError, result{Result: 0, Error: PeError})
}

// credentials are a login's fields.
type credentials struct {
	User     string `json:"user"`
	Password string `json:"password"`
	Token    string `json:"token"`
}

// readCredentials reads user, password and token from a form (urlencoded or multipart) or JSON
// body. Query parameters are ignored: passwords do not belong in URLs.
func (m *Module) readCredentials(w http.ResponseWriter, r *http.Request) (credentials, bool) {
	r.Body = http.MaxBytesReader(w, r.Body, m.BodyLimit)
	var c credentials
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	switch ct {
	case "application/json", "text/json":
		b, err := io.ReadAll(r.Body)
		if err != nil {
			return c, false
		}
		var raw map[string]any
		if json.Unmarshal(b, &raw) != nil {
			return c, false
		}
		str := func(k string) string { s, _ := raw[k].(string); return s }
		c = credentials{User: str("user"), Password: str("password"), Token: str("token")}
	case "multipart/form-data":
		if err := r.ParseMultipartForm(m.BodyLimit); err != nil {
			return c, false
		}
		c = credentials{User: r.PostFormValue("user"), Password: r.PostFormValue("password"), Token: r.PostFormValue("token")}
	default:
		if err := r.ParseForm(); err != nil {
			return c, false
		}
		c = credentials{User: r.PostForm.Get("user"), Password: r.PostForm.Get("password"), Token: r.PostForm.Get("token")}
	}
	return c, true
}

// login serves POST /: a LemonLDAP::NG login.
func (m *Module) login(w http.ResponseWriter, r *http.Request) {
	if m.crossSite(r) {
		m.fail(w, r, PeNoToken)
		return
	}
	if _, _, ok, err := m.session(r, true); err != nil {
		m.internal(w, err)
		return
	} else if ok { // already authenticated: no new session, no id
		send(w, http.StatusOK, result{Result: 1, Error: PeOK})
		return
	}
	c, ok := m.readCredentials(w, r)
	if !ok { // unreadable, over the limit or not JSON: as if the form were empty
		m.fail(w, r, PeFormEmpty)
		return
	}
	switch {
	case c.Token != "": // a one-time form token this portal never issued: unknown
		m.fail(w, r, PeTokenExpired)
		return
	case c.User == "" || c.Password == "":
		m.fail(w, r, PeFormEmpty)
		return
	case !userControl.MatchString(c.User):
		m.fail(w, r, PeMalformedUser)
		return
	}
	lr := auth.LoginRequest{
		Username: c.User, Password: c.Password, Remote: r.RemoteAddr, UserAgent: r.UserAgent(),
		Dialect: token.DialectPortal, Lifetime: m.Lifetime.D(), Idle: m.Idle.D(),
	}
	if dc, err := r.Cookie(auth.DeviceCookieName(c.User)); err == nil {
		lr.DeviceToken = dc.Value // the browser's device token for this user (OWASP device cookies)
	}
	res, err := m.auth.Login(r.Context(), lr)
	if err != nil {
		ce, _ := core.StatusOf(err)
		if ce.Code == core.RateLimited {
			if v, ok := ce.Content.(map[string]int); ok {
				w.Header().Set("Retry-After", strconv.Itoa(v["retry_after"]))
			}
			w.Header().Set("WWW-Authenticate", "SSO "+m.portalURL(r))
			send(w, http.StatusTooManyRequests, result{Result: 0, Error: PeWait})
			return
		}
		m.internal(w, err)
		return
	}
	switch res.Outcome {
	case auth.Granted:
	case auth.AccountDisabled, auth.AccountInactive:
		m.fail(w, r, PeSessionNotGranted)
		return
	default:
		m.fail(w, r, PeBadCredentials)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: m.CookieName, Value: res.Token, Path: "/", HttpOnly: true,
		SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
	if res.DeviceToken != "" {
		http.SetCookie(w, &http.Cookie{
			Name: auth.DeviceCookieName(res.User.Username), Value: res.DeviceToken, Path: "/",
			MaxAge: int(m.auth.DeviceTokenLifetime() / time.Second), HttpOnly: true,
			SameSite: http.SameSiteStrictMode, Secure: r.TLS != nil,
		})
	}
	m.log.Info().Int64("user_id", res.User.ID).Str("token_id", res.Record.ID).Msg("portal login")
	send(w, http.StatusOK, result{Result: 1, Error: PeOK, ID: res.Token})
}

// root serves GET /: ?logout=1 logs out; a JSON request learns whether its cookie is a valid
// session; everything else is the dashboard.
func (m *Module) root(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if l := q.Get("logout"); l != "" && l != "0" {
		m.logout(w, r)
		return
	}
	if !wantJSON(r) {
		m.web.ServeHTTP(w, r)
		return
	}
	_, _, ok, err := m.session(r, true)
	switch {
	case err != nil:
		m.internal(w, err)
	case ok:
		send(w, http.StatusOK, result{Result: 1, Error: PeOK})
	default:
		m.fail(w, r, PeFirstAccess)
	}
}

// expireCookie tells the browser to drop the session cookie.
func (m *Module) expireCookie(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{
		Name: m.CookieName, Value: "0", Path: "/", Expires: cookieExpired, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil,
	})
}

// endSession revokes the cookie's session everywhere and expires the cookie; it reports
// whether there was a valid session.
func (m *Module) endSession(w http.ResponseWriter, r *http.Request) (bool, error) {
	m.expireCookie(w, r)
	rec, _, ok, err := m.session(r, false)
	if err != nil || !ok {
		return false, err
	}
	if err := m.tokens.Revoke(r.Context(), rec.Hash, "Logged out."); err != nil {
		return false, err
	}
	return true, nil
}

// logout serves GET /?logout=1: JSON clients get {"result": 1|0, "error": 47} (200, or 401
// without a session); browsers are sent back to the dashboard. A GET is what a cross-site link
// or redirect makes a browser send with the Lax cookie, so a request a browser marks as
// cross-site (core.CrossSite: Origin, Sec-Fetch-Site, Referer) ends nothing: JSON clients get
// 401 error 81, browsers are sent to the dashboard with their session intact.
func (m *Module) logout(w http.ResponseWriter, r *http.Request) {
	if m.crossSite(r) {
		if wantJSON(r) {
			m.fail(w, r, PeNoToken)
		} else {
			http.Redirect(w, r, "/", http.StatusSeeOther)
		}
		return
	}
	ok, err := m.endSession(w, r)
	if err != nil {
		m.internal(w, err)
		return
	}
	switch {
	case !wantJSON(r):
		http.Redirect(w, r, "/", http.StatusSeeOther)
	case ok:
		send(w, http.StatusOK, result{Result: 1, Error: PeLogoutOK})
	default:
		m.fail(w, r, PeLogoutOK)
	}
}

// deleteSession serves DELETE /session/my: log out, {"result": 1} (or 401 {"result": 0}).
func (m *Module) deleteSession(w http.ResponseWriter, r *http.Request) {
	if m.crossSite(r) {
		m.fail(w, r, PeNoToken)
		return
	}
	ok, err := m.endSession(w, r)
	if err != nil {
		m.internal(w, err)
		return
	}
	if !ok {
		w.Header().Set("WWW-Authenticate", "SSO "+m.portalURL(r))
		send(w, http.StatusUnauthorized, map[string]int{"result": 0})
		return
	}
	send(w, http.StatusOK, map[string]int{"result": 1})
}

// ping serves GET /ping: {"status": 1} with a valid session cookie, else {"status": 0}. It does
// not keep the session alive.
func (m *Module) ping(w http.ResponseWriter, r *http.Request) {
	_, _, ok, err := m.session(r, false)
	if err != nil {
		m.internal(w, err)
		return
	}
	st := 0
	if ok {
		st = 1
	}
	send(w, http.StatusOK, map[string]int{"status": st})
}

// mysession serves GET /mysession/?whoami → {"result": "<username>"} for a valid session.
func (m *Module) mysession(w http.ResponseWriter, r *http.Request) {
	_, u, ok, err := m.session(r, true)
	if err != nil {
		m.internal(w, err)
		return
	}
	if !ok {
		m.fail(w, r, PeFirstAccess)
		return
	}
	if r.URL.Path != "/mysession/" || !r.URL.Query().Has("whoami") {
		send(w, http.StatusBadRequest, result{Result: 0, Error: PeError})
		return
	}
	send(w, http.StatusOK, map[string]string{"result": u.Username})
}
