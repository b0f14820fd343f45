package sysadm

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/auth"
	"gatehouse/modules/cert"
	"gatehouse/modules/token"
)

// client is what requests run for: one websocket connection, or one REST request. Its fields
// are used by one goroutine at a time (the connection's dispatcher, or the REST handler).
type client struct {
	sess *core.Session
	conn *conn  // nil for REST
	bind string // binds certificate challenges to the connection; "" for REST
	log  zerolog.Logger
	// ephemeral is the hash of a token issued for this client but never shown to it (peer
	// credentials, REST Basic auth): it is revoked when the client logs out or goes away.
	ephemeral string
}

// result is what a request produced: args to reply with, a function to run once the reply is
// queued (events start after the subscribe reply), or no reply at all (auth_clear).
type result struct {
	args   any
	after  func()
	silent bool
}

// restNamespaces are the namespaces served over REST, each as /<namespace>/{name}.
var restNamespaces = []string{"rpc", "sysadm", "settings", "gatehouse"}

// exec runs one request for a client. Errors are mapped to sysadm statuses by status.
func (m *Module) exec(ctx context.Context, cl *client, req Request) (result, error) {
	if req.Namespace == "rpc" {
		switch req.Name {
		case "identify":
			return result{args: map[string]string{"type": "server", "hostname": m.hostname}}, nil
		case "auth":
			return m.rpcAuth(ctx, cl, req.Args)
		case "auth_token":
			return m.rpcAuthToken(ctx, cl, req.Args)
		case "auth_ssl":
			return m.rpcAuthSSL(ctx, cl, req.Args)
		case "auth_clear":
			m.clear(ctx, cl, true)
			return result{silent: true}, nil
		}
	}
	if req.Namespace == "gatehouse" {
		return m.gatehouse(ctx, cl, req)
	}
	if !cl.sess.LoggedIn() {
		return result{}, core.ErrPermissionDenied
	}
	caller, err := m.auth.Resolve(ctx, cl.sess) // slides the token: every call counts as activity
	if err != nil {
		return result{}, err
	}
	switch req.Namespace + "/" + req.Name {
	case "rpc/query":
		return result{args: m.queryReply(caller.Rank)}, nil
	case "rpc/settings", "sysadm/settings", "settings/sysadm":
		args, err := m.settings(ctx, caller, req.Args)
		return result{args: args}, err
	case "events/subscribe":
		return m.subscribe(ctx, cl, req.Args)
	case "events/unsubscribe":
		return m.unsubscribe(ctx, cl, req.Args)
	}
	return result{}, refuse(http.StatusNotFound, "no subsystem "+req.Namespace+"/"+req.Name)
}

// decodeArgs decodes args (an object; absent or null = {}) with the core's rules: a field of
// the wrong type is a 400 that names it.
func decodeArgs(args json.RawMessage, v any) error {
	return (&core.Call{Content: args}).Decode(v)
}

// secondsLeft is how long the token stays valid if it is not used again.
func secondsLeft(t *token.Token) int64 {
	return int64(time.Until(t.Deadline()).Round(time.Second) / time.Second)
}

// adopt logs the client in with the token of a granted login.
func (m *Module) adopt(cl *client, res auth.LoginResult, ephemeral bool) {
	cl.sess.Login(res.User.ID, res.Record.Hash)
	m.tokens.Attach(res.Record.Hash, cl.sess)
	if ephemeral {
		cl.ephemeral = res.Record.Hash
	}
}

// clear forgets the client's token, as sysadm does before every auth* request. The token is
// revoked when revoke is set (auth_clear) or when the client never saw it.
func (m *Module) clear(ctx context.Context, cl *client, revoke bool) {
	hash, _, ok := cl.sess.Token()
	var drop []string
	if ok {
		m.tokens.Detach(hash, cl.sess)
		cl.sess.Logout()
		if revoke || hash == cl.ephemeral {
			drop = append(drop, hash)
		}
	}
	if cl.ephemeral != "" && cl.ephemeral != hash {
		drop = append(drop, cl.ephemeral)
	}
	cl.ephemeral = ""
	for _, h := range drop {
		if err := m.tokens.Revoke(ctx, h, "Logged out."); err != nil {
			cl.log.Warn().Err(err).Msg("revoke token on logout")
		}
	}
}

