// Package webhook is the HTTP webhook notifier (contract §11): it POSTs every event of the
// event log whose topic matches a target's patterns to that target's URL as JSON, in seq order,
// retrying with exponential back-off until the target accepts it.
//
// Delivery is at least once and never blocks anyone. Each target reads the event log through
// its own eventlog stream (history after its cursor, then live events) and has its own
// goroutines, so a slow, failing or hanging target delays neither the bus, nor the producers,
// nor the other targets, nor websocket clients: while it waits, live events pile up in the
// stream's bounded queue, and when that overflows the target simply resumes from the log at
// its cursor. The cursor (the seq of the last event the target has dealt with) is kept in the
// meta table under "webhook.<name>.cursor", so a restart — or a stop while the target is down
// — resumes where the target left off. A target seen for the first time starts at the end of
// the log as it is when the server starts: it gets the events from then on, not the history.
// Only events deleted by the event log's retention before a target got them are lost (that
// is logged).
//
// An event is "dealt with" when the target answered 2xx, or when it answered a 4xx other than
// 408 and 429, which is a permanent refusal: the event is logged and skipped. Network errors,
// timeouts, 3xx, 408, 429 and 5xx are retried forever (until the server stops). An event can
// be delivered twice only when the target accepted it but its answer was lost (a timeout
// after the target processed the request), or when the process died before saving the cursor
// (it is saved within a second, every 100 events, and at shutdown); X-Gatehouse-Seq lets a
// receiver drop such duplicates.
//
// Targets are configured by the operator and get every matching event, whoever it concerns;
// event data never holds secrets (see eventlog.Change).
package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"gatehouse/core"
	"gatehouse/db"
	"gatehouse/modules/eventlog"
)

// ModuleID is the webhook module's ID.
const ModuleID = "webhook"

// Info declares the module. It must be loaded after the event log module.
func Info() core.ModuleInfo {
	return core.ModuleInfo{ID: ModuleID, New: func() core.Module { return new(Module) }}
}

// Defaults of a Target's optional settings.
const (
	DefaultTimeout    = 5 * time.Second
	DefaultMaxBackoff = 5 * time.Minute
	DefaultRetryBase  = time.Second
	DefaultBatch      = 1
	// DefaultQueue is how many live events a target buffers in memory before it falls back to
	// reading the log (the eventlog stream's default).
	DefaultQueue = 4096
	// MaxBatch is the largest allowed batch.
	MaxBatch = 1000
)

// Module is the webhook notifier. Its configuration is the list of targets:
//
//	{"module": "webhook", "config": {"targets": [
//	  {"name": "siem", "url": "https://siem.example/hook", "topics": ["access.*", "door.>"],
//	   "headers": {"Authorization": "Bearer …"}, "secret": "…", "timeout": "5s",
//	   "max_backoff": "5m", "batch": 1}]}}
type Module struct {
	// Targets are the URLs events are posted to, each with the topics it wants.
	Targets []Target `json:"targets"`

	log     zerolog.Logger
	db      *db.DB
	events  *eventlog.Log
	metrics *metrics
	client  *http.Client
	tr      *http.Transport
	targets []*target
}

// Target is one webhook endpoint.
type Target struct {
	// Name identifies the target in logs, metrics and its persisted cursor: [a-z0-9_-]+,
	// unique. Renaming a target makes it a new one (it starts at the end of the log).
	Name string `json:"name"`
	// URL is the http or https URL each POST goes to. Redirects are not followed.
	URL string `json:"url"`
	// Topics are the topic patterns (NATS syntax: "access.*", "door.>", ">") of the events
	// to post; at least one.
	Topics []string `json:"topics"`
	// Headers are added to every request (e.g. Authorization). They are never logged.
	// Content-Type, Content-Length, Host, Connection, Transfer-Encoding and X-Gatehouse-*
	// are set by the notifier and cannot be configured.
	Headers map[string]string `json:"headers,omitempty"`
	// Secret, when set, signs each body: X-Gatehouse-Signature: sha256=<hex HMAC-SHA256 of
	// the body keyed with the secret>.
	Secret string `json:"secret,omitempty"`
	// Timeout bounds each attempt (connect, send, answer). Default 5s.
	Timeout core.Duration `json:"timeout,omitempty"`
	// RetryBase is the first back-off delay after a failed attempt; it doubles on each
	// further failure, up to MaxBackoff, with jitter. Default 1s.
	RetryBase core.Duration `json:"retry_base,omitempty"`
	// MaxBackoff caps the delay between attempts. Default 5m.
	MaxBackoff core.Duration `json:"max_backoff,omitempty"`
	// Batch is the most events per POST. 1 (default) posts each event as a JSON object; more
	// posts a JSON array of the events that are waiting (1 to Batch of them).
	Batch int `json:"batch,omitempty"`
	// Queue is how many live events the target buffers in memory while it is busy; beyond
	// that it resumes from the log later (nothing is lost). Default 4096.
	Queue int `json:"queue,omitempty"`
}

