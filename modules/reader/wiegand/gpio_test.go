package wiegand_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"gatehouse/modules/reader/wiegand"
)

func TestGPIOSourceValidate(t *testing.T) {
	tests := []struct {
		name string
		src  wiegand.GPIOSource
		ok   bool
	}{
		{"chip name", wiegand.GPIOSource{Chip: "gpiochip0", D0: 17, D1: 18}, true},
		{"dev path", wiegand.GPIOSource{Chip: "/dev/gpiochip2", D0: 0, D1: 1}, true},
		{"all options", wiegand.GPIOSource{Chip: "gpiochip0", D0: 5, D1: 6, Inverted: true, PullUp: true, Consumer: "door-1"}, true},
		{"no chip", wiegand.GPIOSource{D0: 0, D1: 1}, false},
		{"other path", wiegand.GPIOSource{Chip: "/sys/class/gpio/gpiochip0", D0: 0, D1: 1}, false},
		{"bare /dev/", wiegand.GPIOSource{Chip: "/dev/", D0: 0, D1: 1}, false},
		{"negative D0", wiegand.GPIOSource{Chip: "gpiochip0", D0: -1, D1: 1}, false},
		{"negative D1", wiegand.GPIOSource{Chip: "gpiochip0", D0: 1, D1: -2}, false},
		{"same line", wiegand.GPIOSource{Chip: "gpiochip0", D0: 4, D1: 4}, false},
		{"long consumer", wiegand.GPIOSource{Chip: "gpiochip0", D0: 0, D1: 1, Consumer: strings.Repeat("x", 32)}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.src.Validate()
			if (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
			if !tc.ok {
				if _, err := tc.src.Events(t.Context()); err == nil {
					t.Fatal("Events accepted invalid options")
				}
			}
		})
	}
}

func TestGPIOSourceMissingChip(t *testing.T) {
	const chip = "/dev/gpiochip987"
	if _, err := os.Stat(chip); err == nil {
		t.Skipf("%s exists on this machine", chip)
	}
	ch, err := wiegand.GPIOSource{Chip: chip, D0: 0, D1: 1}.Events(t.Context())
	if err == nil || ch != nil {
		t.Fatalf("Events on a missing chip = %v, %v", ch, err)
	}
	if !strings.Contains(err.Error(), "gpiochip987") {
		t.Fatalf("error does not name the chip: %v", err)
	}
	d, err := wiegand.NewDecoder(wiegand.Config{}, wiegand.AssemblerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := wiegand.Run(t.Context(), wiegand.GPIOSource{Chip: chip, D0: 0, D1: 1}, d, nil, nil); err == nil {
		t.Fatal("Run started on a missing chip")
	}
}

// TestGPIOSourceHardware requests real lines. It needs a GPIO character device and
// WIEGAND_TEST_GPIO=chip:d0:d1 naming two free lines (e.g. gpiochip0:17:18); pulses on them
// during the test's two seconds are logged.
func TestGPIOSourceHardware(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("GPIO hardware test skipped: the GPIO character device is Linux only")
	}
	chips, _ := filepath.Glob("/dev/gpiochip*")
	if len(chips) == 0 {
		t.Skip("GPIO hardware test skipped: no /dev/gpiochip* on this machine")
	}
	spec := os.Getenv("WIEGAND_TEST_GPIO")
	parts := strings.Split(spec, ":")
	if len(parts) != 3 {
		t.Skipf("GPIO hardware test skipped: set WIEGAND_TEST_GPIO=chip:d0:d1 (chips here: %v)", chips)
	}
	d0, err0 := strconv.Atoi(parts[1])
	d1, err1 := strconv.Atoi(parts[2])
	if err0 != nil || err1 != nil {
		t.Fatalf("WIEGAND_TEST_GPIO=%q: offsets must be integers", spec)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
	defer cancel()
	ch, err := wiegand.GPIOSource{Chip: parts[0], D0: d0, D1: d1}.Events(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for e := range ch { // closed once ctx is done and the lines are released
		n++
		t.Logf("%v at %v lost=%v", e.Line, e.Time.Format(time.StampMicro), e.Lost)
	}
	t.Logf("%d edges", n)
}
