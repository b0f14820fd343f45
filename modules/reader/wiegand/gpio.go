package wiegand

import (
	"fmt"
	"strings"
)

// DefaultConsumer is the consumer label GPIOSource gives its lines (shown by gpioinfo).
const DefaultConsumer = "gatehouse-wiegand"

// GPIOSource reads a reader's data lines from a Linux GPIO character device (/dev/gpiochipN)
// through the GPIO uAPI (github.com/warthog618/go-gpiocdev). Both lines are requested as inputs
// with edge detection; each edge event becomes an Edge stamped with the kernel's event
// timestamp, converted to the clock of time.Now. On other systems Events fails.
type GPIOSource struct {
	// Chip is the GPIO chip: "gpiochip0" or "/dev/gpiochip0".
	Chip string
	// D0 and D1 are the offsets of the DATA0 and DATA1 lines on the chip.
	D0, D1 int
	// Inverted says the interface hardware inverts the lines (pulses go high, e.g. through an
	// optocoupler): rising edges are detected instead of falling ones.
	Inverted bool
	// PullUp requests the chip's pull-up bias on both lines (Linux 5.5 or later), for readers
	// with open-collector outputs wired without external pull-ups.
	PullUp bool
	// Consumer labels the lines in the kernel (at most 31 bytes); default DefaultConsumer.
	Consumer string
}

// Validate reports whether the options are usable, without touching the hardware: Chip is a
// device name or a /dev path, the offsets are non-negative and distinct, Consumer fits.
func (s GPIOSource) Validate() error {
	name := strings.TrimPrefix(s.Chip, "/dev/")
	if name == "" || strings.Contains(name, "/") {
		return fmt.Errorf("wiegand: gpio chip %q: want a name like gpiochip0 or /dev/gpiochip0", s.Chip)
	}
	if s.D0 < 0 || s.D1 < 0 {
		return fmt.Errorf("wiegand: gpio line offsets D0=%d D1=%d: must not be negative", s.D0, s.D1)
	}
	if s.D0 == s.D1 {
		return fmt.Errorf("wiegand: gpio lines D0 and D1 are both offset %d", s.D0)
	}
	if len(s.Consumer) > 31 {
		return fmt.Errorf("wiegand: gpio consumer %q: longer than 31 bytes", s.Consumer)
	}
	return nil
}

func (s GPIOSource) consumer() string {
	if s.Consumer == "" {
		return DefaultConsumer
	}
	return s.Consumer
}
