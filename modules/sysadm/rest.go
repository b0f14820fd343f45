package sysadm

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"

	"gatehouse/core"
	"gatehouse/modules/auth"
)

// DecodeRESTBody returns the args of a REST request body: empty = {}; otherwise a JSON
// object, whose "args" member is the args when present, else the whole object (as sysadm
// does). Anything else is a 400 error. It never panics.
func DecodeRESTBody(body []byte) (json.RawMessage, *core.Error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return json.RawMessage("{}"), nil
	}
	if !json.Valid(trimmed) {
		return nil, malformed("body is not JSON")
	}
	if trimmed[0] != '{' {
		return nil, malformed("body is not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return nil, malformed("body is not a JSON object")
	}
	if args, ok := fields["args"]; ok {
		return args, nil
	}
	return json.RawMessage(trimmed), nil
}

// serveREST answers GET|POST|PUT /<namespace>/<name> (reference A.7): the body gives the args;
// the client authenticates per request with HTTP Basic (a throttled login), a Bearer token
// from any dialect, or the Unix socket's peer credentials; the reply is {"args": ...} with the
// HTTP status of the outcome.
func (m *Module) serveREST(w http.ResponseWriter, r *http.Request) {
	ns, _, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	req := Request{Namespace: ns, Name: r.PathValue("name")}
	sess := core.NewSession(Dialect, remoteOf(r), r.UserAgent(), nil)
	cl := &client{sess: sess, log: m.log.With().Str("remote", sess.Remote).Str("rest", ns+"/"+req.Name).Logger()}
	defer m.finish(cl)

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, m.ReadLimit))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			writeREST(w, http.StatusRequestEntityTooLarge, errorArgs{Code: http.StatusRequestEntityTooLarge,
				Message: "Request Entity Too Large: the body is over the size limit."})
			return
		}
		writeREST(w, http.StatusBadRequest, errorArgs{Code: http.StatusBadRequest, Message: "Bad Request: unreadable body."})
		return
	}
	args, derr := DecodeRESTBody(body)
	if derr != nil {
		writeREST(w, http.StatusBadRequest, errorArgs{Code: http.StatusBadRequest, Message: "Bad Request: " + derr.Msg})
		return
	}
	req.Args = args

	// Every verb may change things here, and browsers attach cached Basic credentials to
	// cross-site requests: refuse those (login CSRF and worse).
	if m.crossSite(r) {
		writeREST(w, http.StatusForbidden, errorArgs{Code: http.StatusForbidden, Message: "Forbidden: cross-site request."})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), m.CallTimeout.D())
	defer cancel()
	if err := m.restLogin(ctx, r, cl); err != nil {
		code, msg := m.failure(cl, req, err)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse", charset="UTF-8"`)
		}
		writeREST(w, code, errorArgs{Code: code, Message: msg})
		return
	}
	res, err := m.exec(ctx, cl, req)
	if err != nil {
		code, msg := m.failure(cl, req, err)
		if code == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Basic realm="gatehouse", charset="UTF-8"`)
		}
		writeREST(w, code, errorArgs{Code: code, Message: msg})
		return
	}
	if res.silent || res.args == nil {
		res.args = map[string]any{}
	}
	writeREST(w, http.StatusOK, res.args)
}

// restLogin authenticates a REST request from its Authorization header, or else from the Unix
// socket's peer credentials. No header and no mapped peer leaves it anonymous (rpc/auth,
// rpc/identify and the public gatehouse calls work so).
func (m *Module) restLogin(ctx context.Context, r *http.Request, cl *client) error {
	h := r.Header.Get("Authorization")
	if h == "" {
		m.peerLogin(ctx, r, cl)
		return nil
	}
	scheme, cred, _ := strings.Cut(h, " ")
	cred = strings.TrimSpace(cred)
	switch strings.ToLower(scheme) {
	case "basic":
		username, password, ok := auth.DecodeBasic(cred)
		if !ok {
			return refuse(http.StatusUnauthorized, "malformed Basic credentials")
		}
		lr := m.loginRequest(cl.sess)
		lr.Username, lr.Password = username, password
		res, err := m.auth.Login(ctx, lr)
		if err != nil {
			return err
		}
		if res.Outcome != auth.Granted {
			return refuse(http.StatusUnauthorized, "")
		}
		m.adopt(cl, res, true) // one request: the token dies with it
		return nil
	case "bearer":
		res, err := m.auth.LoginToken(ctx, cred, cl.sess.Remote, Dialect)
		if err != nil {
			return err
		}
		if res.Outcome != auth.Granted {
			return refuse(http.StatusUnauthorized, "")
		}
		m.adopt(cl, res, false)
		return nil
	}
	return refuse(http.StatusUnauthorized, "use Basic or Bearer authentication")
}

// crossSite reports whether a browser sent the request from another site than this server or
// a host of OriginPatterns (matched as the websocket library does), on every verb: browsers
// replay Basic credentials by themselves (core.CrossSite).
func (m *Module) crossSite(r *http.Request) bool {
	return core.CrossSite(r, func(u *url.URL) bool {
		for _, p := range m.OriginPatterns {
			if ok, _ := path.Match(strings.ToLower(p), strings.ToLower(u.Host)); ok {
				return true
			}
		}
		return false
	})
}

// writeREST writes {"args": args} with the status.
func writeREST(w http.ResponseWriter, code int, args any) {
	b, err := json.Marshal(map[string]any{"args": args})
	if err != nil {
		code = http.StatusInternalServerError
		b, _ = json.Marshal(map[string]any{"args": errorArgs{Code: code, Message: "Internal Server Error: reply not encodable."}})
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}