func (m *Module) rpcAuth(ctx context.Context, cl *client, args json.RawMessage) (result, error) {
	var a struct {
		Username string `json:"username"`
		Password string `json:"password"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return result{}, err
	}
	m.clear(ctx, cl, false)
	lr := m.loginRequest(cl.sess)
	lr.Username, lr.Password = a.Username, a.Password
	res, err := m.auth.Login(ctx, lr)
	if err != nil {
		return result{}, err
	}
	if res.Outcome != auth.Granted {
		return result{}, refuse(http.StatusUnauthorized, "")
	}
	m.adopt(cl, res, false)
	cl.log.Info().Int64("user_id", res.User.ID).Str("token_id", res.Record.ID).Msg("logged in")
	return result{args: []any{res.Token, secondsLeft(res.Record)}}, nil
}

func (m *Module) rpcAuthToken(ctx context.Context, cl *client, args json.RawMessage) (result, error) {
	var a struct {
		Token string `json:"token"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return result{}, err
	}
	m.clear(ctx, cl, false)
	res, err := m.auth.LoginToken(ctx, a.Token, cl.sess.Remote, Dialect)
	if err != nil {
		return result{}, err
	}
	if res.Outcome != auth.Granted {
		return result{}, refuse(http.StatusUnauthorized, "")
	}
	m.adopt(cl, res, false)
	return result{args: []any{a.Token, secondsLeft(res.Record)}}, nil
}

// rpcAuthSSL is the two-stage certificate login. Stage 1 (args that name no proof) issues a
// challenge bound to the connection: legacy without a key, modern with {"pub_key"} or
// {"key_id"}. Stage 2 ({"signature"} or {"encrypted_string"}, base64) checks the proof and logs
// the key's owner in.
func (m *Module) rpcAuthSSL(ctx context.Context, cl *client, args json.RawMessage) (result, error) {
	if m.certs == nil {
		return result{}, refuse(http.StatusNotFound, "certificate login is not available (the cert module is not loaded)")
	}
	if cl.conn == nil {
		return result{}, refuse(http.StatusBadRequest, "auth_ssl needs the websocket: its challenge is bound to the connection")
	}
	var a struct {
		PubKey          *string `json:"pub_key"`
		KeyID           *string `json:"key_id"`
		Signature       *string `json:"signature"`
		EncryptedString *string `json:"encrypted_string"`
	}
	if t := strings.TrimSpace(string(args)); strings.HasPrefix(t, "{") {
		if err := decodeArgs(args, &a); err != nil {
			return result{}, err
		}
	} // any other args ("", null, a number…) is a legacy stage 1, as in sysadm
	m.clear(ctx, cl, false)
	proof := a.Signature
	if proof == nil {
		proof = a.EncryptedString
	}
	if proof == nil {
		var key *cert.KeyRef
		switch {
		case a.PubKey != nil:
			key = &cert.KeyRef{PubKeyB64PEM: *a.PubKey}
		case a.KeyID != nil:
			key = &cert.KeyRef{KeyID: *a.KeyID}
		}
		ch, err := m.certs.NewChallenge(cl.bind, cl.sess.Remote, key)
		if err != nil {
			return result{}, sslError(err)
		}
		return result{args: map[string]string{"test_string": ch}}, nil
	}
	sig, err := decodeBase64(*proof)
	if err != nil {
		return result{}, refuse(http.StatusBadRequest, "signature: not base64")
	}
	uid, err := m.certs.Verify(ctx, cl.bind, sig)
	if err != nil {
		return result{}, sslError(err)
	}
	res, err := m.auth.LoginUser(ctx, uid, m.loginRequest(cl.sess), "certificate")
	if err != nil {
		return result{}, err
	}
	if res.Outcome != auth.Granted {
		return result{}, refuse(http.StatusUnauthorized, "")
	}
	m.adopt(cl, res, false)
	cl.log.Info().Int64("user_id", res.User.ID).Str("token_id", res.Record.ID).Msg("logged in by certificate")
	return result{args: []any{res.Token, secondsLeft(res.Record)}}, nil
}

// sslError answers a failed challenge or proof 401 (whatever was wrong with the key), keeping
// 400 for malformed input, 429 for rate limits and 500 for failures.
func sslError(err error) error {
	ce, _ := core.StatusOf(err)
	switch ce.Code {
	case core.PermissionDenied, core.EntityNotFound, core.SessionAborted:
		return refuse(http.StatusUnauthorized, "")
	}
	return err
}

func decodeBase64(s string) ([]byte, error) {
	s = strings.Join(strings.Fields(s), "")
	if b, err := base64.StdEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}

// gatehouse runs a gatehouse method (namespace "gatehouse", name = Leosac type, args = Leosac
// content) through the shared registry with the client's session.
func (m *Module) gatehouse(ctx context.Context, cl *client, req Request) (result, error) {
	if req.Name == "events.subscribe" || req.Name == "events.unsubscribe" {
		return result{}, refuse(http.StatusNotFound, "use events/subscribe and events/unsubscribe")
	}
	args, err := m.methods.Call(ctx, cl.sess, req.Name, req.Args, cl.log)
	return result{args: args}, err
}

