package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

// saveEvery is how many deliveries make a target save its cursor at once (otherwise it is
// saved within a second, and at shutdown).
const saveEvery = 100

// item is one event handed to a target's sender.
type item struct {
	seq   int64
	topic string
	body  []byte // the event as pushed to websocket clients
}

// target delivers the events of one configured Target. Two goroutines per target: the
// eventlog stream's, which hands matching events over through items (the stream's Deliver
// waits while the sender is busy, so live events accumulate in the stream's bounded queue),
// and the sender's, which posts them with retries.
type target struct {
	m     *Module
	cfg   Target
	log   zerolog.Logger
	items chan item

	deliveries, failures, retries prometheus.Counter
	lagGauge, upGauge             prometheus.Gauge

	saveMu sync.Mutex // serialises saves, so an older cursor never overwrites a newer one

	mu      sync.Mutex
	cursor  int64 // every event up to cursor is dealt with (delivered, refused or unwanted)
	saved   int64 // cursor value in the meta table
	handed  int64 // last seq handed to the sender (≥ cursor while events are in flight)
	unsaved int   // deliveries since the last save
	down    bool  // the last attempt failed and is being retried
	since   time.Time
	tries   int // failed attempts since the target went down
	// Catching up after a recovery: until the cursor reaches catchUntil (the log's end when
	// the target recovered), count what is delivered, then log it once.
	catching   bool
	catchUntil int64
	caught     int64
	recovered  time.Time
}

func newTarget(m *Module, cfg Target) *target {
	t := &target{
		m:          m,
		cfg:        cfg,
		log:        m.log.With().Str("target", cfg.Name).Str("url", redactURL(cfg.URL)).Logger(),
		items:      make(chan item, cfg.Batch),
		deliveries: m.metrics.deliveries.WithLabelValues(cfg.Name),
		failures:   m.metrics.failures.WithLabelValues(cfg.Name),
		retries:    m.metrics.retries.WithLabelValues(cfg.Name),
		lagGauge:   m.metrics.lag.WithLabelValues(cfg.Name),
		upGauge:    m.metrics.up.WithLabelValues(cfg.Name),
	}
	t.upGauge.Set(1)
	return t
}

func (t *target) cursorKey() string { return "webhook." + t.cfg.Name + ".cursor" }

// run delivers until ctx is done.
func (t *target) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { t.send(ctx) })
	t.stream(ctx)
	wg.Wait()
}

// load reads the persisted cursor. A target without one starts at the current end of the log
// (it is not sent the history), and that position is saved at once.
func (t *target) load(ctx context.Context) error {
	cursor, found, err := eventlog.ReadCursor(ctx, t.m.db, t.cursorKey())
	first := !found
	if errors.Is(err, eventlog.ErrCursorUnreadable) {
		t.log.Warn().Msg("webhook target's saved cursor is unreadable; starting at the end of the log")
	} else if err != nil {
		return err
	}
	if first {
		if cursor, err = t.m.events.LastSeq(ctx); err != nil {
			return fmt.Errorf("read the log's end: %w", err)
		}
	}
	t.mu.Lock()
	t.cursor, t.handed = cursor, cursor
	t.saved = -1
	if !first {
		t.saved = cursor
	}
	t.mu.Unlock()
	if first {
		t.log.Info().Int64("seq", cursor).Msg("new webhook target: delivering the events after the current end of the log")
		return t.save(ctx)
	}
	t.log.Debug().Int64("seq", cursor).Msg("webhook target resumes after its saved cursor")
	return nil
}

// save writes the cursor to the meta table if it moved.
func (t *target) save(ctx context.Context) error {
	t.saveMu.Lock()
	defer t.saveMu.Unlock()
	t.mu.Lock()
	c, unchanged := t.cursor, t.cursor == t.saved
	t.mu.Unlock()
	if unchanged {
		return nil
	}
	if err := eventlog.SaveCursor(ctx, t.m.db, t.cursorKey(), c); err != nil {
		return fmt.Errorf("save webhook cursor: %w", err)
	}
	t.mu.Lock()
	t.saved = c
	t.unsaved = 0
	t.mu.Unlock()
	return nil
}

// resumeFrom is the seq a new stream starts after: everything up to it is dealt with or
// already in the sender's hands.
func (t *target) resumeFrom() int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return max(t.cursor, t.handed)
}

