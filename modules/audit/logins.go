package audit

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/auth"
	"gatehouse/modules/eventlog"
)

// Tuning of the login recorder.
const (
	// loginQueue is the capacity of the bus subscription.
	loginQueue = 4096
	// loginBatch is the most login events written in one transaction.
	loginBatch = 200
	// loginWindow is how long the first login event of a batch waits for others.
	loginWindow = 50 * time.Millisecond
	// loginBacklog bounds the events received and not yet written (a database stalled during
	// a login flood); beyond it, events are dropped and the drop is logged.
	loginBacklog = 100_000
	// loginWriteTimeout bounds the write of one batch, and the final writes when stopping.
	loginWriteTimeout = 10 * time.Second
	// maxShownUsername is how much of an attempted username a description shows.
	maxShownUsername = 64
)

// loginRecorder writes the auth module's login events ("auth.login", "auth.failed", Source
// "auth") into the event log as audit-login-event entries. One goroutine drains the
// subscription into a backlog and never waits for the database, so that the event log's own
// re-publication of what is written (same topics, Source "eventlog", ignored here) can never
// fill the queue of the goroutine that is writing; a second goroutine (the caller of run)
// writes the backlog in batches of up to loginBatch events, each batch in one transaction,
// starting loginWindow after the first event of the batch arrived.
type loginRecorder struct {
	log    zerolog.Logger
	db     *db.DB
	events *eventlog.Log
	sub    *core.Subscription

	mu      sync.Mutex
	backlog []core.Event
	firstAt time.Time // arrival of backlog[0]
	dropped int       // events dropped since the last warning
	wake    chan struct{}
}

func newLoginRecorder(log zerolog.Logger, d *db.DB, events *eventlog.Log, sub *core.Subscription) *loginRecorder {
	return &loginRecorder{log: log, db: d, events: events, sub: sub, wake: make(chan struct{}, 1)}
}

// run records until ctx is done or the subscription ends, then writes what was received
// (including what was still queued in the subscription) and returns.
func (r *loginRecorder) run(ctx context.Context) {
	received := make(chan struct{})
	go func() {
		defer close(received)
		r.receive(ctx)
	}()
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		r.mu.Lock()
		n, first := len(r.backlog), r.firstAt
		r.mu.Unlock()
		if n == 0 {
			select {
			case <-r.wake:
				continue
			case <-received:
				r.flush()
				return
			}
		}
		if n < loginBatch {
			if wait := time.Until(first.Add(loginWindow)); wait > 0 {
				timer.Reset(wait)
				select {
				case <-r.wake:
					timer.Stop()
					continue // more arrived: recheck the batch size
				case <-timer.C:
				case <-received:
					timer.Stop()
					r.flush()
					return
				}
			}
		}
		r.writeBatch(ctx, r.take())
	}
}

// receive moves the login events of the subscription to the backlog until ctx is done or the
// subscription ends, and then what is still queued.
func (r *loginRecorder) receive(ctx context.Context) {
	for {
		select {
		case ev := <-r.sub.C():
			r.add(ev)
		case <-ctx.Done():
			r.drainQueued()
			return
		case <-r.sub.Done():
			r.drainQueued()
			return
		}
	}
}

func (r *loginRecorder) drainQueued() {
	for {
		select {
		case ev := <-r.sub.C():
			r.add(ev)
		default:
			return
		}
	}
}

// add keeps ev if it is a login event published by the auth module. Everything the event log
// re-publishes (Source "eventlog"), including the entries written here, is ignored: recording
// it would loop forever.
func (r *loginRecorder) add(ev core.Event) {
	if ev.Source != auth.ModuleID || (ev.Topic != "auth.login" && ev.Topic != "auth.failed") {
		return
	}
	r.mu.Lock()
	if len(r.backlog) >= loginBacklog {
		r.dropped++
		r.mu.Unlock()
		return
	}
	if len(r.backlog) == 0 {
		r.firstAt = time.Now()
	}
	r.backlog = append(r.backlog, ev)
	r.mu.Unlock()
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// take removes and returns up to loginBatch events from the backlog.
func (r *loginRecorder) take() []core.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := min(len(r.backlog), loginBatch)
	// The batch keeps the front of the array; appends only ever write past its end.
	batch := r.backlog[:n:n]
	r.backlog = r.backlog[n:]
	if len(r.backlog) == 0 {
		r.backlog = nil // let the array go with the batch
	} else {
		// The rest has waited at least as long as the batch just taken: write it next without
		// a new window.
		r.firstAt = time.Time{}
	}
	if r.dropped > 0 {
		r.log.Error().Int("dropped", r.dropped).Msg("login audit backlog full: login events dropped")
		r.dropped = 0
	}
	return batch
}

// flush writes the whole backlog, in batches, within loginWriteTimeout in all.
func (r *loginRecorder) flush() {
	ctx, cancel := context.WithTimeout(context.Background(), loginWriteTimeout)
	defer cancel()
	for {
		batch := r.take()
		if len(batch) == 0 {
			return
		}
		r.write(ctx, batch)
	}
}

// writeBatch writes a batch while the recorder runs. The write is not tied to the module's
// context: stopping waits for it (bounded by loginWriteTimeout) rather than abandoning it.
func (r *loginRecorder) writeBatch(ctx context.Context, batch []core.Event) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), loginWriteTimeout)
	defer cancel()
	r.write(ctx, batch)
}

