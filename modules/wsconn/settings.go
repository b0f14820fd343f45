package wsconn

import (
	"time"

	"gatehouse/core"
)

// Settings are the configuration keys the websocket dialects share. A dialect's module embeds
// it, so the keys stand at the top level of the module's config, calls ApplyDefaults, and
// builds its Hub's Config with Config.
type Settings struct {
	// ReadLimitAnonymous bounds a frame before login.
	ReadLimitAnonymous int64 `json:"read_limit_anonymous"`
	// ReadLimit bounds a frame after login.
	ReadLimit int64 `json:"read_limit"`
	// QueueSize bounds the frames waiting to be written to one client.
	QueueSize int `json:"queue_size"`
	// EventQueue bounds the live events waiting for one subscribed client on top of QueueSize;
	// a client that falls further behind gets a lagged notice and close 4001.
	EventQueue int `json:"event_queue"`
	// SendBuffer is the kernel send buffer of a websocket connection over TCP, in bytes. It
	// bounds what a client that stopped reading holds in the kernel beyond EventQueue, so such
	// a client is found lagged within seconds and its memory stays small; it is far above what
	// a live client needs (an event is a few hundred bytes). -1 leaves the kernel's automatic
	// sizing (megabytes on a fast link).
	SendBuffer int `json:"send_buffer"`
	// PingInterval and PingTimeout drive keep-alive pings.
	PingInterval core.Duration `json:"ping_interval"`
	PingTimeout  core.Duration `json:"ping_timeout"`
	// WriteTimeout bounds one write of the frames ready for a client; a client slower than
	// that is dropped.
	WriteTimeout core.Duration `json:"write_timeout"`
	// CallTimeout bounds one call.
	CallTimeout core.Duration `json:"call_timeout"`
	// RateLimit is the sustained requests per second one connection may send (burst the same);
	// excess requests are refused. After defaults, 0 disables.
	RateLimit float64 `json:"rate_limit"`
	// OriginPatterns are extra browser origins (host patterns) allowed to open the websocket.
	// Same-origin and non-browser clients are always allowed.
	OriginPatterns []string `json:"origin_patterns"`
}

// ApplyDefaults fills the zero settings with the defaults every dialect shares:
// read_limit_anonymous 64 KiB, read_limit 1 MiB, queue_size 256, event_queue 4096, send_buffer
// 128 KiB, ping_interval 30s, ping_timeout 15s, write_timeout 5s, call_timeout 30s,
// rate_limit 5000 per second (a negative rate_limit disables the limit).
func (s *Settings) ApplyDefaults() {
	if s.ReadLimitAnonymous <= 0 {
		s.ReadLimitAnonymous = 64 << 10
	}
	if s.ReadLimit <= 0 {
		s.ReadLimit = 1 << 20
	}
	if s.QueueSize <= 0 {
		s.QueueSize = 256
	}
	if s.EventQueue <= 0 {
		s.EventQueue = 4096
	}
	if s.SendBuffer == 0 {
		s.SendBuffer = 128 << 10
	}
	for _, d := range []struct {
		v   *core.Duration
		def time.Duration
	}{{&s.PingInterval, 30 * time.Second}, {&s.PingTimeout, 15 * time.Second},
		{&s.WriteTimeout, 5 * time.Second}, {&s.CallTimeout, 30 * time.Second}} {
		if *d.v <= 0 {
			*d.v = core.Duration(d.def)
		}
	}
	switch {
	case s.RateLimit == 0:
		s.RateLimit = 5000
	case s.RateLimit < 0:
		s.RateLimit = 0
	}
}

// Config returns the connection configuration of s (with its defaults applied).
func (s *Settings) Config() Config {
	return Config{
		ReadLimitAnonymous: s.ReadLimitAnonymous, ReadLimit: s.ReadLimit,
		QueueSize: s.QueueSize, SendBuffer: s.SendBuffer,
		PingInterval: s.PingInterval.D(), PingTimeout: s.PingTimeout.D(), WriteTimeout: s.WriteTimeout.D(),
		RateLimit: s.RateLimit, OriginPatterns: s.OriginPatterns,
	}
}