// stream subscribes to the log after resumeFrom and hands events to the sender; when the
// stream ends because the target fell behind (its queue overflowed), it subscribes again from
// where it is — the missed events are read back from the log.
func (t *target) stream(ctx context.Context) {
	failures := 0
	for ctx.Err() == nil {
		k := &sink{t: t}
		s, err := t.m.events.Subscribe(ctx, eventlog.StreamOptions{
			Patterns: t.cfg.Topics, Since: t.resumeFrom(), Queue: t.cfg.Queue, Name: "webhook." + t.cfg.Name,
		}, k)
		if errors.Is(err, eventlog.ErrResync) {
			moved, err := t.resync(ctx)
			if err != nil && ctx.Err() == nil {
				t.log.Error().Err(err).Msg("webhook target cannot resume")
			}
			if !moved {
				failures++
				sleep(ctx, t.backoff(failures))
			}
			continue
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			failures++
			t.log.Error().Err(err).Msg("webhook target cannot subscribe to the event log; retrying")
			sleep(ctx, t.backoff(failures))
			continue
		}
		s.Start(ctx)
		s.Wait()
		s.Stop()
		switch {
		case ctx.Err() != nil:
			return
		case k.lagged.Load():
			failures = 0
			t.log.Debug().Int64("seq", t.resumeFrom()).Msg("webhook target fell behind the live events; resuming from the log")
		default: // the stream failed (it logged why): try again after a while
			failures++
			sleep(ctx, t.backoff(failures))
		}
	}
}

// resync handles a position the log cannot resume: older than what retention kept (those
// events are gone: resume at the oldest kept) or beyond the log's end (the database was
// replaced: resume at its end). It reports whether the position moved.
func (t *target) resync(ctx context.Context) (bool, error) {
	end, err := t.m.events.LastSeq(ctx)
	if err != nil {
		return false, fmt.Errorf("read the log's end: %w", err)
	}
	purged := t.m.events.Purged()
	t.mu.Lock()
	defer t.mu.Unlock()
	from := max(t.cursor, t.handed)
	switch {
	case from > end:
		t.log.Warn().Int64("cursor", from).Int64("log_end", end).
			Msg("webhook target's cursor is beyond the end of the event log (database replaced?); resuming at the end")
		t.cursor, t.handed = end, end
	case from < purged:
		t.log.Warn().Int64("cursor", from).Int64("resume_after", purged).Int64("log_events_deleted", purged-from).
			Msg("events were deleted by retention before the webhook target received them; resuming after them")
		t.cursor, t.handed = purged, purged
	default:
		return false, nil
	}
	return true, nil
}

// sink is the eventlog.Sink of one stream of a target.
type sink struct {
	t      *target
	lagged atomic.Bool
}

// Deliver hands the event to the sender, waiting while the sender is busy.
func (k *sink) Deliver(ctx context.Context, e *eventlog.Event) error {
	t := k.t
	t.mu.Lock()
	dup := e.Seq <= t.handed
	t.mu.Unlock()
	if dup {
		return nil
	}
	it := item{seq: e.Seq, topic: e.Topic, body: t.m.events.PushJSON(e)}
	select {
	case t.items <- it:
	case <-ctx.Done():
		return ctx.Err()
	}
	t.mu.Lock()
	t.handed = max(t.handed, e.Seq)
	t.mu.Unlock()
	return nil
}

// Lagged records that the stream ended because its queue overflowed.
func (k *sink) Lagged() { k.lagged.Store(true) }

// send posts what the stream hands over: up to Batch waiting events per request.
func (t *target) send(ctx context.Context) {
	for {
		var batch []item
		select {
		case <-ctx.Done():
			return
		case it := <-t.items:
			batch = append(batch, it)
		}
	fill:
		for len(batch) < t.cfg.Batch {
			select {
			case it := <-t.items:
				batch = append(batch, it)
			default:
				break fill
			}
		}
		t.deliver(ctx, batch)
	}
}

// attemptError is a failed attempt: an error, or an answer that is not 2xx.
type attemptError struct {
	status     int           // 0 when there was no answer
	retryAfter time.Duration // the answer's Retry-After, if any
	err        error
}

func (e *attemptError) Error() string { return e.err.Error() }

// permanent reports whether the answer refuses the event for good: a 4xx other than 408
// (request timeout) and 429 (too many requests).
func (e *attemptError) permanent() bool {
	return e.status >= 400 && e.status < 500 && e.status != http.StatusRequestTimeout && e.status != http.StatusTooManyRequests
}

// deliver posts a batch until the target accepts or refuses it, or ctx ends.
func (t *target) deliver(ctx context.Context, batch []item) {
	body := batch[0].body
	if t.cfg.Batch > 1 {
		parts := make([][]byte, len(batch))
		for i, it := range batch {
			parts[i] = it.body
		}
		body = append(append([]byte("["), bytes.Join(parts, []byte(","))...), ']')
	}
	for attempt := 1; ; attempt++ {
		err := t.post(ctx, batch, body)
		if err == nil { // even if the server is stopping now: the cursor is saved on the way out
			t.delivered(ctx, batch)
			return
		}
		if ctx.Err() != nil {
			return // the server is stopping: the batch is sent again after the restart
		}
		var ae *attemptError
		if errors.As(err, &ae) && ae.permanent() {
			t.refused(ctx, batch, ae)
			return
		}
		t.failed(batch, err)
		wait := t.backoff(attempt)
		if ae != nil && ae.retryAfter > 0 {
			wait = min(ae.retryAfter, t.cfg.MaxBackoff.D())
		}
		if !sleep(ctx, wait) {
			return
		}
	}
}

