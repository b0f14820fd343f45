package doorman_test

import (
	"encoding/json"
	"testing"

	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

// TestWrongPINNamesCardholder (issue 10, point 16): a card + PIN credential's card presented
// with another PIN is denied with reason wrong_pin, and the decision names the cardholder and
// the credential (in the reply, the live event and the audit trail), so that an operator sees a
// possibly stolen card being tried. A PIN for an unknown card stays unknown_credential.
func TestWrongPINNamesCardholder(t *testing.T) {
	t.Parallel()
	srv := coretest.Start(t)
	admin := wstest.Dial(t, srv.WSURL)
	admin.UseGatehouseTypes() // reads access decisions (audit-auth-event), as the dashboard does
	admin.Login("admin", coretest.AdminPassword)
	doorID := idOf(t, call(t, admin, "door.create", map[string]any{"attributes": map[string]any{"alias": "Server room"}}))
	uid := idOf(t, call(t, admin, "user.create", map[string]any{"attributes": map[string]any{"username": "carol"}}))
	credID := idOf(t, call(t, admin, "credential.create", map[string]any{"credential-type": "rfid-card-pin",
		"attributes": map[string]any{"alias": "carol badge", "owner_id": uid, "card-id": "01:02:03:04", "nb-bits": 32, "code": "2468"}}))
	var frames []map[string]any
	for day := range 7 {
		frames = append(frames, map[string]any{"day": day, "start-time": "00:00", "end-time": "23:59"})
	}
	sid := idOf(t, call(t, admin, "schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "timeframes": frames}}))
	call(t, admin, "schedule.update", map[string]any{"schedule_id": sid, "attributes": map[string]any{},
		"mapping": []map[string]any{{"alias": "carol", "users": []int64{uid}, "doors": []int64{doorID}}}})

	watcher := wstest.Dial(t, srv.WSURL)
	watcher.Login("admin", coretest.AdminPassword)
	call(t, watcher, "events.subscribe", map[string]any{"topics": []string{"access.*"}})
	present := func(card, pin string) map[string]any {
		content := map[string]any{"door_id": doorID, "card_id": card, "nb_bits": 32, "pin": pin}
		var res map[string]any
		if err := json.Unmarshal(call(t, admin, "reader.simulate", content), &res); err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := present("01:02:03:04", "1357")
	if res["granted"] != false || res["reason"] != "wrong_pin" {
		t.Fatalf("wrong PIN: %v, want denied wrong_pin", res)
	}
	e := nextEvent(t, watcher, "access.granted", "access.denied")
	if e.Topic != "access.denied" || e.Data["reason"] != "wrong_pin" || e.Data["username"] != "carol" ||
		int64(e.Data["user_id"].(float64)) != uid || int64(e.Data["credential_id"].(float64)) != credID ||
		e.Data["card_id"] != "01:02:03:04" || e.Data["pin"] != true || int64(res["seq"].(float64)) != e.Seq {
		t.Errorf("wrong PIN event %+v", e)
	}
	// The audit trail lists it under the cardholder.
	var page struct {
		Data []struct {
			ID            int64
			Attributes    struct{ Description string }
			Relationships map[string]struct {
				Data *struct{ ID int64 }
			}
		}
	}
	if err := json.Unmarshal(call(t, admin, "audit.get", map[string]any{"user_id": uid, "enabled_type": []string{"Leosac::Audit::AuthEvent"}}), &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Data) != 1 || page.Data[0].ID != e.Seq || page.Data[0].Relationships["user"].Data == nil ||
		page.Data[0].Relationships["user"].Data.ID != uid || page.Data[0].Relationships["credential"].Data.ID != credID {
		t.Errorf("audit entries of carol: %+v", page.Data)
	}

	// The right PIN opens; the card alone asks for the PIN; a PIN with an unknown card names nobody.
	if res := present("01:02:03:04", "2468"); res["granted"] != true || res["reason"] != "granted" {
		t.Errorf("right PIN: %v", res)
	}
	if res := present("01:02:03:04", ""); res["reason"] != "pin_required" {
		t.Errorf("card alone: %v", res)
	}
	nextEvent(t, watcher, "access.granted")
	nextEvent(t, watcher, "access.denied")
	if res := present("0a:0b:0c:0d", "2468"); res["reason"] != "unknown_credential" {
		t.Errorf("unknown card with a PIN: %v", res)
	}
	if e := nextEvent(t, watcher, "access.denied"); e.Data["reason"] != "unknown_credential" || e.Data["user_id"] != nil || e.Data["username"] != nil {
		t.Errorf("unknown card event names someone: %+v", e)
	}
}
