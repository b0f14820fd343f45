package smtp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"gatehouse/core"
	"gatehouse/modules/eventlog"
)

const (
	// maxPending is the most matched events held in memory; beyond, the rest stay in the
	// log until these are sent.
	maxPending = 1000
	page       = 500
	poll       = time.Second
)

// pending is a matched event waiting for its mail.
type pending struct {
	seq   int64
	to    []string
	key   string // the recipients, joined: events with the same key can share a digest
	topic string
	text  string // the event's lines in a mail
	title string // its subject when mailed alone
}

// notifier is the state of Run's loop (one goroutine).
type notifier struct {
	m        *Module
	version  int
	read     int64 // last seq read from the log
	pending  []pending
	failures int
	saved    int64
}

// Run mails the matching events until ctx is done, then saves the cursor.
func (m *Module) Run(ctx context.Context) error {
	n := &notifier{m: m, read: m.Cursor(), saved: m.Cursor()}
	n.version = m.snapshot().version
	n.loop(ctx)
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n.save(sctx)
	return nil
}

// wait waits d, a configuration change or the end of ctx; it reports whether ctx is live.
func (n *notifier) wait(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-n.m.wake:
	case <-t.C:
	}
	return true
}

func (n *notifier) loop(ctx context.Context) {
	for ctx.Err() == nil {
		cfg := n.m.snapshot()
		if cfg.version != n.version { // the rules may have changed: match again from the cursor
			n.version, n.pending, n.read, n.failures = cfg.version, nil, n.m.Cursor(), 0
		}
		if err := n.fill(ctx, cfg.rules); err != nil {
			if ctx.Err() == nil {
				n.m.log.Error().Err(err).Msg("SMTP notifier cannot read the event log")
			}
			n.wait(ctx, poll)
			continue
		}
		n.advance(ctx)
		n.m.metrics.lag.Set(float64(len(n.pending)))
		if len(n.pending) == 0 {
			n.wait(ctx, poll)
			continue
		}
		var enabled []int
		for i, s := range cfg.servers {
			if boolOr(s.Enabled, true) {
				enabled = append(enabled, i)
			}
		}
		if len(enabled) == 0 {
			n.wait(ctx, poll) // the events wait in the log for a server
			continue
		}
		n.sendNext(ctx, cfg, enabled)
	}
}

// fill reads the log after n.read and queues the events some rule wants.
func (n *notifier) fill(ctx context.Context, rules []Rule) error {
	end, err := n.m.events.LastSeq(ctx)
	if err != nil {
		return err
	}
	if n.read > end { // the database was replaced
		n.m.log.Warn().Int64("cursor", n.read).Int64("log_end", end).Msg("SMTP cursor beyond the end of the log; resuming at the end")
		n.read, n.pending = end, nil
		n.m.mu.Lock()
		n.m.cursor = end
		n.m.mu.Unlock()
	}
	if p := n.m.events.Purged(); n.read < p {
		n.m.log.Warn().Int64("cursor", n.read).Int64("resume_after", p).Msg("events were deleted by retention before the SMTP notifier mailed them")
		n.read = p
	}
	for n.read < end && len(n.pending) < maxPending {
		evs, err := n.m.events.ReadPage(ctx, n.read, end, min(page, maxPending-len(n.pending)))
		if err != nil {
			return err
		}
		if len(evs) == 0 {
			n.read = end
			break
		}
		for _, e := range evs {
			n.read = e.Seq
			if to := recipients(rules, e.Topic); len(to) > 0 {
				n.pending = append(n.pending, render(e, to))
			}
		}
	}
	return nil
}

// recipients returns the sorted addresses of every rule matching topic.
func recipients(rules []Rule, topic string) []string {
	var to []string
	for _, r := range rules {
		for _, p := range r.Topics {
			if core.MatchSubject(p, topic) {
				to = append(to, r.To...)
				break
			}
		}
	}
	slices.Sort(to)
	return slices.Compact(to)
}

