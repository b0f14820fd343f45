//go:build !linux

package wiegandreader

import (
	"errors"
	"fmt"

	"gatehouse/modules/hardware"
)

// OpenGPIOOutput fails on this system: the GPIO character device exists only on Linux.
func OpenGPIOOutput(line hardware.Line) (Output, error) {
	return nil, fmt.Errorf("request output %s line %d: %w", line.Chip, line.Offset, errors.ErrUnsupported)
}
