// Package door is the per-door state machine of the doorman module: strike control on grants,
// operator opens and exit requests, door-contact supervision (opened, closed, forced, held
// open) and door and site modes.
//
// It is a pure library. A Door has no goroutines, does no I/O and never reads the clock:
// every input carries the time it happened, every output is returned as a value, so the same
// inputs always give the same outputs. The caller (the doorman module) feeds it inputs from
// the bus, the access engine and the hardware or simulator, drives the strike actuator from
// the StrikeRelease and StrikeLock effects, publishes the Event effects as
// door.<id>.<Topic>, and arms one timer at NextDeadline to call Tick.
//
// # Rules
//
// The behaviour below is deliberate; tests pin each rule.
//
//   - Strike. In door mode normal the strike is locked except during a release window. A
//     Grant, an OpenMomentarily and an ExitRequest each open (or extend) a window of
//     Config.StrikeDuration. In door mode unlocked, and in site mode evacuation, the strike is
//     released until further notice. Strike commands are edge-triggered: an effect is emitted
//     only when the desired actuator state changes, and a StrikeRelease is repeated when its
//     end moves (a second grant extends the window), so a controller that pulses the strike
//     for Until-now stays correct.
//
//   - Relock on close. When the door closes during a release window the strike locks at once,
//     instead of at the window's end, as most controllers do: one grant admits one passage, and
//     the door is not left unlocked behind the person who just went through. A window opened
//     after the door physically closed (a grant arriving while a close is still being
//     debounced) is kept.
//
//   - Locked door mode refuses grants (ErrDoorLocked, the engine's reason door_locked). An
//     OpenMomentarily is still honoured: it is an authenticated, audited operator override of
//     a per-door setting the operator could equally change, and it avoids "unlock, forget to
//     relock". Exit requests always release.
//
//   - Lockdown (site mode) locks every door: grants and operator opens are refused
//     (ErrLockdown), and windows opened by them are cut short when lockdown starts. Exit
//     requests still release, and a running exit window is not cut short: egress must stay
//     possible in every mode (fire codes require free egress; a lockdown keeps people out,
//     it must not trap them in).
//
//   - Evacuation (site mode) releases every door regardless of its own mode. Leaving lockdown
//     or evacuation returns each door to its own mode. In general a release window survives a
//     mode change only if its cause would be accepted in the new mode.
//
//   - Opened and forced. Every debounced opening emits "opened" with the flags granted,
//     manual and exit telling which release windows covered it (several may), and forced. An
//     opening while the strike is locked and no window is running is forced: "opened" (with
//     forced true) is followed by "forced", and the forced alarm stays (State.Forced) until
//     the door closes, whatever happens to modes meanwhile. "forced" is never emitted while
//     the effective mode is unlocked or evacuation. A door that opens within a window and
//     stays open past it is not forced.
//
//   - Held open. A door still open Config.HeldOpenAfter after it opened gets one "held_open"
//     per opening; "closed" clears it (closed reports forced and held_open so a log shows
//     which alarms ended). While the effective mode releases the strike (unlocked,
//     evacuation) an open door is expected and held-open supervision is suspended; when the
//     door is secured again with the door still open, the held-open delay restarts from that
//     moment.
//
//   - Debounce. A contact state counts only once it has been stable for Config.Debounce; a
//     flapping contact produces no event at all, a real change produces exactly one. Events
//     are stamped (Effect.At) with the instant the contact first changed, and durations are
//     measured between those instants. An opening counts as covered by a window (not forced)
//     if the strike was released at any instant between the first change and its
//     confirmation.
//
//   - A door without a contact sensor never reports opened, closed, forced or held_open;
//     its windows simply run to their end. A door without an exit button refuses ExitRequest
//     (ErrNoExitButton).
//
//   - Time. A Door keeps the latest time it has seen. An input stamped earlier is processed
//     as if it happened at that latest time, and a Tick from the past does nothing, so a
//     clock step backwards can neither panic nor undo state. Tick is idempotent. Deadlines
//     that passed before an input are processed, in time order and at their own times, before
//     the input itself, so the effects do not depend on how promptly Tick is called.
//
// # Concurrency
//
// A Door is not safe for concurrent use; the caller serialises calls (one goroutine per door,
// or a mutex).
package door
