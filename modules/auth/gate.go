package auth

import (
	"context"
	"sync"
)

// hostGate lets one password check at a time run per source address. The hasher's bounded
// slots are then shared fairly: a burst from one address queues behind itself, never ahead of
// another address's attempt (which waits at most for the checks already hashing).
type hostGate struct {
	mu    sync.Mutex
	hosts map[string]*gateEntry
}

type gateEntry struct {
	slot chan struct{}
	refs int
}

// enter waits for the address's turn (bounded by ctx) and returns the function that ends it.
func (g *hostGate) enter(ctx context.Context, host string) (func(), error) {
	g.mu.Lock()
	if g.hosts == nil {
		g.hosts = make(map[string]*gateEntry)
	}
	e := g.hosts[host]
	if e == nil {
		e = &gateEntry{slot: make(chan struct{}, 1)}
		g.hosts[host] = e
	}
	e.refs++
	g.mu.Unlock()
	leave := func() {
		g.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(g.hosts, host)
		}
		g.mu.Unlock()
	}
	select {
	case e.slot <- struct{}{}:
		return func() { <-e.slot; leave() }, nil
	case <-ctx.Done():
		leave()
		return nil, ctx.Err()
	}
}
