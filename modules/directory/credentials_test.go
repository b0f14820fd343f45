package directory_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"gatehouse/core"
	"gatehouse/core/coretest"
	"gatehouse/modules/directory"
	"gatehouse/modules/wsapi/wstest"
)

func createCredential(t *testing.T, c *wstest.Client, typ string, attrs map[string]any) object {
	t.Helper()
	r := c.Call("credential.create", map[string]any{"credential-type": typ, "attributes": attrs})
	want(t, r, 0)
	return decodeObject(t, r)
}

func pinHashOf(t *testing.T, srv *coretest.Server, id int64) string {
	t.Helper()
	var h string
	if err := srv.DB().Read.Raw(`SELECT pin_hash FROM credentials WHERE id = ?`, id).Scan(&h).Error; err != nil {
		t.Fatal(err)
	}
	return h
}

func TestCredentialShapes(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	admin.UseGatehouseTypes() // gatehouse's shapes; leosac_types_test.go checks what Leosac clients see
	bob := addUser(t, srv, "bob", "bob-password", core.RankUser)

	r := admin.Call("credential.create", map[string]any{"credential-type": "rfid-card", "attributes": map[string]any{
		"alias": "Front card", "description": "blue", "owner_id": bob, "card-id": "AA:BB:CC:DD", "nb-bits": 32,
		"validity-start": "2024-01-02T09:05:00+01:00",
	}})
	want(t, r, 0)
	card := decodeObject(t, r)
	if card.Type != "rfid-card" || card.Attributes["card-id"] != "aa:bb:cc:dd" || card.Attributes["nb-bits"] != float64(32) ||
		card.Attributes["alias"] != "Front card" || card.Attributes["description"] != "blue" || card.Attributes["version"] != float64(1) ||
		card.Attributes["validity-enabled"] != true || card.Attributes["validity-start"] != "2024-01-02T08:05:00Z" ||
		card.Attributes["validity-end"] != nil {
		t.Errorf("card %s", r.Content)
	}
	if _, ok := card.Attributes["code"]; ok {
		t.Errorf("a card has no code: %s", r.Content)
	}
	if !strings.Contains(string(r.Content), fmt.Sprintf(`"owner":{"data":{"id":%d,"type":"user"}}`, bob)) ||
		!strings.Contains(string(r.Content), `"schedules":{"data":[]}`) {
		t.Errorf("card relationships %s", r.Content)
	}

	r = admin.Call("credential.create", map[string]any{"credential-type": "pin-code", "attributes": map[string]any{"code": "1234"}})
	want(t, r, 0)
	pin := decodeObject(t, r)
	if pin.Type != "pin-code" || pin.Attributes["code"] != "***" || pin.Attributes["alias"] != "" {
		t.Errorf("pin %s", r.Content)
	}
	if _, ok := pin.Attributes["card-id"]; ok {
		t.Errorf("a PIN has no card: %s", r.Content)
	}
	if !strings.Contains(string(r.Content), `"owner":{"data":null}`) {
		t.Errorf("unowned: %s", r.Content)
	}

	both := createCredential(t, admin, "rfid-card-pin", map[string]any{"card-id": "01:02:03:40", "nb-bits": 26, "code": "98765", "owner_id": 0})
	if both.Type != "rfid-card-pin" || both.Attributes["card-id"] != "01:02:03:40" || both.Attributes["nb-bits"] != float64(26) ||
		both.Attributes["code"] != "***" || both.Relationships["owner"]["data"] != nil {
		t.Errorf("card+pin %+v", both)
	}

	// Schedules: those whose mappings list the credential, distinct, by id.
	s1, m1 := addMapping(t, srv, "Day")
	_, m2 := addMapping(t, srv, "Day")
	for _, m := range []int64{m1, m2} {
		execSQL(t, srv, `INSERT INTO mapping_credentials(mapping_id, credential_id) VALUES (?, ?)`, m, card.ID)
	}
	r = admin.Call("credential.read", map[string]any{"credential_id": card.ID})
	want(t, r, 0)
	if got := strings.Join(relRefs(t, decodeObject(t, r), "schedules"), ","); got != fmt.Sprintf("%d:schedule", s1) {
		t.Errorf("schedules %s", got)
	}
	r = admin.Call("credential.read", map[string]any{"credential_id": 0})
	want(t, r, 0)
	list := decodeList(t, r)
	if len(list) != 3 || list[0].ID != card.ID || list[1].ID != pin.ID || list[2].ID != both.ID {
		t.Fatalf("list %s", r.Content)
	}
	if got := strings.Join(relRefs(t, list[0], "schedules"), ","); got != fmt.Sprintf("%d:schedule", s1) {
		t.Errorf("listed schedules %s", got)
	}
	if got := relRefs(t, list[1], "schedules"); len(got) != 0 {
		t.Errorf("pin schedules %v", got)
	}

	r = admin.Call("credential.read", map[string]any{"credential_id": 4242})
	want(t, r, int(core.EntityNotFound))
	if string(r.Content) != `{"entity_id":"4242","entity_type":"credential"}` {
		t.Errorf("not found content %s", r.Content)
	}

	// Audit and event data of a creation.
	rows := auditRows(t, srv, "credential.created")
	if len(rows) != 3 || rows[0].Kind != "audit-credential-event" || rows[0].EventMask != 1<<12 || rows[0].After == nil ||
		rows[0].UserID == nil || *rows[0].UserID != bob {
		t.Fatalf("audit %+v", rows)
	}
	if want := fmt.Sprintf(`{"card_id":"aa:bb:cc:dd","id":%d,"nb_bits":32,"owner_id":%d,"type":"rfid-card"}`, card.ID, bob); rows[0].Data != want {
		t.Errorf("card data %s, want %s", rows[0].Data, want)
	}
	if want := fmt.Sprintf(`{"id":%d,"owner_id":null,"type":"pin-code"}`, pin.ID); rows[1].Data != want {
		t.Errorf("pin data %s, want %s", rows[1].Data, want)
	}
}

