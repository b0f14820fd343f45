package all_test

import (
	"encoding/json"
	"fmt"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"gatehouse/core/coretest"
	"gatehouse/modules/hardware"
	"gatehouse/modules/wsapi/wstest"
)

// leosacModels are the JSON:API types Leosac's web GUI has a model for: the files of
// app/models/*.js of leosac/access-control-web at d9a41ad7 (2025-09-19). A reply that
// references any other type crashes the GUI's store ("Maximum call stack size exceeded",
// "Cannot read properties of null (reading 'type')").
var leosacModels = []string{
	"access-point", "access-point-update", "audit-credential-event", "audit-door-event", "audit-entry",
	"audit-group-event", "audit-schedule-event", "audit-update-event", "audit-user-event",
	"audit-user-group-membership-event", "audit-wsapicall-event", "audit-zone-event", "buzzer", "credential",
	"device", "door", "gpio", "group", "led", "leosac-builtin-access-point", "leosac-builtin-access-point-action",
	"libgpiod-gpio", "log-message", "piface-digital-gpio", "pin-code", "rfid-card", "rfid-reader",
	"schedule", "schedule-mapping", "update", "user", "user-group-membership", "wiegand-reader", "zone",
}

// typesIn returns every string "type" of an object that also has an "id", anywhere in a reply:
// resources, relationship references, included objects, search hits.
func typesIn(t *testing.T, raw json.RawMessage) []string {
	t.Helper()
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("reply %s: %v", raw, err)
	}
	var out []string
	var walk func(any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			if typ, ok := x["type"].(string); ok {
				if _, hasID := x["id"]; hasID {
					out = append(out, typ)
				}
			}
			for _, e := range x {
				walk(e)
			}
		case []any:
			for _, e := range x {
				walk(e)
			}
		}
	}
	walk(v)
	return out
}

// ok fails the test unless the reply succeeded, and returns its content.
func ok(t *testing.T, r wstest.Reply) json.RawMessage {
	t.Helper()
	if r.StatusCode != 0 {
		t.Fatalf("%s: %d %s %s", r.Type, r.StatusCode, r.StatusString, r.Content)
	}
	return r.Content
}

