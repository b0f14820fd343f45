package tokenapi

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"gatehouse/modules/token"
)

// RedactPath returns a request path fit for a log line: the segment after "token" and any
// segment shaped like a token are replaced by "***" (tokens travel in /0.1 paths). The fixed
// route /0.1/token/scopes/check (token in a header or the body) is kept as it is.
func RedactPath(p string) string {
	if strings.TrimPrefix(p, APIPrefix) == "/0.1/token/scopes/check" {
		return p
	}
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if token.Plausible(s) || i > 0 && parts[i-1] == "token" && s != "" {
			parts[i] = "***"
		}
	}
	return strings.Join(parts, "/")
}

// errorBody is wazo-auth's error shape.
type errorBody struct {
	Reason     []string  `json:"reason"`
	Timestamp  []float64 `json:"timestamp"`
	StatusCode int       `json:"status_code"`
}

// writeError answers status with wazo-auth's error body. Reasons are cut to 512 bytes (they may
// echo a client's scope).
func (m *Module) writeError(w http.ResponseWriter, status int, reason string) {
	if len(reason) > 512 {
		reason = strings.ToValidUTF8(reason[:512], "") + "…"
	}
	writeJSON(w, status, errorBody{
		Reason:     []string{reason},
		Timestamp:  []float64{float64(m.now().UnixMicro()) / 1e6},
		StatusCode: status,
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil { // only our own types are encoded
		http.Error(w, `{"reason":["Internal error"],"status_code":500}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// badRequest is a client mistake in a request body, answered 400 with its message.
type badRequest struct{ msg string }

func (e *badRequest) Error() string { return e.msg }

func bad(format string, args ...any) error { return &badRequest{fmt.Sprintf(format, args...)} }

// Access types of a token request.
const (
	online  = "online"
	offline = "offline"
)

// tokenRequest is a validated body of POST /0.1/token.
type tokenRequest struct {
	Backend       string
	Expiration    int64 // seconds; 0 = the default
	AccessType    string
	ClientID      string
	RefreshToken  string
	SAMLSessionID string
}

// decodeObject parses a request body that must be one JSON object, keeping numbers exact.
func decodeObject(body []byte) (map[string]json.RawMessage, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, bad("The request body must be a JSON object.")
	}
	var obj map[string]json.RawMessage
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&obj); err != nil || obj == nil {
		return nil, bad("The request body must be a JSON object.")
	}
	if dec.More() {
		return nil, bad("The request body must be one JSON object.")
	}
	return obj, nil
}

// stringField reads an optional string field (absent → ""); null or another type is an error.
func stringField(obj map[string]json.RawMessage, name string, maxLen int) (string, bool, error) {
	raw, ok := obj[name]
	if !ok {
		return "", false, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return "", true, bad("%s: Not a valid string.", name)
	}
	if maxLen > 0 && (len(s) < 1 || len(s) > maxLen) {
		return "", true, bad("%s: Length must be between 1 and %d.", name, maxLen)
	}
	return s, true, nil
}

// parseTokenRequest validates the body of POST /0.1/token against wazo-auth's schema: an
// object (unknown fields ignored) with backend (string), expiration (an integer number of
// seconds, 1 .. maxExpiration), access_type ("online" | "offline"), client_id (1..1024
// bytes; required with access_type "offline" and with refresh_token), refresh_token,
// saml_session_id, domain_name and tenant_id (strings). access_type "offline" cannot come with
// a refresh_token, nor refresh_token with saml_session_id.
func parseTokenRequest(body []byte, maxExpiration int64) (tokenRequest, error) {
	var req tokenRequest
	obj, err := decodeObject(body)
	if err != nil {
		return req, err
	}
	if req.Backend, _, err = stringField(obj, "backend", 0); err != nil {
		return req, err
	}
	if raw, ok := obj["expiration"]; ok {
		n, err := parseSeconds(raw)
		if err != nil {
			return req, err
		}
		if n < 1 || n > maxExpiration {
			return req, bad("expiration: Must be between 1 and %d seconds.", maxExpiration)
		}
		req.Expiration = n
	}
	var hasAccess bool
	if req.AccessType, hasAccess, err = stringField(obj, "access_type", 0); err != nil {
		return req, err
	}
	if !hasAccess {
		req.AccessType = online
	}
	if req.AccessType != online && req.AccessType != offline {
		return req, bad("access_type: Must be one of: online, offline.")
	}
	if req.ClientID, _, err = stringField(obj, "client_id", token.MaxClientIDLen); err != nil {
		return req, err
	}
	if req.RefreshToken, _, err = stringField(obj, "refresh_token", 1024); err != nil {
		return req, err
	}
	if req.SAMLSessionID, _, err = stringField(obj, "saml_session_id", 1024); err != nil {
		return req, err
	}
	for _, name := range []string{"domain_name", "tenant_id"} {
		if _, _, err = stringField(obj, name, 0); err != nil {
			return req, err
		}
	}
	switch {
	case req.AccessType == offline && req.RefreshToken != "":
		return req, bad("access_type: cannot be offline when using a refresh_token.")
	case req.AccessType == offline && req.ClientID == "":
		return req, bad("client_id: Missing data for required field when access_type is offline.")
	case req.RefreshToken != "" && req.ClientID == "":
		return req, bad("client_id: Missing data for required field when using a refresh_token.")
	case req.RefreshToken != "" && req.SAMLSessionID != "":
		return req, bad("refresh_token and saml_session_id are mutually exclusive.")
	}
	return req, nil
}

// parseSeconds reads a JSON integer (not a float, string or boolean) that fits an int64.
func parseSeconds(raw json.RawMessage) (int64, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return 0, bad("expiration: Not a valid integer.")
	}
	num, ok := v.(json.Number)
	if !ok || strings.ContainsAny(num.String(), ".eE") {
		return 0, bad("expiration: Not a valid integer.")
	}
	n, err := num.Int64()
	if err != nil {
		return 0, bad("expiration: Must be between 1 and %d seconds.", int64(MaxYear))
	}
	return n, nil
}

// scopesRequest is a validated body of POST /0.1/token[/{token}]/scopes/check.
type scopesRequest struct {
	Scopes     []string
	TenantUUID string
	Token      string // "" = none in the body
}

// parseScopesRequest validates {"scopes": [strings], "tenant_uuid": optional string, "token":
// optional string}.
func parseScopesRequest(body []byte) (scopesRequest, error) {
	var req scopesRequest
	obj, err := decodeObject(body)
	if err != nil {
		return req, err
	}
	raw, ok := obj["scopes"]
	if !ok {
		return req, bad("scopes: Missing data for required field.")
	}
	var items []json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil || items == nil {
		return req, bad("scopes: Not a valid list.")
	}
	req.Scopes = make([]string, 0, len(items))
	for i, it := range items {
		var s string
		if err := json.Unmarshal(it, &s); err != nil || bytes.Equal(bytes.TrimSpace(it), []byte("null")) {
			return req, bad("scopes.%d: Not a valid string.", i)
		}
		req.Scopes = append(req.Scopes, s)
	}
	if req.TenantUUID, _, err = stringField(obj, "tenant_uuid", 0); err != nil {
		return req, err
	}
	if req.Token, _, err = stringField(obj, "token", 0); err != nil {
		return req, err
	}
	return req, nil
}

// Times as wazo-auth writes them: local time without offset (legacy), UTC without offset
// (legacy utc_*), and RFC 3339 UTC with Z (ours, *_utc).
const (
	legacyTime = "2006-01-02T15:04:05.000000"
	zTime      = "2006-01-02T15:04:05.000000Z07:00"
)

// Metadata is the "metadata" object of a token.
type Metadata struct {
	UUID        string `json:"uuid"`
	AuthID      string `json:"auth_id"`
	PBXUserUUID string `json:"pbx_user_uuid"`
	XivoUUID    string `json:"xivo_uuid"`
	TenantUUID  string `json:"tenant_uuid"`
	Purpose     string `json:"purpose"`
	UserID      int64  `json:"user_id"`
	Username    string `json:"username"`
	Rank        int    `json:"rank"`
	Dialect     string `json:"dialect"`
}

// TokenData is the "data" object of POST and GET /0.1/token.
type TokenData struct {
	Token        string   `json:"token"`
	AuthID       string   `json:"auth_id"`
	XivoUserUUID string   `json:"xivo_user_uuid"`
	XivoUUID     string   `json:"xivo_uuid"`
	IssuedAt     string   `json:"issued_at"`
	ExpiresAt    string   `json:"expires_at"`
	UTCIssuedAt  string   `json:"utc_issued_at"`
	UTCExpiresAt string   `json:"utc_expires_at"`
	IssuedAtUTC  string   `json:"issued_at_utc"`
	ExpiresAtUTC string   `json:"expires_at_utc"`
	ACL          []string `json:"acl"`
	Metadata     Metadata `json:"metadata"`
	SessionUUID  string   `json:"session_uuid"`
	RemoteAddr   string   `json:"remote_addr"`
	UserAgent    string   `json:"user_agent"`
	RefreshToken string   `json:"refresh_token,omitempty"`
}

func legacyLocal(t time.Time) string { return t.In(time.Local).Format(legacyTime) }
func legacyUTC(t time.Time) string   { return t.UTC().Format(legacyTime) }
func zUTC(t time.Time) string        { return t.UTC().Format(zTime) }

// remoteHost returns the address part of host:port (wazo shows the address only).
func remoteHost(remote string) string {
	if h, _, err := net.SplitHostPort(remote); err == nil {
		return h
	}
	return remote
}