// post makes one attempt, bounded by the target's timeout.
func (t *target) post(ctx context.Context, batch []item, body []byte) error {
	actx, cancel := context.WithTimeout(ctx, t.cfg.Timeout.D())
	defer cancel()
	req, err := http.NewRequestWithContext(actx, http.MethodPost, t.cfg.URL, bytes.NewReader(body))
	if err != nil {
		return &attemptError{err: fmt.Errorf("build request: %w", err)}
	}
	for k, v := range t.cfg.Headers {
		req.Header.Set(k, v)
	}
	h := req.Header
	h.Set("Content-Type", "application/json")
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", "gatehouse/"+core.Version)
	}
	last := batch[len(batch)-1]
	h.Set("X-Gatehouse-Seq", strconv.FormatInt(last.seq, 10))
	if t.cfg.Batch > 1 {
		h.Set("X-Gatehouse-Batch", strconv.Itoa(len(batch)))
	} else {
		h.Set("X-Gatehouse-Event", last.topic)
	}
	if t.cfg.Secret != "" {
		mac := hmac.New(sha256.New, []byte(t.cfg.Secret))
		mac.Write(body)
		h.Set("X-Gatehouse-Signature", "sha256="+hex.EncodeToString(mac.Sum(nil)))
	}
	resp, err := t.m.client.Do(req)
	if err != nil {
		var ue *url.Error // its text would repeat the URL, query string included
		if errors.As(err, &ue) {
			err = ue.Err
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = fmt.Errorf("no answer within %v", t.cfg.Timeout.D())
		}
		return &attemptError{err: err}
	}
	defer resp.Body.Close()
	snippet, rerr := io.ReadAll(io.LimitReader(resp.Body, 256))
	if rerr == nil {
		_, rerr = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // lets the connection be reused
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if rerr != nil && errors.Is(rerr, context.DeadlineExceeded) && ctx.Err() == nil {
			t.log.Debug().Err(rerr).Msg("webhook target's answer body was not read in time; the delivery counts")
		}
		return nil
	}
	ae := &attemptError{status: resp.StatusCode, err: fmt.Errorf("answered %s", resp.Status)}
	if s := strings.TrimSpace(sanitize(snippet)); s != "" {
		ae.err = fmt.Errorf("answered %s: %s", resp.Status, s)
	}
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if secs, err := strconv.Atoi(ra); err == nil && secs >= 0 {
			ae.retryAfter = time.Duration(secs) * time.Second
		} else if when, err := http.ParseTime(ra); err == nil {
			ae.retryAfter = time.Until(when)
		}
	}
	return ae
}

// sanitize makes an answer's body fit for one log field: printable characters only.
func sanitize(b []byte) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '\uFFFD' {
			return ' '
		}
		return r
	}, string(b))
}

// delivered records an accepted batch.
func (t *target) delivered(ctx context.Context, batch []item) {
	n := int64(len(batch))
	t.deliveries.Add(float64(n))
	t.mu.Lock()
	t.cursor = max(t.cursor, batch[len(batch)-1].seq)
	t.unsaved += len(batch)
	if t.catching {
		t.caught += n
	}
	wasDown, downFor, tries := t.down, time.Since(t.since), t.tries
	t.down, t.tries = false, 0
	due := t.unsaved >= saveEvery
	t.mu.Unlock()
	if wasDown {
		t.recover(ctx, downFor, tries, n)
	}
	if due {
		if err := t.save(ctx); err != nil && ctx.Err() == nil {
			t.log.Error().Err(err).Msg("could not save the webhook target's cursor")
		}
	}
}

// recover logs that a target that was down accepts events again, and starts counting what it
// catches up on.
func (t *target) recover(ctx context.Context, downFor time.Duration, tries int, delivered int64) {
	t.upGauge.Set(1)
	end, err := t.m.events.LastSeq(ctx)
	t.mu.Lock()
	behind := end - t.cursor
	if err == nil && behind > 0 {
		t.catching, t.catchUntil, t.caught, t.recovered = true, end, delivered, time.Now()
	}
	t.mu.Unlock()
	ev := t.log.Info().Dur("down_for_ms", downFor).Int("failed_attempts", tries)
	if err == nil {
		ev = ev.Int64("log_events_behind", max(behind, 0))
	}
	ev.Msg("webhook target recovered")
}