func TestCredentialValidation(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	first := createCredential(t, admin, "rfid-card", map[string]any{"card-id": "aa:bb:cc:dd", "nb-bits": 32})
	createCredential(t, admin, "pin-code", map[string]any{"code": "1234"})

	cases := []struct {
		name    string
		typ     any
		attrs   map[string]any
		pointer string
		detail  string
	}{
		{"no type", nil, map[string]any{"code": "1234"}, "data/type", "Credential type  is not supported."},
		{"base type", "credential", map[string]any{}, "data/type", "Credential type credential is not supported."},
		{"unknown type", "iris", map[string]any{}, "data/type", "Credential type iris is not supported."},
		{"long alias", "pin-code", map[string]any{"code": "5555", "alias": strings.Repeat("é", 51)}, "data/attributes/alias", "Alias must not be longer than 50."},
		{"card format", "rfid-card", map[string]any{"card-id": "zz:00", "nb-bits": 16}, "data/attributes/cardId", "Card id must have aa:bb:cc:11 format."},
		{"card separator", "rfid-card", map[string]any{"card-id": "aabb", "nb-bits": 16}, "data/attributes/cardId", "Card id must have aa:bb:cc:11 format."},
		{"card missing", "rfid-card", map[string]any{"nb-bits": 16}, "data/attributes/cardId", "Card id must have aa:bb:cc:11 format."},
		{"card bytes", "rfid-card", map[string]any{"card-id": "aa:bb", "nb-bits": 32}, "data/attributes/cardId", "Card id must have 4 bytes"},
		{"card bytes 26", "rfid-card", map[string]any{"card-id": "aa:bb:cc", "nb-bits": 26}, "data/attributes/cardId", "Card id must have 4 bytes"},
		{"zero bits", "rfid-card", map[string]any{"card-id": "aa", "nb-bits": 0}, "data/attributes/nbBits", "The number of bits must be > 0"},
		{"no bits", "rfid-card", map[string]any{"card-id": "aa"}, "data/attributes/nbBits", "The number of bits must be > 0"},
		{"too many bits", "rfid-card", map[string]any{"card-id": "aa", "nb-bits": 129}, "data/attributes/nbBits", "128"},
		{"pin char", "pin-code", map[string]any{"code": "12a4"}, "data/attributes/code", "Pin code contains invalid character: a"},
		{"pin short", "pin-code", map[string]any{"code": "123"}, "data/attributes/code", "4 to 12"},
		{"pin long", "pin-code", map[string]any{"code": "1234567890123"}, "data/attributes/code", "4 to 12"},
		{"pin missing", "pin-code", map[string]any{}, "data/attributes/code", "4 to 12"},
		{"card+pin missing pin", "rfid-card-pin", map[string]any{"card-id": "aa", "nb-bits": 8}, "data/attributes/code", "4 to 12"},
		{"owner", "pin-code", map[string]any{"code": "7777", "owner_id": 999}, "data/attributes/owner_id", "User 999 does not exist."},
		{"negative owner", "pin-code", map[string]any{"code": "7777", "owner_id": -3}, "data/attributes/owner_id", "User -3 does not exist."},
		{"date", "pin-code", map[string]any{"code": "7777", "validity-end": "soon"}, "data/attributes/validity-end", "Invalid date"},
		{"duplicate card", "rfid-card", map[string]any{"card-id": "AA:BB:CC:DD", "nb-bits": 32}, "data/attributes/cardId", fmt.Sprintf("This card is already registered (credential %d).", first.ID)},
		{"duplicate pin", "pin-code", map[string]any{"code": "1234"}, "data/attributes/code", "This PIN is already in use."},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			content := map[string]any{"attributes": tc.attrs}
			if tc.typ != nil {
				content["credential-type"] = tc.typ
			}
			wantModel(t, admin.Call("credential.create", content), tc.pointer, tc.detail)
		})
	}
	// Several errors at once are all reported.
	r := admin.Call("credential.create", map[string]any{"credential-type": "rfid-card-pin",
		"attributes": map[string]any{"card-id": "x", "nb-bits": 0, "code": "1"}})
	wantModel(t, r, "data/attributes/cardId", "format")
	wantModel(t, r, "data/attributes/nbBits", "> 0")
	wantModel(t, r, "data/attributes/code", "4 to 12")
	// Wrong JSON types are INVALID_ARGUMENT.
	for _, attrs := range []map[string]any{{"nb-bits": "32"}, {"code": 1234}, {"owner_id": true}, {"alias": 3}} {
		want(t, admin.Call("credential.create", map[string]any{"credential-type": "rfid-card", "attributes": attrs}), int(core.InvalidArgument))
	}
	// owner_id as a string of digits (JSON:API clients) is accepted.
	createCredential(t, admin, "pin-code", map[string]any{"code": "24680", "owner_id": "1"})

	// The same card under another type, and the same PIN on two cards, are fine.
	createCredential(t, admin, "rfid-card-pin", map[string]any{"card-id": "aa:bb:cc:dd", "nb-bits": 32, "code": "1234"})
	createCredential(t, admin, "rfid-card-pin", map[string]any{"card-id": "aa:bb:cc:de", "nb-bits": 32, "code": "1234"})
	createCredential(t, admin, "rfid-card", map[string]any{"card-id": "aa:bb:cc:dd", "nb-bits": 31})
	wantModel(t, admin.Call("credential.create", map[string]any{"credential-type": "rfid-card-pin",
		"attributes": map[string]any{"card-id": "aa:bb:cc:de", "nb-bits": 32, "code": "9999"}}), "data/attributes/cardId", "already registered")
	if n := count(t, srv, `SELECT COUNT(*) FROM events WHERE topic = 'credential.created'`); n != 6 {
		t.Errorf("%d credential.created events, want 6 (failed creations leave nothing)", n)
	}
}

