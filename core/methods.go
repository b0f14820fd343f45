package core

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
)

// Access says who may call a method before any method-specific permission check.
type Access int

const (
	// LoggedIn methods need a session with a valid token (the default).
	LoggedIn Access = iota
	// Public methods need no login and work logged in or not (get_leosac_version).
	Public
	// AnonymousOnly methods work only before login (create_auth_token): a logged-in client
	// must log out before switching user.
	AnonymousOnly
)

// Handler runs one call. It returns the reply content (any JSON-encodable value; nil is sent
// as null) or an error, which is mapped to a status code with StatusOf.
type Handler func(ctx context.Context, call *Call) (any, error)

// Method is one entry of the method registry: a Leosac-style type name such as "user.read",
// who may call it, and its handler. Every dialect dispatches through the same registry.
type Method struct {
	Type    string
	Access  Access
	Handler Handler
}

// Call is what a handler gets: the session, the caller as of this call (nil when not logged
// in) and the raw content of the request.
type Call struct {
	Type    string
	Session *Session
	Caller  *Identity
	Content json.RawMessage

	base   zerolog.Logger
	logger *zerolog.Logger
	after  func()
}

// AfterReply asks the transport to run f once the call's reply has been queued to the client
// (used by calls whose reply must precede what they push, like events.subscribe). Only the
// last f given is kept; it runs only when the call succeeds.
func (c *Call) AfterReply(f func()) { c.after = f }

// Log returns a logger tagged with the request (type, and user_id when logged in). It is built
// on first use, so calls that log nothing pay nothing for it.
func (c *Call) Log() *zerolog.Logger {
	if c.logger == nil {
		lc := c.base.With().Str("type", c.Type)
		if c.Caller != nil {
			lc = lc.Int64("user_id", c.Caller.UserID)
		}
		l := lc.Logger()
		c.logger = &l
	}
	return c.logger
}

// Decode unmarshals the call's content into v. Unknown fields are ignored (Leosac clients send
// extras) but a field of the wrong JSON type is an INVALID_ARGUMENT error that names the field.
// An absent or null content decodes as an empty object.
func (c *Call) Decode(v any) error {
	raw := bytes.TrimSpace(c.Content)
	if len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
		raw = []byte("{}")
	}
	if raw[0] != '{' {
		return E(InvalidArgument, "content must be a JSON object", nil)
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return DecodeError(err)
	}
	return nil
}

// DecodeError turns a JSON decoding error into an INVALID_ARGUMENT error that says which field
// had which problem, without echoing the offending value.
func DecodeError(err error) *Error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		field := te.Field
		if field == "" {
			field = "content"
		}
		// te.Value is "number 12.5" for numbers: keep only the JSON kind, never the value.
		kind, _, _ := strings.Cut(te.Value, " ")
		return E(InvalidArgument, fmt.Sprintf("%s: want %s, got JSON %s", field, jsonKind(te.Type.Kind().String()), kind), nil)
	}
	var ce *Error
	if errors.As(err, &ce) {
		return ce
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return E(InvalidArgument, "content: invalid JSON", nil)
	}
	return E(InvalidArgument, "content: cannot be decoded", nil)
}

// jsonKind names a Go kind the way a JSON client thinks of it.
func jsonKind(goKind string) string {
	switch goKind {
	case "int", "int8", "int16", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		return "integer"
	case "float32", "float64":
		return "number"
	case "bool":
		return "boolean"
	case "slice", "array":
		return "array"
	case "map", "struct":
		return "object"
	case "string":
		return "string"
	}
	return goKind
}

// Authority resolves a session to its caller on every call. Implemented by the auth module.
type Authority interface {
	// Resolve checks that the session's token still exists and has not expired, that its owner
	// is still valid, slides the token's idle timeout, and returns the caller's current
	// identity. When the token is no longer valid it ends the session (so it loses every right
	// at once) and returns a SESSION_ABORTED error.
	Resolve(ctx context.Context, s *Session) (*Identity, error)
	// Check is Resolve without sliding the token: it answers who the session is now, for
	// work the client did not ask for (pushing an event). It does not end the session.
	Check(ctx context.Context, s *Session) (*Identity, error)
	// Release forgets a session whose connection closed (it stays logged in nowhere).
	Release(s *Session)
}

// Methods is the method registry and dispatcher shared by every dialect.
type Methods struct {
	mu        sync.RWMutex
	methods   map[string]*entry
	unknown   *entry
	authority Authority

	calls    *prometheus.CounterVec
	duration *prometheus.HistogramVec
}

// NewMethods returns an empty registry whose metrics are registered on reg (may be nil).
func NewMethods(reg prometheus.Registerer) *Methods {
	m := &Methods{
		methods: make(map[string]*entry),
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_api_calls_total",
			Help: "API calls by method type and status code name.",
		}, []string{"type", "status"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "gatehouse_api_call_seconds",
			Help:    "API call handling time by method type.",
			Buckets: []float64{.0001, .0005, .001, .005, .01, .05, .1, .5, 1, 5},
		}, []string{"type"}),
	}
	if reg != nil {
		reg.MustRegister(m.calls, m.duration)
	}
	m.unknown = m.newEntry(Method{Type: "unknown"})
	return m
}