// refused records a batch the target refused for good: it is skipped.
func (t *target) refused(ctx context.Context, batch []item, ae *attemptError) {
	t.failures.Add(float64(len(batch)))
	first, last := batch[0], batch[len(batch)-1]
	t.log.Warn().Int("status", ae.status).Str("error", ae.Error()).Int64("seq", first.seq).Int64("last_seq", last.seq).
		Str("topic", first.topic).Int("events", len(batch)).
		Msg("webhook target refused the event for good (4xx); it is skipped")
	t.mu.Lock()
	t.cursor = max(t.cursor, last.seq)
	t.unsaved += len(batch)
	wasDown, downFor, tries := t.down, time.Since(t.since), t.tries
	t.down, t.tries = false, 0
	t.mu.Unlock()
	if wasDown { // it answers again
		t.recover(ctx, downFor, tries, 0)
	}
}

// failed records an attempt that will be retried; only the first failure of an outage is
// logged at warn level.
func (t *target) failed(batch []item, err error) {
	t.retries.Inc()
	t.mu.Lock()
	wasDown := t.down
	if !wasDown {
		t.down, t.since, t.catching = true, time.Now(), false
	}
	t.tries++
	tries := t.tries
	t.mu.Unlock()
	var ae *attemptError
	status := 0
	if errors.As(err, &ae) {
		status = ae.status
	}
	if wasDown {
		t.log.Debug().Err(err).Int("status", status).Int64("seq", batch[0].seq).Int("failed_attempts", tries).
			Msg("webhook delivery failed again")
		return
	}
	t.upGauge.Set(0)
	t.log.Warn().Err(err).Int("status", status).Int64("seq", batch[0].seq).Str("topic", batch[0].topic).
		Msg("webhook target down; retrying with back-off (other targets are not affected)")
}

// housekeep is the once-a-second work of a target: move an idle cursor over the events the
// target does not want, save the cursor, update the lag gauge, report the end of a catch-up.
func (t *target) housekeep(ctx context.Context, end int64) {
	t.mu.Lock()
	down := t.down
	t.mu.Unlock()
	if !down {
		if err := t.skipUnwanted(ctx, end); err != nil && ctx.Err() == nil {
			t.log.Debug().Err(err).Msg("webhook cursor not advanced")
		}
	}
	if err := t.save(ctx); err != nil && ctx.Err() == nil {
		t.log.Error().Err(err).Msg("could not save the webhook target's cursor")
	}
	t.mu.Lock()
	cursor := t.cursor
	var caught int64
	var took time.Duration
	done := t.catching && cursor >= t.catchUntil
	if done {
		t.catching = false
		caught, took = t.caught, time.Since(t.recovered)
	}
	t.mu.Unlock()
	t.lagGauge.Set(float64(max(end-cursor, 0)))
	if done {
		t.log.Info().Int64("events", caught).Dur("took_ms", took).Msg("webhook target caught up with the events it missed")
	}
}

// skipUnwanted moves the cursor over the events after it that match none of the target's
// topics, stopping at the first one that matches (it is in flight or still to come) and at
// end. Without this, a target with rare topics would keep an old cursor: a long replay after
// a restart, a lag gauge that never reads 0, and a false "deleted by retention" warning.
func (t *target) skipUnwanted(ctx context.Context, end int64) error {
	const page, pages = 500, 20 // at most 10 000 rows a second
	t.mu.Lock()
	from := t.cursor
	t.mu.Unlock()
	upTo := from
scan:
	for range pages {
		if upTo >= end {
			break
		}
		var rows []struct {
			Seq   int64
			Topic string
		}
		err := t.m.db.Read.WithContext(ctx).Raw(`SELECT seq, topic FROM events WHERE seq > ? AND seq <= ? ORDER BY seq LIMIT ?`,
			upTo, end, page).Scan(&rows).Error
		if err != nil {
			return fmt.Errorf("read events after the cursor: %w", err)
		}
		for _, r := range rows {
			if t.wants(r.Topic) {
				break scan
			}
			upTo = r.Seq
		}
		if len(rows) < page {
			break
		}
	}
	t.mu.Lock()
	t.cursor = max(t.cursor, upTo)
	t.mu.Unlock()
	return nil
}

func (t *target) wants(topic string) bool {
	for _, p := range t.cfg.Topics {
		if core.MatchSubject(p, topic) {
			return true
		}
	}
	return false
}

// backoff returns the delay before attempt+1 (eventlog.Backoff with the target's settings).
func (t *target) backoff(attempt int) time.Duration {
	return eventlog.Backoff(t.cfg.RetryBase.D(), t.cfg.MaxBackoff.D(), attempt)
}

// sleep waits d or until ctx is done; it reports whether ctx is still live.
func sleep(ctx context.Context, d time.Duration) bool { return eventlog.Sleep(ctx, d) }
