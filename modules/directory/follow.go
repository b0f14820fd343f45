package directory

import (
	"context"
	"time"

	"github.com/rs/zerolog"
)

// follower is an in-memory structure kept current from change events (the user view, the
// username index). runFollower drives its life; the structure itself decides what a change
// does and how reads fall back to the database while it is not ready.
type follower interface {
	// state reports whether it serves reads, the Lagged channel of its current subscription,
	// and the channel on which it asks to be rebuilt.
	state() (ready bool, lagged <-chan struct{}, wake <-chan struct{})
	// build (re)subscribes and loads everything; after it, state reports ready.
	build(ctx context.Context) error
	// reset forgets everything after a lag: reads use the database until the next build.
	reset()
	// sync applies the changes already queued.
	sync()
}

// runFollower builds f if needed, applies queued changes on wake-ups and every tick, and
// rebuilds f when its subscription lagged, until ctx is done. A failed build is logged and
// retried a second later. what names f in logs, fallback says what reads do meanwhile.
func runFollower(ctx context.Context, f follower, tick time.Duration, log zerolog.Logger, what, fallback string) error {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		ready, lag, wake := f.state()
		if !ready {
			if err := f.build(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				log.Error().Err(err).Msgf("%s: build failed; %s meanwhile", what, fallback)
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Second):
				}
			}
			continue
		}
		select {
		case <-ctx.Done():
			return nil
		case <-lag:
			log.Warn().Msgf("%s fell behind the changes; rebuilding it (%s meanwhile)", what, fallback)
			f.reset()
		case <-wake:
		case <-t.C:
			f.sync()
		}
	}
}