// entry is a registered method with its metrics resolved once, so that a successful call
// costs no label lookups.
type entry struct {
	Method
	ok  prometheus.Counter
	dur prometheus.Observer
}

func (m *Methods) newEntry(meth Method) *entry {
	return &entry{
		Method: meth,
		ok:     m.calls.WithLabelValues(meth.Type, Success.String()),
		dur:    m.duration.WithLabelValues(meth.Type),
	}
}

// Register adds methods. It panics on an empty or duplicate type or a nil handler, which are
// programming errors caught at start.
func (m *Methods) Register(methods ...Method) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, meth := range methods {
		if meth.Type == "" || meth.Handler == nil {
			panic(fmt.Sprintf("core: invalid method %q", meth.Type))
		}
		if _, dup := m.methods[meth.Type]; dup {
			panic(fmt.Sprintf("core: method %q registered twice", meth.Type))
		}
		m.methods[meth.Type] = m.newEntry(meth)
	}
}

// SetAuthority installs the Authority that resolves sessions. The auth module calls it in
// Provision; without one, no session can be logged in.
func (m *Methods) SetAuthority(a Authority) {
	m.mu.Lock()
	m.authority = a
	m.mu.Unlock()
}

// Release tells the Authority that a session's connection closed. Transports call it once per
// session when the connection ends.
func (m *Methods) Release(s *Session) {
	m.mu.RLock()
	a := m.authority
	m.mu.RUnlock()
	if a != nil {
		a.Release(s)
	}
}

// Check resolves a session without sliding its token (see Authority.Check). It returns
// PERMISSION_DENIED for a session that is not logged in.
func (m *Methods) Check(ctx context.Context, s *Session) (*Identity, error) {
	m.mu.RLock()
	a := m.authority
	m.mu.RUnlock()
	if a == nil || !s.LoggedIn() {
		return nil, ErrPermissionDenied
	}
	return a.Check(ctx, s)
}

// Types returns the registered method types, sorted.
func (m *Methods) Types() []string {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]string, 0, len(m.methods))
	for t := range m.methods {
		out = append(out, t)
	}
	sort.Strings(out)
	return out
}

// Has reports whether a method type is registered.
func (m *Methods) Has(typ string) bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	_, ok := m.methods[typ]
	return ok
}

// Access returns the Access a method type was registered with, and false when no method of
// that type is registered. It says only who the core lets reach the handler (logged in, anyone,
// anonymous only); handlers still check finer rights on every call.
func (m *Methods) Access(typ string) (Access, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	e, ok := m.methods[typ]
	if !ok {
		return 0, false
	}
	return e.Access, true
}

// ErrUnknownType is the INVALID_CALL answer to a type nobody registered.
var ErrUnknownType = E(InvalidCall, "Unknown message type.", nil)

// Call dispatches one request and runs the handler's AfterReply function (if any) at once. It
// is for transports that have no reply queue; the websocket transports use Invoke.
func (m *Methods) Call(ctx context.Context, s *Session, typ string, content json.RawMessage, log zerolog.Logger) (any, error) {
	res, after, err := m.Invoke(ctx, s, typ, content, log)
	if after != nil {
		after()
	}
	return res, err
}

// Invoke dispatches one request. A logged-in session is resolved first (so an expired or revoked
// token answers SESSION_ABORTED whatever the type, as in Leosac), then the type is looked up
// (INVALID_CALL), then the method's Access is enforced (PERMISSION_DENIED), then the handler
// runs. Handlers check their own, finer rights against call.Caller.
// The returned function, if not nil, must be run by the transport once the reply is queued.
func (m *Methods) Invoke(ctx context.Context, s *Session, typ string, content json.RawMessage, log zerolog.Logger) (any, func(), error) {
	start := time.Now()
	m.mu.RLock()
	e, known := m.methods[typ]
	authority := m.authority
	m.mu.RUnlock()
	if !known {
		e = m.unknown
	}
	res, after, err := m.call(ctx, s, e, known, authority, content, log)
	if err == nil {
		e.ok.Inc()
	} else {
		ce, _ := StatusOf(err)
		m.calls.WithLabelValues(e.Type, ce.Code.String()).Inc()
		after = nil
	}
	e.dur.Observe(time.Since(start).Seconds())
	return res, after, err
}

func (m *Methods) call(ctx context.Context, s *Session, meth *entry, known bool, authority Authority, content json.RawMessage, log zerolog.Logger) (any, func(), error) {
	var caller *Identity
	if s.LoggedIn() {
		if authority == nil {
			return nil, nil, E(SessionAborted, "Session aborted: no authority configured.", nil)
		}
		id, err := authority.Resolve(ctx, s)
		if err != nil {
			return nil, nil, err
		}
		caller = id
	}
	if !known {
		return nil, nil, ErrUnknownType
	}
	switch meth.Access {
	case LoggedIn:
		if caller == nil {
			return nil, nil, ErrPermissionDenied
		}
	case AnonymousOnly:
		if caller != nil {
			return nil, nil, E(PermissionDenied, "Permission denied: already logged in; log out first.", nil)
		}
	}
	call := &Call{Type: meth.Type, Session: s, Caller: caller, Content: content, base: log}
	res, err := meth.Handler(ctx, call)
	return res, call.after, err
}