// write appends a batch of login events in one transaction. A failure is logged: the events
// are lost, as they would be if the server had stopped before writing them.
func (r *loginRecorder) write(ctx context.Context, batch []core.Event) {
	if len(batch) == 0 {
		return
	}
	err := r.events.Write(ctx, func(tx *eventlog.Tx) error {
		ids, err := userIDs(tx, batch)
		if err != nil {
			return err
		}
		for _, ev := range batch {
			e, err := loginEntry(ev, ids)
			if err != nil {
				r.log.Error().Err(err).Str("topic", ev.Topic).Msg("login event not recordable")
				continue
			}
			if err := tx.Append(e); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		r.log.Error().Err(err).Int("events", len(batch)).Msg("login audit entries not written")
	}
}

// userIDs finds, in one query, the accounts that the failed logins of a batch tried, so that
// their entries show under the user's id (the user_id filter of audit.get). Keys are
// ASCII-lower-cased like the NOCASE collation of usernames.
func userIDs(tx *eventlog.Tx, batch []core.Event) (map[string]int64, error) {
	var names []string
	for _, ev := range batch {
		if f, ok := failedEvent(ev.Data); ok && f.Username != "" {
			names = append(names, f.Username)
		}
	}
	ids := map[string]int64{}
	if len(names) == 0 {
		return ids, nil
	}
	var rows []struct {
		ID       int64
		Username string
	}
	if err := tx.Raw(`SELECT id, username FROM users WHERE username IN ?`, names).Scan(&rows).Error; err != nil {
		return nil, fmt.Errorf("look up usernames of failed logins: %w", err)
	}
	for _, u := range rows {
		ids[asciiLower(u.Username)] = u.ID
	}
	return ids, nil
}

func failedEvent(data any) (auth.FailedEvent, bool) {
	switch d := data.(type) {
	case auth.FailedEvent:
		return d, true
	case *auth.FailedEvent:
		if d != nil {
			return *d, true
		}
	}
	return auth.FailedEvent{}, false
}

func loginEvent(data any) (auth.LoginEvent, bool) {
	switch d := data.(type) {
	case auth.LoginEvent:
		return d, true
	case *auth.LoginEvent:
		if d != nil {
			return *d, true
		}
	}
	return auth.LoginEvent{}, false
}

// loginEntry builds the audit entry of one login event. Its data is the event's payload,
// which carries no password or token (the auth module never publishes them).
func loginEntry(ev core.Event, ids map[string]int64) (*eventlog.Event, error) {
	e := &eventlog.Event{Topic: ev.Topic, Kind: eventlog.KindLogin, Time: ev.Time.UTC()}
	var data any
	switch ev.Topic {
	case "auth.login":
		l, ok := loginEvent(ev.Data)
		if !ok {
			return nil, fmt.Errorf("unexpected payload %T", ev.Data)
		}
		e.Mask = eventlog.LoginSucceeded
		e.UserID, e.AuthorID, e.AuthorName = eventlog.Ptr(l.UserID), eventlog.Ptr(l.UserID), l.Username
		e.Description = fmt.Sprintf("User %s logged in (%s, %s) from %s.", shown(l.Username), l.Dialect, l.Method, l.Remote)
		data = l
	case "auth.failed":
		f, ok := failedEvent(ev.Data)
		if !ok {
			return nil, fmt.Errorf("unexpected payload %T", ev.Data)
		}
		e.Mask = eventlog.LoginFailed
		id, known := ids[asciiLower(f.Username)]
		switch {
		case f.Username == "":
			e.Description = fmt.Sprintf("Failed login (%s) from %s: %s.", f.Dialect, f.Remote, failureReason(f.Reason))
		case known:
			e.UserID = eventlog.Ptr(id)
			e.Description = fmt.Sprintf("Failed login as %q (%s) from %s: %s.", shown(f.Username), f.Dialect, f.Remote, failureReason(f.Reason))
		default:
			// A username that is no account may be a password typed in the wrong field: it goes
			// only in the after snapshot, which administrators alone read (audit.get); the
			// description and the data pushed to subscribers do not carry it.
			after, err := json.Marshal(map[string]string{"attempted_username": f.Username})
			if err != nil {
				return nil, fmt.Errorf("encode attempted username: %w", err)
			}
			e.After = eventlog.Ptr(string(after))
			e.Description = fmt.Sprintf("Failed login as an unknown user (%s) from %s: %s.", f.Dialect, f.Remote, failureReason(f.Reason))
			f.Username = ""
		}
		data = f
	default:
		return nil, fmt.Errorf("not a login topic")
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, fmt.Errorf("encode login event: %w", err)
	}
	e.Data = b
	return e, nil
}

// failureReason words the auth module's failure reasons.
func failureReason(reason string) string {
	switch reason {
	case "bad_credentials":
		return "invalid credentials"
	case "bad_token":
		return "invalid or expired token"
	case "account_invalid":
		return "account disabled or not valid now"
	case "rate_limited":
		return "too many failed attempts, refused"
	}
	return reason
}

// shown cuts an attempted username for a description.
func shown(s string) string {
	if utf8.RuneCountInString(s) <= maxShownUsername {
		return s
	}
	return string([]rune(s)[:maxShownUsername]) + "…"
}

// asciiLower folds ASCII letters only, as SQLite's NOCASE does.
func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return r
	}, s)
}
