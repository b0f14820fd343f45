package resource

import (
	"context"
	"fmt"
	"math"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"gatehouse/core"
)

// SelfServiceChangesPerMinute is how many changes a caller below manager may make per minute
// to what is stored (their own account, their keys, the groups they administer), with as
// many at once. Sizes alone do not stop a plain user from growing the database: every change
// writes an audit entry, and a script can make a thousand a second (issue 10, point 5).
// Managers and above change the site as their work and are bounded by the connection's rate
// limit only.
const SelfServiceChangesPerMinute = 60

// ChangeBudget holds, per user, the changes a caller below manager may still make: a token
// bucket of SelfServiceChangesPerMinute per minute. It is safe for concurrent use; its memory
// is bounded by the number of users (idle buckets are dropped once it holds many).
type ChangeBudget struct {
	mu      sync.Mutex
	buckets map[int64]*rate.Limiter
	now     func() time.Time
}

// maxIdleBuckets is how many buckets a budget keeps before it drops the full (idle) ones.
const maxIdleBuckets = 4096

// NewChangeBudget returns an empty budget.
func NewChangeBudget() *ChangeBudget {
	return &ChangeBudget{buckets: map[int64]*rate.Limiter{}, now: time.Now}
}

// Spend takes one change from c's budget: nil for managers and above, or when c may make
// it; otherwise RATE_LIMITED saying when to try again, and nothing must be written.
func (b *ChangeBudget) Spend(c *core.Identity) error {
	if c == nil || Manages(c) {
		return nil
	}
	now := b.now()
	b.mu.Lock()
	l := b.buckets[c.UserID]
	if l == nil {
		if len(b.buckets) >= maxIdleBuckets {
			for id, other := range b.buckets {
				if other.TokensAt(now) >= SelfServiceChangesPerMinute {
					delete(b.buckets, id)
				}
			}
		}
		l = rate.NewLimiter(rate.Limit(float64(SelfServiceChangesPerMinute)/60), SelfServiceChangesPerMinute)
		b.buckets[c.UserID] = l
	}
	r := l.ReserveN(now, 1)
	delay := r.DelayFrom(now)
	if delay > 0 {
		r.CancelAt(now)
	}
	b.mu.Unlock()
	if delay > 0 {
		return core.E(core.RateLimited, fmt.Sprintf("Too many changes: at most %d a minute; try again in %d s.",
			SelfServiceChangesPerMinute, int(math.Ceil(delay.Seconds()))), nil)
	}
	return nil
}

// Guard returns h with one change taken from the caller's budget first (see Spend).
func (b *ChangeBudget) Guard(h core.Handler) core.Handler {
	return func(ctx context.Context, call *core.Call) (any, error) {
		if err := b.Spend(call.Caller); err != nil {
			return nil, err
		}
		return h(ctx, call)
	}
}