// Query levels.
const (
	levelRead      = "read"
	levelReadWrite = "read/write"
)

// queryReply is query's answer for a rank, encoded once per rank.
func (m *Module) queryReply(rank core.Rank) json.RawMessage {
	if !rank.Valid() {
		return m.encodeQuery(rank)
	}
	if b := m.queryByRank[rank].Load(); b != nil {
		return *b
	}
	b := m.encodeQuery(rank)
	m.queryByRank[rank].Store(&b)
	return b
}

func (m *Module) encodeQuery(rank core.Rank) json.RawMessage {
	b, err := json.Marshal(m.query(&core.Identity{Rank: rank}))
	if err != nil { // a map of strings always encodes
		m.log.Error().Err(err).Msg("encode rpc/query")
		return json.RawMessage(`{}`)
	}
	return b
}

// query answers rpc/query: the subsystems this caller may use now, each "read" or
// "read/write". It is what a client should offer its user; rights are still checked on every
// call, and the caller's rank is resolved afresh for each query.
func (m *Module) query(caller *core.Identity) map[string]string {
	out := map[string]string{
		"rpc/query":    levelRead,
		"rpc/identify": levelRead,
		"rpc/settings": levelReadWrite,
	}
	if m.events != nil {
		out["events/subscribe"] = levelRead
		out["events/unsubscribe"] = levelRead
	}
	for _, typ := range m.methods.Types() {
		access, ok := m.methods.Access(typ)
		if !ok {
			continue
		}
		if lvl := methodLevel(typ, access, caller.Rank); lvl != "" {
			out["gatehouse/"+typ] = lvl
		}
	}
	return out
}

// methodLevel says how a logged-in caller of a rank may use a gatehouse method: "read",
// "read/write" or "" (not listed).
//
// Who reaches the handler comes from the registry: an AnonymousOnly method (login calls) is
// refused to every logged-in session, so it is never listed; a Public one is listed for every
// rank. For LoggedIn methods the rank decides, following the permission model (README):
// everyone reads what concerns them (viewers everything, and the site-wide reads are theirs) and
// manages their own password, tokens and keys; managers and above change the site; a few calls
// are administrators' only. Rights that depend on the content (a group's administrators may
// change that group) are not offered to plain users, though the call itself allows them.
// The level is "read" for calls that change nothing (by their verb), "read/write" otherwise.
// events.subscribe and events.unsubscribe are not listed: the events namespace replaces them.
func methodLevel(typ string, access core.Access, rank core.Rank) string {
	level := levelReadWrite
	if readOnly(typ) {
		level = levelRead
	}
	switch access {
	case core.AnonymousOnly:
		return ""
	case core.Public:
		return level
	}
	if adminOnly(typ) {
		if rank == core.RankAdministrator {
			return level
		}
		return ""
	}
	switch typ {
	case "events.subscribe", "events.unsubscribe":
		return ""
	case "logout", "password_change", "token.revoke", "cert.register", "cert.revoke":
		return level
	case "access_overview", "audit.get", "door.state", "get_logs", "check_update", "get_update",
		"get_pending_update", "get_update_history", "access_point.read", "zone.read",
		"search.user_username", "search.credential_alias", "search.access_point_alias", "search.zone_alias":
		// Site-wide reads: viewers and above.
		if rank.AtLeast(core.RankViewer) {
			return level
		}
		return ""
	}
	if level == levelRead || rank.AtLeast(core.RankManager) {
		return level
	}
	return ""
}

// adminOnly reports whether a method type is for administrators only: the simulators, user
// deletion, restart, and the hardware and SMTP modules' calls (Leosac's HARDWARE_* and SMTP
// rights).
func adminOnly(typ string) bool {
	switch typ {
	case "reader.simulate", "door.simulate", "user.delete", "restart", "search.hardware_name":
		return true
	}
	for _, prefix := range []string{"libgpiod.gpio.", "led.", "buzzer.", "wiegand-reader.", "module.smtp."} {
		if strings.HasPrefix(typ, prefix) {
			return true
		}
	}
	return false
}

// readOnly reports whether a method type only reads, by its name (Leosac's verbs).
func readOnly(typ string) bool {
	switch typ {
	case "whoami", "system_overview", "access_overview", "audit.get", "get_leosac_version":
		return true
	}
	for _, suffix := range []string{".read", ".list", ".state", ".get"} {
		if strings.HasSuffix(typ, suffix) {
			return true
		}
	}
	for _, prefix := range []string{"search.", "get_", "check_"} {
		if strings.HasPrefix(typ, prefix) {
			return true
		}
	}
	return false
}