func TestCredentialRights(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	bobID := addUser(t, srv, "bob", "bob-password", core.RankUser)
	addUser(t, srv, "vera", "vera-password", core.RankViewer)
	addUser(t, srv, "mgr", "mgr-password", core.RankManager)
	own := createCredential(t, admin, "rfid-card", map[string]any{"card-id": "01", "nb-bits": 8, "owner_id": bobID}).ID
	other := createCredential(t, admin, "rfid-card", map[string]any{"card-id": "02", "nb-bits": 8}).ID

	bob := loginAs(t, srv, "bob", "bob-password")
	r := bob.Call("credential.read", map[string]any{"credential_id": 0})
	want(t, r, 0)
	if l := decodeList(t, r); len(l) != 1 || l[0].ID != own {
		t.Errorf("bob's credentials %s", r.Content)
	}
	want(t, bob.Call("credential.read", map[string]any{"credential_id": own}), 0)
	want(t, bob.Call("credential.read", map[string]any{"credential_id": other}), int(core.PermissionDenied))
	want(t, bob.Call("credential.create", map[string]any{"credential-type": "pin-code", "attributes": map[string]any{"code": "1111"}}), int(core.PermissionDenied))
	want(t, bob.Call("credential.update", map[string]any{"credential_id": own, "attributes": map[string]any{"alias": "mine"}}), int(core.PermissionDenied))
	want(t, bob.Call("credential.delete", map[string]any{"credential_id": own}), int(core.PermissionDenied))

	vera := loginAs(t, srv, "vera", "vera-password")
	r = vera.Call("credential.read", map[string]any{})
	want(t, r, 0)
	if l := decodeList(t, r); len(l) != 2 {
		t.Errorf("viewer's credentials %s", r.Content)
	}
	want(t, vera.Call("credential.read", map[string]any{"credential_id": other}), 0)
	want(t, vera.Call("credential.create", map[string]any{"credential-type": "pin-code", "attributes": map[string]any{"code": "1111"}}), int(core.PermissionDenied))
	want(t, vera.Call("credential.update", map[string]any{"credential_id": other, "attributes": map[string]any{"alias": "x"}}), int(core.PermissionDenied))
	want(t, vera.Call("credential.delete", map[string]any{"credential_id": other}), int(core.PermissionDenied))

	mgr := loginAs(t, srv, "mgr", "mgr-password")
	id := createCredential(t, mgr, "pin-code", map[string]any{"code": "1111", "owner_id": bobID}).ID
	want(t, mgr.Call("credential.update", map[string]any{"credential_id": id, "attributes": map[string]any{"alias": "x", "validity-enabled": false}}), 0)
	want(t, mgr.Call("credential.delete", map[string]any{"credential_id": id}), 0)
}

