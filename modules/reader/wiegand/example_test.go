package wiegand_test

import (
	"fmt"
	"time"

	"gatehouse/modules/reader/wiegand"
)

func ExampleDecode() {
	bits, _ := wiegand.Encode(wiegand.FormatH10301, 18, 44255)
	f, _ := wiegand.Decode(bits)
	fmt.Println(f.Card, f.NBits(), f.Format, f.Facility, f.Number, f.BadParity)
	// Output: 09:56:6f:80 26 H10301 18 44255 false
}

func ExampleReader() {
	r, _ := wiegand.NewReader(wiegand.Config{Mode: wiegand.ModeCardPIN4})
	now := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)

	card, _ := wiegand.Decode(encode(wiegand.FormatH10301, 18, 44255))
	r.Frame(card, now)
	for i, k := range []wiegand.Key("1234#") {
		bits, _ := wiegand.EncodeKey4(k)
		key, _ := wiegand.Decode(bits)
		reads, _ := r.Frame(key, now.Add(time.Duration(i+1)*300*time.Millisecond))
		for _, rd := range reads {
			fmt.Println(rd.Kind, rd.Card, rd.Bits, rd.PIN)
		}
	}
	// Output: card+pin 09:56:6f:80 26 1234
}

func ExampleDecoder() {
	d, _ := wiegand.NewDecoder(wiegand.Config{}, wiegand.AssemblerConfig{})
	start := time.Date(2026, 1, 1, 8, 0, 0, 0, time.UTC)
	bits, _ := wiegand.Encode(wiegand.FormatH10304, 1234, 56789)
	for _, e := range wiegand.PulseTrain(bits, start, 2*time.Millisecond) {
		d.Edge(e)
	}
	deadline, _ := d.Deadline() // 25 ms after the last pulse
	reads, _ := d.Tick(deadline)
	fmt.Println(reads[0].Kind, reads[0].Card, reads[0].Bits, reads[0].Facility, reads[0].Number)
	// Output: card 82:69:0d:dd:50 37 1234 56789
}
