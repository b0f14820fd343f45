//go:build !linux

package wiegand

import (
	"context"
	"errors"
	"fmt"
)

// Events fails on this system: the GPIO character device exists only on Linux.
func (s GPIOSource) Events(ctx context.Context) (<-chan Edge, error) {
	if err := s.Validate(); err != nil {
		return nil, err
	}
	return nil, fmt.Errorf("wiegand: gpio source: %w", errors.ErrUnsupported)
}