func TestCredentialUpdate(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	bobID := addUser(t, srv, "bob", "bob-password", core.RankUser)
	upd := func(id int64, attrs map[string]any) wstest.Reply {
		t.Helper()
		return admin.Call("credential.update", map[string]any{"credential_id": id, "attributes": attrs})
	}
	read := func(id int64) object {
		t.Helper()
		r := admin.Call("credential.read", map[string]any{"credential_id": id})
		want(t, r, 0)
		return decodeObject(t, r)
	}

	card := createCredential(t, admin, "rfid-card", map[string]any{"card-id": "aa:bb:cc:dd", "nb-bits": 32, "alias": "c",
		"owner_id": bobID, "validity-end": "2030-01-01T00:00:00Z"}).ID
	r := upd(card, map[string]any{"alias": "renamed"})
	want(t, r, 0)
	if string(r.Content) != "null" {
		t.Errorf("update reply %s", r.Content)
	}
	o := read(card)
	if o.Attributes["alias"] != "renamed" || o.Attributes["card-id"] != "aa:bb:cc:dd" || o.Attributes["nb-bits"] != float64(32) ||
		o.Attributes["validity-end"] != "2030-01-01T00:00:00Z" || o.Attributes["version"] != float64(2) ||
		o.Relationships["owner"]["data"] == nil {
		t.Errorf("absent attributes must keep their values: %+v", o)
	}
	want(t, upd(card, map[string]any{"card-id": "AA:BB:CC", "nb-bits": 24}), 0)
	if o := read(card); o.Attributes["card-id"] != "aa:bb:cc" || o.Attributes["nb-bits"] != float64(24) {
		t.Errorf("card change: %v", o.Attributes)
	}
	wantModel(t, upd(card, map[string]any{"nb-bits": 32}), "data/attributes/cardId", "4 bytes")
	wantModel(t, upd(card, map[string]any{"validity-start": "yesterday"}), "data/attributes/validity-start", "Invalid date")
	wantModel(t, admin.Call("credential.update", map[string]any{"credential_id": card, "credential-type": "pin-code", "attributes": map[string]any{}}),
		"data/type", "cannot change")
	want(t, admin.Call("credential.update", map[string]any{"credential_id": card, "credential-type": "rfid-card", "attributes": map[string]any{}}), 0)
	// Owner: null and 0 unown; an unknown user is refused.
	wantModel(t, upd(card, map[string]any{"owner_id": 999}), "data/attributes/owner_id", "User 999 does not exist.")
	want(t, upd(card, map[string]any{"owner_id": nil}), 0)
	if o := read(card); o.Relationships["owner"]["data"] != nil {
		t.Errorf("owner_id null must unown: %+v", o.Relationships)
	}
	want(t, upd(card, map[string]any{"owner_id": bobID}), 0)
	want(t, upd(card, map[string]any{"owner_id": 0}), 0)
	if o := read(card); o.Relationships["owner"]["data"] != nil {
		t.Errorf("owner_id 0 must unown: %+v", o.Relationships)
	}

	// PIN codes: "***" or absent keeps the PIN; a new one is validated, unique, rehashed.
	pin := createCredential(t, admin, "pin-code", map[string]any{"code": "1234"}).ID
	createCredential(t, admin, "pin-code", map[string]any{"code": "5678"})
	h := pinHashOf(t, srv, pin)
	want(t, upd(pin, map[string]any{"code": "***", "alias": "p"}), 0)
	want(t, upd(pin, map[string]any{"description": "d"}), 0)
	if pinHashOf(t, srv, pin) != h {
		t.Error("the PIN must be kept")
	}
	wantModel(t, upd(pin, map[string]any{"code": "5678"}), "data/attributes/code", "This PIN is already in use.")
	wantModel(t, upd(pin, map[string]any{"code": "12"}), "data/attributes/code", "4 to 12")
	wantModel(t, upd(pin, map[string]any{"code": ""}), "data/attributes/code", "4 to 12")
	want(t, upd(pin, map[string]any{"code": "1234"}), 0) // its own PIN again
	want(t, upd(pin, map[string]any{"code": "4321"}), 0)
	if pinHashOf(t, srv, pin) == h {
		t.Error("the PIN must have changed")
	}

	// Card + PIN: changing the card needs the PIN again, because its hash is bound to the card.
	both := createCredential(t, admin, "rfid-card-pin", map[string]any{"card-id": "01:02", "nb-bits": 16, "code": "2468"}).ID
	h = pinHashOf(t, srv, both)
	want(t, upd(both, map[string]any{"alias": "b", "code": "***"}), 0)
	want(t, upd(both, map[string]any{"card-id": "01:02"}), 0) // same card
	wantModel(t, upd(both, map[string]any{"card-id": "01:03"}), "data/attributes/code", "The PIN must be given again when the card changes.")
	wantModel(t, upd(both, map[string]any{"nb-bits": 15, "code": "***"}), "data/attributes/code", "The PIN must be given again when the card changes.")
	if pinHashOf(t, srv, both) != h {
		t.Error("a refused update must change nothing")
	}
	want(t, upd(both, map[string]any{"card-id": "01:03", "code": "2468"}), 0)
	if o := read(both); o.Attributes["card-id"] != "01:03" || pinHashOf(t, srv, both) == h {
		t.Errorf("card+pin change: %v", o.Attributes)
	}

	want(t, upd(4242, map[string]any{"alias": "x"}), int(core.EntityNotFound))
	want(t, upd(0, map[string]any{"alias": "x"}), int(core.EntityNotFound))

	rows := auditRows(t, srv, "credential.updated")
	if len(rows) == 0 || rows[0].Kind != "audit-credential-event" || rows[0].EventMask != 1<<13 || rows[0].Before == nil || rows[0].After == nil ||
		!strings.Contains(*rows[0].Before, `"alias":"c"`) || !strings.Contains(*rows[0].After, `"alias":"renamed"`) {
		t.Errorf("update audit %+v", rows)
	}
}

