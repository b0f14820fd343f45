// Package simulator is the module of virtual hardware (contract §11): readers, strikes, door
// contacts and exit buttons that exist only in software, so that a site can be commissioned,
// demonstrated and tested without devices. reader.simulate presents a card, a PIN or both at a
// door or reader and runs the real access path (engine, event log, doorman); door.simulate
// opens or closes a door's contact or presses its exit button. With WalkThrough, a granted door
// is opened and closed again a moment later, as if someone went through.
package simulator

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/doorman"
	"gatehouse/modules/engine"
	"gatehouse/modules/resource"
)

// ModuleID is the simulator module's ID.
const ModuleID = "simulator"

// Info declares the module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Module is the simulator.
type Module struct {
	// WalkThrough opens a door shortly after a simulated grant and closes it again, as a person
	// walking through would. Default false (tests drive the contact themselves).
	WalkThrough bool `json:"walk_through"`
	// WalkDelay and WalkDuration time the simulated passage. Defaults 300ms and 1.5s.
	WalkDelay    core.Duration `json:"walk_delay"`
	WalkDuration core.Duration `json:"walk_duration"`

	log     zerolog.Logger
	doorman *doorman.Module

	mu      sync.Mutex
	strikes map[int64]strike
	ctx     context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
}

type strike struct {
	Released bool
	Until    time.Time
}

var (
	_ core.Provisioner  = (*Module)(nil)
	_ core.Runner       = (*Module)(nil)
	_ doorman.Actuator  = (*Module)(nil)
	_ core.CleanerUpper = (*Module)(nil)
)

// ApplyDefaults implements core.Defaulter: it fills every zero setting with its default.
func (m *Module) ApplyDefaults() {
	if m.WalkDelay <= 0 {
		m.WalkDelay = core.Duration(300 * time.Millisecond)
	}
	if m.WalkDuration <= 0 {
		m.WalkDuration = core.Duration(1500 * time.Millisecond)
	}
}

// Provision installs the simulator as the doorman's actuator and registers its calls.
func (m *Module) Provision(ctx *core.Context) error {
	mod, ok := ctx.Module(doorman.ModuleID)
	if !ok {
		return fmt.Errorf("the %q module must be loaded before %q", doorman.ModuleID, ModuleID)
	}
	m.doorman = mod.(*doorman.Module)
	m.doorman.SetActuator(m)
	m.ApplyDefaults()
	m.log = ctx.Logger
	m.strikes = map[int64]strike{}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	ctx.Methods().Register(
		core.Method{Type: "reader.simulate", Handler: m.readerSimulate},
		core.Method{Type: "door.simulate", Handler: m.doorSimulate},
	)
	return nil
}

// Run waits for ctx, then ends the simulated passages in progress.
func (m *Module) Run(ctx context.Context) error {
	<-ctx.Done()
	m.cancel()
	m.wg.Wait()
	return nil
}

// Cleanup ends the simulated passages (also after a failed start).
func (m *Module) Cleanup() error {
	if m.cancel != nil {
		m.cancel()
		m.wg.Wait()
	}
	return nil
}

// Strike implements doorman.Actuator: the virtual strike follows the command.
func (m *Module) Strike(doorID int64, released bool, until time.Time) {
	m.mu.Lock()
	m.strikes[doorID] = strike{Released: released, Until: until}
	m.mu.Unlock()
}

// Released reports whether the virtual strike of a door is released.
func (m *Module) Released(doorID int64) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.strikes[doorID].Released
}

var cardPattern = regexp.MustCompile(`^[0-9a-fA-F]{2}(:[0-9a-fA-F]{2})*$`)

type simulateRequest struct {
	DoorID   int64  `json:"door_id"`
	ReaderID int64  `json:"reader_id"`
	CardID   string `json:"card_id"`
	NbBits   int    `json:"nb_bits"`
	PIN      string `json:"pin"`
}

// readerSimulate presents a credential (administrators only): {"door_id"} or {"reader_id"},
// plus "card_id" and "nb_bits" and/or "pin". It answers {"granted", "reason", "seq"} where seq
// is the access event's. An empty content answers INVALID_ARGUMENT, so clients can probe for it.
func (m *Module) readerSimulate(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireAdmin(call.Caller); err != nil {
		return nil, err
	}
	var req simulateRequest
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	if req.DoorID == 0 && req.ReaderID == 0 {
		return nil, core.E(core.InvalidArgument, "door_id or reader_id is required", nil)
	}
	if req.CardID == "" && req.PIN == "" {
		return nil, core.E(core.InvalidArgument, "card_id (with nb_bits) or pin is required", nil)
	}
	r := engine.Request{DoorID: req.DoorID, ReaderID: req.ReaderID}
	if req.CardID != "" {
		if !cardPattern.MatchString(req.CardID) {
			return nil, core.E(core.InvalidArgument, "card_id: want hex bytes like aa:bb:cc:dd", nil)
		}
		if req.NbBits < 1 || req.NbBits > 128 || (req.NbBits+7)/8 != (len(req.CardID)+1)/3 {
			return nil, core.E(core.InvalidArgument, "nb_bits: must be 1..128 and match the card_id's bytes", nil)
		}
		r.CardID, r.NbBits = strings.ToLower(req.CardID), req.NbBits
	}
	if req.PIN != "" {
		if len(req.PIN) > 12 || strings.Trim(req.PIN, "0123456789") != "" {
			return nil, core.E(core.InvalidArgument, "pin: digits only, at most 12", nil)
		}
		r.PIN = req.PIN
	}
	dec, seq, err := m.doorman.Present(ctx, r)
	if err != nil {
		return nil, err
	}
	if dec.Granted && m.WalkThrough && dec.DoorID != 0 {
		m.walk(dec.DoorID)
	}
	return map[string]any{"granted": dec.Granted, "reason": dec.Reason, "seq": seq, "door_id": dec.DoorID}, nil
}

// walk opens the door's contact after WalkDelay and closes it WalkDuration later.
func (m *Module) walk(doorID int64) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		for i, d := range []time.Duration{m.WalkDelay.D(), m.WalkDuration.D()} {
			select {
			case <-m.ctx.Done():
				return
			case <-time.After(d):
			}
			if err := m.doorman.Contact(m.ctx, doorID, i == 0); err != nil && m.ctx.Err() == nil {
				m.log.Warn().Err(err).Int64("door_id", doorID).Msg("simulated passage")
			}
		}
	}()
}

// doorSimulate drives a door's virtual sensors (administrators only): {"door_id", "contact":
// "open" | "closed"} or {"door_id", "exit": true}.
func (m *Module) doorSimulate(ctx context.Context, call *core.Call) (any, error) {
	if err := resource.RequireAdmin(call.Caller); err != nil {
		return nil, err
	}
	var req struct {
		DoorID  int64  `json:"door_id"`
		Contact string `json:"contact"`
		Exit    bool   `json:"exit"`
	}
	if err := call.Decode(&req); err != nil {
		return nil, err
	}
	switch {
	case req.Exit:
		if err := m.doorman.ExitRequest(ctx, req.DoorID); err != nil {
			return nil, err
		}
	case req.Contact == "open" || req.Contact == "closed":
		if err := m.doorman.Contact(ctx, req.DoorID, req.Contact == "open"); err != nil {
			return nil, err
		}
	default:
		return nil, core.E(core.InvalidArgument, `want "contact": "open" | "closed", or "exit": true`, nil)
	}
	st, _ := m.doorman.State(req.DoorID)
	return map[string]any{"state": st}, nil
}
