package audit_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

// TestRightsPerRank: who may call what, for every call of the module.
func TestRightsPerRank(t *testing.T) {
	t.Parallel()
	srv := start(t)
	clients, _ := rankedClients(t, srv)
	const (
		reader  = "reader"  // viewers and above
		manager = "manager" // managers and above
		admin   = "admin"
	)
	for _, tc := range []struct {
		typ     string
		content map[string]any
		who     string
		ok      int // status when allowed
	}{
		{"audit.get", map[string]any{}, reader, codeOK},
		{"get_logs", map[string]any{}, reader, codeOK},
		{"check_update", map[string]any{}, reader, codeOK},
		{"get_update_history", map[string]any{}, reader, codeOK},
		{"get_pending_update", map[string]any{}, reader, codeOK},
		{"get_update", map[string]any{"update_id": 3}, reader, codeEntityNotFound},
		{"create_update", map[string]any{"descriptor_uuid": "5b0ee5c4-3c1c-4d0c-b3a4-6a4f6f6b4d41"}, manager, codeGeneralFailure},
		{"ack_update", map[string]any{"update_id": 3}, manager, codeEntityNotFound},
		{"cancel_update", map[string]any{"update_id": 3}, manager, codeEntityNotFound},
	} {
		for rank, c := range clients {
			allowed := rank >= core.RankViewer
			switch tc.who {
			case manager:
				allowed = rank >= core.RankManager
			case admin:
				allowed = rank == core.RankAdministrator
			}
			wantCode := codePermissionDenied
			if allowed {
				wantCode = tc.ok
			}
			if r := c.Call(tc.typ, tc.content); r.StatusCode != wantCode {
				t.Errorf("%s as %s: status %d %q, want %d", tc.typ, rank, r.StatusCode, r.StatusString, wantCode)
			}
		}
	}
	// restart: administrators only (the administrator's restart is TestRestart).
	for _, rank := range []core.Rank{core.RankUser, core.RankViewer, core.RankManager, core.RankSupervisor} {
		want(t, clients[rank].Call("restart", map[string]any{}), codePermissionDenied)
	}
}

func TestUpdateManagement(t *testing.T) {
	t.Parallel()
	srv := start(t)
	c := wstest.Dial(t, srv.WSURL)
	c.Login("admin", coretest.AdminPassword)
	for _, tc := range []struct {
		typ, content string
		code         int
		reply, msg   string
	}{
		{"check_update", `{}`, codeOK, `[]`, ""},
		{"get_update_history", `{}`, codeOK, `{"data":[]}`, ""},
		{"get_pending_update", `{}`, codeOK, `{"data":[]}`, ""},
		{"get_update", `{"update_id":3}`, codeEntityNotFound, `{"entity_id":"3","entity_type":"update"}`, "Cannot find `update` with id `3`."},
		{"ack_update", `{"update_id":4}`, codeEntityNotFound, `{"entity_id":"4","entity_type":"update"}`, ""},
		{"cancel_update", `{"update_id":5}`, codeEntityNotFound, `{"entity_id":"5","entity_type":"update"}`, ""},
		{"ack_update", `{"update_id":"x"}`, codeInvalidArgument, `null`, ""},
		{"create_update", `{"descriptor_uuid":"5b0ee5c4-3c1c-4d0c-b3a4-6a4f6f6b4d41"}`, codeGeneralFailure, `null`, "UpdateDescriptor doesn't exist anymore."},
		{"create_update", `{}`, codeGeneralFailure, `null`, "UpdateDescriptor doesn't exist anymore."},
		{"create_update", `{"descriptor_uuid":7}`, codeInvalidArgument, `null`, ""},
	} {
		id := fmt.Sprintf("req-%s-%d", tc.typ, tc.code)
		r, err := c.SendRaw(id, []byte(`{"uuid":"`+id+`","type":"`+tc.typ+`","content":`+tc.content+`}`))
		if err != nil {
			t.Fatal(err)
		}
		if r.StatusCode != tc.code || string(r.Content) != tc.reply || tc.msg != "" && r.StatusString != tc.msg {
			t.Errorf("%s %s: %d %q %s, want %d %q %s", tc.typ, tc.content, r.StatusCode, r.StatusString, r.Content, tc.code, tc.msg, tc.reply)
		}
	}
}

func TestRestart(t *testing.T) {
	t.Parallel()
	srv := start(t)
	clients, _ := rankedClients(t, srv)
	admin, viewer := clients[core.RankAdministrator], clients[core.RankViewer]
	oldApp := srv.App()

	r := admin.Call("restart", map[string]any{})
	want(t, r, codeOK)
	if string(r.Content) != "null" {
		t.Errorf("restart reply %s", r.Content)
	}
	// Every connection is closed with 1001 once its replies are flushed.
	for _, c := range []*wstest.Client{admin, viewer} {
		if code := c.WaitClosed(10 * time.Second); code != websocket.StatusGoingAway {
			t.Errorf("close code %d, want 1001", code)
		}
	}

	// The modules are rebuilt in-process: same listener, a new App; logging in works again
	// and the rebuilt audit module records it.
	var c *wstest.Client
	coretest.Eventually(t, 10*time.Second, func() error {
		if srv.App() == nil || srv.App() == oldApp {
			return fmt.Errorf("not restarted yet")
		}
		conn, err := wstest.DialErr(t, srv.WSURL, nil)
		if err != nil {
			return err
		}
		r, err := conn.CallErr("create_auth_token", map[string]string{"username": "admin", "password": coretest.AdminPassword})
		if err != nil || r.StatusCode != codeOK {
			return fmt.Errorf("login: %v %+v", err, r)
		}
		c = conn
		return nil
	})
	resp, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(srv.HTTPURL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("healthz after restart: %d", resp.StatusCode)
	}
	// 5 logins before the restart, 1 after.
	c.UseGatehouseTypes()
	waitLogins(t, c, 6)
	want(t, c.Call("whoami", map[string]any{}), codeOK)
}