func TestCredentialDelete(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	admin := asAdmin(t, srv)
	id := createCredential(t, admin, "rfid-card", map[string]any{"card-id": "aa:bb", "nb-bits": 16, "alias": "gone"}).ID
	keep := createCredential(t, admin, "rfid-card", map[string]any{"card-id": "aa:bc", "nb-bits": 16}).ID
	_, mapping := addMapping(t, srv, "Always")
	execSQL(t, srv, `INSERT INTO mapping_credentials(mapping_id, credential_id) VALUES (?, ?), (?, ?)`, mapping, id, mapping, keep)

	r := admin.Call("credential.delete", map[string]any{"credential_id": 0})
	want(t, r, int(core.EntityNotFound))
	if string(r.Content) != `{"entity_id":"0","entity_type":"credential"}` {
		t.Errorf("id 0: %s", r.Content)
	}
	want(t, admin.Call("credential.delete", map[string]any{"credential_id": 4242}), int(core.EntityNotFound))
	r = admin.Call("credential.delete", map[string]any{"credential_id": id})
	want(t, r, 0)
	if string(r.Content) != "null" {
		t.Errorf("delete reply %s", r.Content)
	}
	want(t, admin.Call("credential.read", map[string]any{"credential_id": id}), int(core.EntityNotFound))
	if n := count(t, srv, `SELECT COUNT(*) FROM mapping_credentials WHERE credential_id = ?`, id); n != 0 {
		t.Errorf("mapping link left: %d", n)
	}
	if n := count(t, srv, `SELECT COUNT(*) FROM mapping_credentials WHERE credential_id = ?`, keep); n != 1 {
		t.Errorf("other link gone: %d", n)
	}
	// The card id is free again.
	createCredential(t, admin, "rfid-card", map[string]any{"card-id": "aa:bb", "nb-bits": 16})
	rows := auditRows(t, srv, "credential.deleted")
	if len(rows) != 1 || rows[0].EventMask != 1<<11 || rows[0].Before == nil || !strings.Contains(*rows[0].Before, `"alias":"gone"`) ||
		rows[0].TargetID == nil || *rows[0].TargetID != id {
		t.Errorf("delete audit %+v", rows)
	}
}