var (
	_ core.Provisioner = (*Module)(nil)
	_ core.Validator   = (*Module)(nil)
	_ core.Runner      = (*Module)(nil)
)

// Provision wires the module to the event log, the database and the metrics registry, and
// reads each target's cursor — here rather than in Run, so that every event appended once the
// server is up reaches a new target (which starts at the end of the log as it is now).
func (m *Module) Provision(ctx *core.Context) error {
	var err error
	if m.events, err = eventlog.FromContext(ctx); err != nil {
		return err
	}
	m.log = ctx.Logger
	m.db = ctx.DB()
	if m.metrics, err = newMetrics(ctx.Metrics()); err != nil {
		return err
	}
	m.tr = http.DefaultTransport.(*http.Transport).Clone()
	m.client = &http.Client{
		Transport: m.tr,
		// A redirect is answered as a failure (retried) rather than followed: following it
		// would send the configured headers to another URL.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	if m.Validate() != nil {
		return nil // Validate reports it, and the server does not start
	}
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m.targets = make([]*target, len(m.Targets))
	for i, cfg := range m.Targets {
		t := newTarget(m, cfg.withDefaults())
		if err := t.load(c); err != nil {
			return fmt.Errorf("webhook target %s: %w", cfg.Name, err)
		}
		m.targets[i] = t
	}
	return nil
}

var namePattern = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// reservedHeaders are the headers the notifier sets itself.
var reservedHeaders = map[string]bool{
	"Content-Type": true, "Content-Length": true, "Host": true, "Connection": true,
	"Transfer-Encoding": true,
}

// Validate checks the targets: names unique and [a-z0-9_-]+, http(s) URLs, at least one valid
// topic pattern each, valid header names and values, and non-negative durations and sizes.
// Every problem is reported, each prefixed by the target it concerns.
func (m *Module) Validate() error {
	var errs []error
	seen := map[string]bool{}
	for i, t := range m.Targets {
		prefix := fmt.Sprintf("targets[%d]", i)
		if t.Name != "" {
			prefix += fmt.Sprintf(" (%s)", t.Name)
		}
		bad := func(format string, args ...any) {
			errs = append(errs, fmt.Errorf("%s: %s", prefix, fmt.Sprintf(format, args...)))
		}
		switch {
		case t.Name == "":
			bad("name is required")
		case !namePattern.MatchString(t.Name):
			bad("name %q: want 1 to 64 of a-z, 0-9, _ and -", t.Name)
		case seen[t.Name]:
			bad("name %q is used by another target", t.Name)
		}
		seen[t.Name] = true
		if t.URL == "" {
			bad("url is required")
		} else if u, err := url.Parse(t.URL); err != nil {
			bad("url: %v", err)
		} else if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
			bad("url %q: want an absolute http:// or https:// URL", redactURL(t.URL))
		}
		if len(t.Topics) == 0 {
			bad("topics: at least one topic pattern is required")
		} else if len(t.Topics) > eventlog.MaxPatterns {
			bad("topics: at most %d topic patterns", eventlog.MaxPatterns)
		}
		for _, p := range t.Topics {
			if err := core.ValidatePattern(p); err != nil {
				bad("topics: %v", err)
			}
		}
		for k, v := range t.Headers {
			canon := http.CanonicalHeaderKey(k)
			switch {
			case !validHeaderName(k):
				bad("headers: invalid header name %q", k)
			case reservedHeaders[canon] || strings.HasPrefix(canon, "X-Gatehouse-"):
				bad("headers: %s is set by the notifier and cannot be configured", canon)
			case strings.ContainsAny(v, "\r\n\x00"):
				bad("headers: the value of %s contains a line break or NUL", canon)
			}
		}
		for _, d := range []struct {
			name string
			v    core.Duration
		}{{"timeout", t.Timeout}, {"retry_base", t.RetryBase}, {"max_backoff", t.MaxBackoff}} {
			if d.v < 0 {
				bad("%s must not be negative", d.name)
			}
		}
		if t.RetryBase > 0 && t.MaxBackoff > 0 && t.RetryBase > t.MaxBackoff {
			bad("retry_base (%v) is longer than max_backoff (%v)", t.RetryBase.D(), t.MaxBackoff.D())
		}
		if t.Batch < 0 || t.Batch > MaxBatch {
			bad("batch %d: want 1 to %d (0 means 1)", t.Batch, MaxBatch)
		}
		if t.Queue < 0 {
			bad("queue must not be negative")
		}
	}
	return errors.Join(errs...)
}

