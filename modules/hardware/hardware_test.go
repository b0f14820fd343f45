package hardware_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/google/uuid"

	"gatehouse/core/coretest"
	"gatehouse/modules/wsapi/wstest"
)

// obj is a device as the GUI reads it.
type obj struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	Attributes    map[string]any `json:"attributes"`
	Relationships map[string]struct {
		Data *struct {
			ID   string `json:"id"`
			Type string `json:"type"`
		} `json:"data"`
	} `json:"relationships"`
}

func one(t *testing.T, r wstest.Reply) obj {
	t.Helper()
	if r.StatusCode != 0 {
		t.Fatalf("%s: %d %s %s", r.Type, r.StatusCode, r.StatusString, r.Content)
	}
	var v struct {
		Data obj `json:"data"`
	}
	if err := json.Unmarshal(r.Content, &v); err != nil {
		t.Fatalf("%s: %v in %s", r.Type, err, r.Content)
	}
	if _, err := uuid.Parse(v.Data.ID); err != nil {
		t.Fatalf("%s: id %q is not a UUID", r.Type, v.Data.ID)
	}
	return v.Data
}

func rel(o obj, name string) (id, typ string) {
	r, ok := o.Relationships[name]
	if !ok || r.Data == nil {
		return "", ""
	}
	return r.Data.ID, r.Data.Type
}

// errorOf returns the status and content of a failed call.
func errorOf(t *testing.T, r wstest.Reply, status int) map[string]any {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("%s: status %d %s %s, want %d", r.Type, r.StatusCode, r.StatusString, r.Content, status)
	}
	var c map[string]any
	_ = json.Unmarshal(r.Content, &c)
	return c
}

