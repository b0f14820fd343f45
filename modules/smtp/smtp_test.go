package smtp_test

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/eventlog"
	"gatehouse/modules/smtp"
	"gatehouse/modules/wsapi/wstest"
)

const (
	smtpUser = "notifier"
	smtpPass = "smtp-pass-Secret-42"
)

// withAuth makes the mail server require AUTH PLAIN as smtpUser.
func withAuth(s *mailServer) { s.user, s.pw = smtpUser, smtpPass }

// serverJSON is the smtp server entry for ms: authenticated, the self-signed certificate
// accepted (verify_peer false), plus extra keys.
func serverJSON(ms *mailServer, extra map[string]any) map[string]any {
	s := map[string]any{"url": ms.URL(), "from": "gatehouse@example.com", "username": smtpUser, "password": smtpPass,
		"verify_peer": false, "timeout": 10000}
	for k, v := range extra {
		s[k] = v
	}
	return s
}

// start starts gatehouse with the smtp module configured as cfg (its config section).
func start(t *testing.T, cfg map[string]any) *coretest.Server {
	t.Helper()
	if _, ok := cfg["retry_base"]; !ok {
		cfg["retry_base"], cfg["max_backoff"] = "50ms", "500ms"
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return coretest.Start(t, coretest.WithModuleConfig(smtp.ModuleID, string(b)))
}

func module(t *testing.T, srv *coretest.Server) *smtp.Module {
	t.Helper()
	m, ok := srv.App().Module(smtp.ModuleID)
	if !ok {
		t.Fatal("smtp module not loaded")
	}
	return m.(*smtp.Module)
}

func eventLog(t *testing.T, srv *coretest.Server) *eventlog.Log {
	t.Helper()
	m, ok := srv.App().Module(eventlog.ModuleID)
	if !ok {
		t.Fatal("eventlog module not loaded")
	}
	return m.(*eventlog.Module).Log()
}

// appendEvents appends n events of topic in one transaction and returns their seqs.
func appendEvents(t *testing.T, srv *coretest.Server, topic string, n int) []int64 {
	t.Helper()
	var seqs []int64
	err := eventLog(t, srv).Write(context.Background(), func(tx *eventlog.Tx) error {
		for i := range n {
			if err := tx.Record(eventlog.Change{Topic: topic, Kind: eventlog.KindAuth, Mask: eventlog.AuthDenied,
				Description: fmt.Sprintf("Test event %d.", i), Data: map[string]any{"i": i, "pin_hash": "must-not-be-mailed"}}); err != nil {
				return err
			}
			seqs = append(seqs, tx.LastSeq())
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seqs
}

var seqLine = regexp.MustCompile(`(?m)^Seq: +(\d+)$`)

// mailedSeqs returns how many times each event seq appears in the messages.
func mailedSeqs(msgs []received) map[int64]int {
	out := map[int64]int{}
	for _, m := range msgs {
		for _, g := range seqLine.FindAllStringSubmatch(m.Body, -1) {
			n, _ := strconv.ParseInt(g[1], 10, 64)
			out[n]++
		}
	}
	return out
}

func ok(t *testing.T, r wstest.Reply) json.RawMessage {
	t.Helper()
	if r.StatusCode != 0 {
		t.Fatalf("%s: %d %s %s", r.Type, r.StatusCode, r.StatusString, r.Content)
	}
	return r.Content
}

func idOf(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	var v struct {
		Data struct {
			ID int64 `json:"id"`
		} `json:"data"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.Data.ID == 0 {
		t.Fatalf("no id in %s", raw)
	}
	return v.Data.ID
}

// TestForcedDoorAndDeniedAccessAreMailed: a forced door and a denied access, produced through
// the API, are mailed over STARTTLS with AUTH PLAIN to the addresses of the rules that match,
// with their description in the subject and their details in the body; events no rule wants
// are not mailed.
func TestForcedDoorAndDeniedAccessAreMailed(t *testing.T) {
	t.Parallel()
	ms := newMailServer(t, withAuth)
	srv := start(t, map[string]any{
		"servers": []any{serverJSON(ms, nil)},
		"rules": []any{
			map[string]any{"topics": []string{"door.*.forced"}, "to": []string{"security@example.com"}},
			map[string]any{"topics": []string{"access.denied"}, "to": []string{"desk@example.com", "security@example.com"}},
		},
	})
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	door := idOf(t, ok(t, admin.Call("door.create", map[string]any{"attributes": map[string]any{"alias": "Back door"}})))
	ok(t, admin.Call("reader.simulate", map[string]any{"door_id": door, "card_id": "ff:ff:ff:c0", "nb_bits": 26}))
	ok(t, admin.Call("door.simulate", map[string]any{"door_id": door, "contact": "open"}))

	var denied, forced received
	coretest.Eventually(t, 30*time.Second, func() error {
		denied, forced = received{}, received{}
		for _, m := range ms.Messages() {
			switch {
			case strings.Contains(m.Body, "Event: access.denied"):
				denied = m
			case strings.Contains(m.Body, fmt.Sprintf("Event: door.%d.forced", door)):
				forced = m
			}
		}
		if denied.Body == "" || forced.Body == "" {
			return fmt.Errorf("%d mails so far, want the denied access and the forced door", len(ms.Messages()))
		}
		return nil
	})
	if !denied.TLS || !forced.TLS {
		t.Error("a mail was sent without TLS")
	}
	if !strings.HasPrefix(denied.Subject, "[gatehouse] Access denied") || !strings.Contains(denied.Subject, "Back door") {
		t.Errorf("denied subject %q", denied.Subject)
	}
	if !slices.Equal(denied.To, []string{"desk@example.com", "security@example.com"}) {
		t.Errorf("denied mailed to %v", denied.To)
	}
	if !strings.Contains(denied.Body, "unknown_credential") {
		t.Errorf("denied body lacks the reason:\n%s", denied.Body)
	}
	if !strings.Contains(strings.ToLower(forced.Subject), "forced") || !strings.Contains(forced.Subject, "Back door") {
		t.Errorf("forced subject %q", forced.Subject)
	}
	if !slices.Equal(forced.To, []string{"security@example.com"}) {
		t.Errorf("forced mailed to %v", forced.To)
	}
	for _, m := range ms.Messages() {
		if m.From != "gatehouse@example.com" || m.Header.Get("From") != "gatehouse@example.com" {
			t.Errorf("from %q / %q", m.From, m.Header.Get("From"))
		}
		if strings.Contains(m.Body, fmt.Sprintf("Event: door.%d.opened", door)) {
			t.Errorf("door.opened matches no rule but was mailed: %q", m.Subject)
		}
		if strings.Contains(m.Raw, smtpPass) {
			t.Error("a mail contains the SMTP password")
		}
	}
	ms.mu.Lock()
	logins := slices.Clone(ms.logins)
	ms.mu.Unlock()
	if len(logins) == 0 || logins[0] != smtpUser {
		t.Errorf("AUTH PLAIN logins %v", logins)
	}
}

// TestServerDownThenUp: events produced while the mail server is down are mailed once it is
// back — none lost — and the cursor passes them only then; after a restart nothing is mailed
// again beyond at-least-once.
func TestServerDownThenUp(t *testing.T) {
	t.Parallel()
	ms := newMailServer(t, withAuth)
	srv := start(t, map[string]any{
		"servers": []any{serverJSON(ms, nil)},
		"rules":   []any{map[string]any{"topics": []string{"access.denied"}, "to": []string{"desk@example.com"}}},
	})
	ms.Down()
	seqs := appendEvents(t, srv, "access.denied", 5)
	seqs = append(seqs, appendEvents(t, srv, "access.denied", 2)...)
	mod := module(t, srv)
	// Attempts fail and are retried; the cursor stays before the first event meanwhile.
	coretest.Eventually(t, 30*time.Second, func() error {
		if n := srv.Metric("gatehouse_smtp_retries_total"); n < 2 {
			return fmt.Errorf("%v failed rounds so far", n)
		}
		return nil
	})
	if c := mod.Cursor(); c >= seqs[0] {
		t.Fatalf("cursor %d passed event %d while the server was down", c, seqs[0])
	}
	if n := len(ms.Messages()); n != 0 {
		t.Fatalf("%d mails while the server was down", n)
	}
	ms.Up()
	coretest.Eventually(t, 60*time.Second, func() error {
		got := mailedSeqs(ms.Messages())
		for _, s := range seqs {
			if got[s] == 0 {
				return fmt.Errorf("event %d not mailed yet (mailed %v)", s, got)
			}
		}
		if c := mod.Cursor(); c < seqs[len(seqs)-1] {
			return fmt.Errorf("cursor %d, want ≥ %d", c, seqs[len(seqs)-1])
		}
		return nil
	})
	for _, m := range ms.Messages() {
		if strings.Contains(m.Raw, "must-not-be-mailed") {
			t.Fatalf("a mail holds a PIN hash:\n%s", m.Raw)
		}
	}
	// The cursor is persisted: a restart mails nothing more.
	before := len(ms.Messages())
	srv = srv.Restart()
	if c := module(t, srv).Cursor(); c < seqs[len(seqs)-1] {
		t.Errorf("cursor after restart %d, want ≥ %d", c, seqs[len(seqs)-1])
	}
	last := appendEvents(t, srv, "access.denied", 1)[0]
	coretest.Eventually(t, 30*time.Second, func() error {
		if mailedSeqs(ms.Messages())[last] == 0 {
			return fmt.Errorf("event %d not mailed", last)
		}
		return nil
	})
	got := mailedSeqs(ms.Messages()[before:])
	for _, s := range seqs {
		if got[s] != 0 {
			t.Errorf("event %d mailed again after the restart", s)
		}
	}
}

// TestRateLimit: 20 events at once for a server that takes 3 mails a minute: at most 3 mails,
// every event in one of them (the excess in a digest), none lost.
func TestRateLimit(t *testing.T) {
	t.Parallel()
	ms := newMailServer(t, withAuth)
	srv := start(t, map[string]any{
		"servers": []any{serverJSON(ms, map[string]any{"max_per_minute": 3})},
		"rules":   []any{map[string]any{"topics": []string{"access.*"}, "to": []string{"desk@example.com"}}},
	})
	seqs := appendEvents(t, srv, "access.denied", 20)
	coretest.Eventually(t, 60*time.Second, func() error {
		got := mailedSeqs(ms.Messages())
		for _, s := range seqs {
			if got[s] == 0 {
				return fmt.Errorf("event %d not mailed yet", s)
			}
		}
		return nil
	})
	msgs := ms.Messages()
	if len(msgs) > 3 {
		t.Errorf("%d mails for a limit of 3 a minute", len(msgs))
	}
	if n := srv.Metric("gatehouse_smtp_events_mailed_total"); n < 20 {
		t.Errorf("gatehouse_smtp_events_mailed_total %v, want ≥ 20", n)
	}
	digest := msgs[len(msgs)-1]
	if !strings.Contains(digest.Subject, "events") || !strings.Contains(digest.Body, "rate limit") {
		t.Errorf("the last mail is not a digest: %q\n%s", digest.Subject, digest.Body)
	}
}

// TestConfigCalls: module.smtp.getconfig never shows the password, setconfig keeps it when
// it is sent back as "***" (for the same url and username only), validates, and writes an
// audit entry without it; sendmail sends at once; non-administrators are refused; STARTTLS is
// required unless plain text to a loopback host is allowed; smtps:// works; certificate
// checks apply.
func TestConfigCalls(t *testing.T) {
	t.Parallel()
	ms := newMailServer(t, withAuth)
	srv := start(t, map[string]any{"servers": []any{serverJSON(ms, nil)}})
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)

	getconfig := func() []map[string]any {
		raw := ok(t, admin.Call("module.smtp.getconfig", map[string]any{}))
		if strings.Contains(string(raw), smtpPass) {
			t.Fatalf("getconfig shows the password: %s", raw)
		}
		var v []map[string]any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("getconfig: %v: %s", err, raw)
		}
		return v
	}
	cfg := getconfig()
	if len(cfg) != 1 || cfg[0]["password"] != "***" || cfg[0]["url"] != ms.URL() || cfg[0]["timeout"] != float64(10000) ||
		cfg[0]["verify_host"] != true || cfg[0]["verify_peer"] != false || cfg[0]["enabled"] != true {
		t.Fatalf("getconfig: %v", cfg)
	}

	sendmail := func() wstest.Reply {
		return admin.Call("module.smtp.sendmail", map[string]any{"to": []string{"ops@example.com"}, "subject": "Test", "body": "Hello"})
	}
	if r := sendmail(); r.StatusCode != 0 || string(r.Content) != `{"sent":true}` {
		t.Fatalf("sendmail: %d %s", r.StatusCode, r.Content)
	}
	if m := ms.Messages(); len(m) != 1 || m[0].Subject != "Test" || strings.TrimSpace(m[0].Body) != "Hello" || m[0].To[0] != "ops@example.com" {
		t.Fatalf("sent %+v", m)
	}

	// The GUI sends back what getconfig showed, with "***": the password is kept.
	cfg[0]["from"] = "alarms@example.com"
	ok(t, admin.Call("module.smtp.setconfig", map[string]any{"servers": cfg,
		"rules": []any{map[string]any{"topics": []string{"door.*.forced"}, "to": []string{"security@example.com"}}}}))
	if r := sendmail(); r.StatusCode != 0 {
		t.Fatalf("sendmail after setconfig with ***: %d %s", r.StatusCode, r.StatusString)
	}
	if m := ms.Messages(); m[len(m)-1].From != "alarms@example.com" {
		t.Errorf("from after setconfig: %q", m[len(m)-1].From)
	}
	raw := ok(t, admin.Call("module.smtp.getconfig", map[string]any{"with_rules": true}))
	var full struct {
		Servers []map[string]any `json:"servers"`
		Rules   []smtp.Rule      `json:"rules"`
	}
	if err := json.Unmarshal(raw, &full); err != nil || len(full.Servers) != 1 || len(full.Rules) != 1 || full.Rules[0].To[0] != "security@example.com" {
		t.Errorf("getconfig with_rules: %s", raw)
	}
	// The audit entry exists and holds no password.
	var audit []struct{ Description, After string }
	if err := srv.DB().Read.Raw(`SELECT description, COALESCE("after", '') AS "after" FROM events WHERE topic = 'smtp.configured'`).Scan(&audit).Error; err != nil {
		t.Fatal(err)
	}
	if len(audit) != 1 || !strings.Contains(audit[0].Description, "SMTP configuration changed") {
		t.Errorf("audit entries %+v", audit)
	}
	for _, a := range audit {
		if strings.Contains(a.After+a.Description, smtpPass) {
			t.Errorf("the audit entry holds the password: %+v", a)
		}
	}
	// The stored configuration holds the password sealed (core.Secrets), never in clear, and a
	// restarted server opens it: the stored sender is used and the server's AUTH succeeds.
	var storedCfg string
	if err := srv.DB().Read.Raw(`SELECT value FROM meta WHERE key = 'smtp.config'`).Scan(&storedCfg).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(storedCfg, smtpPass) || !strings.Contains(storedCfg, `"password":"gs1:`) {
		t.Errorf("stored configuration does not hold the password sealed: %s", storedCfg)
	}
	srv = srv.Restart()
	admin = wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	if r := sendmail(); r.StatusCode != 0 {
		t.Fatalf("sendmail after a restart: %d %s", r.StatusCode, r.StatusString)
	}
	if m := ms.Messages(); m[len(m)-1].From != "alarms@example.com" {
		t.Errorf("from after a restart: %q, want the stored configuration's", m[len(m)-1].From)
	}
	// A changed username with "***" does not get the stored password: AUTH fails.
	cfg[0]["username"] = "someone-else"
	ok(t, admin.Call("module.smtp.setconfig", map[string]any{"servers": cfg}))
	if r := sendmail(); r.StatusCode != int(core.GeneralFailure) || strings.Contains(r.StatusString, smtpPass) {
		t.Errorf("sendmail with the password dropped: %d %s", r.StatusCode, r.StatusString)
	}

	// Bad configurations.
	for name, servers := range map[string]any{
		"http url":           []any{map[string]any{"url": "http://127.0.0.1:25", "from": "a@example.com"}},
		"credentials in url": []any{map[string]any{"url": "smtp://u:p@127.0.0.1:25", "from": "a@example.com"}},
		"bad from":           []any{map[string]any{"url": "smtp://127.0.0.1:25", "from": "not an address"}},
		"plain not loopback": []any{map[string]any{"url": "smtp://mail.example.com", "from": "a@example.com", "allow_plain": true}},
	} {
		if r := admin.Call("module.smtp.setconfig", map[string]any{"servers": servers}); r.StatusCode != int(core.ModelException) {
			t.Errorf("%s: %d %s", name, r.StatusCode, r.StatusString)
		}
	}
	if r := admin.Call("module.smtp.setconfig", map[string]any{"rules": []any{map[string]any{"topics": []string{"door..x"}, "to": []string{"a@example.com"}}}}); r.StatusCode != int(core.ModelException) {
		t.Errorf("bad topic: %d %s", r.StatusCode, r.StatusString)
	}
	if r := admin.Call("module.smtp.setconfig", map[string]any{"servers": "smtp://x"}); r.StatusCode != int(core.InvalidArgument) {
		t.Errorf("servers as a string: %d %s", r.StatusCode, r.StatusString)
	}
	if r := admin.Call("module.smtp.sendmail", map[string]any{"to": []string{"x\r\nBcc: evil@example.com"}, "subject": "s", "body": "b"}); r.StatusCode != int(core.ModelException) {
		t.Errorf("sendmail to a bad address: %d %s", r.StatusCode, r.StatusString)
	}

	// A non-administrator is refused every call.
	ok(t, admin.Call("user.create", map[string]any{"attributes": map[string]any{"username": "sup", "password": "sup-password-123", "rank": int(core.RankSupervisor)}}))
	sup := wstest.Dial(t, srv.WSURL)
	sup.Login("sup", "sup-password-123")
	for _, typ := range []string{"module.smtp.getconfig", "module.smtp.setconfig", "module.smtp.sendmail"} {
		if r := sup.Call(typ, map[string]any{"servers": []any{}, "to": []string{"a@example.com"}}); r.StatusCode != int(core.PermissionDenied) {
			t.Errorf("%s as a supervisor: %d %s", typ, r.StatusCode, r.Content)
		}
	}

	// Transport security.
	plain := newMailServer(t, func(s *mailServer) { s.noTLS = true })
	implicit := newMailServer(t, withAuth, func(s *mailServer) { s.implicit = true })
	try := func(server map[string]any) wstest.Reply {
		ok(t, admin.Call("module.smtp.setconfig", map[string]any{"servers": []any{server}}))
		return sendmail()
	}
	if r := try(map[string]any{"url": plain.URL(), "from": "a@example.com"}); r.StatusCode != int(core.GeneralFailure) || !strings.Contains(r.StatusString, "STARTTLS") {
		t.Errorf("no STARTTLS: %d %s", r.StatusCode, r.StatusString)
	}
	if r := try(map[string]any{"url": plain.URL(), "from": "a@example.com", "allow_plain": true}); r.StatusCode != 0 || len(plain.Messages()) != 1 {
		t.Errorf("allow_plain on loopback: %d %s", r.StatusCode, r.StatusString)
	}
	if r := try(serverJSON(implicit, nil)); r.StatusCode != 0 || len(implicit.Messages()) != 1 || !implicit.Messages()[0].TLS {
		t.Errorf("smtps: %d %s", r.StatusCode, r.StatusString)
	}
	if r := try(serverJSON(implicit, map[string]any{"verify_peer": true})); r.StatusCode != int(core.GeneralFailure) || len(implicit.Messages()) != 1 {
		t.Errorf("self-signed certificate with verify_peer: %d %s", r.StatusCode, r.StatusString)
	}
	if r := admin.Call("module.smtp.setconfig", map[string]any{"servers": []any{}}); r.StatusCode != 0 {
		t.Fatal(r.StatusString)
	}
	if r := sendmail(); r.StatusCode != int(core.ModelException) {
		t.Errorf("sendmail with no server: %d %s", r.StatusCode, r.StatusString)
	}
}

// TestBadConfigSection: an invalid config section stops the server from starting.
func TestBadConfigSection(t *testing.T) {
	t.Parallel()
	for _, cfg := range []string{
		`{"servers": [{"url": "ftp://x", "from": "a@example.com"}]}`,
		`{"servers": [{"url": "smtp://127.0.0.1", "from": "a@example.com", "password": "***"}]}`,
		`{"rules": [{"topics": [], "to": ["a@example.com"]}]}`,
	} {
		m := new(smtp.Module)
		if err := json.Unmarshal([]byte(cfg), m); err != nil {
			t.Fatal(err)
		}
		m.ApplyDefaults()
		if err := m.Validate(); err == nil {
			t.Errorf("%s: accepted", cfg)
		}
	}
}
