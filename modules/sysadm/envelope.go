package sysadm

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/http"

	"gatehouse/core"
)

// Request is a decoded sysadm request: {"namespace","name","id","args"}.
type Request struct {
	Namespace string
	Name      string
	ID        string
	Args      json.RawMessage
}

// Limits on the envelope's strings; longer ones are malformed.
const (
	maxNamespaceLen = 64
	maxNameLen      = 128
	maxIDLen        = 256
)

// DecodeRequest parses one frame. namespace and name must be non-empty strings; id, when
// present, a string; args may be any JSON value, and when the object has no "args" key the
// whole object is the args (as sysadm does). On failure it returns a 400 error together with a
// Request holding the namespace and id when they could be read, so that the error reply echoes
// them. It never panics, whatever the input.
func DecodeRequest(frame []byte) (Request, *core.Error) {
	var req Request
	trimmed := bytes.TrimSpace(frame)
	if len(trimmed) == 0 {
		return req, malformed("empty frame")
	}
	if !json.Valid(trimmed) {
		return req, malformed("not JSON")
	}
	if trimmed[0] != '{' {
		return req, malformed("not a JSON object")
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(trimmed, &fields); err != nil {
		return req, malformed("not a JSON object")
	}
	nsRaw, hasNS := fields["namespace"]
	nameRaw, hasName := fields["name"]
	idRaw, hasID := fields["id"]
	nsOK := hasNS && shortString(nsRaw, maxNamespaceLen, &req.Namespace) && req.Namespace != ""
	idOK := !hasID || shortString(idRaw, maxIDLen, &req.ID)
	if !nsOK {
		req.Namespace = ""
	}
	if !idOK {
		req.ID = ""
	}
	switch {
	case !hasNS:
		return req, malformed("missing namespace")
	case !nsOK:
		return req, malformed("namespace must be a non-empty string of at most 64 bytes")
	case !idOK:
		return req, malformed("id must be a string of at most 256 bytes")
	case !hasName:
		return req, malformed("missing name")
	case !shortString(nameRaw, maxNameLen, &req.Name) || req.Name == "":
		req.Name = ""
		return req, malformed("name must be a non-empty string of at most 128 bytes")
	}
	if args, ok := fields["args"]; ok {
		req.Args = args
	} else {
		req.Args = json.RawMessage(trimmed)
	}
	return req, nil
}

func shortString(raw json.RawMessage, limit int, dst *string) bool {
	if len(raw) == 0 || raw[0] != '"' {
		return false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil || len(s) > limit {
		return false
	}
	*dst = s
	return true
}

func malformed(why string) *core.Error {
	return core.E(core.Malformed, why+".", nil)
}

// frame is a server frame: a reply {"namespace","name":"response","id","args"}, an error
// {"namespace","name":"error","id","args":{"code","message"}}, or a push.
type frame struct {
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	ID        string `json:"id"`
	Args      any    `json:"args"`
}

// errorArgs is the args of an error reply (the documented shape: numeric code).
type errorArgs struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

// encodeFrame encodes f; args that cannot be encoded (a bug) become a 500 error.
func encodeFrame(f frame) []byte {
	b, err := json.Marshal(f)
	if err != nil {
		b, _ = json.Marshal(frame{Namespace: f.Namespace, Name: "error", ID: f.ID,
			Args: errorArgs{Code: http.StatusInternalServerError, Message: "Internal Server Error: reply not encodable."}})
	}
	return b
}

func replyFrame(req Request, args any) []byte {
	return encodeFrame(frame{Namespace: req.Namespace, Name: "response", ID: req.ID, Args: args})
}

func errorFrame(req Request, code int, msg string) []byte {
	return encodeFrame(frame{Namespace: req.Namespace, Name: "error", ID: req.ID, Args: errorArgs{Code: code, Message: msg}})
}

// refusal is an error that answers with a given sysadm status (a failed login is a refusal:
// the core calls it a domain outcome, sysadm answers 401).
type refusal struct {
	code int
	msg  string
}

func (r *refusal) Error() string { return r.msg }

// refuse returns a refusal with the status text of code, followed by detail if not empty.
func refuse(code int, detail string) error {
	msg := http.StatusText(code)
	if detail != "" {
		msg += ": " + detail
	}
	return &refusal{code: code, msg: msg}
}

// status maps any error to the sysadm status (400, 401, 403, 404, 429 or 500) and the message
// sent to the client. loggedIn tells a refusal of an anonymous client (401) from one of a
// logged-in client (403). incident is set for unexpected errors, whose cause must be logged
// under that id and is never shown.
func status(err error, loggedIn bool) (code int, msg, incident string) {
	var r *refusal
	if errors.As(err, &r) {
		return r.code, r.msg, ""
	}
	ce, incident := core.StatusOf(err)
	switch ce.Code {
	case core.Malformed, core.InvalidArgument, core.ModelException:
		code = http.StatusBadRequest
	case core.PermissionDenied:
		code = http.StatusForbidden
		if !loggedIn {
			return http.StatusUnauthorized, http.StatusText(http.StatusUnauthorized), ""
		}
	case core.SessionAborted:
		return http.StatusUnauthorized, http.StatusText(http.StatusUnauthorized) + ": " + ce.Msg, ""
	case core.RateLimited:
		code = http.StatusTooManyRequests
	case core.InvalidCall, core.EntityNotFound:
		code = http.StatusNotFound
	default:
		code = http.StatusInternalServerError
	}
	msg = http.StatusText(code)
	if ce.Msg != "" {
		msg += ": " + ce.Msg
	}
	return code, msg, incident
}
