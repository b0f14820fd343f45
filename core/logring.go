package core

import (
	"bytes"
	"sync"
)

// LogRing keeps the most recent log lines in memory for get_logs. It is an io.Writer: give it
// to the root logger next to the real output (io.MultiWriter). Each Write is one line (zerolog
// writes one JSON object per call). It is safe for concurrent use.
type LogRing struct {
	mu    sync.Mutex
	lines []LogLine
	next  int   // index of the slot the next line goes to
	seq   int64 // id of the last line written
	full  bool
}

// LogLine is one kept log line.
type LogLine struct {
	ID   int64
	Line []byte // the line as written, without the trailing newline
}

// NewLogRing returns a ring keeping the last n lines (n ≤ 0 means 1000).
func NewLogRing(n int) *LogRing {
	if n <= 0 {
		n = 1000
	}
	return &LogRing{lines: make([]LogLine, n)}
}

// Write implements io.Writer.
func (r *LogRing) Write(p []byte) (int, error) {
	line := bytes.TrimRight(p, "\n")
	if len(line) > 8<<10 {
		line = line[:8<<10]
	}
	cp := append([]byte(nil), line...)
	r.mu.Lock()
	r.seq++
	r.lines[r.next] = LogLine{ID: r.seq, Line: cp}
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
	r.mu.Unlock()
	return len(p), nil
}

// Lines returns the kept lines, oldest first.
func (r *LogRing) Lines() []LogLine {
	if r == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []LogLine
	if r.full {
		out = append(out, r.lines[r.next:]...)
	}
	out = append(out, r.lines[:r.next]...)
	return out
}
