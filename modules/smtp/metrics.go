package smtp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the notifier's Prometheus collectors.
type metrics struct {
	mails, events, retries, refused prometheus.Counter
	lag                             prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		mails: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_smtp_mails_total", Help: "Mails an SMTP server accepted (event mails, digests and test mails).",
		}),
		events: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_smtp_events_mailed_total", Help: "Events mailed (alone or in a digest).",
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_smtp_retries_total", Help: "Rounds in which no SMTP server took the mail; it is retried with back-off.",
		}),
		refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "gatehouse_smtp_refused_events_total", Help: "Events skipped because a server refused their mail for good (5xx).",
		}),
		lag: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "gatehouse_smtp_pending_events", Help: "Matched events read from the log and waiting for their mail.",
		}),
	}
	for _, c := range []prometheus.Collector{m.mails, m.events, m.retries, m.refused, m.lag} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register smtp metrics: %w", err)
		}
	}
	return m, nil
}