// TestLeosacClientsSeeOnlyLeosacTypes replays the requests of Leosac's web GUI
// (leosac/access-control-web d9a41ad7: app/adapters/credential.js for credential.create/update
// with "credential-type" = the model name and the serialized attributes plus owner_id;
// app/adapters/schedule.js for schedule.update's mapping; app/services/audit-log.js for
// audit.get {enabled_type, p, ps}; app/services/search.js for the global search, including
// search.hardware_name; app/routes/access-overview.js order user.read → door.read →
// access_overview) against a site holding a card + PIN credential, access decisions, logins
// and door activity. No reply references a type outside the GUI's models, audit masks fit in
// 32 bits, and the card + PIN credential created through Leosac's own calls decides correctly
// at a reader. A connection that opts in (session.set_features, as the dashboard does) sees
// gatehouse's types.
func TestLeosacClientsSeeOnlyLeosacTypes(t *testing.T) {
	srv := coretest.Start(t, cheapHashing)
	gui := wstest.Dial(t, srv.WSURL)
	gui.Login("admin", coretest.AdminPassword)

	// The site, created as the GUI creates it.
	bob := mustID(t, gui.Call("user.create", map[string]any{"attributes": map[string]any{
		"username": "bob", "firstname": "Bob", "lastname": "Smith", "email": "bob@example.com", "rank": 0,
		"validity-enabled": true, "validity-start": nil, "validity-end": nil, "version": nil, "password": nil}}))
	ap := mustID(t, gui.Call("access_point.create", map[string]any{"attributes": map[string]any{
		"alias": "Reader Front", "description": "", "controller-module": "simulator"}}))
	door := mustID(t, gui.Call("door.create", map[string]any{"attributes": map[string]any{
		"alias": "Front", "description": "", "access_point_id": ap}}))

	// A card + PIN credential through Leosac's own call: an rfid-card with "pin-required".
	guiCard := func(alias, card string) map[string]any {
		return map[string]any{"alias": alias, "description": "", "validity-enabled": true, "validity-start": nil,
			"validity-end": nil, "version": nil, "card-id": card, "nb-bits": 26, "owner_id": bob}
	}
	attrs := guiCard("bob badge", "12:af:cd:40")
	attrs["pin-required"], attrs["code"] = true, "4711"
	r := gui.Call("credential.create", map[string]any{"credential-type": "rfid-card", "attributes": attrs})
	cred := mustID(t, r)
	if strings.Contains(string(r.Content), "4711") {
		t.Errorf("credential.create returns the PIN: %s", r.Content)
	}
	plain := mustID(t, gui.Call("credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": guiCard("spare", "12:af:cd:80")}))
	pin := mustID(t, gui.Call("credential.create", map[string]any{"credential-type": "pin-code",
		"attributes": map[string]any{"alias": "bob pin", "description": "", "code": "2468", "owner_id": bob}}))
	group := mustID(t, gui.Call("group.create", map[string]any{"attributes": map[string]any{"name": "Staff", "description": ""}}))
	membership := mustID(t, gui.Call("user-group-membership.create", map[string]any{"attributes": map[string]any{"rank": 0, "group_id": group, "user_id": bob}}))
	zone := mustID(t, gui.Call("zone.create", map[string]any{"attributes": map[string]any{
		"alias": "Building", "description": "", "type": 0, "doors": []int64{door}, "children": []int64{}}}))
	var frames []map[string]any
	for day := range 7 {
		frames = append(frames, map[string]any{"day": day, "start-time": "00:00", "end-time": "23:59"})
	}
	sched := mustID(t, gui.Call("schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "description": "", "timeframes": frames}}))
	ok(t, gui.Call("schedule.update", map[string]any{"schedule_id": sched,
		"attributes": map[string]any{"name": "always", "description": "", "timeframes": frames},
		"mapping": []map[string]any{{"alias": "badges", "users": []int64{}, "groups": []int64{}, "credentials": []int64{cred, plain, pin},
			"doors": []int64{door}, "zones": []int64{zone}}}}))

	// The card + PIN credential decides at the reader: its card with its PIN only.
	swipe := func(card, pin string) (granted bool, reason string) {
		content := map[string]any{"door_id": door, "card_id": card, "nb_bits": 26}
		if pin != "" {
			content["pin"] = pin
		}
		var res struct {
			Granted bool   `json:"granted"`
			Reason  string `json:"reason"`
		}
		if err := json.Unmarshal(ok(t, gui.Call("reader.simulate", content)), &res); err != nil {
			t.Fatal(err)
		}
		return res.Granted, res.Reason
	}
	expect := func(what, card, pin string, granted bool, reason string) {
		t.Helper()
		coretest.Eventually(t, 10*time.Second, func() error {
			if g, rs := swipe(card, pin); g != granted || (reason != "" && rs != reason) {
				return fmt.Errorf("%s: granted %v reason %s, want %v %s", what, g, rs, granted, reason)
			}
			return nil
		})
	}
	expect("card and its PIN", "12:af:cd:40", "4711", true, "granted")
	expect("card and another PIN", "12:af:cd:40", "1111", false, "wrong_pin")
	if g, _ := swipe("12:af:cd:40", ""); g {
		t.Errorf("the card alone opens although a PIN is required")
	}

	// The GUI's own update (the rfid-card model's attributes, no PIN, no pin-required) keeps
	// the PIN requirement.
	upd := guiCard("bob's badge", "12:af:cd:40")
	ok(t, gui.Call("credential.update", map[string]any{"credential_id": cred, "attributes": upd}))
	expect("after the GUI's update, card and PIN", "12:af:cd:40", "4711", true, "granted")
	if g, _ := swipe("12:af:cd:40", ""); g {
		t.Errorf("after the GUI's update, the card alone opens")
	}
	// A new PIN through Leosac's update call.
	upd["pin-required"], upd["code"] = true, "8642"
	ok(t, gui.Call("credential.update", map[string]any{"credential_id": cred, "attributes": upd}))
	expect("the new PIN", "12:af:cd:40", "8642", true, "granted")
	expect("the old PIN", "12:af:cd:40", "4711", false, "wrong_pin")
	// Requiring a PIN of a plain card needs the PIN.
	noPIN := guiCard("spare", "12:af:cd:80")
	noPIN["pin-required"] = true
	if r := gui.Call("credential.update", map[string]any{"credential_id": plain, "attributes": noPIN}); r.StatusCode != 11 {
		t.Errorf("pin-required without a code: %d %s", r.StatusCode, r.Content)
	}
	expect("the plain card", "12:af:cd:80", "", true, "granted")
	// A plain card becomes card + PIN with its PIN, and back.
	noPIN["code"] = "1357"
	ok(t, gui.Call("credential.update", map[string]any{"credential_id": plain, "credential-type": "rfid-card", "attributes": noPIN}))
	expect("the spare card and its new PIN", "12:af:cd:80", "1357", true, "granted")
	if g, _ := swipe("12:af:cd:80", ""); g {
		t.Errorf("the spare card alone opens after pin-required")
	}
	noPIN["pin-required"] = false
	delete(noPIN, "code")
	ok(t, gui.Call("credential.update", map[string]any{"credential_id": plain, "attributes": noPIN}))
	expect("the spare card alone again", "12:af:cd:80", "", true, "granted")
	// Door activity: the door's mode changes twice (gatehouse's bit 2^39).
	ok(t, gui.Call("door.set_mode", map[string]any{"door_id": door, "mode": "locked"}))
	ok(t, gui.Call("door.set_mode", map[string]any{"door_id": door, "mode": "normal"}))

	// Wait until the audit trail holds the gatehouse-only kinds, seen by an opted-in client.
	dash := wstest.Dial(t, srv.WSURL)
	dash.UseGatehouseTypes()
	dash.Login("admin", coretest.AdminPassword)
	coretest.Eventually(t, 10*time.Second, func() error {
		types := typesIn(t, ok(t, dash.Call("audit.get", map[string]any{"enabled_type": []string{}, "p": 1, "ps": 500})))
		for _, want := range []string{"audit-auth-event", "audit-login-event"} {
			if !slices.Contains(types, want) {
				return fmt.Errorf("no %s yet among %v", want, types)
			}
		}
		if r := ok(t, dash.Call("audit.get", map[string]any{"door_id": door, "enabled_type": []string{"audit-door-event"}})); !strings.Contains(string(r), fmt.Sprintf(`"door.%d.mode"`, door)) {
			return fmt.Errorf("no door activity yet: %s", r)
		}
		return nil
	})

	// The hardware pages' devices, created as the GUI creates them (lib/libgpiod,
	// lib/led-buzzer and lib/wiegand-reader adapters).
	hwID := func(typ string, attrs map[string]any) string {
		t.Helper()
		var v struct {
			Data struct{ ID string } `json:"data"`
		}
		if err := json.Unmarshal(ok(t, gui.Call(typ, map[string]any{"attributes": attrs})), &v); err != nil || v.Data.ID == "" {
			t.Fatalf("%s: no id", typ)
		}
		return v.Data.ID
	}
	gpioIn := hwID("libgpiod.gpio.create", map[string]any{"name": "reader_d1", "direction": 0, "device": "gpiochip0", "offset": 15})
	gpioIn0 := hwID("libgpiod.gpio.create", map[string]any{"name": "reader_d0", "direction": 0, "device": "gpiochip0", "offset": 14})
	gpioOut := hwID("libgpiod.gpio.create", map[string]any{"name": "reader_led", "direction": 1, "device": "gpiochip0", "offset": 3})
	led := hwID("led.create", map[string]any{"name": "reader_green", "default-blink-duration": 3000, "default-blink-speed": 1000, "gpio_id": gpioOut})
	buzzer := hwID("buzzer.create", map[string]any{"name": "reader_buzzer", "default-blink-duration": 3000, "default-blink-speed": 1000, "gpio_id": gpioOut})
	hwReader := hwID("wiegand-reader.create", map[string]any{"name": "wiegand_front", "mode": "SIMPLE_WIEGAND",
		"gpio_high_id": gpioIn, "gpio_low_id": gpioIn0, "buzzer_id": buzzer, "green_led_id": led})
	for _, typ := range hardware.Types() {
		if !slices.Contains(leosacModels, typ) {
			t.Errorf("hardware type %q unknown to Leosac's GUI", typ)
		}
	}

	// Every read the GUI makes, as a Leosac client: only the GUI's types.
	guiTypes := []string{"Leosac::Audit::UserEvent", "Leosac::Audit::WSAPICall", "Leosac::Audit::DoorEvent",
		"Leosac::Audit::ScheduleEvent", "Leosac::Audit::CredentialEvent", "Leosac::Audit::GroupEvent",
		"Leosac::Audit::UserGroupMembershipEvent", "Leosac::Audit::UpdateEvent", "Leosac::Audit::ZoneEvent"}
	calls := []struct {
		typ     string
		content map[string]any
	}{
		{"user.read", map[string]any{"user_id": 0}},
		{"user.read", map[string]any{"user_id": bob}},
		{"credential.read", map[string]any{"credential_id": 0}},
		{"credential.read", map[string]any{"credential_id": cred}},
		{"user-group-membership.read", map[string]any{"membership_id": membership}},
		{"group.read", map[string]any{"group_id": 0}},
		{"schedule.read", map[string]any{"schedule_id": 0}},
		{"schedule.read", map[string]any{"schedule_id": sched}},
		{"door.read", map[string]any{"door_id": 0}},
		{"access_point.read", map[string]any{"access_point_id": 0}},
		{"zone.read", map[string]any{"zone_id": 0}},
		{"access_overview", map[string]any{}},
		{"audit.get", map[string]any{"enabled_type": []string{}, "p": 1, "ps": 500}},
		{"audit.get", map[string]any{"enabled_type": guiTypes, "p": 1, "ps": 500}},
		{"audit.get", map[string]any{"enabled_type": []string{"Leosac::Audit::AuthEvent", "Gatehouse::Audit::LoginEvent"}, "p": 1, "ps": 20}},
		{"search.zone_alias", map[string]any{"partial_name": "b"}},
		{"search.door_alias", map[string]any{"partial_name": "f"}},
		{"search.group_name", map[string]any{"partial_name": "s"}},
		{"search.schedule_name", map[string]any{"partial_name": "a"}},
		{"search.user_username", map[string]any{"partial_name": "b"}},
		{"search.credential_alias", map[string]any{"partial_name": "b"}},
		{"search.hardware_name", map[string]any{"partial_name": "reader"}},
		{"libgpiod.gpio.read", map[string]any{"gpio_id": 0}},
		{"libgpiod.gpio.read", map[string]any{"gpio_id": gpioIn}},
		{"led.read", map[string]any{"led_id": 0}},
		{"led.read", map[string]any{"led_id": led}},
		{"buzzer.read", map[string]any{"buzzer_id": 0}},
		{"buzzer.read", map[string]any{"buzzer_id": buzzer}},
		{"wiegand-reader.read", map[string]any{"reader_id": 0}},
		{"wiegand-reader.read", map[string]any{"reader_id": hwReader}},
	}
	for _, c := range calls {
		content := ok(t, gui.Call(c.typ, c.content))
		for _, typ := range typesIn(t, content) {
			if !slices.Contains(leosacModels, typ) {
				t.Errorf("%s %v: type %q unknown to Leosac's GUI in %s", c.typ, c.content, typ, content)
			}
		}
		if c.typ == "audit.get" { // descriptions are text and name gatehouse's type
			content = []byte(regexp.MustCompile(`"description":"(\\.|[^"\\])*"`).ReplaceAll(content, nil))
		}
		if strings.Contains(string(content), "rfid-card-pin") {
			t.Errorf("%s %v mentions rfid-card-pin: %s", c.typ, c.content, content)
		}
	}

	// The card + PIN credential as Leosac sees it: an rfid-card saying a PIN is required,
	// without its PIN.
	var one struct {
		Data struct {
			Type       string         `json:"type"`
			Attributes map[string]any `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(ok(t, gui.Call("credential.read", map[string]any{"credential_id": cred})), &one); err != nil {
		t.Fatal(err)
	}
	if a := one.Data.Attributes; one.Data.Type != "rfid-card" || a["pin-required"] != true || a["card-id"] != "12:af:cd:40" || a["alias"] != "bob's badge" {
		t.Errorf("card + PIN credential for Leosac: %+v", one.Data)
	} else if _, has := a["code"]; has {
		t.Errorf("card + PIN credential shows a code: %+v", a)
	}

	// audit.get: only the GUI's kinds whatever the filter, masks within 32 bits (door
	// activity is DOOR_UPDATED, 1<<18), nothing for the gatehouse-only kinds.
	var audit struct {
		Meta struct {
			Count int64 `json:"count"`
		} `json:"meta"`
		Data []struct {
			Type       string `json:"type"`
			Attributes struct {
				Mask  int64  `json:"event-mask"`
				Topic string `json:"topic"`
			} `json:"attributes"`
		} `json:"data"`
	}
	if err := json.Unmarshal(ok(t, gui.Call("audit.get", map[string]any{"enabled_type": []string{}, "p": 1, "ps": 500})), &audit); err != nil {
		t.Fatal(err)
	}
	doorActivity := 0
	for _, e := range audit.Data {
		if e.Attributes.Mask <= 0 || e.Attributes.Mask >= 1<<32 {
			t.Errorf("%s %s: event-mask %d outside the GUI's 32 bits", e.Type, e.Attributes.Topic, e.Attributes.Mask)
		}
		if strings.HasPrefix(e.Attributes.Topic, fmt.Sprintf("door.%d.", door)) {
			doorActivity++
			if e.Attributes.Mask != 1<<18 {
				t.Errorf("%s: event-mask %d, want DOOR_UPDATED (1<<18)", e.Attributes.Topic, e.Attributes.Mask)
			}
		}
	}
	if doorActivity < 2 || int64(len(audit.Data)) != audit.Meta.Count {
		t.Errorf("%d door activity entries, %d entries of %d", doorActivity, len(audit.Data), audit.Meta.Count)
	}
	var none struct {
		Meta struct {
			Count int64 `json:"count"`
		} `json:"meta"`
		Data []json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(ok(t, gui.Call("audit.get", map[string]any{"enabled_type": []string{"Leosac::Audit::AuthEvent"}})), &none); err != nil || none.Meta.Count != 0 || len(none.Data) != 0 {
		t.Errorf("AuthEvent for a Leosac client: %+v %v", none, err)
	}

	// search.hardware_name: the access points, then the hardware pages' devices, in Leosac's
	// shape, for administrators only.
	var hw []map[string]any
	if err := json.Unmarshal(ok(t, gui.Call("search.hardware_name", map[string]any{"partial_name": "reader"})), &hw); err != nil {
		t.Fatal(err)
	}
	if len(hw) == 0 || hw[0]["id"] != float64(ap) || hw[0]["name"] != "Reader Front" || hw[0]["device-class"] != float64(2) || hw[0]["type"] != "access-point" {
		t.Errorf("search.hardware_name: %v", hw)
	}
	devices := map[string]string{}
	for _, h := range hw[min(1, len(hw)):] {
		devices[fmt.Sprint(h["id"])] = fmt.Sprintf("%v %v %v", h["name"], h["type"], h["device-class"])
	}
	if want := map[string]string{gpioIn: "reader_d1 libgpiod-gpio 1", gpioIn0: "reader_d0 libgpiod-gpio 1",
		gpioOut: "reader_led libgpiod-gpio 1", led: "reader_green led 3", buzzer: "reader_buzzer buzzer 4"}; !reflect.DeepEqual(devices, want) {
		t.Errorf("search.hardware_name devices: %v, want %v", devices, want)
	}

	// Opted in, the same connection sees gatehouse's types again.
	if got := ok(t, gui.Call("session.set_features", map[string]any{"types": "gatehouse"})); string(got) != `{"types":"gatehouse"}` {
		t.Errorf("session.set_features: %s", got)
	}
	for _, c := range []struct {
		typ     string
		content map[string]any
		want    string
	}{
		{"credential.read", map[string]any{"credential_id": cred}, "rfid-card-pin"},
		{"user.read", map[string]any{"user_id": bob}, "rfid-card-pin"},
		{"user.read", map[string]any{"user_id": 0}, "rfid-card-pin"},
		{"schedule.read", map[string]any{"schedule_id": sched}, "rfid-card-pin"},
		{"search.credential_alias", map[string]any{"partial_name": "bob"}, "rfid-card-pin"},
		{"audit.get", map[string]any{"enabled_type": []string{}, "p": 1, "ps": 500}, "audit-auth-event"},
		{"audit.get", map[string]any{"enabled_type": []string{}, "p": 1, "ps": 500}, "audit-login-event"},
	} {
		if types := typesIn(t, ok(t, gui.Call(c.typ, c.content))); !slices.Contains(types, c.want) {
			t.Errorf("opted in, %s %v: no %s among %v", c.typ, c.content, c.want, types)
		}
	}
	// And back.
	ok(t, gui.Call("session.set_features", map[string]any{"types": "leosac"}))
	if types := typesIn(t, ok(t, gui.Call("user.read", map[string]any{"user_id": bob}))); slices.Contains(types, "rfid-card-pin") {
		t.Errorf("back to Leosac's types: %v", types)
	}
	if r := gui.Call("session.set_features", map[string]any{"types": "ember"}); r.StatusCode != 12 {
		t.Errorf("unknown types value: %d", r.StatusCode)
	}
}