// TestHardwareCRUDAsTheGUI replays the requests of Leosac's web GUI hardware pages
// (leosac/access-control-web d9a41ad7: lib/libgpiod/app/adapters/libgpiod-gpio.js and its
// serializer forcing the type libgpiod-gpio, lib/libgpiod/addon/models/libgpiod-gpio.js and
// app/models/gpio.js with app/transforms/direction.js; lib/led-buzzer/app/adapters/led.js,
// buzzer.js and addon/models/led.js, buzzer.js; lib/wiegand-reader/app/adapters/wiegand-reader.js,
// addon/models/wiegand-reader.js and app/transforms/mode.js: ids as UUID strings, 0 for an empty
// relationship) and checks the replies against Leosac's shapes (leosac/access-control
// src/hardware/serializers/DeviceSerializer.cpp, GPIOSerializer.cpp, LEDSerializer.cpp,
// src/modules/wiegand/ws/WiegandConfigSerializer.cpp and CRUDHandler.cpp,
// src/modules/led-buzzer/ws/CRUDHandler.cpp, src/hardware/Device.cpp).
func TestHardwareCRUDAsTheGUI(t *testing.T) {
	srv := coretest.Start(t)
	gui := wstest.Dial(t, srv.WSURL)
	gui.Login("admin", coretest.AdminPassword)

	gpio := func(name string, offset int, dir string) obj {
		return one(t, gui.Call("libgpiod.gpio.create", map[string]any{"attributes": map[string]any{
			"name": name, "device-class": nil, "enabled": true, "number": nil, "direction": map[string]int{"in": 0, "out": 1}[dir],
			"default-value": false, "device": "gpiochip0", "offset": offset, "interrupt-mode": "falling"}}))
	}
	high, low, ledLine := gpio("wiegand_data_high", 15, "in"), gpio("wiegand_data_low", 14, "in"), gpio("led_line", 3, "out")
	if high.Type != "libgpiod-gpio" || high.Attributes["device-class"] != float64(1) || high.Attributes["offset"] != float64(15) ||
		high.Attributes["device"] != "gpiochip0" || high.Attributes["direction"] != float64(0) || high.Attributes["interrupt-mode"] != "falling" ||
		high.Attributes["enabled"] != true || high.Attributes["name"] != "wiegand_data_high" {
		t.Errorf("libgpiod.gpio.create: %+v", high)
	}
	if ledLine.Attributes["direction"] != float64(1) {
		t.Errorf("output gpio: %+v", ledLine)
	}

	// led.create as the adapter sends it: the model's attributes plus gpio_id.
	led := one(t, gui.Call("led.create", map[string]any{"attributes": map[string]any{
		"name": "green", "device-class": nil, "enabled": true, "default-blink-duration": 3000, "default-blink-speed": 1000, "gpio_id": ledLine.ID}}))
	if id, typ := rel(led, "gpio"); led.Type != "led" || id != ledLine.ID || typ != "libgpiod-gpio" || led.Attributes["device-class"] != float64(3) ||
		led.Attributes["default-blink-duration"] != float64(3000) || led.Attributes["default-blink-speed"] != float64(1000) {
		t.Errorf("led.create: %+v", led)
	}
	buzzer := one(t, gui.Call("buzzer.create", map[string]any{"attributes": map[string]any{
		"name": "beeper", "enabled": true, "default-blink-duration": 500, "default-blink-speed": 0, "gpio_id": 0}}))
	if id, _ := rel(buzzer, "gpio"); buzzer.Type != "buzzer" || id != "" || buzzer.Attributes["device-class"] != float64(4) {
		t.Errorf("buzzer.create without gpio: %+v", buzzer)
	}

	// The reference's example: wiegand-reader.create with the two data lines.
	reader := one(t, gui.Call("wiegand-reader.create", map[string]any{"attributes": map[string]any{
		"name": "MY_WIEGAND_1", "mode": "SIMPLE_WIEGAND", "gpio_high_id": high.ID, "gpio_low_id": low.ID}}))
	wantAttrs := map[string]any{"name": "MY_WIEGAND_1", "device-class": float64(2), "enabled": true, "mode": "SIMPLE_WIEGAND"}
	if !reflect.DeepEqual(reader.Attributes, wantAttrs) || reader.Type != "wiegand-reader" {
		t.Errorf("wiegand-reader.create: %+v", reader)
	}
	for name, want := range map[string]string{"gpio-high": high.ID, "gpio-low": low.ID, "buzzer": "", "green-led": ""} {
		if _, ok := reader.Relationships[name]; !ok {
			t.Errorf("wiegand-reader: no relationship %s", name)
		}
		if id, _ := rel(reader, name); id != want {
			t.Errorf("wiegand-reader %s: %q, want %q", name, id, want)
		}
	}
	// The GUI's update: every attribute and every relationship id (0 when empty).
	reader = one(t, gui.Call("wiegand-reader.update", map[string]any{"reader_id": reader.ID, "attributes": map[string]any{
		"name": "MY_WIEGAND_1", "device-class": "reader", "enabled": true, "mode": "WIEGAND_CARD_PIN_4BITS",
		"gpio_high_id": high.ID, "gpio_low_id": low.ID, "buzzer_id": buzzer.ID, "green_led_id": led.ID}}))
	if id, typ := rel(reader, "green-led"); id != led.ID || typ != "led" || reader.Attributes["mode"] != "WIEGAND_CARD_PIN_4BITS" {
		t.Errorf("wiegand-reader.update: %+v", reader)
	}
	if id, typ := rel(reader, "buzzer"); id != buzzer.ID || typ != "buzzer" {
		t.Errorf("wiegand-reader.update buzzer: %+v", reader)
	}

	// Reads: one by id, all with 0 (the GUI's findAll).
	if got := one(t, gui.Call("wiegand-reader.read", map[string]any{"reader_id": reader.ID})); got.ID != reader.ID || got.Attributes["mode"] != "WIEGAND_CARD_PIN_4BITS" {
		t.Errorf("wiegand-reader.read: %+v", got)
	}
	r := gui.Call("libgpiod.gpio.read", map[string]any{"gpio_id": 0})
	var all struct {
		Data []obj `json:"data"`
	}
	if err := json.Unmarshal(r.Content, &all); err != nil || len(all.Data) != 3 {
		t.Errorf("libgpiod.gpio.read 0: %v %s", err, r.Content)
	}
	r = gui.Call("led.read", map[string]any{"led_id": 0})
	if err := json.Unmarshal(r.Content, &all); err != nil || len(all.Data) != 1 || all.Data[0].ID != led.ID {
		t.Errorf("led.read 0: %v %s", err, r.Content)
	}

	// Leosac's errors.
	c := errorOf(t, gui.Call("wiegand-reader.create", map[string]any{"attributes": map[string]any{"name": "R2", "mode": "FAST"}}), 11)
	if b, _ := json.Marshal(c); !containsAll(string(b), "data/attributes/mode", "Invalid wiegand-reader mode.") {
		t.Errorf("bad mode: %s", b)
	}
	// Names compare exactly, as Leosac's (another case is another name).
	errorOf(t, gui.Call("led.create", map[string]any{"attributes": map[string]any{"name": "GREEN"}}), 0)
	c = errorOf(t, gui.Call("buzzer.create", map[string]any{"attributes": map[string]any{"name": "green"}}), 11)
	if b, _ := json.Marshal(c); !containsAll(string(b), "data/attributes/name", "Device name already used") {
		t.Errorf("duplicate name: %s", b)
	}
	c = errorOf(t, gui.Call("led.create", map[string]any{"attributes": map[string]any{"name": ""}}), 11)
	if b, _ := json.Marshal(c); !containsAll(string(b), "Device name must be non empty") {
		t.Errorf("empty name: %s", b)
	}
	missing := uuid.NewString()
	for _, nf := range []struct {
		typ     string
		content map[string]any
		entity  string
	}{
		{"wiegand-reader.read", map[string]any{"reader_id": missing}, "wiegand-reader"},
		{"led.update", map[string]any{"led_id": missing, "attributes": map[string]any{}}, "led"},
		{"buzzer.delete", map[string]any{"buzzer_id": missing}, "buzzer"},
		{"libgpiod.gpio.read", map[string]any{"gpio_id": missing}, "libgpiod.gpio"},
		{"led.read", map[string]any{"led_id": buzzer.ID}, "led"}, // a buzzer is not an LED
		{"wiegand-reader.update", map[string]any{"reader_id": reader.ID, "attributes": map[string]any{"green_led_id": missing}}, "led"},
	} {
		c := errorOf(t, gui.Call(nf.typ, nf.content), 8)
		if c["entity_type"] != nf.entity {
			t.Errorf("%s: %v, want entity_type %s", nf.typ, c, nf.entity)
		}
	}
	errorOf(t, gui.Call("led.read", map[string]any{"led_id": 12}), 1) // "Failed to unserialize UUID"
	errorOf(t, gui.Call("led.update", map[string]any{"led_id": led.ID, "attributes": map[string]any{"default-blink-duration": 20000}}), 11)

	// Deleting a GPIO leaves the devices that used it without one.
	if r := gui.Call("libgpiod.gpio.delete", map[string]any{"gpio_id": high.ID}); r.StatusCode != 0 || string(r.Content) != "null" {
		t.Errorf("libgpiod.gpio.delete: %d %s", r.StatusCode, r.Content)
	}
	got := one(t, gui.Call("wiegand-reader.read", map[string]any{"reader_id": reader.ID}))
	if id, _ := rel(got, "gpio-high"); id != "" {
		t.Errorf("after deleting its gpio, gpio-high is %q", id)
	}
	if id, _ := rel(got, "gpio-low"); id != low.ID {
		t.Errorf("gpio-low lost: %q", id)
	}

	// Administrators only, as Leosac's HARDWARE_* rights.
	viewer := wstest.Dial(t, srv.WSURL)
	errorOf(t, gui.Call("user.create", map[string]any{"attributes": map[string]any{"username": "watcher", "password": "watcher-password-1", "rank": 3}}), 0)
	viewer.Login("watcher", "watcher-password-1")
	for _, typ := range []string{"wiegand-reader.read", "led.read", "buzzer.read", "libgpiod.gpio.read"} {
		if r := viewer.Call(typ, map[string]any{}); r.StatusCode != 2 {
			t.Errorf("%s as a supervisor: %d", typ, r.StatusCode)
		}
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}