// render turns an event into its mail text. Data goes through eventlog.Snapshot, which
// replaces secret fields (passwords, PINs, tokens, hashes) with "***" and clips long strings.
func render(e *eventlog.Event, to []string) pending {
	desc := e.Description
	if desc == "" {
		desc = e.Topic
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s\n\nEvent: %s\nTime:  %s\nSeq:   %d\n", desc, e.Topic, e.Time.UTC().Format(time.RFC3339), e.Seq)
	if len(e.Data) > 0 && string(e.Data) != "{}" {
		var v any
		if json.Unmarshal(e.Data, &v) == nil {
			if s, err := eventlog.Snapshot(v); err == nil && s != nil {
				fmt.Fprintf(&b, "Data:  %s\n", *s)
			}
		}
	}
	return pending{seq: e.Seq, to: to, key: strings.Join(to, ","), topic: e.Topic, text: b.String(),
		title: "[gatehouse] " + eventlog.Cut(desc, 150)}
}

// advance moves the cursor: every event before the first pending one is dealt with.
func (n *notifier) advance(ctx context.Context) {
	c := n.read
	if len(n.pending) > 0 {
		c = n.pending[0].seq - 1
	}
	n.m.mu.Lock()
	moved := c > n.m.cursor
	if moved {
		n.m.cursor = c
	}
	n.m.mu.Unlock()
	if moved {
		n.save(ctx)
	}
}

func (n *notifier) save(ctx context.Context) {
	c := n.m.Cursor()
	if c == n.saved {
		return
	}
	if err := eventlog.SaveCursor(ctx, n.m.db, cursorKey, c); err != nil {
		if ctx.Err() == nil {
			n.m.log.Error().Err(err).Msg("could not save the SMTP notifier's cursor")
		}
		return
	}
	n.saved = c
}

// compose builds the next mail for a server with tokens tokens left: the oldest pending
// event alone while the server has room for more mails, else a digest of every pending
// event for the same recipients (up to Digest of them).
func (n *notifier) next(tokens float64) (message, []int) {
	first := n.pending[0]
	if tokens >= 2 {
		return message{to: first.to, subject: first.title, body: first.text, seq: first.seq}, []int{0}
	}
	var idx []int
	for i, p := range n.pending {
		if p.key == first.key {
			idx = append(idx, i)
			if len(idx) == n.m.Digest {
				break
			}
		}
	}
	if len(idx) == 1 {
		return message{to: first.to, subject: first.title, body: first.text, seq: first.seq}, idx
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d events (the mail rate limit was reached, so they are sent together):\n", len(idx))
	topics := map[string]bool{}
	var names []string
	for _, i := range idx {
		p := n.pending[i]
		b.WriteString("\n---\n")
		b.WriteString(p.text)
		if !topics[p.topic] && len(names) < 3 {
			names = append(names, p.topic)
		}
		topics[p.topic] = true
	}
	subject := fmt.Sprintf("[gatehouse] %d events: %s", len(idx), strings.Join(names, ", "))
	if len(topics) > len(names) {
		subject += ", …"
	}
	return message{to: first.to, subject: subject, body: b.String(), seq: n.pending[idx[len(idx)-1]].seq}, idx
}

// sendNext sends one mail through the first enabled server that has room for it and takes
// it; when none has room it waits for one, when every one fails it backs off.
func (n *notifier) sendNext(ctx context.Context, cfg snapshot, enabled []int) {
	now := time.Now()
	var soonest time.Duration = -1
	tried := 0
	var lastErr error
	for _, i := range enabled {
		lim := cfg.limiters[i]
		tokens := lim.TokensAt(now)
		if tokens < 1 {
			r := lim.ReserveN(now, 1)
			d := r.DelayFrom(now)
			r.CancelAt(now)
			if soonest < 0 || d < soonest {
				soonest = d
			}
			continue
		}
		msg, idx := n.next(tokens)
		tried++
		err := send(ctx, cfg.servers[i], msg)
		if ctx.Err() != nil {
			return
		}
		var pe *permanentError
		switch {
		case err == nil:
			lim.AllowN(time.Now(), 1)
			n.m.metrics.mails.Inc()
			n.m.metrics.events.Add(float64(len(idx)))
		case errors.As(err, &pe):
			n.m.log.Warn().Err(err).Int("server", i).Int64("seq", msg.seq).Int("events", len(idx)).
				Msg("SMTP server refused the mail for good (5xx); its events are skipped")
			n.m.metrics.refused.Add(float64(len(idx)))
		default:
			lastErr = err
			n.m.log.Debug().Err(err).Int("server", i).Msg("SMTP server failed; trying the next one")
			continue
		}
		if n.failures > 0 {
			n.m.log.Info().Int("failed_attempts", n.failures).Msg("SMTP notifier delivers again")
		}
		n.failures = 0
		n.remove(idx)
		n.advance(ctx)
		return
	}
	if tried == 0 { // every server is at its rate limit
		n.wait(ctx, max(soonest, 10*time.Millisecond))
		return
	}
	n.failures++
	n.m.metrics.retries.Inc()
	if n.failures == 1 {
		n.m.log.Warn().Err(lastErr).Msg("no SMTP server takes the mail; retrying with back-off (the events wait in the log)")
	}
	n.wait(ctx, eventlog.Backoff(n.m.RetryBase.D(), n.m.MaxBackoff.D(), n.failures))
}

// remove drops the pending events at idx (ascending).
func (n *notifier) remove(idx []int) {
	out := n.pending[:0]
	j := 0
	for i, p := range n.pending {
		if j < len(idx) && idx[j] == i {
			j++
			continue
		}
		out = append(out, p)
	}
	clear(n.pending[len(out):])
	n.pending = out
}
