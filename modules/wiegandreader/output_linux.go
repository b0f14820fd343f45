//go:build linux

package wiegandreader

import (
	"fmt"

	"github.com/warthog618/go-gpiocdev"

	"gatehouse/modules/hardware"
)

// gpioOutput is an output line of a Linux GPIO chip.
type gpioOutput struct {
	line *gpiocdev.Line
}

// OpenGPIOOutput requests line as an output through the GPIO character device (off at first,
// honouring active-low).
func OpenGPIOOutput(line hardware.Line) (Output, error) {
	opts := []gpiocdev.LineReqOption{gpiocdev.WithConsumer("gatehouse-feedback"), gpiocdev.AsOutput(0)}
	if line.ActiveLow {
		opts = append(opts, gpiocdev.AsActiveLow)
	}
	l, err := gpiocdev.RequestLine(line.Chip, line.Offset, opts...)
	if err != nil {
		return nil, fmt.Errorf("request output %s line %d (%s): %w", line.Chip, line.Offset, line.Name, err)
	}
	return gpioOutput{line: l}, nil
}

// Set drives the line active (on) or inactive.
func (g gpioOutput) Set(on bool) error {
	v := 0
	if on {
		v = 1
	}
	return g.line.SetValue(v)
}

// Close releases the line.
func (g gpioOutput) Close() error { return g.line.Close() }
