package smtp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/resource"
)

// Bounds of a module.smtp.sendmail test mail.
const (
	maxSubject = 200
	maxBody    = 64 << 10
)

func (m *Module) register(reg *core.Methods) {
	reg.Register(
		core.Method{Type: "module.smtp.getconfig", Handler: m.getConfig},
		core.Method{Type: "module.smtp.setconfig", Handler: m.setConfigCall},
		core.Method{Type: "module.smtp.sendmail", Handler: m.sendMail},
	)
}

// serverView is a server as getconfig shows it: Leosac's keys (password "***" when one is
// set, "" otherwise) plus gatehouse's.
type serverView struct {
	URL          string `json:"url"`
	From         string `json:"from"`
	Username     string `json:"username"`
	Password     string `json:"password"`
	Timeout      int64  `json:"timeout"`
	VerifyHost   bool   `json:"verify_host"`
	VerifyPeer   bool   `json:"verify_peer"`
	Enabled      bool   `json:"enabled"`
	AllowPlain   bool   `json:"allow_plain"`
	MaxPerMinute int    `json:"max_per_minute"`
}

// getConfig answers module.smtp.getconfig (administrators): Leosac's list of servers, their
// passwords replaced with "***". With {"with_rules": true} (gatehouse addition) it answers
// {"servers": [...], "rules": [...]}.
func (m *Module) getConfig(_ context.Context, call *core.Call) (any, error) {
	var req struct {
		WithRules bool `json:"with_rules"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	if err := resource.RequireAdmin(call.Caller); err != nil {
		return nil, err
	}
	cfg := m.snapshot()
	out := make([]serverView, len(cfg.servers))
	for i, s := range cfg.servers {
		v := serverView{URL: s.URL, From: s.From, Username: s.Username, Timeout: s.Timeout,
			VerifyHost: boolOr(s.VerifyHost, true), VerifyPeer: boolOr(s.VerifyPeer, true), Enabled: boolOr(s.Enabled, true),
			AllowPlain: s.AllowPlain, MaxPerMinute: s.MaxPerMinute}
		if s.Password != "" {
			v.Password = redacted
		}
		out[i] = v
	}
	if !req.WithRules {
		return out, nil
	}
	rules := cfg.rules
	if rules == nil {
		rules = []Rule{}
	}
	return map[string]any{"servers": out, "rules": rules}, nil
}

// setConfigCall answers module.smtp.setconfig (administrators): {"servers": [...]} replaces
// the whole list of servers, {"rules": [...]} (gatehouse addition) the rules; an absent key
// keeps what is in effect. A server's password absent, "" or "***" keeps the stored password
// of the server with the same url and username (none if there is no such server): a password
// is never sent to a host it was not configured for. The configuration is stored in the
// database, with an audit entry that holds no password, and takes effect at once.
func (m *Module) setConfigCall(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		Servers *[]Server `json:"servers"`
		Rules   *[]Rule   `json:"rules"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	if err := resource.RequireAdmin(call.Caller); err != nil {
		return nil, err
	}
	cur := m.snapshot()
	servers, rules := cur.servers, cur.rules
	if req.Servers != nil {
		servers = make([]Server, len(*req.Servers))
		for i, s := range *req.Servers {
			if s.Password == "" || s.Password == redacted {
				s.Password = ""
				for _, old := range cur.servers {
					if old.URL == s.URL && old.Username == s.Username {
						s.Password = old.Password
						break
					}
				}
			}
			servers[i] = s.withDefaults()
		}
	}
	if req.Rules != nil {
		rules = *req.Rules
	}
	if errs := check(servers, rules); len(errs) > 0 {
		return nil, core.Validation(errs...)
	}
	if servers == nil {
		servers = []Server{}
	}
	if rules == nil {
		rules = []Rule{}
	}
	raw, err := json.Marshal(m.seal(stored{Servers: servers, Rules: rules}))
	if err != nil {
		return nil, fmt.Errorf("encode the SMTP configuration: %w", err)
	}
	shown := make([]map[string]any, len(servers))
	for i, s := range servers {
		shown[i] = map[string]any{"url": s.URL, "from": s.From, "username": s.Username, "enabled": boolOr(s.Enabled, true)}
	}
	err = m.events.Write(ctx, func(tx *eventlog.Tx) error {
		if err := tx.Exec(`INSERT INTO meta(key, value) VALUES (?, ?)
			ON CONFLICT(key) DO UPDATE SET value = excluded.value`, configKey, string(raw)).Error; err != nil {
			return err
		}
		return tx.Record(eventlog.Change{Topic: "smtp.configured", Kind: eventlog.KindWSAPICall, Mask: eventlog.WSAPICall,
			Caller: call.Caller, Description: fmt.Sprintf("SMTP configuration changed: %d servers, %d rules.", len(servers), len(rules)),
			After: map[string]any{"servers": shown, "rules": rules},
			Data:  map[string]any{"servers": len(servers), "rules": len(rules)}})
	})
	if err != nil {
		return nil, core.E(core.DatabaseError, "Database error.", err)
	}
	m.setConfig(servers, rules)
	call.Log().Info().Int("servers", len(servers)).Int("rules", len(rules)).Msg("SMTP configuration changed")
	return nil, nil
}

// sendMail answers module.smtp.sendmail (administrators): {"to": [...], "subject", "body"}
// is sent at once through the first enabled server that takes it, outside the rate limit
// (it still counts towards it) → {"sent": true}. No enabled server is a MODEL_EXCEPTION;
// every server failing a GENERAL_FAILURE that says why.
func (m *Module) sendMail(ctx context.Context, call *core.Call) (any, error) {
	var req struct {
		To      []string `json:"to"`
		Subject string   `json:"subject"`
		Body    string   `json:"body"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	if err := resource.RequireAdmin(call.Caller); err != nil {
		return nil, err
	}
	var errs []core.FieldError
	if len(req.To) == 0 || len(req.To) > MaxRecipients {
		errs = append(errs, core.FieldError{Pointer: "to", Detail: fmt.Sprintf("to: want 1 to %d addresses", MaxRecipients)})
	}
	for _, a := range req.To {
		if !validAddress(a) {
			errs = append(errs, core.FieldError{Pointer: "to", Detail: fmt.Sprintf("to: %q is not an address", eventlog.Cut(a, 64))})
		}
	}
	if len(req.Subject) > maxSubject {
		errs = append(errs, core.FieldError{Pointer: "subject", Detail: fmt.Sprintf("subject: at most %d bytes", maxSubject)})
	}
	if len(req.Body) > maxBody {
		errs = append(errs, core.FieldError{Pointer: "body", Detail: fmt.Sprintf("body: at most %d bytes", maxBody)})
	}
	if len(errs) > 0 {
		return nil, core.Validation(errs...)
	}
	cfg := m.snapshot()
	msg := message{to: req.To, subject: req.Subject, body: req.Body}
	var failures []string
	for i, s := range cfg.servers {
		if !boolOr(s.Enabled, true) {
			continue
		}
		err := send(ctx, s, msg)
		if err == nil {
			cfg.limiters[i].Allow()
			m.metrics.mails.Inc()
			return map[string]bool{"sent": true}, nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		failures = append(failures, fmt.Sprintf("%s: %v", s.URL, err))
	}
	if failures == nil {
		return nil, core.Validation(core.FieldError{Detail: "No SMTP server is configured and enabled."})
	}
	call.Log().Warn().Strs("failures", failures).Msg("test mail not sent")
	return nil, core.E(core.GeneralFailure, "Mail not sent: "+strings.Join(failures, "; "), errors.New("every SMTP server failed"))
}
