package wiegandreader_test

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"gatehouse/core/coretest"
	"gatehouse/modules/hardware"
	"gatehouse/modules/reader/wiegand"
	"gatehouse/modules/wiegandreader"
	"gatehouse/modules/wsapi/wstest"
)

func mustCall(t *testing.T, c *wstest.Client, typ string, content any) json.RawMessage {
	t.Helper()
	r := c.Call(typ, content)
	if r.StatusCode != 0 {
		t.Fatalf("%s: %d %s %s", typ, r.StatusCode, r.StatusString, r.Content)
	}
	return r.Content
}

func idOf(t *testing.T, raw json.RawMessage) int64 {
	t.Helper()
	var v struct {
		Data struct{ ID int64 } `json:"data"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.Data.ID == 0 {
		t.Fatalf("no id in %s", raw)
	}
	return v.Data.ID
}

// TestWiegandReadOpensTheDoor drives a reader with a synthetic pulse train of an H10301 card
// (facility 42, number 1001) and expects the access path to grant it at the reader's door;
// then a train with a parity error is denied as bad_read.
func TestWiegandReadOpensTheDoor(t *testing.T) {
	srv := coretest.Start(t, coretest.WithModuleConfig("wiegand", `{"retry_interval": "1h"}`))
	mod, _ := srv.App().Module(wiegandreader.ModuleID)
	m := mod.(*wiegandreader.Module)

	bits, err := wiegand.Encode(wiegand.FormatH10301, 42, 1001)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := wiegand.Decode(bits)
	if err != nil {
		t.Fatal(err)
	}
	bad := append([]bool(nil), bits...)
	bad[len(bad)-1] = !bad[len(bad)-1] // break the odd parity
	train := wiegand.PulseTrain(bits, time.Now(), 2*time.Millisecond)
	train = append(train, wiegand.PulseTrain(bad, time.Now().Add(500*time.Millisecond), 2*time.Millisecond)...)
	m.SetSource(func(int64, wiegandreader.ReaderConfig) wiegand.Source { return &wiegand.PulseSource{Edges: train} })

	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	ap := idOf(t, mustCall(t, admin, "access_point.create", map[string]any{"attributes": map[string]any{"alias": "reader", "controller-module": "simulator"}}))
	door := idOf(t, mustCall(t, admin, "door.create", map[string]any{"attributes": map[string]any{"alias": "Gate", "access_point_id": ap}}))
	uid := idOf(t, mustCall(t, admin, "user.create", map[string]any{"attributes": map[string]any{"username": "carol"}}))
	mustCall(t, admin, "credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": map[string]any{"alias": "carol", "owner_id": uid, "card-id": frame.Card, "nb-bits": 26}})
	var frames []map[string]any
	for d := range 7 {
		frames = append(frames, map[string]any{"day": d, "start-time": "00:00", "end-time": "23:59"})
	}
	sid := idOf(t, mustCall(t, admin, "schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "timeframes": frames}}))
	mustCall(t, admin, "schedule.update", map[string]any{"schedule_id": sid, "attributes": map[string]any{},
		"mapping": []map[string]any{{"users": []int64{uid}, "doors": []int64{door}}}})
	mustCall(t, admin, "events.subscribe", map[string]any{"topics": []string{"access.*"}})

	// Turning the access point into a Wiegand reader starts it.
	mustCall(t, admin, "access_point.update", map[string]any{"access_point_id": ap,
		"attributes": map[string]any{"controller-module": "wiegand", "config": map[string]any{"chip": "gpiochip0", "d0": 1, "d1": 2}}})
	for i, want := range []struct {
		topic, reason string
	}{{"access.granted", "granted"}, {"access.denied", "bad_read"}} {
		p := admin.ExpectPush("event", 10*time.Second)
		var e struct {
			Topic string         `json:"topic"`
			Data  map[string]any `json:"data"`
		}
		p.Decode(t, &e)
		if e.Topic != want.topic || e.Data["reason"] != want.reason || int64(e.Data["reader_id"].(float64)) != ap ||
			int64(e.Data["door_id"].(float64)) != door {
			t.Errorf("read %d: %s %v, want %s %s", i, e.Topic, e.Data, want.topic, want.reason)
		}
	}
}

// hwID creates a hardware device as Leosac's GUI does and returns its UUID.
func hwID(t *testing.T, c *wstest.Client, typ string, attrs map[string]any) string {
	t.Helper()
	var v struct {
		Data struct{ ID string } `json:"data"`
	}
	if err := json.Unmarshal(mustCall(t, c, typ, map[string]any{"attributes": attrs}), &v); err != nil || v.Data.ID == "" {
		t.Fatalf("%s: no id", typ)
	}
	return v.Data.ID
}

// TestGUIWiegandReaderReadsAndGivesFeedback configures a reader the way Leosac's web GUI does
// (leosac/access-control-web d9a41ad7: lib/libgpiod/app/adapters/libgpiod-gpio.js,
// lib/led-buzzer/app/adapters/led.js and buzzer.js, lib/wiegand-reader/app/adapters/wiegand-reader.js;
// shapes from leosac/access-control src/modules/wiegand/ws/ and src/modules/led-buzzer/ws/):
// libgpiod GPIOs for DATA1, DATA0, an LED and a buzzer, a green LED, a buzzer and a
// wiegand-reader naming them. An access point driven by the wiegand module whose config names
// the reader ({"reader": "<uuid>"}) reads on the reader's lines, and its reads go through the
// real access path: a granted card lights the green LED (one pulse, for the strike duration),
// a denied read sounds the buzzer and leaves the LED alone.
func TestGUIWiegandReaderReadsAndGivesFeedback(t *testing.T) {
	srv := coretest.Start(t, coretest.WithModuleConfig("wiegand", `{"retry_interval": "1h"}`),
		coretest.WithModuleConfig("doorman", `{"strike_duration": "200ms"}`))
	mod, _ := srv.App().Module(wiegandreader.ModuleID)
	m := mod.(*wiegandreader.Module)

	bits, err := wiegand.Encode(wiegand.FormatH10301, 42, 1001)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := wiegand.Decode(bits)
	if err != nil {
		t.Fatal(err)
	}
	other, err := wiegand.Encode(wiegand.FormatH10301, 42, 1002) // a card nobody owns
	if err != nil {
		t.Fatal(err)
	}
	train := wiegand.PulseTrain(bits, time.Now(), 2*time.Millisecond)
	train = append(train, wiegand.PulseTrain(other, time.Now().Add(500*time.Millisecond), 2*time.Millisecond)...)
	wiring := make(chan wiegandreader.ReaderConfig, 4)
	m.SetSource(func(_ int64, cfg wiegandreader.ReaderConfig) wiegand.Source {
		select {
		case wiring <- cfg:
		default:
		}
		return &wiegand.PulseSource{Edges: train}
	})
	var mu sync.Mutex
	outputs := map[string]*wiegandreader.Recorder{}
	m.SetOutput(func(l hardware.Line) (wiegandreader.Output, error) {
		mu.Lock()
		defer mu.Unlock()
		r := &wiegandreader.Recorder{}
		outputs[fmt.Sprintf("%s/%s/%d", l.Name, l.Chip, l.Offset)] = r
		return r, nil
	})
	recorder := func(key string) *wiegandreader.Recorder {
		mu.Lock()
		defer mu.Unlock()
		return outputs[key]
	}

	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	gpio := func(name string, offset int, direction int) string {
		return hwID(t, admin, "libgpiod.gpio.create", map[string]any{"name": name, "device-class": nil, "enabled": true,
			"number": nil, "direction": direction, "default-value": false, "device": "gpiochip1", "offset": offset, "interrupt-mode": "falling"})
	}
	high, low := gpio("wiegand_data_high", 15, 0), gpio("wiegand_data_low", 14, 0)
	ledLine, buzzerLine := gpio("led_line", 3, 1), gpio("buzzer_line", 4, 1)
	led := hwID(t, admin, "led.create", map[string]any{"name": "green_led", "enabled": true,
		"default-blink-duration": 3000, "default-blink-speed": 1000, "gpio_id": ledLine})
	buzzer := hwID(t, admin, "buzzer.create", map[string]any{"name": "buzzer", "enabled": true,
		"default-blink-duration": 300, "default-blink-speed": 100, "gpio_id": buzzerLine})
	reader := hwID(t, admin, "wiegand-reader.create", map[string]any{"name": "MY_WIEGAND_1", "mode": "SIMPLE_WIEGAND",
		"gpio_high_id": high, "gpio_low_id": low, "buzzer_id": buzzer, "green_led_id": led})

	ap := idOf(t, mustCall(t, admin, "access_point.create", map[string]any{"attributes": map[string]any{"alias": "front reader", "controller-module": "simulator"}}))
	door := idOf(t, mustCall(t, admin, "door.create", map[string]any{"attributes": map[string]any{"alias": "Gate", "access_point_id": ap}}))
	uid := idOf(t, mustCall(t, admin, "user.create", map[string]any{"attributes": map[string]any{"username": "carol"}}))
	mustCall(t, admin, "credential.create", map[string]any{"credential-type": "rfid-card",
		"attributes": map[string]any{"alias": "carol", "owner_id": uid, "card-id": frame.Card, "nb-bits": 26}})
	var frames []map[string]any
	for d := range 7 {
		frames = append(frames, map[string]any{"day": d, "start-time": "00:00", "end-time": "23:59"})
	}
	sid := idOf(t, mustCall(t, admin, "schedule.create", map[string]any{"attributes": map[string]any{"name": "always", "timeframes": frames}}))
	mustCall(t, admin, "schedule.update", map[string]any{"schedule_id": sid, "attributes": map[string]any{},
		"mapping": []map[string]any{{"users": []int64{uid}, "doors": []int64{door}}}})
	mustCall(t, admin, "events.subscribe", map[string]any{"topics": []string{"access.*"}})

	// The access point becomes the GUI's Wiegand reader.
	mustCall(t, admin, "access_point.update", map[string]any{"access_point_id": ap,
		"attributes": map[string]any{"controller-module": "wiegand", "config": map[string]any{"reader": reader}}})
	select {
	case cfg := <-wiring:
		if cfg.Chip != "gpiochip1" || cfg.D0 != 14 || cfg.D1 != 15 || cfg.Mode != "SIMPLE_WIEGAND" || cfg.Reader != reader {
			t.Errorf("the reader runs with %+v, want the GUI's lines", cfg)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the reader did not start")
	}
	for i, want := range []struct {
		topic, reason string
	}{{"access.granted", "granted"}, {"access.denied", "unknown_credential"}} {
		p := admin.ExpectPush("event", 10*time.Second)
		var e struct {
			Topic string         `json:"topic"`
			Data  map[string]any `json:"data"`
		}
		p.Decode(t, &e)
		if e.Topic != want.topic || e.Data["reason"] != want.reason || int64(e.Data["reader_id"].(float64)) != ap ||
			int64(e.Data["door_id"].(float64)) != door {
			t.Errorf("read %d: %s %v, want %s %s", i, e.Topic, e.Data, want.topic, want.reason)
		}
	}
	// The feedback: one green LED pulse for the grant, the buzzer's blinks for the denial.
	greenKey, buzzerKey := "led_line/gpiochip1/3", "buzzer_line/gpiochip1/4"
	coretest.Eventually(t, 10*time.Second, func() error {
		g, b := recorder(greenKey), recorder(buzzerKey)
		if g == nil || b == nil {
			return fmt.Errorf("outputs opened: %v", outputs)
		}
		if g.Pulses() != 1 || b.Pulses() < 1 {
			return fmt.Errorf("green LED %v, buzzer %v", g.Values(), b.Values())
		}
		if v := b.Values(); v[len(v)-1] {
			return fmt.Errorf("buzzer still on: %v", v)
		}
		return nil
	})
	if v := recorder(greenKey).Values(); !v[0] || v[len(v)-1] {
		t.Errorf("green LED: %v, want on then off", v)
	}
}

// TestGUIWiegandReaderInAnUndecodedMode: a reader whose mode the decoder does not support
// (Leosac's buffered PIN modes are stored but not decoded) does not run, and releases the
// feedback lines it opened.
func TestGUIWiegandReaderInAnUndecodedMode(t *testing.T) {
	srv := coretest.Start(t, coretest.WithModuleConfig("wiegand", `{"retry_interval": "1h"}`))
	mod, _ := srv.App().Module(wiegandreader.ModuleID)
	m := mod.(*wiegandreader.Module)
	started := make(chan struct{}, 1)
	m.SetSource(func(int64, wiegandreader.ReaderConfig) wiegand.Source {
		select {
		case started <- struct{}{}:
		default:
		}
		return &wiegand.PulseSource{}
	})
	opened := make(chan *wiegandreader.Recorder, 1)
	m.SetOutput(func(hardware.Line) (wiegandreader.Output, error) {
		r := &wiegandreader.Recorder{}
		select {
		case opened <- r:
		default:
		}
		return r, nil
	})
	admin := wstest.Dial(t, srv.WSURL)
	admin.Login("admin", coretest.AdminPassword)
	gpio := func(name string, offset, direction int) string {
		return hwID(t, admin, "libgpiod.gpio.create", map[string]any{"name": name, "direction": direction, "device": "gpiochip0", "offset": offset})
	}
	high, low, out := gpio("d1", 1, 0), gpio("d0", 2, 0), gpio("led_line", 3, 1)
	led := hwID(t, admin, "led.create", map[string]any{"name": "green_led", "gpio_id": out})
	reader := hwID(t, admin, "wiegand-reader.create", map[string]any{"name": "buffered", "mode": "WIEGAND_PIN_BUFFERED",
		"gpio_high_id": high, "gpio_low_id": low, "green_led_id": led})
	mustCall(t, admin, "access_point.create", map[string]any{"attributes": map[string]any{"alias": "r", "controller-module": "wiegand",
		"config": map[string]any{"reader": reader}}})
	var r *wiegandreader.Recorder
	select {
	case r = <-opened:
	case <-time.After(10 * time.Second):
		t.Fatal("the LED output was not opened")
	}
	coretest.Eventually(t, 10*time.Second, func() error {
		if !r.Closed() {
			return fmt.Errorf("the LED output is still held")
		}
		return nil
	})
	select {
	case <-started:
		t.Error("a reader in an undecoded mode started reading")
	default:
	}
}