// validHeaderName reports whether s is an HTTP token (RFC 9110 §5.6.2).
func validHeaderName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range []byte(s) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// withDefaults returns t with every zero setting replaced by its default.
func (t Target) withDefaults() Target {
	if t.Timeout == 0 {
		t.Timeout = core.Duration(DefaultTimeout)
	}
	if t.MaxBackoff == 0 {
		t.MaxBackoff = core.Duration(DefaultMaxBackoff)
	}
	if t.RetryBase == 0 {
		t.RetryBase = core.Duration(min(DefaultRetryBase, t.MaxBackoff.D()))
	}
	if t.Batch == 0 {
		t.Batch = DefaultBatch
	}
	if t.Queue == 0 {
		t.Queue = DefaultQueue
	}
	return t
}

// redactURL returns the URL without user info, query and fragment, for logs and errors.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(invalid URL)"
	}
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: u.Path}).String()
}

// Run delivers events to every target until ctx is done, then saves each target's cursor.
func (m *Module) Run(ctx context.Context) error {
	defer m.tr.CloseIdleConnections()
	var wg sync.WaitGroup
	for _, t := range m.targets {
		wg.Go(func() { t.run(ctx) })
	}
	if len(m.targets) == 0 {
		<-ctx.Done()
		return nil
	}
	wg.Go(func() { m.housekeep(ctx) })
	wg.Wait()
	// The run context is over; the cursors get a short one of their own.
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, t := range m.targets {
		if err := t.save(sctx); err != nil {
			t.log.Error().Err(err).Msg("could not save the webhook target's cursor")
		}
	}
	return nil
}

// housekeep runs every second: it saves the cursors that moved, moves idle cursors over the
// events their targets do not want, updates the lag gauges and reports caught-up targets.
func (m *Module) housekeep(ctx context.Context) {
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		end, err := m.events.LastSeq(ctx)
		if err != nil {
			continue
		}
		for _, t := range m.targets {
			t.housekeep(ctx, end)
		}
	}
}

// metrics are the module's Prometheus collectors, labelled by target.
type metrics struct {
	deliveries, failures, retries *prometheus.CounterVec
	lag, up                       *prometheus.GaugeVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_webhook_deliveries_total",
			Help: "Events a webhook target accepted (2xx answer).",
		}, []string{"target"}),
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_webhook_failures_total",
			Help: "Events a webhook target refused permanently (4xx other than 408 and 429) and that were skipped.",
		}, []string{"target"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gatehouse_webhook_retries_total",
			Help: "Failed delivery attempts that are retried (network error, timeout, 3xx, 408, 429, 5xx).",
		}, []string{"target"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_webhook_lag_events",
			Help: "Events in the log after the last one the webhook target has dealt with (log end - cursor).",
		}, []string{"target"}),
		up: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gatehouse_webhook_up",
			Help: "1 while the webhook target answers, 0 while its deliveries fail and are retried.",
		}, []string{"target"}),
	}
	for _, c := range []prometheus.Collector{m.deliveries, m.failures, m.retries, m.lag, m.up} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register webhook metrics: %w", err)
		}
	}
	return m, nil
}