// settings runs the certificate actions of rpc/settings (reference A.6), short and long names.
func (m *Module) settings(ctx context.Context, caller *core.Identity, args json.RawMessage) (any, error) {
	var a struct {
		Action   string `json:"action"`
		PubKey   string `json:"pub_key"`
		Nickname string `json:"nickname"`
		Email    string `json:"email"`
		User     string `json:"user"`
	}
	if err := decodeArgs(args, &a); err != nil {
		return nil, err
	}
	switch a.Action {
	case "list_ssl_certs", "list_ssl_certificates", "register_ssl_cert", "register_ssl_certificate",
		"revoke_ssl_cert", "revoke_ssl_certificate":
	case "":
		return nil, refuse(http.StatusBadRequest, "action is required")
	default:
		return nil, refuse(http.StatusBadRequest, "unknown action")
	}
	if m.certs == nil {
		return nil, refuse(http.StatusNotFound, "certificates are not available (the cert module is not loaded)")
	}
	switch a.Action {
	case "list_ssl_certs", "list_ssl_certificates":
		certs, err := m.certs.List(ctx, caller)
		if err != nil {
			return nil, err
		}
		return listCerts(certs), nil
	case "register_ssl_cert", "register_ssl_certificate":
		if a.PubKey == "" {
			return nil, refuse(http.StatusBadRequest, "pub_key is required")
		}
		if _, err := m.certs.Register(ctx, caller, a.PubKey, a.Nickname, a.Email); err != nil {
			return nil, err
		}
		return map[string]any{}, nil
	default:
		return m.revokeCert(ctx, caller, a.PubKey, a.User)
	}
}

// listCerts builds the list_ssl_certs reply in sysadm's shape (reference A.6): per username,
// the base64 of each key's PEM (what sysadm clients register and revoke keys by) mapped to its
// details, "Nickname: …\nEmail: …\nDate Registered: <RFC 3339>", to which gatehouse adds
// "\nFingerprint: <sha256 hex>\nAlgorithm: <rsa|ed25519|ecdsa-p256>". Always an object.
func listCerts(certs []cert.Cert) map[string]map[string]string {
	out := map[string]map[string]string{}
	for _, c := range certs {
		if out[c.Username] == nil {
			out[c.Username] = map[string]string{}
		}
		key := base64.StdEncoding.EncodeToString([]byte(c.PublicKeyPEM))
		out[c.Username][key] = "Nickname: " + c.Nickname + "\nEmail: " + c.Email +
			"\nDate Registered: " + c.RegisteredAt.UTC().Format(time.RFC3339) +
			"\nFingerprint: " + c.Fingerprint + "\nAlgorithm: " + c.Algorithm
	}
	return out
}

// revokeCert revokes the caller's key given as base64 PEM (as list_ssl_certs keys it), PEM,
// or its fingerprint (as list_ssl_certs details show it); administrators may name another user's key. An unknown key, or
// another user's without the right, answers 400 as sysadm does.
func (m *Module) revokeCert(ctx context.Context, caller *core.Identity, pubKey, username string) (any, error) {
	if pubKey == "" {
		return nil, refuse(http.StatusBadRequest, "pub_key is required")
	}
	if username != "" && username != caller.Username && caller.Rank != core.RankAdministrator {
		return nil, refuse(http.StatusBadRequest, "only administrators revoke other users' keys")
	}
	fp, err := fingerprint(pubKey)
	if err != nil {
		return nil, refuse(http.StatusBadRequest, "pub_key: "+err.Error())
	}
	certs, err := m.certs.List(ctx, caller)
	if err != nil {
		return nil, err
	}
	if username == "" {
		username = caller.Username
	}
	for _, c := range certs {
		if c.Fingerprint == fp && c.Username == username {
			if err := m.certs.Revoke(ctx, caller, c.ID); err != nil {
				if ce, _ := core.StatusOf(err); ce.Code == core.PermissionDenied || ce.Code == core.EntityNotFound {
					return nil, refuse(http.StatusBadRequest, "no such key")
				}
				return nil, err
			}
			return map[string]any{}, nil
		}
	}
	return nil, refuse(http.StatusBadRequest, "no such key")
}

// fingerprint returns the key id of a key given by its fingerprint (64 hex digits) or as the
// cert module reads keys (base64 of a PEM key or certificate, or PEM).
func fingerprint(key string) (string, error) {
	key = strings.TrimSpace(key)
	if len(key) == 64 {
		if _, err := hex.DecodeString(key); err == nil {
			return strings.ToLower(key), nil
		}
	}
	fp, err := cert.Fingerprint(key)
	if err != nil {
		return "", errors.New("want a key fingerprint, or the base64 of a PEM public key or certificate")
	}
	return fp, nil
}