// TestNoPINLeaks checks that neither a PIN nor its hash appears in any reply, in any column of
// the events table, or in the data published on the bus.
func TestNoPINLeaks(t *testing.T) {
	t.Parallel()
	srv := startDirectory(t)
	mod, _ := srv.App().Module(directory.ModuleID)
	pins := mod.(*directory.Module).PINs()
	sub, err := srv.App().Bus().Subscribe(core.SubscribeOptions{Name: "test", Queue: 1024}, "credential.>")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var mu sync.Mutex
	var published []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case ev := <-sub.C():
				b, _ := json.Marshal(ev.Data)
				mu.Lock()
				published = append(published, string(b))
				mu.Unlock()
			case <-sub.Done():
				return
			}
		}
	}()

	admin := asAdmin(t, srv)
	bobID := addUser(t, srv, "bob", "bob-password", core.RankUser)
	var replies []string
	call := func(typ string, content any) wstest.Reply {
		t.Helper()
		r := admin.Call(typ, content)
		want(t, r, 0)
		replies = append(replies, string(r.Content))
		return r
	}
	secrets := []string{"246813", "135792", "975310", "864201"}
	r := call("credential.create", map[string]any{"credential-type": "pin-code", "attributes": map[string]any{"code": secrets[0], "owner_id": bobID}})
	pinID := decodeObject(t, r).ID
	r = call("credential.create", map[string]any{"credential-type": "rfid-card-pin", "attributes": map[string]any{"card-id": "11:22:33:44", "nb-bits": 32, "code": secrets[1]}})
	bothID := decodeObject(t, r).ID
	call("credential.update", map[string]any{"credential_id": pinID, "attributes": map[string]any{"code": secrets[2]}})
	call("credential.update", map[string]any{"credential_id": bothID, "attributes": map[string]any{"card-id": "11:22:33:45", "code": secrets[3]}})
	call("credential.read", map[string]any{"credential_id": 0})
	call("credential.read", map[string]any{"credential_id": pinID})
	call("user.read", map[string]any{"user_id": bobID})
	call("search.credential_alias", map[string]any{"partial_name": "%"})
	// A refused duplicate must not echo the PIN either.
	r = admin.Call("credential.create", map[string]any{"credential-type": "pin-code", "attributes": map[string]any{"code": secrets[2]}})
	want(t, r, int(core.ModelException))
	replies = append(replies, string(r.Content)+r.StatusString)
	call("credential.delete", map[string]any{"credential_id": pinID})
	call("credential.delete", map[string]any{"credential_id": bothID})

	var forbidden []string
	for _, s := range secrets {
		forbidden = append(forbidden, s, pins.Hash(s))
	}
	forbidden = append(forbidden, pins.HashFor("11:22:33:44", 32, secrets[1]), pins.HashFor("11:22:33:45", 32, secrets[3]))
	var rows []string
	if err := srv.DB().Read.Raw(`SELECT topic || '|' || kind || '|' || author_name || '|' || description || '|' ||
		COALESCE(before, '') || '|' || COALESCE(after, '') || '|' || data FROM events`).Scan(&rows).Error; err != nil {
		t.Fatal(err)
	}
	coretest.Eventually(t, 5*time.Second, func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(published) < 6 {
			return fmt.Errorf("%d credential events published, want 6", len(published))
		}
		return nil
	})
	sub.Close()
	<-done
	for _, where := range []struct {
		name  string
		texts []string
	}{{"reply", replies}, {"events table", rows}, {"bus data", published}} {
		if len(where.texts) == 0 {
			t.Errorf("nothing to check in %s", where.name)
		}
		for _, text := range where.texts {
			for _, f := range forbidden {
				if strings.Contains(text, f) {
					t.Errorf("%s leaks a PIN or hash %q: %s", where.name, f, text)
				}
			}
		}
	}
}
